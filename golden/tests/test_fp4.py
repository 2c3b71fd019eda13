"""Radix-4 fp4: the contract's worked examples, exhaustive properties, exact rational reference."""

from fractions import Fraction

import numpy as np
import pytest

import golden
from golden.formats import FLAG_INEXACT, FLAG_INVALID, FLAG_SATURATED, FLAG_UNDERFLOW, FP4, FP16
from golden.fp16 import is_nan

F = golden.fp16_from_float
LEVELS = [Fraction(0)] + [Fraction(4) ** (e - FP4.EXP_BIAS)
                          for e in range(FP4.EXP_MIN, FP4.EXP_MAX + 1)]
NEXT_ABOVE_2_5 = 0x4101          # the fp16 just above 2.5 (2.501953125)


def value(c, g=0, phase="even"):
    return golden.fp4_value(c) * 2.0 ** (golden.formats.PHASES[phase] - g)


def test_spec_worked_examples():
    even = golden.to_fp4(np.concatenate([F([3.0, 2.5]), [NEXT_ABOVE_2_5],
                                         F([0.0078125, 100.0])]))
    assert value(even).tolist() == [4.0, 1.0, 4.0, 0.0, 64.0]
    odd = golden.to_fp4(F([3.0, 1.5, 0.75]), phase="odd")
    assert value(odd, phase="odd").tolist() == [2.0, 2.0, 0.5]
    # "code for 1" and "code for 1/4": exponent codes 4 and 3
    assert (odd & 7).tolist() == [4, 4, 3]


def _reference(x, g, phase_bit):
    """Nearest level by exact rationals, ties to the smaller magnitude, > 64 -> 64."""
    s, m, e = golden.decode_fp16(np.array([x]))
    y = Fraction(int(m[0])) * Fraction(2) ** int(e[0] + g - phase_bit)
    k = 0
    for i in range(1, len(LEVELS)):
        if y > (LEVELS[i - 1] + LEVELS[i]) / 2:
            k = i
    return 0 if k == 0 else (int(s[0]) << FP4.SIGN_BIT) | k


@pytest.mark.parametrize("g,phase", [(0, "even"), (0, "odd"), (-9, "even"), (13, "odd"),
                                     (24, "even")])
def test_to_fp4_against_rationals(all_fp16, g, phase):
    finite = all_fp16[(all_fp16 & 0x7C00) != 0x7C00]
    got = golden.to_fp4(finite, g, phase)
    pb = golden.formats.PHASES[phase]
    ref = np.array([_reference(int(x), g, pb) for x in finite])
    assert finite.size == 63488 and int((got != ref).sum()) == 0


@pytest.mark.parametrize("g", [-32, -7, 0, 5, 31])
@pytest.mark.parametrize("phase", ["even", "odd"])
def test_to_fp4_exhaustive_properties(all_fp16, g, phase):
    code, fl = golden.to_fp4(all_fp16, g, phase, flags=True)
    nan = is_nan(all_fp16)
    inf = (all_fp16 & 0x7FFF) == FP16.INF
    mag = golden.fp16_to_float(all_fp16 & 0x7FFF)
    with np.errstate(invalid="ignore"):
        y = mag * 2.0 ** (g - golden.formats.PHASES[phase])
    assert not np.any(code == 0b1000), "negative zero code produced"
    assert np.all(code < 16)
    # NaN -> 0 + invalid; Inf -> +-64 + saturated
    assert np.all(code[nan] == 0) and np.all(fl[nan] == FLAG_INVALID)
    assert np.all((code[inf] & 7) == FP4.EXP_MAX) and np.all(fl[inf] & FLAG_SATURATED)
    # sign kept for non-zero results
    nz = (code & 7) != 0
    assert np.all(((code >> 3) == (all_fp16 >> 15))[nz])
    # monotone in |x|: sort finite values by magnitude, exponent codes never decrease
    fin = ~nan & ~inf
    order = np.argsort(mag[fin], kind="stable")
    assert np.all(np.diff((code[fin] & 7)[order].astype(int)) >= 0)
    # saturated exactly when |y| > 64; underflow exactly when y != 0 gives 0
    assert np.array_equal((fl[fin] & FLAG_SATURATED) != 0, y[fin] > 64)
    assert np.array_equal((fl[fin] & FLAG_UNDERFLOW) != 0, (y[fin] != 0) & ~nz[fin])
    assert np.array_equal((fl[fin] & FLAG_INEXACT) != 0,
                          golden.fp4_value(code[fin] & 7) != y[fin])


