"""cocotb benches for the board top (:class:`hdl.board.BoardTop`): cocotbext-uart's UART
model on its ``rx`` and ``tx`` pins, and the host protocol code ``scripts/board.py`` uses on
a serial port (:mod:`board_protocol`) driving it through that model.

- ``board_gemm``: random GEMMs through the protocol (loads, the GEMM, its results and
  status) by ``scripts/board.py``'s own check, and a conversion, against
  :func:`golden.gemm` and :func:`golden.to_fp4`.
- ``board_errors``: malformed frames -- an unknown type, a wrong length, a bad checksum, a
  frame cut off -- each answered by its error frame; after each, a GEMM is still correct.

Parameters (``FOURBIT_PARAMS``): ``divisor`` (cycles per bit) and the engine's.
"""

import cocotb
import numpy as np
from board_protocol import BoardError, BoardHost, frame
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, Timer
from cocotbext.uart import UartSink, UartSource
from engine_driver import command, gemm_commands, gemm_results
from tb_engine import random_gemm

import golden
from hdl.board import ERRORS, FRAME, BoardTop
from hdl.engine import CONVERTERS
from scripts.board import check_gemms

from scoreboard import Scoreboard, params, rng

BOARD_GEMMS = 3           # random GEMMs of board_gemm (scripts/board.py's check)


def board_of(p):
    eng = {k: p[k] for k in ("rows", "lanes", "slots", "acc_stages", "lane_stages",
                             "out_depth", "a_depth", "b_depth", "converters") if k in p}
    return BoardTop(clk_hz=p["divisor"] * 1_000_000, baud=1_000_000, engine=eng)


CLOCK_NS = 10             # the bench's clock period


class SimUART:
    """The host's serial port, simulated with cocotbext-uart: a ``UartSource`` drives the
    board's ``rx`` pin, a ``UartSink`` collects what it sends on ``tx``, both at the board's
    bit time (``divisor`` clock cycles). ``write`` and ``read`` are blocking calls for code
    in a ``bridge`` thread, like pyserial's; ``read`` gives up after ``timeout_bytes`` byte
    times without the bytes it waits for."""

    def __init__(self, dut, divisor, timeout_bytes=200):
        self.dut, self.d = dut, divisor
        baud = 1e9 / (divisor * CLOCK_NS)
        self.source = UartSource(dut.rx, baud=baud, bits=8, stop_bits=1)
        self.sink = UartSink(dut.tx, baud=baud, bits=8, stop_bits=1)
        self.timeout_cycles = timeout_bytes * 10 * divisor

    async def _write(self, data):
        await self.source.write(data)
        await self.source.wait()                 # returns once the bytes are on the line

    async def _read(self, n):
        waited = 0
        while self.sink.count() < n:
            await ClockCycles(self.dut.clk, self.d)
            waited += self.d
            if waited > self.timeout_cycles:
                raise TimeoutError(f"the board sent {self.sink.count()} of {n} bytes")
        return bytes(self.sink.read_nowait(n))

    async def quiet(self, cycles):
        await ClockCycles(self.dut.clk, cycles)

    def write(self, data):
        resume(self._write)(bytes(data))

    def read(self, n):
        return resume(self._read)(n)


async def _setup(dut):
    p = params()
    board = board_of(p)
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    uart = SimUART(dut, board.divisor)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await Timer(1, "ns")
    return board, uart, BoardHost.of(uart, board)


async def _check_gemm(sb, board, host, r, shape):
    e = board.engine
    a, b, ctx = random_gemm(r, *shape)
    cmds, tiles = gemm_commands(e, a, b, ctx)
    done = await bridge(host.run)(cmds)
    c, f = gemm_results(e, done, tiles, a.shape[0], b.shape[1])
    want, want_f = golden.gemm(a, b, accumulator=e.accumulator, lanes=e.lanes, flags=True,
                               **ctx)
    sb.compare(c | f << 16, want.astype(np.int64) | want_f.astype(np.int64) << 16)
    return want.size


@cocotb.test()
async def board_gemm(dut):
    board, uart, host = await _setup(dut)
    r = rng(dut._log, salt=21)
    sb = Scoreboard("board: GEMMs and a conversion over the UART protocol", dut._log)
    # the GEMM check scripts/board.py runs on a real board, here through the UART model
    n, bad, first, _ = await bridge(check_gemms)(host, board.engine, r, BOARD_GEMMS,
                                                 dut._log.info, sb.compare)
    assert bad == 0, f"first mismatch: {first}"
    # a conversion: fp16 -> fp4, odd phase
    x = golden.fp16_from_float(r.standard_normal(6))
    cl = board.engine.conv_lanes
    words = [int(sum(int(x[i + j]) << (16 * j) for j in range(cl) if i + j < x.size))
             for i in range(0, x.size, cl)]
    done = await bridge(host.run)([(command("convert", conv="to_fp4", count=len(words),
                                            g=3, phase=1), words)])
    got = done[0]["beats"]["data"][:, :cl].ravel()[:x.size]
    sb.compare(got, golden.to_fp4(x, 3, "odd"))
    # a converter the board was built without is refused, and nothing else happens
    absent = [c for c in CONVERTERS if c not in board.engine.converters]
    done = await bridge(host.run)([(command("convert", conv=c, count=1), [])
                                   for c in absent])
    sb.compare(np.array([d["status"] == "bad_conv" and d["beats"] is None for d in done]),
               np.ones(len(absent)))
    sb.finish(n + x.size + len(absent), exhaustive=False)


@cocotb.test()
async def board_errors(dut):
    board, uart, host = await _setup(dut)
    r = rng(dut._log, salt=22)
    sb = Scoreboard("board: malformed frames answered, engine still correct", dut._log)
    good = frame(FRAME["data"], bytes(board.din_bytes))
    bad_sum = bytearray(frame(FRAME["cmd"], bytes(board.cmd_bytes)))
    bad_sum[-1] ^= 0xFF
    cases = [
        ("bad_type", frame(0x07, b"\x01\x02")),
        ("bad_length", frame(FRAME["cmd"], bytes(board.cmd_bytes - 1))),
        ("bad_checksum", bytes(bad_sum)),
        ("timeout", good[:4]),                       # cut off inside the payload
    ]
    codes, n = [], 0
    for name, raw in cases:
        await bridge(uart.write)(raw)
        try:
            await bridge(host.results)()
            codes.append(0)
        except BoardError as err:
            dut._log.info("%s -> %s", name, err)
            codes.append(err.code)
        await uart.quiet(board.timeout + 10 * board.divisor)   # the skip ends on silence
        n += await _check_gemm(sb, board, host, r, (3, 5, 3))
    sb.compare(np.array(codes), np.array([ERRORS[name] for name, _ in cases]))
    sb.finish(n + len(cases), exhaustive=False)
