"""Synthesis flow and hardware report: every unit of ``hdl.units.UNITS`` on two FPGAs.

The command line. The flow is split by concern:

- ``scripts/synth_flow.py``: the targets (device table), the variants, the measurement
  harness, the yosys and nextpnr runs and their cache (``build/synth/``);
- ``scripts/synth_count.py``: the metrics read from the tools' outputs (cell counting rules,
  Fmax, critical path);
- ``scripts/synth_report.py``: ``build/reports/synth.json``, ``synth.md``, ``synth.png``.

Usage (from the work tree; ``make synth`` runs the first)::

    python -m scripts.synth                           # everything, then the report
    python -m scripts.synth --unit dot8_fp16 --target ecp5 [--variant dsp] [--force]
    python -m scripts.synth --list
    python -m scripts.synth --sweep-only | --no-sweep  # the lanes sweep alone, or without it
    python -m scripts.synth --cached-only             # the report from what is cached
"""

import argparse
import os
import sys

from hdl.toolchain import REPORTS
from scripts import synth_flow
from scripts.synth_flow import (
    TARGETS,
    VARIANTS,
    gates_one,
    jobs,
    run_flow,
    sweep_jobs,
    sweep_names,
    sweep_units,
    units,
)
from scripts.synth_report import summarize, write_reports


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unit", action="append", help="unit module name (repeatable)")
    ap.add_argument("--target", action="append", choices=list(TARGETS))
    ap.add_argument("--variant", action="append", choices=list(VARIANTS))
    ap.add_argument("--force", action="store_true", help="ignore the cache")
    ap.add_argument("--no-sweep", action="store_true", help="only the registered units")
    ap.add_argument("--sweep-only", action="store_true", help="only the lanes sweep")
    ap.add_argument("--cached-only", action="store_true",
                    help="run no tool: report the cached results, mark the others not run")
    ap.add_argument("--list", action="store_true", help="list the jobs and exit")
    ap.add_argument("--no-report", action="store_true", help="do not rewrite build/reports")
    ap.add_argument("--pnr-budget", type=int, metavar="LUT4",
                    help=f"place and route jobs up to this many LUT4 (default "
                         f"{synth_flow.PNR_BUDGET_LUT4}); a cached job left unplaced under a "
                         f"smaller budget is placed again")
    args = ap.parse_args(argv)
    if args.pnr_budget is not None:
        if args.pnr_budget < 1:
            ap.error("--pnr-budget must be a positive LUT4 count")
        synth_flow.PNR_BUDGET_LUT4 = args.pnr_budget
    known = {**units(), **sweep_names()}
    for u in args.unit or []:
        if u not in known:
            ap.error(f"unknown unit {u!r}; units are: {', '.join(known)}")
    job_list = [] if args.sweep_only else jobs(args.unit, args.target, args.variant)
    if not args.no_sweep:
        # The sweep's jobs, smallest first; those of the registry run once.
        seen = {(name, target, variant) for name, _, target, variant in job_list}
        sweep = [j for j in sweep_jobs(args.unit)
                 if (j[0], j[2], j[3]) not in seen
                 and (not args.target or j[2] in args.target)
                 and (not args.variant or j[3] in args.variant)]
        job_list += sorted(sweep, key=lambda j: j[1].lanes)
    if args.list:
        for name, _, target, variant in job_list:
            print(f"{name} {target} {variant}")
        return 0
    results, seconds = run_flow(job_list, force=args.force, progress=sys.stderr.isatty()
                                or os.environ.get("TQDM", "1") != "0",
                                cached_only=args.cached_only)
    gates = {}
    if not args.no_sweep and not args.target and not args.variant:
        # The gate proxy of every sweep unit (yosys alone, cached like the jobs).
        for unit in sorted(sweep_units().values(), key=lambda u: u.lanes):
            if not args.unit or unit.module_name in args.unit:
                g = gates[unit.module_name] = gates_one(unit, cached_only=args.cached_only)
                print(f"{unit.module_name:<24} gates {g['gates']!s:>7}  ff {g['ff']!s:>6}"
                      + (f"  {g['error']}" if g.get("error") else ""), flush=True)
    print(f"{len(results)} jobs in {seconds:.0f} s")
    partial_run = bool(args.unit or args.target or args.variant or args.no_sweep
                       or args.sweep_only)
    if not args.no_report and not partial_run:
        summary = summarize(results, seconds, gates)
        write_reports(summary)
        print((REPORTS / "synth.md").read_text())
    if args.cached_only:
        return 0
    return 1 if any(r.get("error") and r["lut4"] is None for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
