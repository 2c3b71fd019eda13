"""fp16 addition and multiplication: TestFloat, NumPy float16, and the rounder's corners."""

from fractions import Fraction

import numpy as np
import pytest

import golden
from golden.formats import FLAG_INEXACT, FLAG_OVERFLOW, FLAG_UNDERFLOW, FP16
from golden.fp16 import is_nan
from golden.testfloat import load as load_testfloat

TESTFLOAT_CASES = 46464


@pytest.mark.parametrize("op,fn", [("add", golden.fp16_add), ("mul", golden.fp16_mul)])
def test_testfloat_vectors(op, fn):
    a, b, z, zf = load_testfloat(op)
    assert len(a) == TESTFLOAT_CASES
    r, rf = fn(a, b, flags=True)
    ok = np.where(is_nan(z), is_nan(r), r == z)
    assert int((~ok).sum()) == 0, f"{op}: result mismatches"
    assert int((rf != zf).sum()) == 0, f"{op}: flag mismatches"


def test_testfloat_reader():
    """The shipped vectors are complete; a bad operation name is an error, not a skip."""
    import golden.testfloat as tf
    for op in tf.OPS:
        assert tf.path(op).is_file(), f"{tf.path(op)} is missing from the repository"
    with pytest.raises(ValueError, match="op must be one of"):
        tf.load("div")


@pytest.mark.parametrize("op", ["add", "mul"])
def test_numpy_float16_random(op):
    # float32 carries 24 >= 2*11 + 2 bits, so NumPy's float16 arithmetic (computed in
    # float32, rounded once to float16) is correctly rounded for + and *.
    rng = np.random.default_rng(2020)
    n = 1_000_000
    a = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    b = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    fa, fb = a.view(np.float16), b.view(np.float16)
    with np.errstate(all="ignore"):
        ref = (fa + fb if op == "add" else fa * fb).view(np.uint16)
    got = golden.fp16_add(a, b) if op == "add" else golden.fp16_mul(a, b)
    ok = np.where(is_nan(ref), is_nan(got), got == ref)
    assert ok.size == n and int((~ok).sum()) == 0


def _exact(code):
    s, m, e = golden.decode_fp16(np.array([code]))
    return (-1) ** int(s[0]) * Fraction(int(m[0])) * Fraction(2) ** int(e[0])


@pytest.mark.parametrize("mag,exp,code,flags", [
    (1, 0, 0x3C00, 0),                                   # 1.0
    (2049, -11, 0x3C00, FLAG_INEXACT),                   # 1 + 2^-11: tie, to even (down)
    (2051, -11, 0x3C02, FLAG_INEXACT),                   # tie, to even (up)
    (4095, -11, 0x4000, FLAG_INEXACT),                   # carry into the exponent
    (65520, 0, FP16.INF, FLAG_OVERFLOW | FLAG_INEXACT),  # halfway above MAX: overflow
    (65519, 0, FP16.MAX_FINITE, FLAG_INEXACT),
    (1, -25, 0x0000, FLAG_UNDERFLOW | FLAG_INEXACT),     # half the smallest subnormal: even
    (3, -26, 0x0001, FLAG_UNDERFLOW | FLAG_INEXACT),
    (1, -24, 0x0001, 0),                                 # exact subnormal: no underflow
    (2047, -25, 0x0400, FLAG_UNDERFLOW | FLAG_INEXACT),  # tiny after rounding, yet 2^-14
    (4095, -26, 0x0400, FLAG_INEXACT),                   # rounds to 2^-14 at 11 bits: not tiny
    (4093, -26, 0x03FF, FLAG_UNDERFLOW | FLAG_INEXACT),
    (0, 100, 0x0000, 0),
])
def test_rounder_corners(mag, exp, code, flags):
    c, f = golden.round_fp16(0, mag, exp)
    assert (int(c), int(f)) == (code, flags)
    c, f = golden.round_fp16(1, mag, exp)
    assert (int(c), int(f)) == (code | 0x8000, flags)


def test_rounder_against_fractions():
    """Random magnitudes up to 40 bits and exponents across the range vs exact rationals."""
    rng = np.random.default_rng(7)
    mags = rng.integers(1, 1 << 40, 3000) >> rng.integers(0, 40, 3000)
    mags = np.maximum(mags, 1)
    exps = rng.integers(-70, 20, 3000)
    codes, _ = golden.round_fp16(0, mags, exps)
    finite = np.arange(0, FP16.INF + 1)
    values = [_exact(int(c)) for c in finite[:-1]]
    floats = np.array([float(x) for x in values])      # for the search only
    checked = 0
    for m, e, c in zip(mags, exps, codes):
        checked += 1
        v = Fraction(int(m)) * Fraction(2) ** int(e)
        # nearest representable, ties to even code; beyond MAX+half-ulp -> Inf
        if v >= Fraction(65520):
            assert c == FP16.INF
            continue
        lo = np.searchsorted(floats, float(v), side="right") - 1
        cand = [lo, min(lo + 1, len(values) - 1)]
        best = min(cand, key=lambda k: (abs(values[k] - v), k & 1))
        assert c == best, (m, e, hex(c), hex(best))
    assert checked == 3000


def test_add_one_matches_array_add():
    """fp16_add_one (Python ints, for sequential accumulation) against fp16_add: 400k random
    pairs, every pair of 31 corner codes (zeros, subnormals, the first binade, near
    overflow, Inf, quiet and signaling NaNs), and each corner against every 97th code."""
    rng = np.random.default_rng(2026)
    corners = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x8400,
                        0x0401, 0x8401, 0x07FF, 0x87FF, 0x3C00, 0xBC00, 0x3C01, 0xBC01,
                        0x77FF, 0x7800, 0xF800, 0x7BFE, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                        0x7E00, 0x7D00, 0xFE01, 0xFD00, 0x7C01, 0x7FFF, 0xFFFF])
    grid = np.arange(0, 1 << 16, 97)
    a = np.concatenate([rng.integers(0, 1 << 16, 400_000), np.repeat(corners, len(corners)),
                        np.repeat(corners, len(grid)), np.tile(grid, len(corners))])
    b = np.concatenate([rng.integers(0, 1 << 16, 400_000), np.tile(corners, len(corners)),
                        np.tile(grid, len(corners)), np.repeat(corners, len(grid))])
    want, want_flags = golden.fp16_add(a, b, flags=True)
    got = np.array([golden.fp16_add_one(x, y) for x, y in zip(a.tolist(), b.tolist())])
    assert len(got) == 400_000 + 31 * 31 + 2 * 31 * len(grid)
    assert int((got[:, 0] != want).sum()) == 0, "codes differ"
    assert int((got[:, 1] != want_flags).sum()) == 0, "flags differ"
