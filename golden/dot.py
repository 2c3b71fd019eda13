"""Dot products and GEMMs of the 4-bit datapath (docs/numerics.md), in the hardware's order.

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

import math

import numpy as np

from . import _check
from .formats import ACCUMULATORS, FP4, FP16, G_RANGE, MODES
from .fp4 import fp4_mul, int4_value
from .fp16 import fp16_add, fp16_add_one, round_fp16

__all__ = ["dot", "gemm", "MODES", "ACCUMULATORS", "operand_values"]



def _options(mode, accumulator, lanes, phase, g):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if accumulator not in ACCUMULATORS:
        raise ValueError(f"accumulator must be one of {ACCUMULATORS}, not {accumulator!r}")
    lanes = int(_check.integer(lanes, "lanes", 1, 1 << 20))
    p = int(_check.phase_bit(phase))            # checked in both modes; forward ignores it
    p = p if mode == "backward" else 0
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


def _gemm_fast(a, b, mode, a_signed, b_signed, exp, accumulator, lanes, plan=None):
    """The fast path of :func:`gemm`: float32 BLAS on exactly representable sums.

    Returns fp16 codes, or None when an exactness condition fails (the caller then takes the
    reference path). Every value below is an integer multiple of ``2**exp`` whose partial
    sums stay within ``2**24`` units, so float32 adds them without error in any order.
    ``exact``: a single cast to float16 (RNE, gradual underflow, overflow to Inf) is the one
    rounding of the contract -- the same as ``round_fp16`` on the exact sum. ``fp16``: see
    :func:`_gemm_fp16_acc` (``plan`` forces one of its loops, for the tests).
    """
    if not (_F32_EXP_RANGE[0] <= exp <= _F32_EXP_RANGE[1]):
        return None
    if np.ndim(a_signed) or np.ndim(b_signed):
        return None
    lut_a, lut_b, amax, bmax = _value_tables(mode, a_signed, b_signed, exp)
    if accumulator == "fp16" and lanes * amax * bmax > _F32_EXACT:
        return None                                  # a beat sum may be inexact in float32
    av = np.take(lut_a, a)
    bv = np.take(lut_b, b)
    m, k = a.shape
    n = b.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):
        if accumulator == "fp16":
            return _gemm_fp16_acc(av, bv, exp, lanes, amax, bmax, plan)
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


# --- fp16 accumulation on float32 -----------------------------------------------------------
# Beat sums and the accumulator live in float32 buffers whose values are always fp16 values
# (or +-Inf, NaN); each rounding to fp16 is a few float32/uint32 ufunc passes: NumPy's float16
# casts and float16 adds convert element by element in scalar C, a cast costing ~25 passes.
# A float32 standing for the fp16 value v lives in one of three domains:
#   real  v            the value itself;
#   U     v * 2**112   fp16's top binade [2**15, 2**16) is float32's top binade [2**127,
#                      2**128): a rounding carry out of it is float32's Inf bit pattern, i.e.
#                      fp16's overflow to Inf comes for free;
#   S     v * 2**-112  fp16's exponent field is float32's (bias 15 = 127 - 112) and fp16's
#                      subnormals are float32 subnormals: the fp16 code is bits 13..27 + sign.
# Every scaling between them is exact (powers of two; 2**-24 * 2**-112 = 2**13 * 2**-149).
_FP16_MAX = 65504.0
_FP16_GRID_EXP = -24                         # every fp16 value is a multiple of 2**-24
_ULP_REL = 2.0 ** -11                        # normal range: |fp16(x) - x| <= 2**-11 |x|
_U_EXP = 112
_TO_U = np.float32(2.0 ** _U_EXP)
_FROM_U = np.float32(2.0 ** -_U_EXP)
_VELTKAMP = np.float32(1 + 2 ** 13)          # splits 24 significand bits into 11 + 13
_EXP_FIELD = np.uint32(0x7F800000)
_C_LO = np.uint32((127 - 14) << 23)          # 2**-14: fp16's smallest normal binade
_C_HI = np.uint32((127 + 16) << 23)          # 2**16: larger x round to Inf anyway
_C_OFF = np.uint32((13 << 23) | (1 << 22))   # bit pattern of 2**e -> of 1.5 * 2**(e + 13)
_RNE_HALF = np.uint32(0x0FFF)                # half of the 13 dropped bits, less one
_RNE_KEEP = np.uint32(0xFFFFE000)            # sign, exponent and the 10 kept fraction bits
_BLOCK = 1 << 16                             # outputs per row block: buffers stay in L2
FP16_PLANS = ("narrow", "wide", "tiny")


def _round_fp16_veltkamp(x, t):
    """In place: float32 ``x`` <- ``x`` rounded to 11 significant bits, RNE. ``t``: scratch.

    Veltkamp's splitting with s = 24 - 11 = 13: ``g = (2**13 + 1) x``, ``x <- g + (x - g)``
    rounds ``x`` to nearest on 11 bits, ties to even (checked exhaustively over a binade in
    the tests; the three operations commute with powers of two while they stay normal). So it
    is fp16's rounding for ``|x| < 65520`` when ``x`` is a multiple of 2**-24: below fp16's
    normal range such an ``x`` has at most 10 bits and stays. ``-0.0`` gives ``+0.0``.
    3 passes.
    """
    np.multiply(x, _VELTKAMP, out=t)             # g = RN((2**13 + 1) x)
    np.subtract(x, t, out=x)                     # RN(x - g)
    np.add(x, t, out=x)                          # g + (x - g): x on 11 bits


def _round_fp16_u(x, t):
    """In place: U-domain float32 ``x`` (value * 2**112) <- rounded to fp16. ``t``: scratch.

    RNE on the bit pattern: add 0x0FFF plus the lowest kept bit, clear the 13 dropped bits;
    this carries past bit 12 exactly when the dropped part is above half, or half with an
    odd kept part. A carry moves into the exponent (next binade), and out of the top binade
    into the Inf pattern 0x7F800000: here, fp16's overflow (|value| >= 65520). Signs (-0
    too), +-Inf and float32's default NaN pass unchanged. Exact for fp16's normal range
    (float32 >= 2**98 here); below it only for multiples of 2**-24 (2**88 here), which have
    at most 10 bits and stay. 5 passes.
    """
    u, tu = x.view(np.uint32), t.view(np.uint32)
    np.right_shift(u, np.uint32(13), out=tu)
    np.bitwise_and(tu, np.uint32(1), out=tu)     # the lowest kept bit: ties to even
    np.add(tu, _RNE_HALF, out=tu)
    np.add(u, tu, out=u)
    np.bitwise_and(u, _RNE_KEEP, out=u)


def _round_fp16_any(x, c, t):
    """In place: float32 ``x`` <- fp16(``x``) as a float32, for any float32 (RNE, gradual
    underflow, overflow to Inf, signed zeros, NaN stays NaN). ``c``, ``t``: scratches.

    ``c = 1.5 * 2**(e + 13)``, ``e`` the binade of ``x`` clipped to [-14, 16]: ``x + c`` stays
    in c's binade, whose ulp ``2**(e - 10)`` is fp16's quantum at ``x`` (2**-24 in the
    subnormal range) and of which ``c`` is an even multiple, so that float32 add rounds ``x``
    to fp16 precision, ties to even; ``- c`` is exact (Sterbenz). A result >= 2**16 overflows
    to Inf in ``* 2**112`` (``* 2**-112`` back is exact); ``copysign`` gives a result rounded
    to zero the sign of ``x``. 8 passes.
    """
    cu = c.view(np.uint32)
    np.bitwise_and(x.view(np.uint32), _EXP_FIELD, out=cu)      # 2**e (0 if subnormal)
    np.clip(cu, _C_LO, _C_HI, out=cu)
    np.add(cu, _C_OFF, out=cu)                                  # c = 1.5 * 2**(e + 13)
    np.add(x, c, out=t)                                         # the rounding
    np.subtract(t, c, out=t)
    np.multiply(t, _TO_U, out=t)                                # >= 2**16 -> Inf
    np.multiply(t, _FROM_U, out=t)
    np.copysign(t, x, out=x)


def _fp16_codes_s(s):
    """fp16 codes of S-domain float32 ``s`` (fp16 value * 2**-112, or +-Inf, NaN).

    Sign, then bits 13..27 (Inf's all-ones exponent gives 0x7C00); NaN -> 0x7E00.
    """
    u = s.view(np.uint32)
    code = (((u >> np.uint32(16)) & np.uint32(0x8000))
            | ((u >> np.uint32(13)) & np.uint32(0x7FFF))).astype(np.uint16)
    nan = np.isnan(s)
    if nan.any():
        code[nan] = FP16.QNAN
    return code


def _fp16_plans(av, exp, nb, amax, bmax):
    """The loops of :func:`_gemm_fp16_acc` that are exact for this gemm, fastest first.

    "narrow": beat sums are multiples of 2**-24 (``exp >= -24``) and no value reaches 65520:
    with ``A = max_i sum_k |a_ik|``, every beat sum is at most ``A bmax 2**exp`` and each of
    the ``2 nb`` roundings grows a magnitude by at most ``1 + 2**-11`` (float64 row sums are
    exact: below 2**53 units). "wide": multiples of 2**-24, any magnitude. "tiny": always.
    """
    plans = []
    if exp >= _FP16_GRID_EXP:
        try:
            grow = (1.0 + _ULP_REL) ** (2 * nb)
        except OverflowError:                         # past some 727000 beats
            grow = math.inf
        limit = _FP16_MAX / (grow * bmax * np.ldexp(1.0, exp))
        k = av.shape[1]
        if k * amax <= limit or (np.abs(av).sum(axis=1, dtype=np.float64).max(initial=0.0)
                                 * np.ldexp(1.0, -exp) <= limit):
            plans.append("narrow")
        plans.append("wide")
    plans.append("tiny")
    return plans


def _fp16_u_fold(lanes, k, amax, bmax, exp):
    """True when the U-domain scale 2**112 can go into ``av``: every partial sum of a beat,
    at most ``min(lanes, k) amax bmax 2**(exp + 112)``, stays below 2**127 (finite)."""
    return min(lanes, k) * amax * bmax * np.ldexp(1.0, exp + _U_EXP) <= 2.0 ** 127


def _gemm_fp16_acc(av, bv, exp, lanes, amax, bmax, plan=None):
    """fp16 accumulation in the contract's order on float32 buffers, bit-identical to the
    reference path.

    ``av`` (M, K) and ``bv`` (K, N): operand values in float32, ``2**exp`` folded into ``av``;
    every beat sum ``av[:, c:c+lanes] @ bv[c:c+lanes]`` is exact (checked by the caller:
    ``lanes * amax * bmax <= 2**24`` units). Per beat, in a preallocated buffer:

    - ``part = fp16(beat sum)``: the one rounding of the exact sum, as ``round_fp16``;
    - ``acc = part`` (first beat), else ``acc = fp16(acc + part)``: a float32 add of two fp16
      values rounded to fp16 is the IEEE binary16 sum, as 24 >= 2*11 + 2 significand bits
      make the double rounding innocuous (S. Figueroa, 1995); below 2**-14 the sum is a
      multiple of 2**-24 and exact. x + (-x) = +0, -0 + -0 = -0, Inf - Inf = NaN, as in
      binary16.

    Loops (see :func:`_fp16_plans`; ``plan`` forces one, for the tests):

    - "narrow": real domain, :func:`_round_fp16_veltkamp` for both roundings (7 passes a beat);
    - "wide": U domain (the table scale ``2**112`` folded into ``av`` when every beat sum
      stays finite there, else ``* 2**112`` per beat, which overflows only to the Inf fp16
      gives), :func:`_round_fp16_u` for both (11 passes, 12 unfolded);
    - "tiny": real-domain parts by :func:`_round_fp16_any`, then ``* 2**112`` and the U-domain
      accumulation of "wide" (16 passes).

    A zero beat sum is +0 as in ``round_fp16`` (BLAS may return -0.0, a sum of -0.0
    products): Veltkamp maps -0 to +0; in "wide" no nonzero part rounds to zero, so the
    accumulator can be -0 only through the first part, which gets ``+ 0.0``; in "tiny" each
    part gets ``+ 0.0`` before its rounding. Rows go in blocks of about _BLOCK outputs, so the
    buffers stay in cache. Returns fp16 codes; K = 0 is one all-zero beat: +0.
    """
    m, k = av.shape
    n = bv.shape[1]
    if k == 0:
        return np.zeros((m, n), np.uint16)
    plans = _fp16_plans(av, exp, -(-k // lanes), amax, bmax)
    if plan is None:
        plan = plans[0]
    elif plan not in plans:
        raise ValueError(f"fp16 loop {plan!r} is not exact here (exact: {plans})")
    narrow, wide, tiny = (plan == p for p in FP16_PLANS)
    scale_parts = not narrow
    if wide and _fp16_u_fold(lanes, k, amax, bmax, exp):
        av = av * _TO_U                               # exact, beat sums finite
        scale_parts = False
    out = np.empty((m, n), np.float32)
    rows = max(1, _BLOCK // max(n, 1))
    part, t = np.empty((2, min(rows, m), n), np.float32)
    c = np.empty_like(t) if tiny else None
    for r in range(0, m, rows):
        acc = out[r:r + rows]
        h = acc.shape[0]
        p_, t_ = part[:h], t[:h]
        c_ = c[:h] if tiny else None
        for i, j in enumerate(range(0, k, lanes)):
            p = acc if i == 0 else p_
            np.matmul(av[r:r + rows, j:j + lanes], bv[j:j + lanes], out=p)   # exact
            if narrow:
                _round_fp16_veltkamp(p, t_)           # fp16(part): |part| <= 65504 on 2**-24
            else:
                if tiny:
                    np.add(p, 0.0, out=p)             # -0.0 (zero sum) -> +0
                    _round_fp16_any(p, c_, t_)        # fp16(part), any magnitude
                if scale_parts:
                    np.multiply(p, _TO_U, out=p)      # exact, or the Inf of fp16 overflow
                if wide:
                    _round_fp16_u(p, t_)              # fp16(part): on 2**-24, overflow Inf
                    if i == 0:
                        np.add(p, 0.0, out=p)         # -0.0 (zero sum) -> +0
            if i:
                np.add(acc, p, out=acc)               # float32 sum of two fp16 values;
                if narrow:                            # rounded once more: the binary16 sum
                    _round_fp16_veltkamp(acc, t_)
                else:
                    _round_fp16_u(acc, t_)
    if not narrow:
        out *= _FROM_U                                # U -> real
    out *= _FROM_U                                    # real -> S
    return _fp16_codes_s(out)


def gemm(a, b, *, mode="forward", a_signed=False, b_signed=True, phase="even", g=0,
         accumulator="fp16", lanes=8, flags=False):
    """``C = A @ B`` on 4-bit codes, every output element computed as the dot unit does.

    ``a``: (M, K) codes (activations, or fp4 gradients in backward mode); ``b``: (K, N) 4-bit
    integer codes. Returns (M, N) fp16 codes (and OR-ed flags with ``flags=True``).
    Products are exact integers; a chunk of ``lanes`` along K is summed exactly as in the
    adder tree.

    Without ``flags`` the sums run through float32 BLAS wherever that is provably exact
    (see ``_gemm_fast``; fp16 accumulation rounds each beat and each add with float32 ufuncs,
    see ``_gemm_fp16_acc``), bit-identical to the reference path; with ``flags=True``, or
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


# Below this many dot products, the sequential fp16 additions run one pair at a time in
# Python integers (fp16_add_one, microseconds each) rather than as array calls across the
# dot products (a fixed cost of about 0.4 ms per beat, whatever the rows).
_ONE_BY_ONE_ROWS = 32


def _accumulate_one_by_one(parts, pfs):
    """``parts[:, 0] + parts[:, 1] + ...`` in fp16, left to right, and the OR of every flag:
    each row with :func:`fp16_add_one`."""
    codes, flags = [], []
    for row, row_flags in zip(parts.tolist(), pfs.tolist(), strict=True):
        acc, fl = row[0], 0
        for part in row[1:]:
            acc, af = fp16_add_one(acc, part)
            fl |= af
        for f in row_flags:
            fl |= f
        codes.append(acc)
        flags.append(fl)
    return np.array(codes, np.uint16), np.array(flags, np.uint8)


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
        # Every beat sum rounds on its own (one vectorized call); the additions are the
        # sequential part, in beat order.
        parts, pfs = _round(beat, exp)
        if rows <= _ONE_BY_ONE_ROWS:
            code, fl = _accumulate_one_by_one(parts, pfs)
        else:
            code, fl = parts[:, 0], pfs[:, 0]
            for i in range(1, nb):
                code, af = fp16_add(code, parts[:, i], flags=True)
                fl = fl | pfs[:, i] | af
    code, fl = code.reshape(shape), fl.reshape(shape)
    return (code, fl) if flags else code

