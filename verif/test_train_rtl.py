"""The smoke version of ``make train-rtl`` (``scripts/train_rtl.py``, ``tb_train``): one SGD
step of the digits MLP at batch 8 on the small engine, on Verilator, bit-identical with the
golden run (master weights, biases, PACT clips, momentum, GradScale exponents)."""

import json

import pytest
from engine_driver import engine_of

from scripts.train_rtl import SMALL

from harness import BUILD, run_bench, simulators

# 64-128-64-10: w, b, alpha and g of 3 layers, and the momentum of each updated array
# (w, b of every layer, alpha of the two PACT layers)
MLP_VALUES = (64 * 128 + 128 + 1 + 1) + (128 * 64 + 64 + 1 + 1) + (64 * 10 + 10 + 1 + 1)
MOMENTUM_VALUES = (64 * 128 + 128) + (128 * 64 + 64 + 1) + (64 * 10 + 10 + 1)


@pytest.mark.parametrize("sim", [s for s in simulators() if s == "verilator"])
def test_train_rtl_smoke(sim):
    report = BUILD / "sim" / "train_rtl_smoke.json"
    report.unlink(missing_ok=True)
    p = {**SMALL, "steps": 1, "batch": 8, "seed": 0, "report": str(report)}
    run_bench(engine_of(p), "tb_train", sim, p,
              expect_vectors=MLP_VALUES + MOMENTUM_VALUES)
    r = json.loads(report.read_text())
    assert r["bit_identical"] and r["steps"] == 1 and len(r["per_step"]) == 1
    assert r["cycles_per_step"] > 0 and r["utilization"]
