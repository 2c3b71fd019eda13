"""Dot products and GEMMs of the 4-bit datapath (SPEC section 5), in the hardware's order.

A dot product of length K is fed to an N-lane unit as ``ceil(K / lanes)`` beats (the last one
padded with zero codes). Each beat's lane products are summed exactly. Then:

- ``accumulator="fp16"`` (the paper): each beat sum, scaled, is rounded to fp16 (RNE) and
  added into an fp16 accumulator with IEEE binary16 addition; the first beat loads it.
- ``accumulator="exact"``: the beat sums add into a wide integer register without error and
  the total, scaled, is rounded once to fp16 at the last beat.

Scale: a beat sum ``S`` (an integer) stands for ``S * 2**(bias + phase - g)`` where ``bias``
is 0 in forward mode and -6 in backward mode (fp4 products are in units of ``2**-6``),
``phase`` is the TPR phase bit (backward only) and ``g`` the GradScale exponent. Mode,
signedness, phase and ``g`` belong to a whole dot product.
"""

import numpy as np

from . import _check
from .formats import FP4
from .fp4 import G_RANGE, fp4_mul, int4_value
from .fp16 import fp16_add, round_fp16

__all__ = ["dot", "gemm", "MODES", "ACCUMULATORS", "operand_values"]

MODES = ("forward", "backward")
ACCUMULATORS = ("fp16", "exact")


def _options(mode, accumulator, lanes, phase, g):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if accumulator not in ACCUMULATORS:
        raise ValueError(f"accumulator must be one of {ACCUMULATORS}, not {accumulator!r}")
    lanes = int(_check.integer(lanes, "lanes", 1, 1 << 20))
    p = int(_check.phase_bit(phase)) if mode == "backward" else 0
    g = int(_check.integer(g, "g", *G_RANGE))
    bias = -FP4.PRODUCT_FRAC if mode == "backward" else 0
    return lanes, bias + p - g


def operand_values(a, mode, a_signed, w, w_signed):
    """Integer matrices whose product is the exact dot product in units of the mode's LSB.

    forward: ``int4_value(a) , int4_value(w)``; backward: ``fp4 * 64`` (an integer) and
    ``int4_value(w)``.
    """
    if mode == "backward":
        av = fp4_mul(a, 1, 0)                        # fp4 value in units of 2**-6
    else:
        av = int4_value(a, a_signed)
    return av, int4_value(w, w_signed)


def _round(sum_, exp):
    s = np.asarray(sum_, dtype=np.int64)
    return round_fp16((s < 0).astype(np.int64), np.abs(s), exp)


def gemm(a, b, *, mode="forward", a_signed=False, b_signed=True, phase="even", g=0,
         accumulator="fp16", lanes=8, flags=False):
    """``C = A @ B`` on 4-bit codes, every output element computed as the dot unit does.

    ``a``: (M, K) codes (activations, or fp4 gradients in backward mode); ``b``: (K, N) 4-bit
    integer codes. Returns (M, N) fp16 codes (and OR-ed flags with ``flags=True``).
    Products are exact integers; a chunk of ``lanes`` along K is summed exactly as in the
    adder tree (float64 matmul, exact because every partial sum stays below 2**53).
    """
    lanes, exp = _options(mode, accumulator, lanes, phase, g)
    a = _check.codes(a, 4, "a")
    b = _check.codes(b, 4, "b")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm needs a (M, K) and b (K, N); got {a.shape} and {b.shape}")
    av, bv = operand_values(a, mode, a_signed, b, b_signed)
    av, bv = av.astype(np.float64), bv.astype(np.float64)
    k = a.shape[1]
    if k >= 1 << 36:
        raise ValueError("K too large for exact float64 sums")
    if accumulator == "exact":
        code, fl = _round(np.rint(av @ bv), exp)
    else:
        code = fl = None
        for c in range(0, max(k, 1), lanes):
            part, pf = _round(np.rint(av[:, c:c + lanes] @ bv[c:c + lanes]), exp)
            if code is None:
                code, fl = part, pf
            else:
                code, af = fp16_add(code, part, flags=True)
                fl = fl | pf | af
    return (code, fl) if flags else code


def dot(x, w, *, mode="forward", x_signed=False, w_signed=True, phase="even", g=0,
        accumulator="fp16", lanes=8, flags=False):
    """Dot products along the last axis: ``x`` (..., K) and ``w`` (..., K) 4-bit codes
    (broadcast against each other) -> fp16 codes of shape (...). See the module docstring."""
    x = _check.codes(x, 4, "x")
    w = _check.codes(w, 4, "w")
    x, w = np.broadcast_arrays(x, w)
    lanes, exp = _options(mode, accumulator, lanes, phase, g)
    shape, k = x.shape[:-1], x.shape[-1]
    xv, wv = operand_values(x.reshape(-1, k), mode, x_signed, w.reshape(-1, k), w_signed)
    prod = xv * wv                                     # exact integer products
    nb = max(1, -(-k // lanes))
    prod = np.pad(prod, ((0, 0), (0, nb * lanes - k))).reshape(-1, nb, lanes)
    beat = prod.sum(axis=2)                            # exact adder tree, one sum per beat
    if accumulator == "exact":
        code, fl = _round(beat.sum(axis=1), exp)
    else:
        code, fl = _round(beat[:, 0], exp)
        for i in range(1, nb):
            part, pf = _round(beat[:, i], exp)
            code, af = fp16_add(code, part, flags=True)
            fl = fl | pf | af
    code, fl = code.reshape(shape), fl.reshape(shape)
    return (code, fl) if flags else code

