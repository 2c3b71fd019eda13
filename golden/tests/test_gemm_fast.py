"""gemm's fp16-accumulation fast path (``golden.dot._gemm_fp16_acc``).

Its fp16 roundings on float32 against NumPy's float16 cast and ``golden.round_fp16``, its
float32-add idiom against Berkeley TestFloat's binary16 additions, and each of its loops
("narrow", "wide", "tiny"), by default and forced, bit for bit against gemm's reference path
(``flags=True``: ``round_fp16`` per beat, ``fp16_add`` into the accumulator).
"""

import importlib
import itertools
import zlib

import numpy as np
import pytest

import golden
from golden.testfloat import load as load_testfloat

dotmod = importlib.import_module("golden.dot")

F32 = np.float32
# Values of the 13 low fraction bits that fp16 drops: zero, just above zero, just below,
# at and just above half (the tie), just below and at three quarters, all ones.
LOW13 = (0x0000, 0x0001, 0x0002, 0x07FF, 0x0800, 0x0801, 0x0FFE, 0x0FFF, 0x1000, 0x1001,
         0x1002, 0x17FF, 0x1800, 0x1FFE, 0x1FFF)


def _patterns(fields=range(256), low13=LOW13):
    """float32 bit patterns: both signs x the exponent ``fields`` x all 1024 values of the
    10 fraction bits fp16 keeps x ``low13`` in the 13 it drops. Below fp16's normal range the
    rounding point moves up into the 10 enumerated bits: there every tie, and every value
    just above or below one, is present too."""
    s = np.array([0, 1], np.uint32)[:, None, None, None] << np.uint32(31)
    e = np.asarray(list(fields), np.uint32)[None, :, None, None] << np.uint32(23)
    hi = np.arange(1024, dtype=np.uint32)[None, None, :, None] << np.uint32(13)
    lo = np.asarray(low13, np.uint32)[None, None, None, :]
    return (s | e | hi | lo).ravel()


def _same(got, want):
    """Elementwise: the same float32 bit pattern, or both NaN."""
    got, want = np.asarray(got, F32), np.asarray(want, F32)
    return (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))


def _cast(x):
    """The oracle: NumPy's float32 -> float16 conversion (RNE, gradual underflow, Inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x, F32).astype(np.float16).astype(F32)


def _run(fn, x, scratches):
    x = np.array(x, F32)
    with np.errstate(over="ignore", invalid="ignore"):
        fn(x, *(np.empty_like(x) for _ in range(scratches)))
    return x


def _codes(real):
    """fp16 codes of real-domain float32 fp16 values, through the fast path's S domain."""
    with np.errstate(over="ignore", invalid="ignore"):
        return dotmod._fp16_codes_s(np.asarray(real, F32) * dotmod._FROM_U)


# --- the three roundings and the code conversion ---------------------------------------------

def test_round_fp16_any_vs_cast_and_round_fp16():
    """_round_fp16_any (any float32) equals the float16 cast on 7.9M structured patterns:
    every exponent field (subnormals, Inf, NaN included), both signs; and equals round_fp16
    on the exact value of every finite pattern of a fp16-relevant exponent window."""
    u = _patterns()
    assert u.size == 2 * 256 * 1024 * len(LOW13) == 7864320
    x = u.view(F32)
    got = _run(dotmod._round_fp16_any, x, 2)
    want = _cast(x)
    bad = ~_same(got, want)
    assert not bad.any(), [hex(v) for v in u[bad][:8]]
    # the sample reaches every kind of result
    assert np.isinf(want).sum() and np.isnan(want).sum() and (want == 0).sum()
    assert ((np.abs(want) > 0) & (np.abs(want) < 2.0 ** -14)).sum()          # subnormals
    assert (np.signbit(want) & (want == 0) & (x != 0)).sum()                 # to -0

    # round_fp16 on the exact value sign * mag * 2**exp of each float32 (fields 96..150:
    # 2**-31 up to 2**23, from below half of fp16's smallest subnormal to far above 65520)
    sub = _patterns(range(96, 151), (0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF))
    xs = sub.view(F32)
    field = ((sub >> 23) & 0xFF).astype(np.int64)
    mag = (sub & 0x7FFFFF).astype(np.int64) | (1 << 23)
    ref, _ = golden.round_fp16((sub >> 31).astype(np.int64), mag, field - 150)
    np.testing.assert_array_equal(_codes(_run(dotmod._round_fp16_any, xs, 2)), ref)
    assert sub.size == 675840


