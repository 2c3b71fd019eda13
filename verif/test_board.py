"""The board top (``hdl.board.BoardTop``: the engine behind a UART frame protocol) on Icarus
and Verilator, driven through a UART model by the host protocol code that
``scripts/board.py`` runs on a serial port (``tb_board``); its parameter rules."""

import pytest

from hdl.board import BoardTop

from harness import run_bench, simulators

# A small engine behind the board top, 4 cycles per bit (the fastest the UART allows), with
# one converter (the others refused, as on a board too small for them).
P = {"divisor": 4, "rows": 2, "lanes": 4, "slots": 4, "acc_stages": 2, "lane_stages": 1,
     "out_depth": 8, "a_depth": 64, "b_depth": 32, "converters": ["to_fp4"]}


@pytest.mark.parametrize("sim", simulators())
def test_board(sim):
    from tb_board import board_of
    run_bench(board_of(P), "tb_board", sim, P)


@pytest.mark.parametrize("kwargs,msg", [
    ({"clk_hz": 12_000_000, "baud": 4_000_000}, "clk_hz // baud must be at least 4"),
    ({"timeout": 10}, "timeout must be at least"),
    ({"engine": {"rows": 3}}, "rows must be a power of two"),
])
def test_board_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        BoardTop(**kwargs)
