"""golden.dot and golden.gemm: known answers, and gemm's fast float32 path bit-identical to
the per-dot-product reference (golden.dot) and to gemm's own reference path (flags=True).
The fp16-accumulation loops of the fast path and their roundings: test_gemm_fast.py."""

import importlib
import itertools
import zlib

import numpy as np
import pytest

import golden

dotmod = importlib.import_module("golden.dot")


def _reference(a, b, **kw):
    """gemm through golden.dot: one dot product per output element, (M, 1, K) x (1, N, K)."""
    return golden.dot(a[:, None, :], b.T[None, :, :], x_signed=kw.pop("a_signed", False),
                      w_signed=kw.pop("b_signed", True), **kw)


def _random_codes(rng, shape, mode):
    if mode == "backward":
        return rng.integers(0, 16, size=shape, dtype=np.uint8)
    return rng.integers(0, 16, size=shape, dtype=np.uint8)


def test_known_answer_fp16_vs_exact():
    # lanes=20: beat 1 = 20 * (15 * 7) = 2100; beats 2 and 3 add 1 each. In fp16 (spacing 2
    # above 2048) 2100 + 1 is a tie that rounds back to 2100, twice; exact gives 2102.
    a = np.zeros((1, 60), np.uint8)
    w = np.zeros((60, 1), np.uint8)
    a[0, :20], w[:20, 0] = 15, 7
    a[0, [20, 40]], w[[20, 40], 0] = 1, 1
    kw = dict(mode="forward", a_signed=False, b_signed=True, lanes=20)
    f16 = golden.fp16_to_float(golden.gemm(a, w, accumulator="fp16", **kw))
    ex = golden.fp16_to_float(golden.gemm(a, w, accumulator="exact", **kw))
    assert f16[0, 0] == 2100.0 and ex[0, 0] == 2102.0
    assert golden.dot(a[0], w[:, 0], lanes=20, accumulator="fp16") == f16[0, 0].astype(
        np.float16).view(np.uint16)


def test_known_answer_backward_scale():
    # fp4 code 0b0101 is +4; times uint4 3, odd phase (x2), g = 1 (x1/2): 12 per product.
    a = np.full((1, 5), 0b0101, np.uint8)
    b = np.full((5, 1), 3, np.uint8)
    out = golden.gemm(a, b, mode="backward", b_signed=False, phase="odd", g=1)
    assert golden.fp16_to_float(out)[0, 0] == 60.0


CASES = list(itertools.product(
    ["forward", "backward"], ["fp16", "exact"], [(False, True), (True, True), (False, False)],
    [1, 8, 16], [0, 3, -2]))


@pytest.mark.parametrize("mode,acc,signs,lanes,g", CASES)
def test_gemm_fast_matches_dot(mode, acc, signs, lanes, g):
    rng = np.random.default_rng(zlib.crc32(repr((mode, acc, signs, lanes, g)).encode()))
    checked = 0
    for m, k, n in [(7, 37, 5), (3, 8, 4), (1, 1, 1), (4, 0, 3), (16, 130, 9)]:
        a = _random_codes(rng, (m, k), mode)
        b = rng.integers(0, 16, size=(k, n), dtype=np.uint8)
        for phase in ("even", "odd") if mode == "backward" else ("even",):
            kw = dict(mode=mode, a_signed=signs[0], b_signed=signs[1], phase=phase, g=g,
                      accumulator=acc, lanes=lanes)
            fast = golden.gemm(a, b, **kw)
            slow, _ = golden.gemm(a, b, flags=True, **kw)
            # golden.dot cannot take K = 0 (reshape of an empty array): compare to gemm's
            # reference path there.
            ref = _reference(a, b, **kw) if k else slow
            assert fast.dtype == np.uint16 and fast.shape == (m, n)
            np.testing.assert_array_equal(fast, ref)
            np.testing.assert_array_equal(slow, ref)
            checked += fast.size
    assert checked > 0


@pytest.mark.parametrize("acc", ["fp16", "exact"])
@pytest.mark.parametrize("g", [-30, -12, 12, 20, 24, 40, 130, 200, -200])
def test_gemm_fast_extreme_scales(acc, g):
    """Overflow to Inf, Inf - Inf = NaN, gradual underflow, and exponents past float32's range
    (the fast path must hand those to the reference path)."""
    rng = np.random.default_rng(abs(g))
    a = rng.integers(0, 16, size=(12, 45), dtype=np.uint8)
    b = rng.integers(0, 16, size=(45, 10), dtype=np.uint8)
    kw = dict(mode="backward", b_signed=True, phase="odd", g=g, accumulator=acc)
    np.testing.assert_array_equal(golden.gemm(a, b, **kw), _reference(a, b, **kw))