def test_round_fp16_veltkamp_exhaustive_binade():
    """_round_fp16_veltkamp is RNE to 11 bits: every float32 of [1, 2) and (-2, -1]."""
    checked = 0
    for start in range(0, 1 << 23, 1 << 21):
        m = np.arange(start, start + (1 << 21), dtype=np.uint32) | np.uint32(127 << 23)
        x = np.concatenate([m, m | np.uint32(1 << 31)]).view(F32)
        bad = ~_same(_run(dotmod._round_fp16_veltkamp, x, 1), _cast(x))
        assert not bad.any(), [hex(v) for v in x[bad][:8].view(np.uint32)]
        checked += x.size
    assert checked == 1 << 24


def test_round_fp16_veltkamp_domain():
    """_round_fp16_veltkamp equals the float16 cast on its whole domain in the structured
    sample: |x| < 65520 and x a multiple of 2**-24 (every fp16 binade; below 2**-14 only the
    fp16 subnormals qualify); -0 gives +0."""
    u = _patterns(range(127 - 24, 127 + 17))
    x = u.view(F32)
    on_grid = (np.abs(x) >= 2.0 ** -14) | (np.ldexp(np.abs(x).astype(np.float64), 24) % 1 == 0)
    x = x[on_grid & (np.abs(x) < 65520.0)]
    got = _run(dotmod._round_fp16_veltkamp, x, 1)
    assert _same(got, _cast(x)).all()
    # 29 binades whole, [2**15, 65520) (8 LOW13 values below the tie at 1023 << 13), and
    # the 1023 nonzero fp16 subnormals' patterns; both signs
    assert x.size == 2 * (29 * 1024 * len(LOW13) + 1023 * len(LOW13) + 8 + 1023) == 923632
    # the fp16 subnormals and zeros, both signs: unchanged, except -0 -> +0
    sub = np.ldexp(np.arange(-1023, 1024, dtype=np.float64), -24).astype(F32)
    sub = np.concatenate([sub, [F32(-0.0)]])
    got = _run(dotmod._round_fp16_veltkamp, sub, 1)
    assert _same(got, sub + F32(0.0)).all() and not np.signbit(got[sub == 0]).any()


def test_round_fp16_u_domain():
    """_round_fp16_u on U-domain values (v * 2**112) equals the float16 cast of v: every
    pattern of fp16's normal range and up to float32's largest (fields 225..254: fp16 values
    from 2**-14 to past the overflow threshold 65520), the fp16 subnormals (multiples of
    2**88 here), +-0, +-Inf and the NaNs float32 arithmetic makes."""
    u = _patterns(range(225, 255))
    sub = np.ldexp(np.arange(-1023, 1024, dtype=np.float64), 88).astype(F32)
    special = np.array([0.0, -0.0, np.inf, -np.inf], F32)
    with np.errstate(invalid="ignore"):
        nans = np.array([np.inf, -np.inf], F32) - np.array([np.inf, -np.inf], F32)
    x = np.concatenate([u.view(F32), sub, special, nans])
    got = _run(dotmod._round_fp16_u, x, 1)
    with np.errstate(over="ignore"):
        want = _cast(x * dotmod._FROM_U) * dotmod._TO_U
    bad = ~_same(got, want)
    assert not bad.any(), [hex(v) for v in x[bad][:8].view(np.uint32)]
    assert np.isinf(want).sum() and np.isnan(got[-2:]).all()
    zero_inf = got[-6:-2]                                       # +0, -0, +Inf, -Inf
    assert (np.signbit(zero_inf) == [False, True, False, True]).all()
    assert x.size == 2 * 30 * 1024 * len(LOW13) + 2047 + 6


def test_fp16_codes_s_all_codes():
    """Every fp16 code survives fp16 -> float32 -> S domain -> _fp16_codes_s; NaNs -> 0x7E00."""
    codes = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    got = _codes(codes.view(np.float16).astype(F32))
    nan = ((codes & 0x7C00) == 0x7C00) & ((codes & 0x3FF) != 0)
    np.testing.assert_array_equal(got, np.where(nan, 0x7E00, codes))
    assert nan.sum() == 2046


