"""cocotb benches for the density baselines (FP16 and INT8 dot products): random dot products,
directed extremes and stream discipline (gaps, backpressure, reset), all vs golden.baselines.

Parameters (``FOURBIT_PARAMS``): ``kind`` (``"fp16"`` or ``"int8"``) and ``lanes``.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from golden.baselines import fp16_dot, int8_dot
from hdl.baselines import FP16DotProduct, Int8DotProduct

from scoreboard import Scoreboard, params, rng
from streams import Packer, StreamSink, StreamSource, reset, start_clock

# fp16 codes worth meeting often: zeros, smallest/largest subnormal and normal, one, Inf,
# the canonical quiet NaN and a signalling NaN.
SPECIALS = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                     0x3C00, 0xBC00, 0x7C00, 0xFC00, 0x7E00, 0x7D00], dtype=np.int64)


def unit_for(p):
    return (FP16DotProduct if p["kind"] == "fp16" else Int8DotProduct)(p["lanes"])


def fp16_operands(r, size, style):
    """fp16 codes: ``tame`` (|x| in 2**-7 .. 2**8, sums stay finite), ``mixed`` (tame with
    specials sprinkled in), ``raw`` (any 16-bit code)."""
    if style == "raw":
        return r.integers(0, 1 << 16, size)
    codes = (r.integers(0, 2, size) << 15) | (r.integers(8, 23, size) << 10) \
        | r.integers(0, 1024, size)
    if style == "mixed":
        pick = r.random(size) < 0.05
        codes = np.where(pick, SPECIALS[r.integers(0, len(SPECIALS), size)], codes)
    return codes


def make_dots(r, p, lengths):
    """Random dot products: a list of (a, b) arrays of shape (beats, lanes)."""
    n = p["lanes"]
    dots = []
    for nb in lengths:
        shape = (int(nb), n)
        if p["kind"] == "fp16":
            style = ("tame", "mixed", "raw")[int(r.choice(3, p=[0.6, 0.3, 0.1]))]
            dots.append((fp16_operands(r, shape, style), fp16_operands(r, shape, style)))
        else:
            dots.append((r.integers(-128, 128, shape), r.integers(-128, 128, shape)))
    return dots


def expected(dots, p):
    """Golden result (fp16: code | flags << 16) for each dot product."""
    out = []
    for a, b in dots:
        if p["kind"] == "fp16":
            code, fl = fp16_dot(a.ravel(), b.ravel(), lanes=p["lanes"], flags=True)
            out.append(int(code) | int(fl) << 16)
        else:
            out.append(int8_dot(a.ravel(), b.ravel()))
    return out


def beats(dots, packer):
    a = np.concatenate([d[0] for d in dots])
    b = np.concatenate([d[1] for d in dots])
    first = np.concatenate([np.arange(len(d[0])) == 0 for d in dots]).astype(int)
    last = np.concatenate([np.arange(len(d[0])) == len(d[0]) - 1 for d in dots]).astype(int)
    return packer.pack(len(first), a=a, b=b, first=first, last=last)


def results(payloads, out_packer, p):
    u = out_packer.unpack(payloads)
    if p["kind"] == "fp16":
        return [int(c) | int(f) << 16 for c, f in zip(u["result"], u["flags"])]
    return [int(x) for x in u["result"]]


def packers(p):
    unit = unit_for(p)
    out_layout = unit.output_layout() if p["kind"] == "fp16" else unit.output_layout(p["lanes"])
    return unit, Packer(unit.input_layout(p["lanes"])), Packer(out_layout)


async def run(dut, dots, p, r, *, valid_prob=1.0, ready_prob=1.0):
    unit, pin, pout = packers(p)
    sink = StreamSink(dut, rng=r, ready_prob=ready_prob).start()
    src = StreamSource(dut, rng=r, valid_prob=valid_prob)
    await src.send(beats(dots, pin))
    n_beats = sum(len(d[0]) for d in dots)
    await sink.wait_for(len(dots), timeout_cycles=unit.latency + 50 + 4 * n_beats)
    await ClockCycles(dut.clk, 5)
    sink.stop()
    assert len(sink.received) == len(dots), f"{len(sink.received)} results for {len(dots)}"
    return results(sink.received, pout, p)


async def setup(dut):
    start_clock(dut)
    dut.rst.value = 0
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut)


def _name(test, p):
    return f"{test}_{p['kind']}_{p['lanes']}"


@cocotb.test()
async def baseline_random(dut):
    """Random lengths 1..512 beats (mostly short), full speed, then with gaps and
    backpressure."""
    p = params()
    r = rng(dut._log, salt=11)
    await setup(dut)
    sb = Scoreboard(_name("baseline_random", p), dut._log)
    lengths = list(r.integers(1, 9, 200)) + list(r.integers(9, 65, 8)) + [512, 1]
    dots = make_dots(r, p, lengths)
    sb.compare(await run(dut, dots, p, r), expected(dots, p))
    dots = make_dots(r, p, list(r.integers(1, 6, 80)))
    sb.compare(await run(dut, dots, p, r, valid_prob=0.6, ready_prob=0.5), expected(dots, p))
    sb.finish(expected_vectors=len(lengths) + 80, exhaustive=False)


@cocotb.test()
async def baseline_extremes(dut):
    """fp16: overflow to Inf, subnormal products, exact cancellation, -0 sums, a long run
    of 1 * 1 that stagnates in the fp16 accumulator, Inf - Inf, NaN. int8: every product
    at its most positive and most negative for 2048 beats."""
    p = params()
    n = p["lanes"]
    r = rng(dut._log, salt=12)
    await setup(dut)

    def const(nb, x, y):
        return (np.full((nb, n), x), np.full((nb, n), y))

    if p["kind"] == "fp16":
        alt = np.resize([0x3C00, 0xBC00], n)          # +1, -1, ... per lane
        dots = [const(3, 0x7BFF, 0x7BFF), const(4, 0x0001, 0x3800), const(2, 0x8000, 0x3C00),
                (np.tile(alt, (5, 1)), np.full((5, n), 0x4500)),
                const(2048, 0x3C00, 0x3C00), const(1, 0x7C00, 0x3C00),
                (np.tile(alt, (1, 1)), np.full((1, n), 0x7C00)),
                const(2, 0x7D00, 0x3C00), const(1, 0x0000, 0x7C00), const(3, 0x0400, 0x0400)]
    else:
        dots = [const(2048, -128, -128), const(2048, -128, 127), const(1, 127, 127)]
    dots += make_dots(r, p, [1, 2, 3])
    sb = Scoreboard(_name("baseline_extremes", p), dut._log)
    sb.compare(await run(dut, dots, p, r), expected(dots, p))
    sb.finish(expected_vectors=len(dots), exhaustive=False)


@cocotb.test()
async def baseline_stream_discipline(dut):
    """Gaps and backpressure, then a reset in mid-stream: the results before it are an
    in-order prefix of the first stream's, and after it exactly the second stream's."""
    p = params()
    r = rng(dut._log, salt=13)
    await setup(dut)
    unit, pin, pout = packers(p)
    first = make_dots(r, p, list(r.integers(1, 6, 100)))
    second = make_dots(r, p, list(r.integers(1, 6, 100)))
    sb = Scoreboard(_name("baseline_stream", p), dut._log)
    sink = StreamSink(dut, rng=r, ready_prob=0.6).start()
    src = StreamSource(dut, rng=r, valid_prob=0.7)
    task = cocotb.start_soon(src.send(beats(first, pin)))
    await ClockCycles(dut.clk, 150)
    task.cancel()
    await reset(dut, cycles=3)
    dut.i__valid.value = 0
    before = results(sink.received, pout, p)
    assert 0 < len(before) < len(first), f"reset should cut the stream, got {len(before)}"
    sb.compare(before, expected(first, p)[:len(before)])
    n0 = len(sink.received)
    src = StreamSource(dut, rng=r, valid_prob=0.7)
    await src.send(beats(second, pin))
    await sink.wait_for(n0 + len(second), timeout_cycles=unit.latency + 100 + 40 * len(second))
    await ClockCycles(dut.clk, 20)
    sink.stop()
    after = results(sink.received[n0:], pout, p)
    assert len(after) == len(second), f"{len(after)} results after reset, sent {len(second)}"
    sb.compare(after, expected(second, p))
    sb.finish(expected_vectors=len(before) + len(second), exhaustive=False)
