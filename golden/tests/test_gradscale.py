"""GradScale rules against a float reference, over every non-NaN fp16 magnitude."""

import numpy as np
import pytest

from golden import fp16_to_float
from golden.formats import FP16
from golden.gradscale import M_HI_LOG2, M_LO_LOG2, gradscale

MAGS = np.arange(FP16.INF + 1, dtype=np.uint16)        # +0 .. +Inf: every non-NaN magnitude
G_VALUES = (-40, -32, -7, 0, 1, 13, 31, 40)


@pytest.mark.parametrize("g", G_VALUES)
def test_paper_rule_matches_float_reference(g):
    m = fp16_to_float(MAGS) * 2.0 ** g
    ref = np.where(m > 2.0 ** M_HI_LOG2, g - 1, np.where(m <= 2.0 ** M_LO_LOG2, g + 1, g))
    np.testing.assert_array_equal(gradscale(MAGS, g), ref)
    assert gradscale(np.uint16(0), g) == g + 1
    assert gradscale(np.uint16(FP16.INF), g) == g - 1


@pytest.mark.parametrize("g", G_VALUES)
def test_direct_rule_lands_in_window(g):
    finite = MAGS[(MAGS != 0) & (MAGS != FP16.INF)]
    new = gradscale(finite, g, rule="direct")
    m = fp16_to_float(finite) * np.ldexp(1.0, new)
    assert np.all((m > 2.0 ** M_LO_LOG2) & (m <= 2.0 ** M_HI_LOG2))
    # Once there, the paper rule keeps it: the two rules agree on the fixed point.
    np.testing.assert_array_equal(gradscale(finite, new), new)
    assert gradscale(np.uint16(0), g, rule="direct") == g
    assert gradscale(np.uint16(FP16.INF), g, rule="direct") == g - 1


def test_examples_and_sign_ignored():
    one, hundred, forty = 0x3C00, 0x5640, 0x5100        # 1.0, 100.0, 40.0
    assert list(gradscale([one, hundred, forty], 0)) == [1, -1, 0]
    assert list(gradscale([one, hundred, forty], 0, rule="direct")) == [6, -1, 0]
    assert gradscale(0x8000 | hundred, 0) == -1
    assert gradscale(0x0001, 0, rule="direct") == 30    # 2**-24 -> m = 2**6
    assert gradscale(FP16.MAX_FINITE, 0, rule="direct") == -10


def test_clamp_and_vectorized_g():
    got = gradscale([0, FP16.INF, 0x3C00], np.array([31, -32, 0]), g_min=-32, g_max=31)
    assert list(got) == [31, -32, 1]
    assert list(gradscale([0x0001] * 2, [0, 0], rule="direct", g_max=20)) == [20, 20]


@pytest.mark.parametrize("kwargs, match", [
    ({"rule": "best"}, "rule must be one of"),
    ({"max_code": 0x7E00}, "NaN"),
    ({"max_code": 1 << 16}, "not a 16-bit code"),
    ({"g": 1.5}, "g must be an integer"),
])
def test_bad_input(kwargs, match):
    args = {"max_code": 0x3C00, "g": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        gradscale(**args)
