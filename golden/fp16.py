"""IEEE 754 binary16: decoding, the one fp16 rounder, addition and multiplication.

Every result in the project that lands in fp16 goes through :func:`round_fp16`: the golden
twin of the hardware normalizer/rounder (``hdl.rounder``). It takes an exact value
``(-1)**sign * mag * 2**exp`` with an integer magnitude and rounds it once, to nearest even,
with gradual underflow and overflow to infinity, exactly as IEEE 754 prescribes.
"""

import numpy as np

from . import _check
from .formats import FLAG_INEXACT, FLAG_INVALID, FLAG_OVERFLOW, FLAG_UNDERFLOW, FP16

__all__ = ["decode_fp16", "round_fp16", "fp16_add", "fp16_add_one", "fp16_mul", "is_nan", "is_snan",
           "fp16_to_float", "fp16_from_float"]

_U1 = np.uint64(1)
MAG_LIMIT_LOG2 = 62    # round_fp16 takes magnitudes below 2**62


def decode_fp16(a):
    """Split fp16 codes into ``sign, sig, exp`` with value ``(-1)**sign * sig * 2**exp``.

    ``sig`` is the integer significand (hidden bit included for normals), ``exp`` the weight
    of its least significant bit. Inf and NaN codes decode as if finite: callers mask them.
    """
    a = np.asarray(a, dtype=np.int64)
    sign = (a >> 15) & 1
    efield = (a >> FP16.FRAC_BITS) & FP16.EXP_MAX_FIELD
    frac = a & FP16.FRAC_MASK
    normal = efield != 0
    sig = np.where(normal, frac | (1 << FP16.FRAC_BITS), frac)
    exp = np.where(normal, efield, 1) - FP16.BIAS - FP16.FRAC_BITS
    return sign, sig, exp


def is_nan(a):
    a = np.asarray(a, dtype=np.int64)
    return ((a & FP16.EXP_MASK) == FP16.EXP_MASK) & ((a & FP16.FRAC_MASK) != 0)


def is_snan(a):
    a = np.asarray(a, dtype=np.int64)
    return is_nan(a) & ((a & (1 << (FP16.FRAC_BITS - 1))) == 0)


def _is_inf(a):
    return (np.asarray(a, dtype=np.int64) & FP16.MAG_MASK) == FP16.INF


def _bit_length(m):
    """Vectorized ``int.bit_length`` for a uint64 array."""
    n = np.zeros(m.shape, np.int64)
    v = m.copy()
    for s in (32, 16, 8, 4, 2, 1):
        big = v >= (_U1 << np.uint64(s))
        n += np.where(big, s, 0)
        v = np.where(big, v >> np.uint64(s), v)
    return n + (v > 0)


def _rne_shift(mag, shift):
    """Round ``mag / 2**shift`` to the nearest integer, ties to even; ``shift`` may be <= 0.

    Returns ``(rounded, inexact)``. Requires ``mag < 2**62``; any ``shift >= 63`` rounds to 0.
    """
    left = np.clip(-shift, 0, 62).astype(np.uint64)
    right = np.clip(shift, 0, 63).astype(np.uint64)
    kept = mag >> right
    rem = mag & ((_U1 << right) - _U1)
    half = np.where(right > 0, _U1 << (right - _U1 * (right > 0)), np.uint64(0))
    up = (right > 0) & ((rem > half) | ((rem == half) & ((kept & _U1) == _U1)))
    rounded = np.where(shift <= 0, mag << left, kept + up.astype(np.uint64))
    return rounded, (shift > 0) & (rem != 0)


