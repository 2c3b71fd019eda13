"""The coverage machinery (:mod:`funcov`) without a simulator: a hole fails, unreachable
combinations are not bins, and the classifiers agree with the golden model."""

import funcov
import numpy as np
import pytest

import golden
from golden.formats import FP16


def test_a_hole_fails_and_unreachable_bins_do_not_count(tmp_path, monkeypatch):
    monkeypatch.setenv("FOURBIT_COVERAGE", str(tmp_path / "coverage.jsonl"))
    cov = funcov.Coverage("smoke", {"x": (0, 1, 2), "y": ("a", "b")},
                          {"xy": ("x", "y"), "x": ("x",)},
                          reachable={"xy": {(0, "a"), (1, "a"), (1, "b"), (2, "b")}})
    assert cov.counts() == (4 + 3, 0)
    cov.sample(x=np.array([0, 1, 1, 0]), y=np.array(["a", "a", "b", "a"]))
    assert cov.holes() == [("xy", (2, "b")), ("x", (2,))]
    with pytest.raises(AssertionError, match="2 of 7 bins never hit"):
        cov.finish()
    cov.sample(x=2, y="b")
    cov.finish()
    assert (tmp_path / "coverage_smoke.xml").exists()
    lines = (tmp_path / "coverage.jsonl").read_text().splitlines()
    assert [line.count('"hit"') for line in lines] == [1, 1]


def test_rounding_cases_agree_with_the_golden_rounder():
    gen = np.random.default_rng(5)
    n = 100_000
    sign = gen.integers(0, 2, n)
    mag = gen.integers(0, 1 << 24, n) >> gen.integers(0, 24, n)
    exp = gen.integers(-45, 12, n)
    code, flags = golden.round_fp16(sign, mag, exp)
    case = funcov.rounding_case(mag, exp, code, flags)
    assert set(case) == set(funcov.ROUNDING_CASES)
    value = np.ldexp(mag.astype(np.float64), exp)
    got = golden.fp16_to_float(code & FP16.MAG_MASK)
    assert np.all(got[case == "exact"] == value[case == "exact"])
    for down in ("below_tie", "tie_even"):
        assert np.all(got[case == down] < value[case == down])
    for up in ("above_tie", "tie_odd"):
        assert np.all(got[case == up] > value[case == up])
    plain = np.isin(case, ("zero", "exact", "below_tie", "tie_even", "tie_odd", "above_tie"))
    assert np.all(((flags[plain] & 1) == 0) == np.isin(case[plain], ("zero", "exact")))


def test_fp16_classes():
    x = np.array([0x0000, 0x8001, 0x0400, 0x7C00, 0xFE00, 0x7C01])
    assert funcov.fp16_class(x).tolist() == ["zero", "subnormal", "normal", "inf", "qnan",
                                             "snan"]
