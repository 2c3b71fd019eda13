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


# float32 holds every integer up to 2**24 exactly, at every power-of-two weight from its
# smallest subnormal (2**-149) up to where 2**24 units reach 2**127: so a float32 matmul is
# exact when the sum of |products| of every output stays within 2**24 units of 2**exp.
_F32_EXACT = float(1 << 24)
_F32_EXP_RANGE = (-149, 127 - 24)
_ACCUMULATE_MAX = 1 << 14     # outputs per beat below which np.add.accumulate is faster


def _codes_fast(x, bits, name):
    """``_check.codes`` without the int64 copy for the common uint8 case (same errors)."""
    a = np.asarray(x)
    if a.dtype == np.uint8 and (a.size == 0 or int(a.max()) < (1 << bits)):
        return a
    return _check.codes(a, bits, name).astype(np.uint8)


def _value_tables(mode, a_signed, b_signed, exp):
    """float32 look-up tables code -> value for both operands; ``2**exp`` folded into a's."""
    codes = np.arange(16, dtype=np.uint8)
    av, bv = operand_values(codes, mode, a_signed, codes, b_signed)
    return (np.ldexp(av.astype(np.float64), exp).astype(np.float32),
            bv.astype(np.float32), float(np.abs(av).max()), float(np.abs(bv).max()))


def _gemm_fast(a, b, mode, a_signed, b_signed, exp, accumulator, lanes):
    """The fast path of :func:`gemm`: float32 BLAS on exactly representable sums.

    Returns fp16 codes, or None when an exactness condition fails (the caller then takes the
    reference path). Every value below is an integer multiple of ``2**exp`` whose partial
    sums stay within ``2**24`` units, so float32 adds them without error in any order, and
    a single cast to float16 (RNE, gradual underflow, overflow to Inf) is the one rounding
    of SPEC 5 -- the same as ``round_fp16`` on the exact sum.
    """
    if not (_F32_EXP_RANGE[0] <= exp <= _F32_EXP_RANGE[1]):
        return None
    if np.ndim(a_signed) or np.ndim(b_signed):
        return None
    lut_a, lut_b, amax, bmax = _value_tables(mode, a_signed, b_signed, exp)
    av = np.take(lut_a, a)
    bv = np.take(lut_b, b)
    m, k = a.shape
    n = b.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):
        if accumulator == "exact":
            if k * amax * bmax <= _F32_EXACT:                    # cheap global bound
                bound = 0.0
            else:                                                # per-row bound
                bound = (np.abs(av).sum(axis=1, dtype=np.float64).max(initial=0.0)
                         * np.ldexp(1.0, -exp) * bmax)
            if bound <= _F32_EXACT:
                out = av @ bv
            else:
                # Split K so that every chunk is exact on its own; add chunks in float64
                # (exact: the total stays below 2**53 units, K < 2**36 is checked).
                step = max(1, int(_F32_EXACT // max(amax * bmax, 1.0)))
                out = np.zeros((m, n), np.float64)
                for c in range(0, k, step):
                    out += av[:, c:c + step] @ bv[c:c + step]
            # + 0.0 turns a BLAS -0.0 (sum of -0.0 products) into the reference's +0.
            return (out + 0.0).astype(np.float16).view(np.uint16)
        if lanes * amax * bmax > _F32_EXACT:
            return None
        nb = max(1, -(-k // lanes))
        ap = np.zeros((m, nb * lanes), np.float32)
        ap[:, :k] = av
        bp = np.zeros((nb * lanes, n), np.float32)
        bp[:k] = bv
        a3 = np.ascontiguousarray(ap.reshape(m, nb, lanes).transpose(1, 0, 2))
        b3 = bp.reshape(nb, lanes, n)
        acc = None
        group = max(1, (1 << 22) // max(m * n, 1))       # bound the beat buffer to ~16 MB
        for i in range(0, nb, group):
            # Beat sums (exact), each rounded once to fp16 by the cast.
            parts = (np.matmul(a3[i:i + group], b3[i:i + group]) + 0.0).astype(np.float16)
            if acc is not None:
                parts[0] = acc + parts[0]
            # Sequential fp16 accumulation, beat after beat, with NumPy's binary16 add: it
            # adds in float32 and rounds to binary16; 24 >= 2*11 + 2 significand bits make
            # that double rounding innocuous (S. Figueroa, 1995), so each sum is the correctly
            # rounded IEEE one (checked in the tests against TestFloat vectors,
            # golden.fp16_add and golden.dot).
            if m * n <= _ACCUMULATE_MAX:          # many small beats: one C loop over them
                acc = np.add.accumulate(parts, axis=0, dtype=np.float16)[-1]
            else:                                 # few large beats: add in place
                acc = parts[0]
                for p in parts[1:]:
                    np.add(acc, p, out=acc)
        code = acc.view(np.uint16)
        return np.where(np.isnan(acc), np.uint16(0x7E00), code)   # canonical quiet NaN


def gemm(a, b, *, mode="forward", a_signed=False, b_signed=True, phase="even", g=0,
         accumulator="fp16", lanes=8, flags=False):
    """``C = A @ B`` on 4-bit codes, every output element computed as the dot unit does.

    ``a``: (M, K) codes (activations, or fp4 gradients in backward mode); ``b``: (K, N) 4-bit
    integer codes. Returns (M, N) fp16 codes (and OR-ed flags with ``flags=True``).
    Products are exact integers; a chunk of ``lanes`` along K is summed exactly as in the
    adder tree.

    Without ``flags`` the sums run through float32 BLAS wherever that is provably exact
    (see ``_gemm_fast``), bit-identical to the reference path; with ``flags=True``, or
    outside those conditions, each beat is rounded by ``round_fp16`` and added by
    ``fp16_add`` (float64 sums, exact because every partial sum stays below 2**53).
    """
    lanes, exp = _options(mode, accumulator, lanes, phase, g)
    a = _codes_fast(a, 4, "a")
    b = _codes_fast(b, 4, "b")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm needs a (M, K) and b (K, N); got {a.shape} and {b.shape}")
    k = a.shape[1]
    if k >= 1 << 36:
        raise ValueError("K too large for exact float64 sums")
    if not flags:
        code = _gemm_fast(a, b, mode, a_signed, b_signed, exp, accumulator, lanes)
        if code is not None:
            return code
    return _gemm_reference(a, b, mode, a_signed, b_signed, exp, accumulator, lanes, flags)


def _gemm_reference(a, b, mode, a_signed, b_signed, exp, accumulator, lanes, flags):
    av, bv = operand_values(a, mode, a_signed, b, b_signed)
    av, bv = av.astype(np.float64), bv.astype(np.float64)
    k = a.shape[1]
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
    if x.ndim == 0:
        raise ValueError("x and w need at least one axis: the dot-product axis (the last)")
    shape, k = x.shape[:-1], x.shape[-1]
    rows = int(np.prod(shape, dtype=np.int64))
    xv, wv = operand_values(x.reshape(rows, k), mode, x_signed, w.reshape(rows, k), w_signed)
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

