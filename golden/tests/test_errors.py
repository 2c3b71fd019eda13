"""Bad input raises a ValueError that names the problem; nothing is silently wrong."""

import numpy as np
import pytest

import golden


@pytest.mark.parametrize("call,msg", [
    (lambda: golden.fp16_add([1.5], [0x3C00]), "a must be an array of integer raw codes"),
    (lambda: golden.fp16_mul([0x3C00], [70000]), "b holds 70000, which is not a 16-bit code"),
    (lambda: golden.fp16_add([-1], [0]), "a holds -1"),
    (lambda: golden.to_fp4([0x3C00], phase="odd1"), "phase must be one of"),
    (lambda: golden.to_fp4([0x3C00], g=1000), r"g must lie in -256 \.\. 256"),
    (lambda: golden.to_fp4([0x3C00], g=0.5), "g must be an integer"),
    (lambda: golden.to_fp4(np.array([True])), "x must be an array of integer raw codes"),
    (lambda: golden.from_fp4([16]), "c holds 16, which is not a 4-bit code"),
    (lambda: golden.rescale([0x3C00], 0x3C00, fmt="int8"), "fmt must be one of"),
    (lambda: golden.rescale([0x3C00], 0x3C00, rounding="floor"), "rounding must be one of"),
    (lambda: golden.rescale([0x3C00], 0x3C00, rounding="stochastic"), "needs the random"),
    (lambda: golden.rescale([0x3C00], 0x3C00, rounding="stochastic", u=[4], r_bits=2),
     r"u must lie in 0 \.\. 3"),
    (lambda: golden.rescale([0x3C00], 0x3C00, rounding="stochastic", u=[0], r_bits=40),
     r"r_bits must lie in 1 \.\. 32"),
    (lambda: golden.rescale([0x3C00], 0x3C00, u=[0]), "only used with rounding='stochastic'"),
    (lambda: golden.int4_mul([3], [2], a_signed=2), r"signed must lie in 0 \.\. 1"),
    (lambda: golden.dot([[1, 2]], [[1, 2]], mode="sideways"), "mode must be one of"),
    (lambda: golden.dot([[1, 2]], [[1, 2]], accumulator="fp32"), "accumulator must be one of"),
    (lambda: golden.gemm(np.zeros((2, 3), int), np.zeros((2, 3), int)), "gemm needs"),
])
def test_messages(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_plain_call_returns_codes_only():
    x = np.array([0x3C00, 0x4000], np.uint16)
    for out in (golden.fp16_add(x, x), golden.fp16_mul(x, x), golden.to_fp4(x),
                golden.from_fp4(np.array([1, 2])), golden.rescale(x, 0x3C00)):
        assert isinstance(out, np.ndarray)
    assert golden.to_fp4(x).dtype == np.uint8 and golden.fp16_add(x, x).dtype == np.uint16
    assert golden.rescale(x, 0x3C00).dtype == np.uint8
    assert golden.from_fp4(np.array([1])).dtype == np.uint16


def test_dot_edge_shapes():
    assert golden.dot(np.zeros((3, 0), int), np.zeros((3, 0), int)).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="at least one axis"):
        golden.dot(1, 1)
