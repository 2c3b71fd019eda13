"""The training engine (``hdl.engine.TrainingEngine``) on Icarus and Verilator against the
golden model (``tb_engine``), through the driver the RTL training run uses; its parameter
rules and the driver's host-side packing."""

import numpy as np
import pytest

from hdl.engine import TrainingEngine

from engine_driver import gemm_tiles, pack_a, pack_b, unpack_gemm
from harness import run_bench, simulators

# A small engine (2 rows x 4 lanes, 4 slots, small tiles: the benches reach tiling, ragged
# groups and the memories' limits in few cycles), and the default engine (4 x 8, 16 slots).
SMALL = {"rows": 2, "lanes": 4, "slots": 4, "acc_stages": 2, "lane_stages": 1,
         "out_depth": 8, "a_depth": 64, "b_depth": 32}
DEFAULT = {"rows": 4, "lanes": 8, "slots": 16, "acc_stages": 14, "lane_stages": 1,
           "out_depth": 32, "a_depth": 512, "b_depth": 256}


def _engine(p):
    return TrainingEngine(p["rows"], p["lanes"], p.get("accumulator", "fp16"),
                          slots=p["slots"], acc_stages=p["acc_stages"],
                          lane_stages=p["lane_stages"], out_depth=p["out_depth"],
                          a_depth=p["a_depth"], b_depth=p["b_depth"])


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("p", [SMALL, {**SMALL, "accumulator": "exact", "acc_stages": 1}],
                         ids=["fp16", "exact"])
def test_engine(sim, p):
    run_bench(_engine(p), "tb_engine", sim, p)
