"""Smoke test of the synthesis flow (``scripts/synth_flow.py``): one small unit through yosys and
nextpnr for the iCE40 UP5K, in a fresh folder (no cache), plus the harness generator on the
widest unit without running any tool."""

import time

import pytest

from hdl.baselines import Int8DotProduct
from hdl.dot import DotProduct
from hdl.gen import verilog
from hdl.lanes import FP4ShiftLane, Int4MulLane
from scripts import synth_flow


@pytest.fixture(scope="module")
def synth():
    return synth_flow


def test_int4_mul_lane_ice40(synth, tmp_path):
    start = time.perf_counter()
    r = synth.synth_one(Int4MulLane(), "ice40", "lut-only", build=tmp_path)
    assert r.get("error") is None, r.get("error")
    # A 4 x 4 multiplier with signedness muxes: tens of LUT4s, no flip-flop, no DSP, and the
    # harness's registers all around it.
    assert 10 < r["lut4"] < 200, r["cells"]
    assert (r["ff"], r["dsp"], r["ram"]) == (0, 0, 0)
    assert r["harness"] == {"in_bits": 10, "out_bits": 9, "reduce_stages": 2,
                            "has_clock": False}
    assert r["harness_cells"]["ff"] >= 10 + 9
    assert 1.0 < r["fmax_mhz"] < 1000.0
    assert r["critical_path"]["logic_levels"] >= 1
    assert any(c.startswith("u.") for c in r["critical_path"]["through"]), \
        "the critical path should run through the unit"
    seconds = time.perf_counter() - start
    # Cached: the same job again does not run the tools.
    again = synth.synth_one(Int4MulLane(), "ice40", "lut-only", build=tmp_path)
    assert again["cached"] and again["lut4"] == r["lut4"]
    print(f"int4_mul_lane on iCE40: {r['lut4']} LUT4, {r['fmax_mhz']} MHz, {seconds:.1f} s")


def test_harness_of_a_wide_unit(synth):
    unit = DotProduct(8, "fp16")
    text = verilog(unit)
    ports = synth.ports(text, unit.module_name)
    top, info = synth.harness(unit.module_name, ports)
    # i: 2 x 8 x 4 operand bits + mode, a_signed, b_signed, phase, g[6], first, last = 76,
    # plus i.valid and o.ready; o: 16 + 8 payload bits plus o.valid and i.ready.
    assert info == {"in_bits": 78, "out_bits": 26, "reduce_stages": 3, "has_clock": True}
    assert ".clk(clk)" in top and ".rst(rst_q)" in top
    assert "module synth_top(input clk, input rst_pin, input [3:0] din, output dout);" in top
    # The multiply detector: the INT8 baseline multiplies, the fp4 shift lane does not. (The
    # dot unit's int4 lanes no longer write `*` since their top digit row is negated through
    # the carry in.)
    assert synth.has_multiplier(verilog(Int8DotProduct()))
    assert not synth.has_multiplier(verilog(FP4ShiftLane()))


def test_unplaced_jobs_are_placed_under_a_larger_budget(synth, monkeypatch):
    """``--pnr-budget``: a cached job that skipped nextpnr is run again once the budget admits
    it; a job that does not fit the device, or is still over the budget, stays cached."""
    monkeypatch.setattr(synth, "PNR_BUDGET_LUT4", 20000)
    over = "LUT4 > the flow's budget of 15000"
    assert synth._unplaced({"error": f"not placed: 16293 {over}"})
    assert not synth._unplaced({"error": f"not placed: 64543 {over}"})
    assert not synth._unplaced({"error": "does not fit: 15602 LUT4 > 5280"})
    assert not synth._unplaced({"key": "k"})