def test_fp16_add_idiom_testfloat():
    """The accumulation step of every loop -- fp16 + fp16 added in float32, then rounded to
    fp16 -- against TestFloat's 46464 binary16 additions and golden.fp16_add: in the real
    domain with _round_fp16_any, in the U domain with _round_fp16_u, and with
    _round_fp16_veltkamp where "narrow" uses it (finite sums below 65520)."""
    a, b, want, _ = load_testfloat("add")
    assert len(a) == 46464
    fa = a.astype(np.uint16).view(np.float16).astype(F32)
    fb = b.astype(np.uint16).view(np.float16).astype(F32)
    with np.errstate(over="ignore", invalid="ignore"):
        s = fa + fb
        su = fa * dotmod._TO_U + fb * dotmod._TO_U
    ref = golden.fp16_add(a, b).astype(np.int64)
    want_nan = ((want & 0x7C00) == 0x7C00) & ((want & 0x3FF) != 0)
    for name, got in (("any", _codes(_run(dotmod._round_fp16_any, s, 2))),
                      ("u", _codes(_run(dotmod._round_fp16_u, su, 1) * dotmod._FROM_U))):
        got = got.astype(np.int64)
        ok = (got == want) | (want_nan & (got == 0x7E00))
        assert ok.all(), f"{name}: {np.count_nonzero(~ok)} mismatches"
        np.testing.assert_array_equal(got, ref)
    dom = np.isfinite(s) & (np.abs(s) < 65520.0)
    got = _codes(_run(dotmod._round_fp16_veltkamp, s[dom], 1)).astype(np.int64)
    np.testing.assert_array_equal(got, np.where(ref[dom] == 0x8000, 0, ref[dom]))
    assert dom.sum() == 41244 and (ref[dom] == 0x8000).sum() == 1      # -0 + -0 among them


# --- gemm: the fast fp16 path against the reference path -------------------------------------

