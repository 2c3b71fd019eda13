"""The generator (``scripts/generate.py``, ``make verilog UNIT=... PARAMS=...``): Verilog and
a datasheet for any unit class and parameters, a clear error and status 2 otherwise, and
waivers with which a plain Verilator lint of the generated file passes under -Wall."""

import json
import subprocess

import pytest

from hdl.dot import DotProduct
from hdl.toolchain import setup_verilator
from scripts import generate


def test_generate_any_parameters(tmp_path):
    assert generate.main(["DotProduct", "lanes=32", "accumulator=exact",
                          "--out", str(tmp_path)]) == 0
    unit = DotProduct(32, "exact")
    v = tmp_path / f"{unit.module_name}.v"
    sheet = json.loads(v.with_suffix(".json").read_text())
    assert v.read_text().count(f"module {unit.module_name}(") == 1
    assert sheet["parameters"]["lanes"] == 32 and sheet["parameters"]["accumulator"] == "exact"
    assert sheet["parameters"]["slots"] == 1                 # defaults filled in
    assert sheet["latency"] == unit.latency and sheet["golden"] == "golden.dot"
    assert sheet["clock"] == "clk, rising edge"
    assert sheet["reset"] == "rst, synchronous, active high"
    ports = {p["name"]: p for p in sheet["ports"]}
    # the payload's fields tile the port: every bit once, from the LSB
    for name in ("i__payload", "o__payload"):
        fields = sorted(ports[name]["fields"], key=lambda f: f["lsb"])
        at = 0
        for f in fields:
            assert f["lsb"] == at
            at += f["width"]
        assert at == ports[name]["width"]
    names = [f["name"] for f in ports["i__payload"]["fields"]]
    assert names[:2] == ["a[0]", "a[1]"] and "slot" not in names and "last" in names


def test_generate_combinational_unit(tmp_path):
    assert generate.main(["Int4MulLane", "--out", str(tmp_path)]) == 0
    sheet = json.loads((tmp_path / "int4_mul_lane.json").read_text())
    assert sheet["clock"] is None and sheet["latency"] == 0
    assert sheet["throughput"].startswith("combinational")
    assert {p["name"] for p in sheet["ports"]} >= {"a", "b", "p"}


@pytest.mark.parametrize("args,msg", [
    (["DotProduct", "lanes=3"], "lanes must be a power of two from 1 to 64, not 3"),
    (["DotProduct", "lanez=8"], "unexpected keyword argument 'lanez'"),
    (["Nope"], "unknown unit 'Nope'; units are: DotProduct"),
    (["DotProduct", "lanes"], "parameters are name=value"),
    (["TrainingEngine", "rows=3"], "rows must be a power of two"),
])
def test_generate_refuses(tmp_path, capsys, args, msg):
    assert generate.main([*args, "--out", str(tmp_path)]) == 2
    assert msg in capsys.readouterr().err
    assert not list(tmp_path.glob("*.v"))


def test_generated_verilog_lints_with_its_waivers(tmp_path):
    """A user's own Verilator run: the generated file and the waiver file beside it."""
    assert generate.main(["RangeRescale", "lanes=2", "fmt=uint4", "--out", str(tmp_path)]) == 0
    setup_verilator()
    v = tmp_path / "rescale2_uint4_rne.v"
    r = subprocess.run(["verilator", "--lint-only", "-Wall",
                        str(tmp_path / "verilator_waivers.vlt"), str(v),
                        "--top-module", "rescale2_uint4_rne"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # and without the waivers it would not be clean (the waivers are needed, not decoration)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", str(v),
                        "--top-module", "rescale2_uint4_rne"], capture_output=True, text=True)
    assert r.returncode != 0
