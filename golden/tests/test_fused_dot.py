"""golden.fused_fp16_dot against an independent slow reference: per beat the exact sum of the
exact products as a Fraction, rounded to fp16 by a Fraction-based RNE rounder written here
(not golden.round_fp16), special values decided lane by lane in plain Python, and the
accumulator's additions done the same way (exact Fraction sum, the same rounder). Random
vectors (the seed is logged) and directed corners: NaN, Inf, Inf - Inf, 0 * Inf,
subnormals, overflow, exact cancellation, -0."""

import logging
import os
from fractions import Fraction

import numpy as np
import pytest

import golden
from golden.formats import FLAG_INEXACT, FLAG_INVALID, FLAG_OVERFLOW, FLAG_UNDERFLOW

log = logging.getLogger(__name__)

QNAN, INF, SIGN = 0x7E00, 0x7C00, 0x8000


# --- the reference: plain Python, one value at a time -------------------------------------

def _decode(c):
    """fp16 code -> ("nan", snan) | ("inf", sign) | ("num", Fraction, sign)."""
    s, e, f = c >> 15, (c >> 10) & 0x1F, c & 0x3FF
    if e == 0x1F:
        return ("nan", not (f >> 9)) if f else ("inf", s)
    v = Fraction(f, 1 << 24) if e == 0 else Fraction(0x400 | f, 1 << 10) * Fraction(2) ** (e - 15)
    return ("num", -v if s else v, s)


def _rne(x):
    """Round a Fraction to the nearest integer, ties to even (Python's round on a Fraction)."""
    return round(x)


def _round(x, zero_sign=0):
    """Fraction -> (fp16 code, flags), RNE, gradual underflow (tininess after rounding),
    overflow to Inf. A zero value gets ``zero_sign``."""
    if x == 0:
        return (SIGN if zero_sign else 0), 0
    s = int(x < 0)
    a = abs(x)
    e = 0                           # floor(log2 a)
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q = max(e, -14) - 10            # weight of the result's LSB
    m = _rne(a / Fraction(2) ** q)
    inexact = m * Fraction(2) ** q != a
    # tininess after rounding: 11 bits, unbounded exponent, still below 2**-14?
    tiny = _rne(a / Fraction(2) ** (e - 10)) * Fraction(2) ** (e - 10) < Fraction(2) ** -14
    value = m * Fraction(2) ** q
    if value >= 2 ** 16:
        return (SIGN if s else 0) | INF, FLAG_OVERFLOW | FLAG_INEXACT
    if value < Fraction(2) ** -14:
        code = int(m)               # subnormal (or rounded up to 2**-14: field 1, frac 0)
    else:
        ee = q + 10                 # exponent of the result (a carry may have bumped it)
        if m >= 2048:
            m, ee = m // 2, ee + 1
        code = ((ee + 15) << 10) | (int(m) - 1024)
    flags = (FLAG_INEXACT if inexact else 0) | (FLAG_UNDERFLOW if inexact and tiny else 0)
    return (SIGN if s else 0) | code, flags


def _mul_special(a, b):
    """One lane's product: ("nan", invalid) | ("inf", sign) | ("num", Fraction, sign)."""
    da, db = _decode(a), _decode(b)
    sign = (a >> 15) ^ (b >> 15)
    if da[0] == "nan" or db[0] == "nan":
        return ("nan", (da[0] == "nan" and da[1]) or (db[0] == "nan" and db[1]))
    if da[0] == "inf" or db[0] == "inf":
        other = db if da[0] == "inf" else da
        if other[0] == "num" and other[1] == 0:
            return ("nan", True)                 # 0 * Inf
        return ("inf", sign)
    return ("num", da[1] * db[1], sign)


def _beat(a, b):
    """Reference of one beat: (code, flags)."""
    lanes = [_mul_special(int(x), int(y)) for x, y in zip(a, b)]
    invalid = any(p[0] == "nan" and p[1] for p in lanes)
    infs = {p[1] for p in lanes if p[0] == "inf"}
    if len(infs) == 2:
        invalid = True
    fl = FLAG_INVALID if invalid else 0
    if any(p[0] == "nan" for p in lanes) or len(infs) == 2:
        return QNAN, fl
    if infs:
        return (SIGN if infs.pop() else 0) | INF, fl
    total = sum((p[1] for p in lanes), Fraction(0))
    all_neg_zero = all(p[1] == 0 and p[2] == 1 for p in lanes)
    code, f = _round(total, zero_sign=int(all_neg_zero))
    return code, f | fl


def _add(x, y):
    """Reference IEEE binary16 addition (Fraction sum, the same rounder)."""
    dx, dy = _decode(x), _decode(y)
    if dx[0] == "nan" or dy[0] == "nan":
        inv = (dx[0] == "nan" and dx[1]) or (dy[0] == "nan" and dy[1])
        return QNAN, FLAG_INVALID if inv else 0
    if dx[0] == "inf" and dy[0] == "inf" and dx[1] != dy[1]:
        return QNAN, FLAG_INVALID
    if dx[0] == "inf" or dy[0] == "inf":
        return (x if dx[0] == "inf" else y), 0
    return _round(dx[1] + dy[1], zero_sign=dx[2] & dy[2])


