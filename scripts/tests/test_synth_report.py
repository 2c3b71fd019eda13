"""The synthesis report's engine figures (``scripts/synth_report.engine``): GMAC/s per kLUT4
over each FP16 baseline of the same MACs per cycle, from made-up results (no tool runs)."""

from scripts.synth_flow import ENGINE_UNIT
from scripts.synth_report import _engine_markdown, engine


def _result(target, lut4, fmax):
    return {"unit": ENGINE_UNIT, "target": target, "variant": "lut-only",
            "device": f"dev-{target}", "lut4": lut4, "ff": 1000, "fmax_mhz": fmax,
            "gmacs_per_klut": round(32 * fmax / lut4, 3) if fmax else None,
            "macs_per_cycle": 32, "cells": {"DP16KD": 5, "TRELLIS_DPR16X4": 10}}


def test_engine_ratios_over_both_fp16_baselines():
    results = [_result("ecp5", 8000, 125.0), _result("ice40", 9000, None)]
    sweep = {"table": {
        "fp16_cascaded": {32: {"unit": "casc32", "ecp5": {"gmacs_per_klut": 0.125}}},
        "fp16_fused": {32: {"unit": "fused32", "ecp5": {"gmacs_per_klut": 0.25}}},
    }}
    out = engine(results, sweep)
    ecp = out["ecp5"]
    assert ecp["gmacs_per_klut"] == 0.5 and ecp["bram"] == 5 and ecp["lut_ram"] == 10
    assert (ecp["vs_fp16_cascaded"], ecp["fp16_cascaded_unit"]) == (4.0, "casc32")
    assert (ecp["vs_fp16_fused"], ecp["fp16_fused_unit"]) == (2.0, "fused32")
    assert not out["ice40"]["fits"] and "vs_fp16_fused" not in out["ice40"]
    lines = "\n".join(_engine_markdown({"engine": out}))
    assert "4.00x (`casc32`, ECP5-85)" in lines and "2.00x (`fused32`, ECP5-85)" in lines


def test_engine_ratio_missing_baseline():
    """A baseline without a placed Fmax gives no ratio (None, printed as -), not a guess."""
    sweep = {"table": {"fp16_cascaded": {32: {"unit": "casc32", "ecp5": {}}}}}
    ecp = engine([_result("ecp5", 8000, 125.0)], sweep)["ecp5"]
    assert ecp["vs_fp16_cascaded"] is None and ecp["vs_fp16_fused"] is None
    assert ecp["fp16_fused_unit"] is None
    row = [x for x in _engine_markdown({"engine": {"ecp5": ecp}}) if x.startswith("| dev")]
    assert row[0].endswith("| - | - |")
