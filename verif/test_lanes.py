"""The two multiply lanes, exhaustively, on Icarus and Verilator."""

import pytest

from hdl import FP4ShiftLane, Int4MulLane

from harness import run_bench, simulators


@pytest.mark.parametrize("sim", simulators())
def test_int4_mul_lane(sim):
    run_bench(Int4MulLane(), "tb_lanes", sim, expect_vectors=1024,
              extra_env={"COCOTB_TEST_FILTER": "int4_mul_lane_exhaustive"})


@pytest.mark.parametrize("sim", simulators())
def test_fp4_shift_lane(sim):
    run_bench(FP4ShiftLane(), "tb_lanes", sim, expect_vectors=512,
              extra_env={"COCOTB_TEST_FILTER": "fp4_shift_lane_exhaustive"})