def test_gemm_fast_special_results_present():
    """The extreme-scale cases above do reach Inf and NaN (no vacuous pass)."""
    a = np.array([[0b0111] * 8 + [0b1111] * 8], np.uint8)           # +64 x8, then -64 x8
    b = np.full((16, 1), 7, np.uint8)
    kw = dict(mode="backward", b_signed=True, g=-10, accumulator="fp16")
    out = golden.gemm(a, b, **kw)
    assert out[0, 0] == 0x7E00                                        # +Inf + -Inf
    np.testing.assert_array_equal(out, _reference(a, b, **kw))


def test_gemm_fast_split_k_exact():
    """Sums beyond 2**24 units take the split-K float32 path; still bit-exact."""
    a = np.full((3, 2000), 0b0111, np.uint8)
    a[1, ::3] = 0b1111
    b = np.full((2000, 2), 15, np.uint8)
    b[::7, 1] = 3
    for acc in ("exact", "fp16"):
        kw = dict(mode="backward", b_signed=False, g=-8 if acc == "fp16" else 12,
                  accumulator=acc)
        np.testing.assert_array_equal(golden.gemm(a, b, **kw), _reference(a, b, **kw))


def test_gemm_signed_zero():
    """A zero sum is +0 (reference), even when BLAS sums -0.0 products; a tiny negative sum
    that underflows is -0."""
    a = np.zeros((2, 8), np.uint8)                                     # one beat of 8 lanes
    b = np.full((8, 3), 0b1001, np.uint8)                              # int4 -7
    a[1, 0] = 0b1001                                                   # fp4 -1/64
    b[0, 2] = 1
    for acc in ("exact", "fp16"):
        kw = dict(mode="backward", b_signed=True, g=30, accumulator=acc)
        out = golden.gemm(a, b, **kw)
        np.testing.assert_array_equal(out, _reference(a, b, **kw))
        assert out[0, 0] == 0x0000 and out[1, 2] == 0x8000


def test_gemm_rejects_bad_codes():
    with pytest.raises(ValueError):
        golden.gemm(np.array([[16]], np.uint8), np.array([[1]], np.uint8))
    with pytest.raises(ValueError):
        golden.gemm(np.array([[1.0]]), np.array([[1]], np.uint8))
    with pytest.raises(ValueError):
        golden.gemm(np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.uint8))
    # int64 codes in range are fine and give the same answer as uint8 codes
    a = np.arange(12).reshape(3, 4) % 16
    b = np.arange(8).reshape(4, 2) % 16
    np.testing.assert_array_equal(golden.gemm(a, b),
                                  golden.gemm(a.astype(np.uint8), b.astype(np.uint8)))


def test_fast_path_taken():
    """The float32 path serves the bench's shape (global bound) and a longer K with unsigned
    b (per-row bound): it returns codes, not None, and they match golden.dot."""
    rng = np.random.default_rng(1)
    for k, b_signed in ((512, True), (1024, False)):
        a = rng.integers(0, 16, size=(16, k), dtype=np.uint8)
        b = rng.integers(0, 16, size=(k, 8), dtype=np.uint8)
        for acc in ("exact", "fp16"):
            lanes, exp = dotmod._options("backward", acc, 8, "even", 0)
            out = dotmod._gemm_fast(a, b, "backward", False, b_signed, exp, acc, lanes)
            assert out is not None
            np.testing.assert_array_equal(
                out, _reference(a, b, mode="backward", b_signed=b_signed, accumulator=acc))


def test_phase_checked_in_forward_mode():
    """Forward mode ignores the phase but still rejects a bad one (no silent acceptance)."""
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 2), np.uint8)
    with pytest.raises(ValueError, match="phase"):
        golden.gemm(a, b, mode="forward", phase="evn")
    with pytest.raises(ValueError, match="phase"):
        golden.dot(a, a, mode="forward", phase="evn")


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_dot_one_by_one_matches_array_loop(monkeypatch, mode):
    """golden.dot's two fp16 accumulation loops (few dot products: Python ints, one pair at
    a time; many: array calls across the dot products) give the same codes and flags, on
    random and saturating dot products at the scales' ends."""
    rng = np.random.default_rng(17)
    rows = dotmod._ONE_BY_ONE_ROWS
    checked = 0
    for g in (-32, 0, 31):
        x = rng.integers(0, 16, (rows, 40 * 8), dtype=np.uint8)
        w = rng.integers(0, 16, (rows, 40 * 8), dtype=np.uint8)
        x[:4], w[:4] = (7, 15) if mode == "backward" else (8, 8)     # large products: Inf
        kw = dict(mode=mode, x_signed=True, w_signed=mode == "forward", g=g, lanes=8,
                  accumulator="fp16", flags=True)
        one = golden.dot(x, w, **kw)
        monkeypatch.setattr(dotmod, "_ONE_BY_ONE_ROWS", 0)
        arr = golden.dot(x, w, **kw)
        monkeypatch.setattr(dotmod, "_ONE_BY_ONE_ROWS", rows)
        for p, q in zip(one, arr, strict=True):
            assert p.dtype == q.dtype and p.shape == q.shape == (rows,)
            assert int((p != q).sum()) == 0
        checked += rows
    assert checked == 3 * rows