def reference(a, b, lanes):
    a, b = list(a), list(b)
    pad = -len(a) % lanes
    a += [0] * pad
    b += [0] * pad
    acc, fl = None, 0
    for k in range(0, len(a), lanes):
        code, f = _beat(a[k:k + lanes], b[k:k + lanes])
        fl |= f
        if acc is None:
            acc = code
        else:
            acc, f = _add(acc, code)
            fl |= f
    return acc, fl


# --- the reference's own rounder against NumPy float16 on exactly representable values ----

def test_reference_rounder_matches_round_fp16():
    """The Fraction rounder here and golden.round_fp16 agree on random exact values
    (wide magnitudes, all exponents from deep underflow to overflow)."""
    r = np.random.default_rng(17)
    for _ in range(3000):
        mag = int(r.integers(1, 1 << 40)) >> int(r.integers(0, 40))
        exp = int(r.integers(-70, 20))
        sign = int(r.integers(0, 2))
        want = golden.round_fp16(sign, mag, exp)
        x = Fraction(mag) * Fraction(2) ** exp
        got = _round(-x if sign else x, zero_sign=sign)
        assert (got[0], got[1]) == (int(want[0]), int(want[1])), (sign, mag, exp)


# --- the golden model against the reference -----------------------------------------------

SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00,
            0xBC00, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7D00, 0x3555, 0x0200]


def _operands(r, size, style):
    if style == "raw":
        return r.integers(0, 1 << 16, size)
    if style == "tame":
        return (r.integers(0, 2, size) << 15) | (r.integers(8, 23, size) << 10) \
            | r.integers(0, 1024, size)
    if style == "tiny":            # subnormal and small normal products
        return (r.integers(0, 2, size) << 15) | (r.integers(0, 4, size) << 10) \
            | r.integers(0, 1024, size)
    if style == "wide":            # finite, every exponent: sums from 2**-48 to overflow
        return (r.integers(0, 2, size) << 15) | (r.integers(0, 31, size) << 10) \
            | r.integers(0, 1024, size)
    x = _operands(r, size, "wide")                      # "mixed": specials sprinkled in
    pick = r.random(size) < 0.1
    return np.where(pick, np.array(SPECIALS)[r.integers(0, len(SPECIALS), size)], x)


def _check(a, b, lanes):
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    code, fl = golden.fused_fp16_dot(a, b, lanes=lanes, flags=True)
    want = reference(a.tolist(), b.tolist(), lanes)
    assert (int(code), int(fl)) == want, (a.tolist(), b.tolist(), lanes)


def test_random_against_reference():
    seed = int(os.environ.get("SEED", "20201206"))
    log.info("test_random_against_reference seed %d", seed)
    print(f"seed {seed}")
    r = np.random.default_rng(seed)
    checked = 0
    for _ in range(1500):
        lanes = int(r.choice([1, 2, 4, 8, 16]))
        n = int(r.integers(1, 4 * lanes + 1))
        style = str(r.choice(["raw", "tame", "tiny", "wide", "mixed"]))
        _check(_operands(r, n, style), _operands(r, n, style), lanes)
        checked += 1
    assert checked == 1500


def _full(n, x, y):
    return [x] * n, [y] * n


