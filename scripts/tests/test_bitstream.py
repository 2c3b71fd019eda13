"""``make bitstream``: every board's top elaborates against its amaranth-boards platform
(pins, clock, the build plan; fast, part of ``make test``), and with ``RUN_BITSTREAMS=1``
(``make bitstreams``, minutes per board) each bitstream is built and meets its clock."""

import json
import os

import pytest

from scripts import bitstream


@pytest.mark.parametrize("board", sorted(bitstream.BOARDS))
def test_board_plan(board):
    platform, top = bitstream.board_top(board)
    assert top.clk_hz == int(platform.default_clk_frequency) and top.divisor >= 4
    plan = platform.prepare(bitstream._Top(top), name="top")
    names = set(plan.files)
    assert {"top.il", "build_top.sh"} <= names


@pytest.mark.skipif(not os.environ.get("RUN_BITSTREAMS"),
                    reason="builds a bitstream (minutes): make bitstreams")
@pytest.mark.parametrize("board", sorted(bitstream.BOARDS))
def test_bitstream(board, tmp_path):
    report = bitstream.build(board)
    assert report["met"], report
    out = bitstream.BUILD / "bitstream" / board
    assert any((out / f"top.{ext}").exists() for ext in ("bit", "bin", "fs"))
    assert json.loads((out / "report.json").read_text())["fmax_mhz"] == report["fmax_mhz"]
