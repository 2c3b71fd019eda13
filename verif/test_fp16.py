"""FP16 adder and multiplier: TestFloat vectors, 10**6 random pairs and stream discipline on
Icarus and Verilator; parameter checks and a quick Amaranth-simulator test without them."""

import os

import pytest

from hdl import FP16Adder, FP16Multiplier

from harness import run_bench, simulators

UNITS = {"add": FP16Adder, "mul": FP16Multiplier}
TESTFLOAT_CASES = 46464              # per operation (../shared/testvectors/README.md)
LANES = int(os.environ.get("FP16_LANES", 16))   # operations per beat in the benches
N_RANDOM = int(os.environ.get("FP16_RANDOM", 1_000_000))
N_STREAM = 2000                      # beats of the stream-discipline test


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("op", sorted(UNITS))
def test_fp16_unit(sim, op):
    unit = UNITS[op](lanes=LANES)
    run_bench(unit, "tb_fp16", sim,
              params={"op": op, "lanes": LANES, "n_random": N_RANDOM, "n_stream": N_STREAM},
              expect_vectors=TESTFLOAT_CASES + N_RANDOM + N_STREAM * LANES)
