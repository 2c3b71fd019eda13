"""Synthesis metrics from the tools' outputs: cell counts from yosys's JSON netlist,
Fmax and the critical path from nextpnr's ``--report`` JSON (``scripts/synth_flow.py`` runs
the tools, ``scripts/synth_report.py`` tabulates).

Counting rules (cells of the unit's module in yosys's final netlist; the per-target cell
types are the rule fields of ``synth_flow.TARGETS``):

- ``lut4`` on iCE40: ``SB_LUT4`` + every ``SB_CARRY`` that has no LUT to share a logic cell
  with. An iCE40 logic cell is one LUT4, one carry and one flip-flop; yosys maps an adder bit
  to a LUT (the sum XOR) plus an ``SB_CARRY`` fed by the LUT's I1/I2 nets, and nextpnr packs
  the pair into one cell, so such a carry costs no LUT. A carry whose sum LUT was optimized
  away (comparators) still takes a logic cell: it counts as one LUT4.
- ``lut4`` on ECP5: ``LUT4`` + 2 x ``CCU2C`` (a CCU2C is the two LUT4s of a slice half in
  ripple-carry mode). ``PFUMX``/``L6MUX21`` only combine LUT outputs and count as 0.
- ``ff``: ``SB_DFF*`` / ``TRELLIS_FF``; ``dsp``: ``SB_MAC16`` / ``MULT18X18D`` + ``ALU54B``;
  ``ram``: ``SB_RAM40_4K`` + ``SB_SPRAM256KA`` / ``DP16KD`` + ``TRELLIS_DPR16X4``.
- ``fmax_mhz``: nextpnr's achieved frequency for ``clk`` (the flow's seed and target
  frequency), from its ``--report`` JSON; the critical path is kept too.

A new metric is read here (:func:`parse`) and shown by ``synth_report``.
"""

import json
import re

__all__ = ["count_cells", "critical_path", "parse"]


def count_cells(netlist, module, rules):
    """Cell counts of ``module`` in yosys's JSON ``netlist`` by the rules of the docstring
    (``rules``: the target's entry of ``synth_flow.TARGETS``)."""
    mod = netlist["modules"][module]
    raw = {}
    for cell in mod["cells"].values():
        if not cell["type"].startswith("$scopeinfo"):       # names only, no hardware
            raw[cell["type"]] = raw.get(cell["type"], 0) + 1
    lut4 = sum(raw.get(k, 0) * v for k, v in rules["luts"].items())
    unpaired = 0
    if rules["carry"]:
        unpaired = _unpaired_carries(mod)
        lut4 += unpaired
    return {
        "lut4": lut4,
        "ff": sum(v for k, v in raw.items() if k.startswith(rules["ff_prefix"])),
        "dsp": sum(raw.get(k, 0) for k in rules["dsp"]),
        "ram": sum(raw.get(k, 0) for k in rules["ram"]),
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


def parse(work, name, rules, result):
    """Cell counts from yosys's netlist, Fmax and critical path from nextpnr's report, both
    in the job folder ``work``, into the dict ``result`` (no Fmax when it has an ``error``)."""
    netlist_path, report_path = work / "netlist.json", work / "report.json"
    if netlist_path.exists():
        netlist = json.loads(netlist_path.read_text())
        result.update(count_cells(netlist, name, rules))
        total = count_cells(netlist, "synth_top", rules)
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
