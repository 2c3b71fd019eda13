"""Radix-4 fp4: the log converter (fp16 -> fp4), the decoder (fp4 -> fp16), and the
shift-lane product fp4 x int4/uint4 (docs/numerics.md: Formats, Log converter, fp4 -> fp16)."""

import numpy as np

from . import _check
from .formats import (
    FLAG_INEXACT,
    FLAG_INVALID,
    FLAG_SATURATED,
    FLAG_UNDERFLOW,
    FP4,
    FP16,
    G_RANGE,
)
from .fp16 import _is_inf, decode_fp16, is_nan, round_fp16

__all__ = ["to_fp4", "from_fp4", "fp4_value", "fp4_mul", "int4_value", "int4_mul",
           "G_RANGE", "FP4_MIDPOINTS"]

# Decision boundaries between consecutive levels, ascending: between 0 and 4**-3 it is
# 2**-7; between 4**(k-1) and 4**k it is 5/8 * 4**k.  |y| <= FP4_MIDPOINTS[i] -> code i.
FP4_MIDPOINTS = np.array(
    [2.0 ** FP4.ZERO_MID_LOG2]
    + [FP4.MID_NUM * 2.0 ** (FP4.RADIX_LOG2 * (e + 1 - FP4.EXP_BIAS) - FP4.MID_DEN_LOG2)
       for e in range(FP4.EXP_MIN, FP4.EXP_MAX)])


def fp4_value(c):
    """fp4 codes -> float64 values ``+-4**(e-4)`` (0 for exponent code 0), no scale/phase."""
    c = _check.codes(c, FP4.BITS, "c")
    e = c & ((1 << FP4.EXP_BITS) - 1)
    v = np.where(e == 0, 0.0, 2.0 ** (FP4.RADIX_LOG2 * (e - FP4.EXP_BIAS)))
    return np.where((c >> FP4.SIGN_BIT) & 1, -v, v)


def to_fp4(x, g=0, phase="even", *, flags=False):
    """Radix-4 log converter (docs/numerics.md): fp16 codes -> fp4 codes.

    ``y = x * 2**g`` (odd phase: ``/ 2``), exact on an unbounded exponent, then the nearest
    level in the linear domain, ties to the smaller magnitude, ``|y| > 64`` -> 64.
    ``g`` is an integer (or array) in ``G_RANGE``; ``phase`` is ``"even"``, ``"odd"`` or an
    array of phase bits. NaN -> ``0b0000`` + invalid; +-Inf -> +-64 + saturated.

    Flags (``flags=True`` returns ``(codes, flags)``): invalid; saturated when ``|y| > 64``
    (Inf included); underflow when a non-zero ``y`` gives zero; inexact when ``|y|`` is not
    a level.
    """
    x = _check.codes(x, FP16.BITS, "x")
    g = _check.integer(g, "g", *G_RANGE)
    p = _check.phase_bit(phase)
    sign, sig, exp = decode_fp16(x)
    y = np.ldexp(sig.astype(np.float64), (exp + g - p).astype(np.int64))   # exact: |y| < 2**400
    e = np.searchsorted(FP4_MIDPOINTS, y, side="left")
    nan, inf = is_nan(x), _is_inf(x)
    e = np.where(inf, FP4.EXP_MAX, e)
    level = np.where(e == 0, 0.0, 2.0 ** (FP4.RADIX_LOG2 * (e - FP4.EXP_BIAS)))
    code = np.where((e == 0) | nan, FP4.ZERO, (sign << FP4.SIGN_BIT) | e)
    top = 2.0 ** (FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS))
    fl = (np.where(nan, FLAG_INVALID, 0)
          | np.where(~nan & (inf | (y > top)), FLAG_SATURATED, 0)
          | np.where(~nan & ~inf & (y != 0) & (e == 0), FLAG_UNDERFLOW, 0)
          | np.where(~nan & (inf | (y != level)), FLAG_INEXACT, 0))
    code = code.astype(np.uint8)
    return (code, fl.astype(np.uint8)) if flags else code


def from_fp4(c, g=0, phase="even", *, flags=False):
    """fp4 decoder (docs/numerics.md): fp4 codes -> fp16 codes of ``decode(c) * 2**phase * 2**-g``.

    Exact, except where the power of two leaves fp16's range: it then rounds like every
    fp16 result (RNE; overflow -> +-Inf, below 2**-24 through ties-to-even to zero) and
    raises overflow / underflow (+ inexact). Both zero codes decode to ``+0`` (``0x0000``).
    """
    c = _check.codes(c, FP4.BITS, "c")
    g = _check.integer(g, "g", *G_RANGE)
    p = _check.phase_bit(phase)
    e = c & ((1 << FP4.EXP_BITS) - 1)
    sign = np.where(e == 0, 0, (c >> FP4.SIGN_BIT) & 1)
    code, fl = round_fp16(sign, (e != 0).astype(np.int64),
                          FP4.RADIX_LOG2 * (e - FP4.EXP_BIAS) + p - g)
    return (code, fl) if flags else code


def int4_value(a, signed=True):
    """4-bit codes -> integers, two's complement where ``signed`` (bool or 0/1 array)."""
    a = _check.codes(a, 4, "a")
    s = _check.flag_array(signed, "signed")
    return np.where((s == 1) & (a >= 8), a - 16, a)


def int4_mul(a, b, a_signed=True, b_signed=True):
    """Forward lane: ``int4/uint4 x int4/uint4`` product of two 4-bit codes (exact int)."""
    return int4_value(a, a_signed) * int4_value(b, b_signed)


def fp4_mul(c, a, a_signed=True):
    """Shift lane: fp4 code ``c`` times 4-bit integer code ``a``, in units of ``2**-6``.

    ``(+-a) << 2*(e-1)`` for exponent code ``e >= 1``, 0 for ``e = 0``: exact, within
    17-bit two's complement.
    """
    c = _check.codes(c, FP4.BITS, "c")
    v = int4_value(a, a_signed)
    e = c & ((1 << FP4.EXP_BITS) - 1)
    mag = np.where(e == 0, 0, v << np.maximum(FP4.RADIX_LOG2 * (e - FP4.EXP_MIN), 0))
    return np.where((c >> FP4.SIGN_BIT) & 1, -mag, mag)
