"""The synthesis report: ``build/reports/synth.json`` (:func:`summarize`: the flow, the
density ratios and every job's result), ``synth.md`` (:func:`markdown`) and ``synth.png``
(:func:`chart`), from the results of ``synth_flow``.
"""

import json

from hdl.toolchain import REPORTS, TOOLS
from scripts.synth_flow import (
    DOT_UNITS,
    ENGINE_UNIT,
    FAST_DOTS,
    FLOW_VERSION,
    FOURBIT_DOT,
    FP16_DOT,
    MAIN_TARGETS,
    RECOMMENDED_LANES,
    SEED,
    SWEEP_LANES,
    SWEEP_TARGETS,
    TARGETS,
    sweep_families,
    sweep_names,
    tool_versions,
)

__all__ = ["summarize", "markdown", "chart", "write_reports"]


def _find(results, unit, target, variant="lut-only"):
    for r in results:
        if (r["unit"], r["target"], r["variant"]) == (unit, target, variant):
            return r
    return None


# The sweep's ratios: (key, numerator family, denominator family, metric). LUT4 and gate
# ratios put the baseline over the 4-bit unit (smaller is better); GMAC/s per kLUT4 puts the
# 4-bit unit over the baseline (larger is better): every ratio reads "4-bit is N x better".
FOURBIT = "dot4_fp16"
RATIOS = [
    ("density_ratio", "fp16_cascaded", FOURBIT, "lut4"),
    ("density_ratio_fused", "fp16_fused", FOURBIT, "lut4"),
    ("density_ratio_int8", "int8", FOURBIT, "lut4"),
    ("throughput_density_ratio", FOURBIT, "fp16_cascaded", "gmacs_per_klut"),
    ("throughput_density_ratio_fused", FOURBIT, "fp16_fused", "gmacs_per_klut"),
    ("int8_throughput_ratio", FOURBIT, "int8", "gmacs_per_klut"),
]
GATE_RATIOS = [("gate_ratio", "fp16_cascaded"), ("gate_ratio_fused", "fp16_fused"),
               ("gate_ratio_int8", "int8")]


def _family_kind(target):
    """The device family a sweep target reports under: ``ecp5_85`` stands in for the 25F at
    the widths the 25F cannot hold (the same fabric and speed grade)."""
    return "ecp5" if target.startswith("ecp5") else target


def sweep(results, gates):
    """The lanes sweep: per family and width, per device family (``ice40``, ``ecp5``: the
    25F up to 16 lanes, the 85F from 32), the LUT4, Fmax and GMAC/s per kLUT4, the gate
    proxy, and the ratios of :data:`RATIOS` / :data:`GATE_RATIOS` per width."""
    names = {key: name for name, key in sweep_names().items()}
    table = {}
    for fam in sweep_families():
        table[fam] = {}
        for n in SWEEP_LANES:
            name = names[(fam, n)]
            row = {"unit": name}
            for target, widths in SWEEP_TARGETS.items():
                r = _find(results, name, target) if n in widths else None
                if r:
                    row[_family_kind(target)] = {
                        "device": TARGETS[target]["device"], "lut4": r["lut4"], "ff": r["ff"],
                        "fmax_mhz": r["fmax_mhz"], "gmacs_per_klut": r.get("gmacs_per_klut"),
                        "fits": r["fmax_mhz"] is not None}
            g = gates.get(name)
            if g:
                row["gates"], row["gate_ff"] = g["gates"], g["ff"]
            table[fam][n] = row
    ratios = {}
    for n in SWEEP_LANES:
        at = ratios[n] = {}
        for key, num, den, metric in RATIOS:
            at[key] = {}
            for kind in ("ice40", "ecp5"):
                a = table.get(num, {}).get(n, {}).get(kind, {}).get(metric)
                b = table.get(den, {}).get(n, {}).get(kind, {}).get(metric)
                at[key][kind] = round(a / b, 2) if a and b else None
        for key, base in GATE_RATIOS:
            a = table.get(base, {}).get(n, {}).get("gates")
            b = table.get(FOURBIT, {}).get(n, {}).get("gates")
            at[key] = round(a / b, 2) if a and b else None
    return {"table": table, "ratios": ratios}


BLOCK_RAMS = ("DP16KD", "SB_RAM40_4K", "SB_SPRAM256KA")