def round_fp16(sign, mag, exp):
    """Round ``(-1)**sign * mag * 2**exp`` to fp16 (RNE). The one rounder of the golden model.

    Parameters
    ----------
    sign : array of 0/1
    mag : array of non-negative integers below ``2**62`` (the exact magnitude)
    exp : array of integers, the weight of ``mag``'s least significant bit

    Returns
    -------
    codes : uint16 array
    flags : uint8 array of ``FLAG_INEXACT | FLAG_UNDERFLOW | FLAG_OVERFLOW`` bits.
        Underflow follows IEEE 754 with tininess detected after rounding (as SoftFloat's
        default and TestFloat's vectors): the result is tiny and inexact.
    """
    sign, mag, exp = np.broadcast_arrays(np.asarray(sign, np.int64),
                                         np.asarray(mag), np.asarray(exp, np.int64))
    if mag.size and (np.asarray(mag).min() < 0):
        raise ValueError("round_fp16: mag must be non-negative")
    mag = mag.astype(np.uint64)
    if mag.size and int(mag.max()) >= (1 << MAG_LIMIT_LOG2):
        raise ValueError(f"round_fp16: mag must be below 2**{MAG_LIMIT_LOG2}")
    e = _bit_length(mag) - 1 + exp                     # value in [2**e, 2**(e+1))
    q = np.maximum(e, FP16.EMIN) - FP16.FRAC_BITS      # weight of the result's LSB
    mant, inexact = _rne_shift(mag, q - exp)
    # (q + 24) << 10 + mant is the code: a rounding carry out of the significand, or a
    # subnormal rounding up to 2**-14, lands in the exponent field by itself.
    code = ((q - FP16.LSB_EXP) << FP16.FRAC_BITS) + mant.astype(np.int64)
    zero = mag == 0
    overflow = (code >= FP16.INF) & ~zero
    code = np.where(overflow, FP16.INF, code)
    code = np.where(zero, 0, code)
    # Tininess after rounding: would the value, rounded to 11 bits with an unbounded
    # exponent, stay below 2**-14?  Only a value in the binade just below can reach it.
    mant11, _ = _rne_shift(mag, e - FP16.FRAC_BITS - exp)
    tiny = (e < FP16.EMIN - 1) | ((e == FP16.EMIN - 1) & (mant11 < (1 << FP16.SIG_BITS)))
    inexact = (inexact | overflow) & ~zero
    flags = (np.where(inexact, FLAG_INEXACT, 0) | np.where(overflow, FLAG_OVERFLOW, 0)
             | np.where(inexact & tiny, FLAG_UNDERFLOW, 0))
    return (code | (sign << 15)).astype(np.uint16), flags.astype(np.uint8)


def _special(result, flags, nan, invalid, inf, inf_sign):
    result = np.where(inf, FP16.INF | (inf_sign << 15), result)
    result = np.where(nan, FP16.QNAN, result)
    flags = np.where(nan | inf, 0, flags) | np.where(invalid, FLAG_INVALID, 0)
    return result.astype(np.uint16), flags.astype(np.uint8)


def fp16_add(a, b, *, flags=False):
    """IEEE binary16 addition ``a + b``, round to nearest even, on raw uint16 codes.

    Every fp16 value is an integer multiple of ``2**-24`` below ``2**41`` of them, so the
    sum is formed exactly as an integer and rounded once. An exact zero sum is ``+0`` unless
    both operands are ``-0``. NaN results are the canonical quiet NaN ``0x7E00``.
    With ``flags=True`` returns ``(codes, flags)`` (see :mod:`golden.formats`).
    """
    a = _check.codes(a, 16, "a")
    b = _check.codes(b, 16, "b")
    a, b = np.broadcast_arrays(a, b)
    sa, ma, ea = decode_fp16(a)
    sb, mb, eb = decode_fp16(b)
    ia = (ma << (ea - FP16.LSB_EXP)) * (1 - 2 * sa)
    ib = (mb << (eb - FP16.LSB_EXP)) * (1 - 2 * sb)
    s = ia + ib
    sign = np.where(s == 0, sa & sb, s < 0)
    res, fl = round_fp16(sign, np.abs(s), FP16.LSB_EXP)
    ina, inb = _is_inf(a), _is_inf(b)
    inf_inf = ina & inb & (sa != sb)
    nan = is_nan(a) | is_nan(b) | inf_inf
    invalid = is_snan(a) | is_snan(b) | inf_inf
    res, fl = _special(res, fl, nan, invalid, ina | inb, np.where(ina, sa, sb))
    return (res, fl) if flags else res


