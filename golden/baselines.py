"""Golden models of the density baselines (:mod:`hdl.baselines`): FP16 and INT8 dot products
in the hardware's order of operations.

``fp16_dot``: a dot product of length K is fed to an N-lane unit as ``ceil(K / lanes)`` beats
(the last one padded with ``+0`` codes). Each beat's products are rounded to fp16
(:func:`golden.fp16_mul`), summed in a balanced tree of :func:`golden.fp16_add` over pairs
``(2j, 2j + 1)`` level by level, and the beat sums are accumulated in fp16, the first beat
loading the accumulator. Flags are the OR of every operation's flags.

``fused_fp16_dot``: the same beats, but each beat's products are exact (11 x 11-bit
significands, summed exponents) and summed exactly, and the exact beat sum is rounded once
to fp16 (:func:`golden.round_fp16`); the rounded beat sums are accumulated in fp16 as in
``fp16_dot``. NaN, Inf and signed zeros: ``docs/numerics.md``, Density baselines.

``int8_dot``: the exact integer dot product of int8 operands (the INT8 unit's accumulator
holds ``2**16`` beats exactly).
"""

import numpy as np

from . import _check
from .formats import FLAG_INVALID, FP16, FUSED_LSB_EXP
from .fp16 import decode_fp16, fp16_add, fp16_mul, is_nan, is_snan, round_fp16

__all__ = ["fp16_dot", "fused_fp16_dot", "int8_dot", "FUSED_LSB_EXP"]

# round_fp16 takes magnitudes below 2**62; an exact beat sum (up to 2**(80 + log2(lanes)) in
# units of 2**-48) keeps its top _KEEP_BITS bits and a sticky bit below them.
_KEEP_BITS = 60


def _pair(a, b, name_a, name_b, check):
    a = np.ravel(check(a, name_a))
    b = np.ravel(check(b, name_b))
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same length, not "
                         f"{a.size} and {b.size}")
    if a.size == 0:
        raise ValueError(f"{name_a} and {name_b} must not be empty")
    return a, b


def _lanes(lanes):
    n = int(_check.integer(lanes, "lanes", 1, 1 << 20))
    if n & (n - 1):
        raise ValueError(f"lanes must be a power of two, not {n}")
    return n