DIRECTED = {
    "nan_quiet": ([0x7E00, 0x3C00], [0x3C00, 0x3C00]),
    "nan_signalling": ([0x7D00, 0x3C00], [0x3C00, 0x3C00]),
    "nan_and_inf_minus_inf": ([0x7E00, 0x7C00, 0xFC00, 0], [0x3C00] * 4),
    "inf": ([0x7C00, 0x3C00, 0x7BFF], [0x3C00, 0x3C00, 0x7BFF]),
    "neg_inf": ([0x7C00, 0x3C00], [0xBC00, 0x3C00]),
    "inf_plus_inf_same_sign": ([0x7C00, 0xFC00], [0x3C00, 0xBC00]),
    "inf_minus_inf_in_beat": ([0x7C00, 0xFC00], [0x3C00, 0x3C00]),
    "zero_times_inf": ([0x0000, 0x3C00], [0x7C00, 0x3C00]),
    "neg_zero_times_inf": ([0x8000], [0xFC00]),
    "inf_minus_inf_in_accumulator": ([0x7C00, 0, 0xFC00, 0], [0x3C00] * 4),
    "overflow_in_beat": _full(8, 0x7BFF, 0x7BFF),
    "largest_product_exact": ([0x7BFF], [0x3C00]),
    "overflow_cancelled_in_beat": ([0x7BFF, 0x7BFF, 0x7BFF, 0x7BFF],
                                   [0x7BFF, 0xFBFF, 0x7BFF, 0xFBFF]),
    "overflow_in_accumulator": ([0x7BFF, 0, 0x7BFF, 0], [0x3C00] * 4),
    "smallest_products": _full(8, 0x0001, 0x0001),
    "subnormal_sum": _full(8, 0x0001, 0x3C00),
    "subnormal_times_small": ([0x0001, 0x03FF, 0x0200], [0x0400, 0x0400, 0x1000]),
    "tiny_rounds_to_neg_zero": ([0x8001], [0x0001]),
    "cancellation_exact": ([0x3C00, 0x3C00, 0x5555, 0x5555], [0x4500, 0xC500, 0x1234, 0x9234]),
    "cancellation_to_tiny": ([0x7BFF, 0x7BFF, 0x0001], [0x3C00, 0xBC00, 0x0001]),
    "neg_zero_all": _full(8, 0x8000, 0x3C00),
    "neg_zero_mixed": ([0x8000, 0x0000], [0x3C00, 0x3C00]),
    "neg_zero_products_signs": ([0x8000, 0x0000], [0x3C00, 0xBC00]),
    "neg_zero_padded": ([0x8000] * 3, [0x3C00] * 3),
    "stagnation": _full(2048, 0x3C00, 0x3C00),
    "tie_at_half_subnormal": ([0x0001], [0x3800]),
    "above_half_subnormal": ([0x0001, 0x0001], [0x3800, 0x0001]),
    "below_half_subnormal": ([0x0001, 0x8001], [0x3800, 0x0001]),
    "neg_below_half_subnormal": ([0x8001, 0x0001], [0x3800, 0x0001]),
    "tie_in_beat": ([0x6800, 0x3C00], [0x3C00, 0x3C00]),
    "sticky_below_tie": ([0x6800, 0x3C00, 0x0001], [0x3C00, 0x3C00, 0x0001]),
}


@pytest.mark.parametrize("name", sorted(DIRECTED))
@pytest.mark.parametrize("lanes", [1, 2, 8])
def test_directed(name, lanes):
    a, b = DIRECTED[name]
    _check(a, b, lanes)


def test_known_answers():
    """Hand-checked results: the fused beat rounds once where the cascaded tree rounds at
    every level, and a beat with Inf - Inf is an invalid NaN."""
    one, big = 0x3C00, 0x6800                   # 1.0 and 2048.0 (fp16 spacing 2 there)
    a = np.array([big] + [one] * 7, dtype=np.uint16)
    b = np.full(8, one, dtype=np.uint16)
    # exact 2055 rounds once to 2056; the cascaded tree gives 2054 (test_baselines)
    assert golden.fp16_to_float(golden.fused_fp16_dot(a, b)) == 2056.0
    assert golden.fp16_to_float(golden.fp16_dot(a, b)) == 2054.0
    # lanes=1: one product per beat, 2048 + 1 + ... in the fp16 accumulator stagnates
    assert golden.fp16_to_float(golden.fused_fp16_dot(a, b, lanes=1)) == 2048.0
    # the largest product overflows only through the sum
    code, fl = golden.fused_fp16_dot([0x7BFF] * 2, [0x3C00] * 2, flags=True)
    assert (int(code), int(fl)) == (INF, FLAG_OVERFLOW | FLAG_INEXACT)
    code, fl = golden.fused_fp16_dot([0x7C00, 0xFC00], [one, one], flags=True)
    assert (int(code), int(fl)) == (QNAN, FLAG_INVALID)
    assert int(golden.fused_fp16_dot([0x8000, 0x8000], [one, one], lanes=2)) == SIGN
    # padding lanes are +0 * +0 = +0 products: the same beat padded to 8 lanes sums to +0
    assert int(golden.fused_fp16_dot([0x8000, 0x8000], [one, one])) == 0
    assert int(golden.fused_fp16_dot([0x8000, 0x0000], [one, one])) == 0
    # 2**-24 * 2**-24 exactly, eight times: 2**-45, far below fp16: -> 0, underflow
    code, fl = golden.fused_fp16_dot([0x0001] * 8, [0x0001] * 8, flags=True)
    assert (int(code), int(fl)) == (0, FLAG_UNDERFLOW | FLAG_INEXACT)


def test_errors():
    with pytest.raises(ValueError, match="lanes must be a power of two"):
        golden.fused_fp16_dot([1, 2, 3], [1, 2, 3], lanes=3)
    with pytest.raises(ValueError, match="same length"):
        golden.fused_fp16_dot([1, 2], [1])
    with pytest.raises(ValueError, match="must not be empty"):
        golden.fused_fp16_dot(np.array([], np.uint16), np.array([], np.uint16))
    with pytest.raises(ValueError, match="not a 16-bit code"):
        golden.fused_fp16_dot([1 << 16], [1])