def _plan_info(a, b, mode, a_signed, b_signed, phase, g, lanes):
    """(exact loops fastest first, U-domain scale folded into the table) for this gemm."""
    lanes, exp = dotmod._options(mode, "fp16", lanes, phase, g)
    lut_a, _, amax, bmax = dotmod._value_tables(mode, a_signed, b_signed, exp)
    nb = max(1, -(-a.shape[1] // lanes))
    plans = dotmod._fp16_plans(np.take(lut_a, a), exp, nb, amax, bmax)
    return plans, dotmod._fp16_u_fold(lanes, a.shape[1], amax, bmax, exp)


def _check(a, b, seen=None, **kw):
    """Fast fp16 gemm (default loop, then each exact loop forced) vs the reference path, bit
    for bit. Returns (reference codes, number of compared outputs)."""
    kw = dict(mode="forward", a_signed=False, b_signed=True, phase="even", g=0, lanes=8) | kw
    ref, _ = golden.gemm(a, b, accumulator="fp16", flags=True, **kw)
    fast = golden.gemm(a, b, accumulator="fp16", **kw)
    assert fast.dtype == np.uint16 and fast.shape == ref.shape == (a.shape[0], b.shape[1])
    np.testing.assert_array_equal(fast, ref)
    checked = fast.size
    plans, fold = _plan_info(a, b, **kw)
    if seen is not None and a.shape[1]:
        seen.add(plans[0] + ("-fold" if plans[0] == "wide" and fold else ""))
    lanes, exp = dotmod._options(kw["mode"], "fp16", kw["lanes"], kw["phase"], kw["g"])
    for plan in plans:
        out = dotmod._gemm_fast(a, b, kw["mode"], kw["a_signed"], kw["b_signed"], exp,
                                "fp16", lanes, plan=plan)
        np.testing.assert_array_equal(out, ref, err_msg=f"plan {plan}")
        checked += out.size
    return ref, checked


SHAPES = [(3, 0, 4), (2, 1, 3), (5, 37, 4), (4, 150, 3)]      # K = 0, 1, not multiples
SIGNS = {"forward": [(False, True), (True, True), (False, False)],
         "backward": [(False, True), (False, False)]}
GS = {"forward": [0, 6, -4, -12, 30],          # -12, -4: overflow; 30: fp16 subnormals
      "backward": [3, -2, -20, 24]}            # -20, -2: overflow; 24: subnormals, -0
SWEEP = [(mode, signs, lanes, g) for mode in ("forward", "backward") for signs in SIGNS[mode]
         for lanes in (1, 2, 8, 64) for g in GS[mode]]


def test_gemm_fp16_fast_random_sweep():
    """(a) Random codes, both modes, signed and unsigned operands, lanes 1/2/8/64, scales
    from fp16 subnormals to overflow (backward g = -20 .. 24, forward g = -12 .. 30), K = 0,
    1 and not a multiple of lanes: every output of the default loop and of each exact loop
    equals the reference; all four loop variants serve some case by default."""
    checked, seen = 0, set()
    for mode, signs, lanes, g in SWEEP:
        rng = np.random.default_rng(zlib.crc32(repr((mode, signs, lanes, g)).encode()))
        for i, (m, k, n) in enumerate(SHAPES):
            a = rng.integers(0, 16, size=(m, k), dtype=np.uint8)
            b = rng.integers(0, 16, size=(k, n), dtype=np.uint8)
            phase = ("even", "odd")[i % 2] if mode == "backward" else "even"
            _, c = _check(a, b, seen, mode=mode, a_signed=signs[0], b_signed=signs[1],
                          phase=phase, g=g, lanes=lanes)
            checked += c
    assert len(SWEEP) == 3 * 4 * 5 + 2 * 4 * 4 == 92
    assert seen == {"narrow", "wide", "wide-fold", "tiny"}
    # 50 outputs per case (4 shapes), compared for the default loop and each exact one:
    # at least 2 comparisons each ("tiny" is always exact), at most 4
    assert checked == 15320 and 92 * 50 * 2 < checked < 92 * 50 * 4


def test_gemm_fp16_fast_inf_and_nan():
    """(b) Forward, g = -8 (products +-105 * 256 = +-26880), lanes 4, b = +7 x8 then -7 x4:
    a part overflowing to +Inf, the accumulator reaching +Inf by addition, Inf staying Inf
    under finite parts, and +Inf + -Inf = NaN (canonical 0x7E00)."""
    b = np.array([[7]] * 8 + [[0b1001]] * 4, np.uint8)
    a = np.array([[15, 15, 15, 15, 0, 0, 0, 0, 15, 15, 15, 15],     # +Inf part, -Inf part
                  [15, 15, 0, 0, 15, 15, 0, 0, 15, 15, 15, 15],     # acc -> +Inf, -Inf part
                  [15, 15, 0, 0, 15, 15, 0, 0, 15, 15, 0, 0],       # acc -> +Inf, -53760
                  [0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15],         # -Inf part only
                  [15, 15, 0, 0, 0, 0, 0, 0, 15, 15, 0, 0]], np.uint8)   # x - x = +0
    ref, checked = _check(a, b, g=-8, lanes=4)
    np.testing.assert_array_equal(ref[:, 0], [0x7E00, 0x7E00, 0x7C00, 0xFC00, 0x0000])
    assert checked == 5 * 3                              # default, "wide", "tiny"


def test_gemm_fp16_fast_overflow_threshold():
    """Overflow at fp16's threshold 65520 = 65504 + half an ulp: beat sums of exactly
    65504, 65519, 65520 (a part rounding to 65504 or Inf) and 65504 + 15, + 16 (the
    accumulator's rounding), positive and negative. Forward, g = 0, lanes 8800 (each beat:
    4400 lanes of b = +1, then 4400 of b = -1)."""
    half = 4400
    b = np.array(([1] * half + [15] * half) * 2, np.uint8)[:, None]       # int4 +1, -1

    def beat(total):
        codes = np.zeros(2 * half, np.uint8)
        side = codes[:half] if total >= 0 else codes[half:]
        q, r = divmod(abs(total), 15)
        side[:q], side[q] = 15, r
        return codes

    targets = [(65504, 0), (65519, 0), (65520, 0), (-65519, 0), (-65520, 0), (65504, 15),
               (65504, 16), (-65504, -16), (-65504, -15), (65504, -16), (1, -1), (0, 0)]
    a = np.array([np.concatenate([beat(t1), beat(t2)]) for t1, t2 in targets])
    ref, checked = _check(a, b, g=0, lanes=2 * half)
    np.testing.assert_array_equal(
        ref[:, 0], [0x7BFF, 0x7BFF, 0x7C00, 0xFBFF, 0xFC00, 0x7BFF, 0x7C00, 0xFC00, 0xFBFF,
                    0x7BFE, 0x0000, 0x0000])
    assert checked == len(targets) * 3


def test_gemm_fp16_fast_signed_zeros():
    """(c) Signed zeros. Backward, g = 30 (a product of +-1 unit is +-2**-36: rounds to
    +-0), lanes 2, b columns +1 and -1: -0 + -0 = -0; -0 + +0 = +0; -0 plus a zero beat
    whose products are all -0.0 (a = 0, b = -1) is +0 (a zero sum is +0); a first beat of
    -0.0 products is +0. Forward, g = 0: x + (-x) = +0, zero sums of -0.0 products are +0."""
    b = np.array([[1, 15]] * 4, np.uint8)                      # int4 +1 | -1
    a = np.array([[9, 0, 9, 0],                                # -0, -0 | +0, +0
                  [9, 0, 1, 0],                                # -0, +0 | +0, -0
                  [1, 0, 0, 0],                                # +0, +0 | -0, zero sum
                  [0, 0, 0, 0],                                # zero sums only
                  [9, 9, 1, 1]], np.uint8)                     # -0, +0 | +0, -0
    ref, checked = _check(a, b, mode="backward", b_signed=True, g=30, lanes=2)
    np.testing.assert_array_equal(ref, [[0x8000, 0x0000], [0x0000, 0x0000], [0x0000, 0x0000],
                                        [0x0000, 0x0000], [0x0000, 0x0000]])
    assert checked == 10 * (1 + 1)                # default, then "tiny" (exp < -24)

    b = np.array([[7, 0b1001], [7, 0b1001], [0b1001, 0b1001], [0b1001, 0b1001]], np.uint8)
    a = np.array([[3, 0, 3, 0],                                # +21 - 21 | -21 - 21
                  [0, 0, 0, 0]], np.uint8)                     # zero sums, -0.0 products
    ref, checked = _check(a, b, g=0, lanes=2)
    np.testing.assert_array_equal(ref, [[0x0000, golden.fp16_from_float(-42.0)], [0, 0]])
    assert checked == 4 * (1 + 3)                 # default, then "narrow", "wide", "tiny"


def test_gemm_fp16_fast_blas_negative_zero(monkeypatch):
    """A BLAS whose zero sums come out as -0.0 (a sum of -0.0 products may) changes no
    result: the signed-zero cases and zero-heavy random cases, every loop, under a matmul
    that turns every zero it returns into -0.0."""
    real = np.matmul

    def matmul(x, y, out=None):
        r = real(x, y, out=out)
        r[r == 0] = -0.0
        return r

    monkeypatch.setattr(np, "matmul", matmul)
    checked = 0
    b = np.array([[1, 15]] * 4, np.uint8)
    a = np.array([[9, 0, 9, 0], [9, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.uint8)
    for g in (30, 0):                                    # "tiny"; "narrow", "wide", "tiny"
        checked += _check(a, b, mode="backward", g=g, lanes=2)[1]
    rng = np.random.default_rng(6)
    for g, lanes in itertools.product((0, -12, 30), (1, 8)):
        a = rng.integers(0, 16, size=(6, 20), dtype=np.uint8) * (rng.random((6, 20)) < 0.3)
        b = rng.integers(0, 16, size=(20, 5), dtype=np.uint8)
        checked += _check(a.astype(np.uint8), b, g=g, lanes=lanes)[1]
    assert checked == 8 * 2 + 8 * 4 + 2 * 30 * (4 + 3 + 2)
    assert (dotmod.np.matmul(np.zeros((1, 1)), np.ones((1, 1))) == 0) and np.signbit(
        dotmod.np.matmul(np.zeros((1, 1)), np.ones((1, 1))))[0, 0]


def test_gemm_fp16_fast_row_blocks(monkeypatch):
    """Row blocks (a short last one), every loop: set _BLOCK so that 3 rows make a block."""
    monkeypatch.setattr(dotmod, "_BLOCK", 16)
    rng = np.random.default_rng(5)
    checked = 0
    for g in (0, -6, 26):
        a = rng.integers(0, 16, size=(10, 29), dtype=np.uint8)
        b = rng.integers(0, 16, size=(29, 5), dtype=np.uint8)
        checked += _check(a, b, mode="backward", g=g, lanes=4)[1]
    assert checked == 50 * (3 + 2 + 1) + 50 * 3


def test_gemm_fp16_plan_must_be_exact():
    """Forcing a loop outside its exactness conditions is refused."""
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 2), np.uint8)
    lanes, exp = dotmod._options("backward", "fp16", 8, "even", 30)
    with pytest.raises(ValueError, match="narrow"):
        dotmod._gemm_fast(a, b, "backward", False, True, exp, "fp16", lanes, plan="narrow")
    assert dotmod._fp16_plans(np.zeros((2, 3), F32), exp, 1, 4096.0, 8.0) == ["tiny"]


def test_gemm_fp16_bench_input_takes_narrow():
    """scripts/bench.py's input (512^3, backward, g = 3, lanes 8) is served by the fastest
    loop: the per-row bound admits "narrow" although the global bound K amax bmax 2**exp
    (= 65536) does not."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 16, size=(512, 512), dtype=np.uint8)
    b = rng.integers(0, 16, size=(512, 512), dtype=np.uint8)
    plans, _ = _plan_info(a, b, "backward", False, True, "odd", 3, 8)
    assert plans == ["narrow", "wide", "tiny"]
    lanes, exp = dotmod._options("backward", "fp16", 8, "odd", 3)
    assert 512 * 4096 * 8 * 2.0 ** exp == 65536.0