def _beats(a, b, lanes):
    """Checked operands as ``(beats, lanes)`` int64 arrays, the last beat padded with +0."""
    a, b = _pair(a, b, "a", "b", lambda x, n: _check.codes(x, 16, n))
    n = _lanes(lanes)
    beats = -(-a.size // n)
    pa = np.zeros(beats * n, dtype=np.int64)
    pb = np.zeros(beats * n, dtype=np.int64)
    pa[:a.size], pb[:b.size] = a, b
    return pa.reshape(beats, n), pb.reshape(beats, n)


def _accumulate(sums, beat_flags, flags):
    """The fp16 accumulator: the first beat sum loads it, the others add in beat order."""
    acc, acc_flags = sums[0], beat_flags[0]
    for k in range(1, len(sums)):
        acc, f = fp16_add(acc, sums[k], flags=True)
        acc_flags = acc_flags | beat_flags[k] | f
    acc = np.uint16(acc)
    return (acc, np.uint8(acc_flags)) if flags else acc


def fp16_dot(a, b, *, lanes=8, flags=False):
    """FP16 dot product of fp16 code vectors ``a`` and ``b`` as the ``lanes``-lane unit
    computes it; returns an fp16 code (and the OR of all flags with ``flags=True``)."""
    pa, pb = _beats(a, b, lanes)
    vals, fl = fp16_mul(pa, pb, flags=True)
    beat_flags = np.bitwise_or.reduce(fl, axis=1)
    while vals.shape[1] > 1:
        vals, fl = fp16_add(vals[:, 0::2], vals[:, 1::2], flags=True)
        beat_flags |= np.bitwise_or.reduce(fl, axis=1)
    return _accumulate(vals[:, 0], beat_flags, flags)


def _fit(total):
    """Exact integer beat sums (Python ints) -> ``(sign, mag, exp)`` arrays for
    :func:`round_fp16`: magnitudes longer than ``_KEEP_BITS`` bits keep their top bits and
    the OR of the rest as a sticky LSB. The sticky bit lies more than two places below
    every rounding position (the result's 11 bits and its round bit), so the rounding, its
    flags and the tininess test are those of the exact sum."""
    sign, mag, exp = [], [], []
    for t in total:
        t = int(t)
        m = abs(t)
        drop = max(m.bit_length() - _KEEP_BITS, 0)
        kept = (m >> drop) | (1 if m & ((1 << drop) - 1) else 0)
        sign.append(int(t < 0))
        mag.append(kept)
        exp.append(FUSED_LSB_EXP + drop)
    return (np.array(sign, np.int64), np.array(mag, np.uint64), np.array(exp, np.int64))


def fused_fp16_dot(a, b, *, lanes=8, flags=False):
    """Fused FP16 dot product of fp16 code vectors ``a`` and ``b`` as the ``lanes``-lane
    fused unit computes it: per beat, exact products summed exactly and rounded once to
    fp16; the beat sums accumulated in fp16. Returns an fp16 code (and the OR of all flags
    with ``flags=True``)."""
    pa, pb = _beats(a, b, lanes)
    sa, ma, ea = decode_fp16(pa)
    sb, mb, eb = decode_fp16(pb)
    sign = sa ^ sb
    inf_a = (pa & FP16.MAG_MASK) == FP16.INF
    inf_b = (pb & FP16.MAG_MASK) == FP16.INF
    zero_a = (pa & FP16.MAG_MASK) == 0
    zero_b = (pb & FP16.MAG_MASK) == 0
    zero_inf = (inf_a & zero_b) | (inf_b & zero_a)
    lane_nan = is_nan(pa) | is_nan(pb) | zero_inf
    lane_inf = (inf_a | inf_b) & ~lane_nan
    finite = ~(lane_nan | lane_inf)
    # Exact products in units of 2**-48: significand product << (sum of LSB weights + 48).
    shift = np.where(finite, ea + eb - FUSED_LSB_EXP, 0)
    prod = np.where(finite, ma * mb, 0).astype(object) << shift.astype(object)
    total = np.where(sign == 1, -prod, prod).sum(axis=1)
    codes, fl = round_fp16(*_fit(total))
    # Special values of the beat: NaN beats Inf, Inf beats the all -0 sum.
    pos_inf = (lane_inf & (sign == 0)).any(axis=1)
    neg_inf = (lane_inf & (sign == 1)).any(axis=1)
    inf_inf = pos_inf & neg_inf
    nan = lane_nan.any(axis=1) | inf_inf
    inf = pos_inf | neg_inf
    invalid = (is_snan(pa) | is_snan(pb) | zero_inf).any(axis=1) | inf_inf
    neg_zero = ((zero_a | zero_b) & (sign == 1)).all(axis=1)
    codes = np.where(neg_zero, FP16.SIGN_MASK, codes)
    codes = np.where(inf, np.where(neg_inf, FP16.SIGN_MASK | FP16.INF, FP16.INF), codes)
    codes = np.where(nan, FP16.QNAN, codes)
    fl = np.where(nan | inf | neg_zero, 0, fl) | np.where(invalid, FLAG_INVALID, 0)
    return _accumulate(codes.astype(np.uint16), fl.astype(np.uint8), flags)


def int8_dot(a, b):
    """Exact dot product of int8 values ``a`` and ``b`` (``-128 .. 127``), a Python int."""
    a, b = _pair(a, b, "a", "b", lambda x, n: _check.integer(x, n, -128, 127))
    return int(np.dot(a, b))