def engine(results, sw):
    """The training engine per target: LUT4, FF, block RAMs, Fmax and GMAC/s per kLUT4
    (``rows x lanes x Fmax / LUT4``), LUT-only; and on ECP5 that figure over the cascaded
    and the fused FP16 dot of the same MACs per cycle (the sweep's 32-lane units, ECP5-85:
    the same fabric and speed grade), ``vs_fp16_cascaded`` and ``vs_fp16_fused``."""
    out = {}
    for target in MAIN_TARGETS:
        r = _find(results, ENGINE_UNIT, target)
        if not r:
            continue
        cells = r.get("cells") or {}
        out[target] = {"unit": ENGINE_UNIT, "device": r["device"], "lut4": r["lut4"],
                       "ff": r["ff"],
                       # block RAMs; LUT RAM cells (ECP5's DPR16X4) apart
                       "bram": sum(cells.get(k, 0) for k in BLOCK_RAMS),
                       "lut_ram": cells.get("TRELLIS_DPR16X4", 0),
                       "fmax_mhz": r["fmax_mhz"],
                       "gmacs_per_klut": r.get("gmacs_per_klut"),
                       "macs_per_cycle": r.get("macs_per_cycle"),
                       "fits": r["fmax_mhz"] is not None, "error": r.get("error")}
    ecp = out.get("ecp5")
    if ecp and ecp.get("macs_per_cycle"):
        for fam in ("fp16_cascaded", "fp16_fused"):
            row = sw["table"].get(fam, {}).get(ecp["macs_per_cycle"], {})
            a, b = ecp.get("gmacs_per_klut"), row.get("ecp5", {}).get("gmacs_per_klut")
            kind = fam.split("_")[1]
            ecp[f"vs_fp16_{kind}"] = round(a / b, 2) if a and b else None
            ecp[f"fp16_{kind}_unit"] = row.get("unit")
    return out


