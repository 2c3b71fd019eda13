"""cocotb benches for the dot-product unit: random dot products of random length and context,
directed extremes, stream discipline (gaps, backpressure, reset) and the latency / full-rate
timing with ``o.ready`` held high, all vs golden.dot."""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

import golden
from golden.dot import MODES
from hdl.dot import DotProduct

from scoreboard import Scoreboard, latency, params, rng
from streams import Packer, StreamSink, StreamSource, reset, start_clock

PHASES = ("even", "odd")


def make_dots(r, lanes, lengths, *, g_range=(-8, 8), codes=None):
    """Random dot products: list of dicts with operand arrays (beats, lanes) and context."""
    dots = []
    for nb in lengths:
        d = {
            "mode": int(r.integers(0, 2)), "a_signed": int(r.integers(0, 2)),
            "b_signed": int(r.integers(0, 2)), "phase": int(r.integers(0, 2)),
            "g": int(r.integers(g_range[0], g_range[1] + 1)),
        }
        if codes is None:
            d["a"] = r.integers(0, 16, (nb, lanes))
            d["b"] = r.integers(0, 16, (nb, lanes))
        else:
            d["a"] = np.full((nb, lanes), codes[0])
            d["b"] = np.full((nb, lanes), codes[1])
            d.update(codes[2])
        dots.append(d)
    return dots


def expected(dots, accumulator, lanes):
    """Golden result | flags << 16 for each dot product."""
    out = []
    for d in dots:
        code, fl = golden.dot(d["a"].ravel(), d["b"].ravel(),
                              mode=MODES[d["mode"]], x_signed=d["a_signed"],
                              w_signed=d["b_signed"], phase=PHASES[d["phase"]], g=d["g"],
                              accumulator=accumulator, lanes=lanes, flags=True)
        out.append(int(code) | int(fl) << 16)
    return out


def beats(dots, packer, r):
    """Payload integers; context fields on non-first beats are random (they must be ignored)."""
    fields = {k: [] for k in ("a", "b", "mode", "a_signed", "b_signed", "phase", "g",
                              "first", "last")}
    for d in dots:
        nb = len(d["a"])
        first = np.zeros(nb, int)
        first[0] = 1
        last = np.zeros(nb, int)
        last[-1] = 1
        fields["a"].append(d["a"])
        fields["b"].append(d["b"])
        for k in ("mode", "a_signed", "b_signed", "phase"):
            fields[k].append(np.where(first == 1, d[k], r.integers(0, 2, nb)))
        fields["g"].append(np.where(first == 1, d["g"], r.integers(-32, 32, nb)))
        fields["first"].append(first)
        fields["last"].append(last)
    cat = {k: np.concatenate(v) for k, v in fields.items()}
    return packer.pack(len(cat["first"]), **cat)


def results(sink_payloads, out_packer):
    u = out_packer.unpack(sink_payloads)
    return [int(c) | int(f) << 16 for c, f in zip(u["result"], u["flags"])]


async def run(dut, dots, accumulator, lanes, r, *, valid_prob=1.0, ready_prob=1.0):
    unit = DotProduct(lanes, accumulator)
    pin, pout = Packer(unit.input_layout(lanes)), Packer(unit.output_layout())
    sink = StreamSink(dut, rng=r, ready_prob=ready_prob).start()
    src = StreamSource(dut, rng=r, valid_prob=valid_prob)
    await src.send(beats(dots, pin, r))
    await sink.wait_for(len(dots), timeout_cycles=unit.latency + 50 + 20 * len(dots))
    await ClockCycles(dut.clk, 5)
    sink.stop()
    return results(sink.received, pout)


async def setup(dut):
    start_clock(dut)
    dut.rst.value = 0
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut)


@cocotb.test()
async def dot_random(dut):
    """Random lengths 1..4096 beats (mostly short), random mode/signedness/phase/g."""
    p = params()
    lanes, acc = p["lanes"], p["accumulator"]
    r = rng(dut._log, salt=1)
    await setup(dut)
    lengths = list(r.integers(1, 9, 300)) + list(r.integers(9, 257, 12)) + [4096, 1]
    dots = make_dots(r, lanes, lengths)
    dots += make_dots(r, lanes, [int(x) for x in r.integers(1, 5, 100)], g_range=(-32, 31))
    sb = Scoreboard(f"dot_random_{acc}_{lanes}", dut._log)
    got = await run(dut, dots, acc, lanes, r)
    sb.compare(got, expected(dots, acc, lanes))
    sb.finish(expected_vectors=len(dots), exhaustive=False)