def _finite_units(c):
    """A finite fp16 code's value in units of ``2**-24`` (a signed Python int)."""
    e, f = (c >> FP16.FRAC_BITS) & FP16.EXP_MAX_FIELD, c & FP16.FRAC_MASK
    m = (f | (1 << FP16.FRAC_BITS)) << (e - 1) if e else f
    return -m if c >> 15 else m


def _add_special(a, b):
    """:func:`fp16_add_one` when an operand is Inf or NaN."""
    quiet = 1 << (FP16.FRAC_BITS - 1)
    nan_a = (a & FP16.MAG_MASK) > FP16.INF
    nan_b = (b & FP16.MAG_MASK) > FP16.INF
    inf_a = (a & FP16.MAG_MASK) == FP16.INF
    inf_b = (b & FP16.MAG_MASK) == FP16.INF
    inf_inf = inf_a and inf_b and (a ^ b) >> 15
    if nan_a or nan_b or inf_inf:
        snan = (nan_a and not a & quiet) or (nan_b and not b & quiet)
        return FP16.QNAN, FLAG_INVALID if snan or inf_inf else 0
    return (a if inf_a else b), 0


def fp16_add_one(a, b):
    """:func:`fp16_add` with ``flags=True`` for one pair of codes (Python ints), in plain
    integer arithmetic: ``(code, flags)`` as ints, bit-identical. A sequential fp16
    accumulation (:func:`golden.dot` on few long dot products) calls it once per addition,
    where the array function's fixed cost would dominate."""
    if (a & FP16.EXP_MASK) == FP16.EXP_MASK or (b & FP16.EXP_MASK) == FP16.EXP_MASK:
        return _add_special(a, b)
    s = _finite_units(a) + _finite_units(b)       # exact: below 2**41 in magnitude
    if s == 0:                                    # +0, unless -0 + -0
        return (a & b & 0x8000), 0
    sign, m = (0x8000, -s) if s < 0 else (0, s)
    if m < 1 << FP16.SIG_BITS:                    # subnormal or the first binade: exact
        return sign | m, 0
    shift = m.bit_length() - FP16.SIG_BITS        # keep 11 bits
    q, rem = m >> shift, m & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    q += rem > half or (rem == half and q & 1)
    code = ((shift + 1) << FP16.FRAC_BITS) + q - (1 << FP16.FRAC_BITS)   # a carry lands in e
    if code >= FP16.INF:
        return sign | FP16.INF, FLAG_OVERFLOW | FLAG_INEXACT
    return sign | code, FLAG_INEXACT if rem else 0


def fp16_mul(a, b, *, flags=False):
    """IEEE binary16 multiplication ``a * b``, round to nearest even, on raw uint16 codes.

    The 22-bit product of the significands is exact and rounded once. Zero products carry
    the sign ``sa ^ sb``; ``0 * Inf`` is invalid. With ``flags=True`` returns ``(codes, flags)``.
    """
    a = _check.codes(a, 16, "a")
    b = _check.codes(b, 16, "b")
    a, b = np.broadcast_arrays(a, b)
    sa, ma, ea = decode_fp16(a)
    sb, mb, eb = decode_fp16(b)
    sign = sa ^ sb
    res, fl = round_fp16(sign, ma * mb, ea + eb)
    ina, inb = _is_inf(a), _is_inf(b)
    zero_inf = (ina & ((a & FP16.MAG_MASK) == 0)) | (ina & ((b & FP16.MAG_MASK) == 0)) \
        | (inb & ((a & FP16.MAG_MASK) == 0))
    nan = is_nan(a) | is_nan(b) | zero_inf
    invalid = is_snan(a) | is_snan(b) | zero_inf
    res, fl = _special(res, fl, nan, invalid, ina | inb, sign)
    return (res, fl) if flags else res


def fp16_to_float(a):
    """fp16 codes -> float64 values (exact)."""
    return _check.codes(a, 16, "a").astype(np.uint16).view(np.float16).astype(np.float64)


def fp16_from_float(x):
    """float values -> fp16 codes, rounded to nearest even by NumPy's float16 cast."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).view(np.uint16)