def summarize(results, seconds, gates=None):
    """The report dict written to ``synth.json``. ``gates``: ``{unit: gates_one result}``."""
    density, vs_exact, dot4_fmax = {}, {}, {}
    fast = {f"dot4_fast_{acc}_fmax_mhz": {} for acc in FAST_DOTS}
    for target in MAIN_TARGETS:
        for acc, unit in FAST_DOTS.items():
            r = _find(results, unit, target)
            if r:
                fast[f"dot4_fast_{acc}_fmax_mhz"][target] = r["fmax_mhz"]
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
        macs = r.get("macs_per_cycle")
        if macs and r["lut4"]:
            r["macs_per_klut"] = round(1000 * macs / r["lut4"], 2)
            if r["fmax_mhz"]:
                r["gmacs_per_klut"] = round(macs * r["fmax_mhz"] / r["lut4"], 3)
    sw = sweep(results, gates or {})
    at = sw["ratios"][RECOMMENDED_LANES]
    rec = {
        "recommended_lanes": RECOMMENDED_LANES,
        **{key: at[key] for key, *_ in RATIOS},
        **{key: at[key] for key, _ in GATE_RATIOS},
        "dot4_fmax_mhz": {k: sw["table"][FOURBIT][RECOMMENDED_LANES].get(k, {}).get("fmax_mhz")
                          for k in ("ice40", "ecp5")},
        "dot4_exact_fmax_mhz": {k: sw["table"]["dot4_exact"][RECOMMENDED_LANES].get(k, {})
                                .get("fmax_mhz") for k in ("ice40", "ecp5")},
    }
    return {
        "engine": engine(results, sw),
        "flow": {"version": FLOW_VERSION, "seed": SEED, "tools": tool_versions(),
                 "targets": {k: {"device": v["device"], "yosys": v["yosys"],
                                 "nextpnr": [TOOLS[v["nextpnr"]].command, *v["pnr_args"]],
                                 "freq_target_mhz": v["freq_mhz"]}
                             for k, v in TARGETS.items()},
                 "seconds": round(seconds, 1),
                 # what a run with an empty cache costs: every job's measured tool time
                 "tool_seconds_all_jobs": round(sum((r.get("yosys_s") or 0)
                                                    + (r.get("nextpnr_s") or 0)
                                                    for r in results), 1)},
        # At the recommended width (the README's claim), 4-bit fast fp16 unit vs baselines:
        **rec,
        # The 8-lane paper-mode unit (dot8_fp16, no interleaving) vs the cascaded FP16 dot8:
        "density_ratio_dot8": density,
        "density_ratio_vs_dot8_exact": vs_exact,
        "dot8_fp16_fmax_mhz": dot4_fmax,
        **fast,
        "sweep": sw,
        "gates": list((gates or {}).values()),
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
    d, e, f = (summary["density_ratio_dot8"], summary["density_ratio_vs_dot8_exact"],
               summary["dot8_fp16_fmax_mhz"])
    lines += _sweep_markdown(summary)
    lines += _engine_markdown(summary)
    lines += ["## The 8-lane paper-mode unit (dot8_fp16, one dot product at a time)", "",
              "| target | fp16_dot8 / dot8_fp16 LUT4 | fp16_dot8 / dot8_exact LUT4 | "
              "dot8_fp16 Fmax MHz |", "|---|---:|---:|---:|"]
    for target in MAIN_TARGETS:
        lines.append(f"| {target} | {_fmt(d.get(target), 2)} | {_fmt(e.get(target), 2)} | "
                     f"{_fmt(f.get(target))} |")
    fl = summary["flow"]
    lines += ["", f"Flow runtime: {fl['seconds']:.0f} s for this run (cached jobs take no "
              f"time); {fl['tool_seconds_all_jobs']:.0f} s of yosys + nextpnr for all "
              f"{len(rows)} jobs from an empty cache.", ""]
    return "\n".join(lines)


def _engine_markdown(summary):
    eng = summary.get("engine") or {}
    if not eng:
        return []
    lines = ["## The training engine (LUT-only)", "",
             f"`{ENGINE_UNIT}`: 4 dot units x 8 lanes, operand tiles and result FIFOs in block "
             "RAM, the converters, the sequencer (the DSP variant is in the tables above).", "",
             "| target | LUT4 | FF | block RAM | LUT RAM | Fmax MHz | GMAC/s per kLUT4 | vs "
             "cascaded FP16 dot at the same MACs/cycle | vs fused FP16 dot |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]

    def vs(e, kind):
        if e.get(f"vs_fp16_{kind}") is None:
            return "-"
        return f"{_fmt(e[f'vs_fp16_{kind}'], 2)}x (`{e[f'fp16_{kind}_unit']}`, ECP5-85)"

    for e in eng.values():
        fmax = _fmt(e["fmax_mhz"]) if e["fmax_mhz"] else (e.get("error") or "-")
        lines.append(f"| {e['device']} | {_fmt(e['lut4'])} | {_fmt(e['ff'])} | "
                     f"{_fmt(e['bram'])} | {_fmt(e['lut_ram'])} | {fmax} | "
                     f"{_fmt(e.get('gmacs_per_klut'), 3)} | {vs(e, 'cascaded')} | "
                     f"{vs(e, 'fused')} |")
    return lines + [""]


def _sweep_markdown(summary):
    sw = summary["sweep"]
    fams = sweep_families()
    rl = summary["recommended_lanes"]
    lines = ["## The lanes sweep (LUT-only)", "",
             "Each design at its fastest setting, at 8 to 64 multiply-accumulates per cycle. "
             "iCE40: UP5K (a LUT4 count without Fmax: it does not fit). ECP5 (speed 6): the "
             "LFE5U-25F up to 16 lanes, the LFE5U-85F from 32. Gates: yosys generic synthesis "
             "mapped by ABC to two-input gates and 2:1 muxes, flip-flops not counted (listed "
             "apart).", "",
             "| design | lanes | iCE40 LUT4 | iCE40 MHz | ECP5 LUT4 | ECP5 MHz | "
             "ECP5 GMAC/s/kLUT4 | gates | gate FFs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for fam, rows in sw["table"].items():
        for n, row in rows.items():
            ice, ecp = row.get("ice40", {}), row.get("ecp5", {})
            lines.append(
                f"| {fam}: {fams[fam][0]} | {n} | {_fmt(ice.get('lut4'))} | "
                f"{_fmt(ice.get('fmax_mhz'))} | {_fmt(ecp.get('lut4'))} | "
                f"{_fmt(ecp.get('fmax_mhz'))} | {_fmt(ecp.get('gmacs_per_klut'), 3)} | "
                f"{_fmt(row.get('gates'))} | {_fmt(row.get('gate_ff'))} |")
    lines += ["", "Ratios (4-bit `dot4_fp16` against each baseline, at equal MACs per cycle; "
              "every ratio reads \"the 4-bit unit is N times better\": baseline LUT4 or gates "
              "over 4-bit, 4-bit GMAC/s per kLUT4 over baseline's):", "",
              "| lanes | " + " | ".join(f"{k} ({kind})" for k, *_ in RATIOS
                                        for kind in ("ice40", "ecp5"))
              + " | " + " | ".join(k for k, _ in GATE_RATIOS) + " |",
              "|---:|" + "---:|" * (2 * len(RATIOS) + len(GATE_RATIOS))]
    for n, at in sw["ratios"].items():
        cells = [_fmt(at[k][kind], 2) for k, *_ in RATIOS for kind in ("ice40", "ecp5")]
        cells += [_fmt(at[k], 2) for k, _ in GATE_RATIOS]
        mark = " (recommended)" if int(n) == rl else ""
        lines.append(f"| {n}{mark} | " + " | ".join(cells) + " |")
    return lines + [""]


def chart_ratios(summary, path):
    """The sweep's ratios against lanes, one panel per device family."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ratios = summary["sweep"]["ratios"]
    lanes = [int(n) for n in ratios]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, kind in zip(axes, ("ice40", "ecp5")):
        for key, *_ in RATIOS:
            ys = [ratios[n][key][kind] for n in ratios]
            if any(ys):
                ax.plot(lanes, [y if y else float("nan") for y in ys], marker="o", label=key)
        for key, _ in GATE_RATIOS:
            ys = [ratios[n][key] for n in ratios]
            if any(ys):
                ax.plot(lanes, [y if y else float("nan") for y in ys], marker="s",
                        linestyle="--", label=f"{key} (generic gates)")
        ax.axhline(7, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks(lanes, [str(n) for n in lanes])
        ax.set_xlabel("lanes (MACs per cycle)")
        ax.set_title("iCE40 UP5K" if kind == "ice40" else "ECP5 speed 6 (25F <= 16 lanes, 85F)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("4-bit advantage (x)")
    axes[1].legend(fontsize=7)
    fig.suptitle("4-bit dot unit (fp16 accumulator) against FP16 and INT8 dot units")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
        for k, target in enumerate(MAIN_TARGETS):
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
    chart_ratios(summary, REPORTS / "synth_ratios.png")
