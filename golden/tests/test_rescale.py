"""Range-rescale: exhaustive over fp16 for several scales, stochastic rounding."""

from fractions import Fraction

import numpy as np
import pytest

import golden
from golden.formats import FLAG_INEXACT, FLAG_INVALID, FLAG_SATURATED, FP16, INT_FORMATS
from golden.fp16 import is_nan

# tiny, subnormal, huge, non-power-of-two, one
SCALES = [0x0001, 0x0200, 0x7BFF, 0x3C00, 0x3E00, 0x4A80, 0x2E66, 0x5A00, 0x0400]


def _exact(code):
    s, m, e = golden.decode_fp16(np.array([code]))
    return (-1) ** int(s[0]) * Fraction(int(m[0])) * Fraction(2) ** int(e[0])


@pytest.mark.parametrize("fmt", sorted(INT_FORMATS))
@pytest.mark.parametrize("s", SCALES)
def test_rescale_exhaustive(all_fp16, fmt, s):
    f = INT_FORMATS[fmt]
    q, fl = golden.rescale(all_fp16, s, fmt, flags=True)
    v = golden.int4_value(q, f.signed)
    nan = is_nan(all_fp16)
    inf = (all_fp16 & 0x7FFF) == FP16.INF
    assert np.all(v[nan] == 0) and np.all(fl[nan] == FLAG_INVALID)
    assert np.all(v[inf] == np.where(all_fp16[inf] >> 15, f.qmin, f.qmax))
    assert np.all(fl[inf] & FLAG_SATURATED)
    assert v.min() >= f.qmin and v.max() <= f.qmax
    fin = ~nan & ~inf
    x = golden.fp16_to_float(all_fp16[fin]) * golden.fp16_to_float(s)
    # monotone in x
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(v[fin][order]) >= 0)
    # where not saturated: |q - x*s| <= 1/2, ties to even; saturated exactly when outside
    r = np.rint(x)
    sat = (r < f.qmin) | (r > f.qmax)
    assert np.array_equal((fl[fin] & FLAG_SATURATED) != 0, sat)
    assert np.array_equal(v[fin][~sat], r[~sat].astype(int))
    assert np.all(np.abs(v[fin][~sat] - x[~sat]) <= 0.5)
    half = np.abs(x - np.floor(x) - 0.5) == 0
    assert np.all(v[fin][~sat & half] % 2 == 0)
    assert np.array_equal((fl[fin] & FLAG_INEXACT) != 0, sat | (x != r))


def test_rescale_against_rationals():
    rng = np.random.default_rng(11)
    xs = rng.integers(0, 0x7C00, 4000) | (rng.integers(0, 2, 4000) << 15)
    for s in (0x3E00, 0x2E66, 0x0001):
        q = golden.int4_value(golden.rescale(xs, s, "int4"), True)
        for x, qi in zip(xs.tolist(), q.tolist()):
            v = _exact(x) * _exact(s)
            fl = v.numerator // v.denominator
            rem = v - fl
            n = fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)
            assert qi == max(-8, min(7, n))


def test_stochastic_rounding():
    rng = np.random.default_rng(3)
    x = golden.fp16_from_float(np.linspace(-9, 9, 2001))
    s = 0x3C00
    for r_bits in (1, 4, 8, 16):
        u0 = golden.rescale(x, s, "int4", "stochastic", u=0, r_bits=r_bits)
        v = golden.fp16_to_float(x)
        assert np.array_equal(golden.int4_value(u0, True), np.clip(np.floor(v), -8, 7))
        umax = (1 << r_bits) - 1
        q = golden.int4_value(golden.rescale(x, s, "int4", "stochastic", u=umax, r_bits=r_bits),
                              True)
        assert np.array_equal(q, np.clip(np.floor(v + umax / 2 ** r_bits), -8, 7))
    # unbiased on average: E[q] = x for in-range x
    xv = golden.fp16_from_float(np.full(200_000, 2.3))
    u = rng.integers(0, 1 << 12, xv.size)
    q = golden.int4_value(golden.rescale(xv, s, "int4", "stochastic", u=u, r_bits=12), True)
    assert abs(q.mean() - float(golden.fp16_to_float(xv[0]))) < 0.01


@pytest.mark.parametrize("s,msg", [(0x0000, "positive finite"), (0x8000, "positive finite"),
                                   (0xBC00, "positive finite"), (0x7C00, "positive finite"),
                                   (0x7E00, "positive finite")])
def test_bad_scale(s, msg):
    with pytest.raises(ValueError, match=msg):
        golden.rescale([0x3C00], s)
