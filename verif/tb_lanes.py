"""cocotb benches for the two multiply lanes: every code pair in every signedness mode."""

import itertools

import cocotb
import numpy as np
from cocotb.triggers import Timer

import golden

from scoreboard import Scoreboard

CODES = range(16)


@cocotb.test()
async def int4_mul_lane_exhaustive(dut):
    """Every (a, b) code pair x every (a_signed, b_signed): 16 * 16 * 4 = 1024 vectors."""
    sb = Scoreboard("int4_mul_exhaustive", dut._log)
    cases = np.array(list(itertools.product(CODES, CODES, (0, 1), (0, 1))))
    got = []
    for a, b, sa, sb_ in cases:
        dut.a.value, dut.b.value = int(a), int(b)
        dut.a_signed.value, dut.b_signed.value = int(sa), int(sb_)
        await Timer(1, "ns")
        got.append(dut.p.value.to_signed())
    a, b, sa, sb_ = cases.T
    sb.compare(got, golden.int4_mul(a, b, sa, sb_), a=a, b=b, a_signed=sa, b_signed=sb_)
    sb.finish(expected_vectors=1024, exhaustive=True)


@cocotb.test()
async def fp4_shift_lane_exhaustive(dut):
    """Every (fp4 a, integer b) code pair x b_signed: 16 * 16 * 2 = 512 vectors, each
    checking both outputs: ``p`` and its ones' complement form ``ones = p - sign``."""
    sb = Scoreboard("fp4_shift_exhaustive", dut._log)
    cases = np.array(list(itertools.product(CODES, CODES, (0, 1))))
    got = []
    for a, b, sb_ in cases:
        dut.a.value, dut.b.value, dut.b_signed.value = int(a), int(b), int(sb_)
        await Timer(1, "ns")
        got.append(_pair(dut.p.value.to_signed(), dut.ones.value.to_signed()))
    a, b, sb_ = cases.T
    p = golden.fp4_mul(a, b, sb_).astype(np.int64)
    want = [_pair(x, x - (c >> 3)) for x, c in zip(p, a)]
    sb.compare(got, want, a=a, b=b, b_signed=sb_)
    sb.finish(expected_vectors=512, exhaustive=True)


def _pair(p, ones):
    """Both 17-bit outputs in one integer: ``p`` in the low half, ``ones`` above it."""
    mask = (1 << 17) - 1
    return (int(p) & mask) | ((int(ones) & mask) << 17)
