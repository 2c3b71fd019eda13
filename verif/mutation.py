"""Mutation score of the benches: how many injected faults does a unit's own bench catch?

    make mutate                     # every unit of UNITS, MUTANTS each
    PYTHONPATH=verif .venv/bin/python -m mutation [--units int4_mul_lane] [--mutants 200]

For each unit: its Verilog (:func:`hdl.gen.verilog`, what the benches simulate) goes through
Yosys ``prep``; ``mutate -list N -seed S`` picks ``N`` single-bit faults over the netlist
(an input or output bit of a cell inverted, or tied to 0 or 1, ...); each mutant is written
back as Verilog with the same top module and ports and simulated on Icarus under the unit's
own bench, configured exactly as ``make test`` runs it (:data:`UNITS`: the same tests,
filter and expected vector count). A mutant is

- ``killed``: the bench ran (at least one cocotb test) and failed it: a mismatch, a failed
  test or a vector count other than the expected one;
- ``equivalent``: the bench passed and Yosys proves the mutant equal to the original
  (``miter -equiv``, ``sat -prove``: complete for these combinational units);
- ``missed``: the bench passed and the mutant differs from the original;
- ``error``: the flow could not build or run it (never counted as a kill).

The score is ``killed / (mutants - equivalent - error)``. Reports:
``build/reports/mutation.{json,md}``: ``{"units": [{"unit", "mutants", "killed",
"equivalent", "missed", "errors", "score", "seconds", "missed_list"}], "seed"}``.

Units so far: the two multiply lanes (combinational, exhaustive benches). The stream units
need a cycle cap in the bench (a mutant that drops ``o.valid`` would otherwise wait forever)
and a bounded equivalence check; they are not in :data:`UNITS` yet.
"""

import argparse
import json
import shutil
import time
import warnings

from hdl import FP4ShiftLane, Int4MulLane, toolchain
from hdl.gen import verilog
from hdl.toolchain import BUILD, REPORTS

from harness import bench

SEED = 1
MUTANTS = 200

#: unit -> (factory, bench module, cocotb test, vectors the bench checks), as in test_lanes.
UNITS = {
    "int4_mul_lane": (Int4MulLane, "tb_lanes", "int4_mul_lane_exhaustive", 1024),
    "fp4_shift_lane": (FP4ShiftLane, "tb_lanes", "fp4_shift_lane_exhaustive", 512),
}


def _yosys(work, *args):
    """:func:`hdl.toolchain.yosys`, raising on failure."""
    r = toolchain.yosys(work, *args)
    if r.returncode:
        raise RuntimeError(f"yosys in {work}: {(r.stderr or r.stdout).strip()[-800:]}")
    return r


def mutants(unit, n, seed=SEED, work=None):
    """Write ``n`` mutants of ``unit`` (a component) under ``work``: returns
    ``[(description, path)]``. Fewer when the netlist has fewer candidate faults."""
    top = unit.module_name
    work = work or BUILD / "mutate" / top
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "unit.v").write_text(verilog(unit))
    _yosys(work, "-p", f"read_verilog unit.v; prep -top {top}; "
                       f"mutate -list {n} -seed {seed} -o mutants.ys")
    lines = [ln for ln in (work / "mutants.ys").read_text().splitlines()
             if ln.startswith("mutate ")]
    lines = list(dict.fromkeys(lines))                   # the same fault once
    script = [f"read_verilog unit.v; prep -top {top}; design -save original"]
    for k, line in enumerate(lines):
        script.append(f"design -load original; {line}; opt_clean; "
                      f"write_verilog -noattr m{k}.v")
    (work / "write.ys").write_text("\n".join(script) + "\n")
    _yosys(work, "-s", "write.ys")
    return [(_describe(line), work / f"m{k}.v") for k, line in enumerate(lines)]


def _describe(line):
    """A short name of a ``mutate`` line: mode, cell, port bit, wire."""
    words = line.split()
    opt = {words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("-")}
    return (f"{opt.get('-mode')} {opt.get('-cell', '?')} {opt.get('-port', '')}"
            f"[{opt.get('-portbit', '')}] wire {opt.get('-wire', '?')}"
            f"[{opt.get('-wirebit', '')}]")