def test_to_fp4_idempotent_on_levels():
    """Decoding a code and converting it back gives the code again, wherever the decoded
    value is exact in fp16 (every g and phase)."""
    checked = 0
    for phase in ("even", "odd"):
        for g in range(-20, 21):
            c = np.arange(16)
            dec, fl = golden.from_fp4(c, g, phase, flags=True)
            back = golden.to_fp4(dec, g, phase)
            expect = np.where((c & 7) == 0, 0, c)
            exact = fl == 0
            assert np.array_equal(back[exact], expect[exact]), (g, phase)
            checked += int(exact.sum())
    assert checked > 1000


def test_ties_go_down():
    for k in range(FP4.EXP_MIN, FP4.EXP_MAX):       # midpoint 5/8 * 4**k between levels
        mid = 0.625 * 4.0 ** (k + 1 - FP4.EXP_BIAS)
        c = golden.to_fp4(F([mid, -mid]))
        assert (c & 7).tolist() == [k, k]
        up = np.nextafter(np.float16(mid), np.float16(np.inf)).view(np.uint16)
        assert int(golden.to_fp4(up)) & 7 == k + 1
    assert int(golden.to_fp4(F(2.0 ** -7))) == 0


def test_odd_phase_is_g_minus_one(all_fp16):
    for g in (-5, 0, 7):
        assert np.array_equal(golden.to_fp4(all_fp16, g, "odd"),
                              golden.to_fp4(all_fp16, g - 1, "even"))


@pytest.mark.parametrize("phase", ["even", "odd"])
def test_from_fp4_exhaustive(phase):
    pb = golden.formats.PHASES[phase]
    n = 0
    for g in range(-60, 61):
        c = np.arange(16)
        code, fl = golden.from_fp4(c, g, phase, flags=True)
        for ci, co, f in zip(c.tolist(), code.tolist(), fl.tolist()):
            e = ci & 7
            if e == 0:
                assert co == 0 and f == 0
                continue
            v = Fraction(2) ** (2 * (e - FP4.EXP_BIAS) + pb - g)
            ref, rf = golden.round_fp16(ci >> 3, 1, 2 * (e - FP4.EXP_BIAS) + pb - g)
            assert co == ref and f == rf
            if Fraction(2) ** -24 <= v <= Fraction(2) ** 15:
                assert f == 0 and Fraction(golden.fp16_to_float(co & 0x7FFF).item()) == v
            n += 1
    assert n == 121 * 14


def test_products():
    codes = np.arange(16)
    c, a = np.meshgrid(codes, codes, indexing="ij")
    for signed in (0, 1):
        p = golden.fp4_mul(c, a, signed)
        ref = golden.fp4_value(c) * 64 * golden.int4_value(a, signed)
        assert np.array_equal(p, ref.astype(np.int64))
        assert p.min() >= -(1 << 16) and p.max() < (1 << 16)
    for sa in (0, 1):
        for sb in (0, 1):
            p = golden.int4_mul(c, a, sa, sb)
            assert np.array_equal(p, golden.int4_value(c, sa) * golden.int4_value(a, sb))
            assert p.min() >= -256 and p.max() < 256


def test_quantize_fp4_phase_forms():
    """The phase as a name, a bit or an array of bits gives the same values (the scale back
    uses the same phase as the conversion)."""
    x = np.array([3.0, -0.7, 40.0, 2.5])
    odd = golden.quantize_fp4(x, g=1, phase="odd")
    np.testing.assert_array_equal(golden.quantize_fp4(x, g=1, phase=1), odd)
    np.testing.assert_array_equal(golden.quantize_fp4(x, g=1, phase=np.ones(4, int)), odd)
    assert golden.quantize_fp4(np.array([3.0]), phase=1)[0] == 2.0
    with pytest.raises(ValueError):
        golden.quantize_fp4(x, phase="neither")
