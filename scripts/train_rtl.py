"""``make train-rtl``: 4-bit training steps of the study's digits MLP through the simulated
training engine (Verilator), compared bit for bit with the golden run after every step
(``verif/tb_train.py``). Writes ``build/reports/train_rtl.{json,md}``.

    python -m scripts.train_rtl [--steps 3] [--batch 32] [--seed 0] [--engine default|small]

``--engine small`` is the engine of the smoke test in ``make test`` (2 x 8, 4 slots).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from hdl.units import ENGINE

ROOT = Path(__file__).resolve().parent.parent
VERIF = ROOT / "verif"

#: The engine ``make train-rtl`` runs: the one ``make synth`` measures (``hdl.units``).
DEFAULT = ENGINE
#: The smoke test's: 2 x 8 lanes, 4 slots, smaller tiles (the MLP's layers tile).
SMALL = {"rows": 2, "lanes": 8, "slots": 4, "acc_stages": 2, "lane_stages": 1,
         "out_depth": 32, "a_depth": 256, "b_depth": 128}
ENGINES = {"default": DEFAULT, "small": SMALL}


def _paths():
    """The benches' modules (``verif/``) importable here and in the simulator."""
    for path in (str(ROOT), str(VERIF)):
        if path not in sys.path:
            sys.path.insert(0, path)
    parts = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(VERIF)] + [p for p in parts if p and p not in (str(ROOT), str(VERIF))])


def run(steps=3, batch=32, seed=0, engine="default", report=None, sim="verilator"):
    """Build the engine, run the training steps on the simulator, return the JSON record
    (with the harness's record under ``"bench"``)."""
    _paths()
    from engine_driver import engine_of

    from hdl.toolchain import REPORTS

    import harness

    report = Path(report or REPORTS / "train_rtl.json")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    p = {**ENGINES[engine], "steps": steps, "batch": batch, "seed": seed,
         "report": str(report)}
    bench = harness.bench(engine_of(p), "tb_train", sim, p)
    if not report.exists():
        raise RuntimeError(f"the training bench wrote no report (see the log above); "
                           f"bench record: {bench}")
    record = json.loads(report.read_text())
    record["bench"] = {k: bench[k] for k in ("passed", "vectors", "mismatches",
                                             "build_seconds", "seconds") if k in bench}
    report.write_text(json.dumps(record, indent=1))
    report.with_suffix(".md").write_text(markdown(record))
    return record


def markdown(r):
    e = r["engine"]
    lines = [
        "# 4-bit training through the RTL",
        "",
        f"Digits MLP 64-128-64-10, batch {r['batch']}, {r['steps']} SGD steps, seed "
        f"{r['seed']}; engine `{e['module']}` ({e['rows']} rows x {e['lanes']} lanes = "
        f"{e['rows'] * e['lanes']} MACs/cycle, {e['slots']} slots, {e['accumulator']} "
        f"accumulation), simulated by Verilator.",
        "",
        f"- **Bit-identical with the golden run after every step: "
        f"{'yes' if r['bit_identical'] else 'NO'}** ({r['compared_values']} values compared: "
        f"master weights, biases, PACT clips, momentum buffers, GradScale exponents).",
        f"- Cycles per step: {r['cycles_per_step']:.0f}.",
        f"- Simulated cycles per second: {r['sim_cycles_per_second']:.0f}; wall time "
        f"{r['wall_seconds']:.1f} s.",
        "",
        "| step | loss (RTL) | loss (golden) | cycles | g per layer | identical |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for s in r["per_step"]:
        lines.append(f"| {s['step']} | {s['loss']:.6f} | {s['golden_loss']:.6f} | "
                     f"{s['cycles']} | {s['g']} | {'yes' if s['bit_identical'] else 'no'} |")
    lines += ["", "MAC utilisation per GEMM shape (M x K x N; useful MACs / (rows x lanes x "
              "cycles from the gemm command to its last result)):", "",
              "| GEMM | calls | cycles | utilisation | sizes multiples of rows, lanes, slots |",
              "|---|---:|---:|---:|---|"]
    for key, u in r["utilization"].items():
        mkn = key.split()[0]
        m, k, n = (int(v) for v in mkn.split("x"))
        whole = m % e["slots"] == 0 and k % e["lanes"] == 0 and n % e["rows"] == 0
        lines.append(f"| {key} | {u['calls']} | {u['cycles']} | "
                     f"{100 * u['utilization']:.1f}% | {'yes' if whole else 'no (ragged)'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=sorted(ENGINES), default="default")
    args = ap.parse_args(argv)
    r = run(args.steps, args.batch, args.seed, args.engine)
    print(markdown(r))
    if not r["bit_identical"] or not r["bench"].get("passed", False):
        print("train-rtl: FAILED (see the table above and build/sim/*/verilator)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