@cocotb.test()
async def dot_extremes(dut):
    """All -8 x -8 (forward, signed) and all 64 x 15 (backward, unsigned), 4096 beats, and
    the largest/smallest scales, in every accumulator."""
    p = params()
    lanes, acc = p["lanes"], p["accumulator"]
    r = rng(dut._log, salt=2)
    await setup(dut)
    fwd = {"mode": 0, "a_signed": 1, "b_signed": 1, "phase": 0, "g": 0}
    bwd = {"mode": 1, "a_signed": 0, "b_signed": 0, "phase": 1, "g": 0}
    dots = []
    for g in (-32, 0, 16, 31):
        dots += make_dots(r, lanes, [4096], codes=(0b1000, 0b1000, {**fwd, "g": g}))
        dots += make_dots(r, lanes, [4096], codes=(0b0111, 15, {**bwd, "g": g}))
        dots += make_dots(r, lanes, [3], codes=(0b1111, 0b1000, {**bwd, "b_signed": 1,
                                                                 "g": g}))
    sb = Scoreboard(f"dot_extremes_{acc}_{lanes}", dut._log)
    got = await run(dut, dots, acc, lanes, r)
    sb.compare(got, expected(dots, acc, lanes))
    sb.finish(expected_vectors=len(dots), exhaustive=False)


@cocotb.test()
async def dot_stream_discipline(dut):
    """Random valid gaps and ready backpressure, then a reset in mid-stream: every result
    before the reset is an in-order prefix of the first stream's, and after it exactly the
    second stream's, none lost, none repeated."""
    p = params()
    lanes, acc = p["lanes"], p["accumulator"]
    r = rng(dut._log, salt=3)
    await setup(dut)
    unit = DotProduct(lanes, acc)
    pin, pout = Packer(unit.input_layout(lanes)), Packer(unit.output_layout())
    first = make_dots(r, lanes, [int(x) for x in r.integers(1, 6, 120)])
    second = make_dots(r, lanes, [int(x) for x in r.integers(1, 6, 120)])
    sb = Scoreboard(f"dot_stream_{acc}_{lanes}", dut._log)
    # stream 1 with gaps and backpressure, cut by a reset
    sink = StreamSink(dut, rng=r, ready_prob=0.6).start()
    src = StreamSource(dut, rng=r, valid_prob=0.7)
    task = cocotb.start_soon(src.send(beats(first, pin, r)))
    await ClockCycles(dut.clk, 150)
    task.cancel()
    await reset(dut, cycles=3)
    dut.i__valid.value = 0
    before = results(sink.received, pout)
    exp1 = expected(first, acc, lanes)
    assert 0 < len(before) < len(first), f"reset should cut the stream, got {len(before)}"
    sb.compare(before, exp1[:len(before)])
    # stream 2 after the reset: exactly its results
    n0 = len(sink.received)
    src = StreamSource(dut, rng=r, valid_prob=0.7)
    await src.send(beats(second, pin, r))
    await sink.wait_for(n0 + len(second), timeout_cycles=100 + 40 * len(second))
    await ClockCycles(dut.clk, 20)
    sink.stop()
    after = results(sink.received[n0:], pout)
    assert len(after) == len(second), f"{len(after)} results after reset, sent {len(second)}"
    sb.compare(after, expected(second, acc, lanes))
    sb.finish(expected_vectors=len(before) + len(second), exhaustive=False)


@cocotb.test()
async def dot_latency(dut):
    """``o.ready`` held high, beats back to back: every beat is taken on its first cycle (one
    beat per cycle, no idle cycle between dot products) and every result is transferred
    exactly ``latency`` cycles (the component's, via scoreboard.latency()) after the
    transfer of its ``last`` beat."""
    p = params()
    lanes, acc = p["lanes"], p["accumulator"]
    lat = latency()
    assert lat > 0, "the harness passes the component's latency"
    r = rng(dut._log, salt=4)
    await setup(dut)
    unit = DotProduct(lanes, acc)
    pin, pout = Packer(unit.input_layout(lanes)), Packer(unit.output_layout())
    dots = make_dots(r, lanes, [1] * 5 + [int(x) for x in r.integers(1, 5, 60)] + [300])
    payloads = beats(dots, pin, r)
    is_last = np.concatenate([np.arange(len(d["a"])) == len(d["a"]) - 1 for d in dots])
    dut.o__ready.value = 1
    sent, cycle, stalls = 0, 0, 0
    last_at, result_at, got = [], [], []
    while len(got) < len(dots) and cycle < len(payloads) + lat + 100:
        await FallingEdge(dut.clk)
        dut.i__valid.value = int(sent < len(payloads))
        if sent < len(payloads):
            dut.i__payload.value = payloads[sent]
        await ReadOnly()                  # what the next rising edge (number `cycle`) sees
        if sent < len(payloads):
            if dut.i__ready.value:
                if is_last[sent]:
                    last_at.append(cycle)
                sent += 1
            else:
                stalls += 1
        if dut.o__valid.value:
            result_at.append(cycle)
            got.append(int(dut.o__payload.value))
        await RisingEdge(dut.clk)
        cycle += 1
    await FallingEdge(dut.clk)
    dut.i__valid.value = 0
    assert stalls == 0, f"i.ready dropped {stalls} times with o.ready high"
    assert len(got) == len(dots), f"{len(got)} results for {len(dots)} dot products"
    sb = Scoreboard(f"dot_latency_{acc}_{lanes}", dut._log)
    sb.compare(results(got, pout), expected(dots, acc, lanes))
    sb.compare(np.array(result_at) - np.array(last_at), np.full(len(dots), lat))
    sb.finish(expected_vectors=2 * len(dots), exhaustive=False)