def equivalent(unit, mutant_path):
    """Whether Yosys proves the mutant equal to the original (combinational miter)."""
    top = unit.module_name
    work = mutant_path.parent
    script = (f"read_verilog unit.v; prep -top {top}; rename {top} gold; design -stash gold; "
              f"read_verilog {mutant_path.name}; prep -top {top}; rename {top} gate; "
              f"design -stash gate; design -copy-from gold -as gold gold; "
              f"design -copy-from gate -as gate gate; "
              f"miter -equiv -flatten -make_assert gold gate miter; hierarchy -top miter; "
              f"sat -verify -prove-asserts miter")
    return toolchain.yosys(work, "-p", script).returncode == 0


def classify(name, unit, mutant_path, k):
    """Run the unit's bench on one mutant: ``"killed"``, ``"survived"`` or ``"error"``."""
    _, tb, test, vectors = UNITS[name]
    try:
        rec = bench(unit, tb, "icarus", verilog=mutant_path.read_text(),
                    build_dir=mutant_path.parent / f"sim{k}",
                    extra_env={"COCOTB_TEST_FILTER": test}, expect_vectors=vectors)
    except Exception:                                    # noqa: BLE001 - build or run error
        return "error"
    if rec["cocotb_tests"] == 0:
        return "error"
    return "survived" if rec["passed"] else "killed"


def score_unit(name, n=MUTANTS, seed=SEED, limit=None):
    """The mutation result of one unit (``limit``: only the first mutants, for the smoke
    test)."""
    t0 = time.perf_counter()
    unit = UNITS[name][0]()
    ms = mutants(unit, n, seed)
    if limit is not None:
        ms = ms[:limit]
    counts = {"killed": 0, "equivalent": 0, "missed": 0, "errors": 0}
    missed, outcomes = [], []
    for k, (desc, path) in enumerate(ms):
        out = classify(name, unit, path, k)
        if out == "survived":
            out = "equivalent" if equivalent(unit, path) else "missed"
            if out == "missed":
                missed.append(desc)
        counts["errors" if out == "error" else out] += 1
        outcomes.append(out)
    judged = len(ms) - counts["equivalent"] - counts["errors"]
    return {"unit": name, "mutants": len(ms), **counts,
            "score": counts["killed"] / judged if judged else None,
            "seconds": round(time.perf_counter() - t0, 1), "missed_list": missed,
            "outcomes": outcomes}


def write_reports(results, seed, out=REPORTS):
    out.mkdir(parents=True, exist_ok=True)
    (out / "mutation.json").write_text(json.dumps(
        {"seed": seed, "units": [{k: v for k, v in r.items() if k != "outcomes"}
                                 for r in results]}, indent=1) + "\n")
    lines = ["# Mutation score", "",
             f"Yosys `mutate -list N -seed {seed}` on each unit's simulated Verilog; each mutant "
             "under the unit's own bench on Icarus; survivors checked for equivalence.", "",
             "| unit | mutants | killed | equivalent | missed | errors | score | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
        lines.append(f"| `{r['unit']}` | {r['mutants']} | {r['killed']} | {r['equivalent']} "
                     f"| {r['missed']} | {r['errors']} | {score} | {r['seconds']} |")
    for r in results:
        for d in r["missed_list"]:
            lines.append(f"- missed in `{r['unit']}`: {d}")
    (out / "mutation.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    # The component only names the module here: Amaranth's never-elaborated warning is noise.
    warnings.filterwarnings("ignore", message=".* created but never used")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default=",".join(UNITS))
    ap.add_argument("--mutants", type=int, default=MUTANTS)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    results = []
    for name in args.units.split(","):
        if name not in UNITS:
            raise SystemExit(f"unknown unit {name!r}; choose from {', '.join(UNITS)}")
        r = score_unit(name, args.mutants, args.seed)
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
        print(f"{name:16s} mutants {r['mutants']:4d}  killed {r['killed']:4d}  equivalent "
              f"{r['equivalent']:3d}  missed {r['missed']:3d}  errors {r['errors']:3d}  "
              f"score {score}  ({r['seconds']} s)", flush=True)
        results.append(r)
    write_reports(results, args.seed)
    print(f"reports: {REPORTS / 'mutation.md'}")


if __name__ == "__main__":
    main()
