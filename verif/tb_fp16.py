"""cocotb benches for the fp16 stream units (FP16Adder / FP16Multiplier, ``lanes`` per beat).

Parameters (from the pytest side): ``op`` (``"add"`` or ``"mul"``), ``lanes``, ``n_random``
(random pairs), ``n_stream`` (beats of the stream-discipline test).

- ``testfloat``: every case of Berkeley TestFloat's level-1 vectors, read from
  ``golden/testvectors/`` (:mod:`golden.testfloat`): result (a NaN expectation means
  ``0x7E00``, our canonical NaN) and flags.
- ``random``: ``n_random`` pairs biased toward close exponents, cancellation, subnormals and
  the underflow/overflow windows, against :func:`golden.fp16_add` / :func:`golden.fp16_mul`.
- ``stream``: random valid gaps, random backpressure and a reset in mid-stream.

The two bulk tests stream one beat per cycle with ``o.ready`` high, payloads packed with
NumPy beforehand, and compare whole arrays at the end; they also check the ``latency``
property and that there is no bubble.
"""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

import golden
from golden.formats import FP16
from golden.testfloat import load as load_testfloat
from hdl.fp16 import FP16Adder, FP16Multiplier

from scoreboard import Scoreboard, latency, params, rng
from streams import Packer, StreamSink, StreamSource, start_clock

UNITS = {"add": (FP16Adder, golden.fp16_add), "mul": (FP16Multiplier, golden.fp16_mul)}


def _codes(sign, efield, frac):
    return ((sign << 15) | (efield << FP16.FRAC_BITS) | frac).astype(np.uint16)


def random_pairs(gen, n, op):
    """``n`` operand pairs: a mix of uniform codes and corner-dense distributions."""
    top = FP16.EXP_MAX_FIELD - 1                      # largest finite exponent field
    kinds = gen.choice(6, size=n, p=[0.10, 0.30, 0.20, 0.10, 0.20, 0.10])
    sa, sb = gen.integers(0, 2, n), gen.integers(0, 2, n)
    fa, fb = gen.integers(0, 1 << FP16.FRAC_BITS, (2, n))
    ea = gen.integers(0, top + 1, n)
    eb = np.clip(ea + gen.integers(-3, 4, n), 0, top)            # kind 1: close exponents
    eb = np.where(kinds == 0, gen.integers(0, FP16.EXP_MAX_FIELD + 1, n), eb)
    ea = np.where(kinds == 0, gen.integers(0, FP16.EXP_MAX_FIELD + 1, n), ea)
    sub_a, sub_b = gen.integers(0, 3, (2, n))                    # kind 2: subnormal range
    ea, eb = np.where(kinds == 2, sub_a, ea), np.where(kinds == 2, sub_b, eb)
    hi_a, hi_b = gen.integers(top - 2, top + 1, (2, n))          # kind 3: top of the range
    ea, eb = np.where(kinds == 3, hi_a, ea), np.where(kinds == 3, hi_b, eb)
    if op == "add":
        # kind 4: cancellation, b close to -a; kind 5: alignment around the sticky bit.
        fb = np.where(kinds == 4, np.clip(fa + gen.integers(-4, 5, n), 0, 1023), fb)
        eb = np.where(kinds == 4, ea, eb)
        sb = np.where(kinds == 4, 1 - sa, sb)
        far = np.clip(ea - gen.integers(9, 17, n), 0, top)
        eb = np.where(kinds == 5, far, eb)
    else:
        # kind 4: products near 2**-14 .. 2**-25 (underflow); kind 5: near 2**16 (overflow).
        bias2 = 2 * FP16.BIAS
        s = np.where(kinds == 4, gen.integers(bias2 - 27, bias2 - 12, n),
                     gen.integers(bias2 + 14, bias2 + 18, n))
        lo, hi = np.maximum(0, s - top), np.minimum(top, s)
        pick = lo + (gen.random(n) * (hi - lo + 1)).astype(np.int64)
        ea = np.where(kinds >= 4, pick, ea)
        eb = np.where(kinds >= 4, s - pick, eb)
    return _codes(sa, ea, fa), _codes(sb, eb, fb)


def pack_operands(a, b, lanes):
    """Payload integers for (n,) operand arrays: ``lanes`` per beat, zero-padded.

    Layout (checked against :class:`streams.Packer`): ``a`` lanes in the low ``16 * lanes``
    bits, then ``b`` lanes, lane 0 lowest; little-endian bytes of uint16 rows are that.
    """
    beats = -(-len(a) // lanes)
    rows = np.zeros((beats, 2, lanes), np.uint16)
    rows[:, 0].flat[:len(a)] = a
    rows[:, 1].flat[:len(b)] = b
    return [int.from_bytes(r.tobytes(), "little") for r in rows]


def unpack_results(ints, lanes):
    """Output payload integers -> ``(result, flags)`` arrays, one element per lane."""
    nbytes = 3 * lanes                                   # 16 + 8 bits per lane
    buf = b"".join(int(x).to_bytes(nbytes, "little") for x in ints)
    rows = np.frombuffer(buf, np.uint8).reshape(-1, nbytes)
    result = rows[:, :2 * lanes].copy().view("<u2").reshape(-1)
    flags = rows[:, 2 * lanes:].reshape(-1)
    return result.astype(np.int64), flags.astype(np.int64)


def check_layouts(unit):
    """The NumPy packing above must agree with the payload layouts."""
    n = unit.lanes
    pin, pout = Packer(unit.i.payload.shape()), Packer(unit.o.payload.shape())
    a, b = np.arange(1, n + 1), np.arange(101, 101 + n)
    ref = pin.pack(1, a=a[None] if n > 1 else a, b=b[None] if n > 1 else b)
    assert ref == pack_operands(a, b, n), "input payload layout changed"
    r, fl = np.arange(7, 7 + n), np.arange(3, 3 + n)
    word = pout.pack(1, result=r[None] if n > 1 else r, flags=fl[None] if n > 1 else fl)
    got_r, got_f = unpack_results(word, n)
    assert list(got_r) == list(r) and list(got_f) == list(fl), "output payload layout changed"


async def full_rate(dut, payloads, lat):
    """Stream ``payloads`` one per cycle with ``o.ready`` high; return the output payloads.

    Asserts that ``i.ready`` never drops, that the first result appears ``lat`` cycles after
    the first transfer and that results then arrive every cycle (no bubble, no loss).
    """
    iv, ir, ip = dut.i__valid, dut.i__ready, dut.i__payload
    ov, op = dut.o__valid, dut.o__payload
    dut.o__ready.value = 1
    n = len(payloads)
    out = []
    cycle = 0
    first_out = None
    for cycle in range(n + lat + 1):
        await FallingEdge(dut.clk)
        if cycle < n:
            ip.value = payloads[cycle]
            iv.value = 1
        else:
            iv.value = 0
        await ReadOnly()
        if cycle < n:
            assert ir.value, f"i.ready low at beat {cycle} with o.ready high"
        if ov.value:
            if first_out is None:
                first_out = cycle
            out.append(op.value)
    assert first_out == lat, f"first result {first_out} cycles after the first input, " \
                             f"latency property says {lat}"
    assert len(out) == n, f"{len(out)} results for {n} beats in {n + lat + 1} cycles"
    return [x.to_unsigned() for x in out]


async def _setup(dut):
    p = params()
    unit_cls, model = UNITS[p["op"]]
    unit = unit_cls(lanes=p["lanes"])
    check_layouts(unit)
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    start_clock(dut)
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    return p, model


def expected(model, a, b):
    r, fl = model(a, b, flags=True)
    return r.astype(np.int64), fl.astype(np.int64)


@cocotb.test()
async def testfloat(dut):
    """Every TestFloat level-1 case: result and flags."""
    p, _ = await _setup(dut)
    a, b, r, fl = load_testfloat(p["op"])
    nan = golden.fp16.is_nan(r)
    r = np.where(nan, FP16.QNAN, r)                      # "any NaN": ours is 0x7E00
    lanes = p["lanes"]
    out = await full_rate(dut, pack_operands(a, b, lanes), latency())
    got_r, got_f = unpack_results(out, lanes)
    sb = Scoreboard(f"fp16_{p['op']}_testfloat", dut._log)
    n = len(a)
    sb.compare(got_r[:n] | (got_f[:n] << 16), r | (fl << 16), a=a, b=b)
    sb.finish(expected_vectors=n, exhaustive=False)


@cocotb.test()
async def random(dut):
    """``n_random`` biased random pairs against the golden model: result and flags."""
    p, model = await _setup(dut)
    n = p["n_random"]
    a, b = random_pairs(rng(dut._log, salt=1), n, p["op"])
    er, ef = expected(model, a, b)
    lanes = p["lanes"]
    out = await full_rate(dut, pack_operands(a, b, lanes), latency())
    got_r, got_f = unpack_results(out, lanes)
    sb = Scoreboard(f"fp16_{p['op']}_random", dut._log)
    sb.compare(got_r[:n] | (got_f[:n] << 16), er | (ef << 16), a=a, b=b)
    sb.finish(expected_vectors=n, exhaustive=False)


@cocotb.test()
async def stream(dut):
    """Random valid gaps, random backpressure and a reset in mid-stream.

    Every sent beat is accounted for, in order: the beats delivered before the reset are the
    first ones sent; the beats in flight at the reset (at most the pipeline's two) are
    dropped and never appear; after the reset the output is exactly the beats accepted after
    it. One check per lane of every sent beat (a dropped beat checks as "dropped").
    """
    p, model = await _setup(dut)
    lanes, n = p["lanes"], p["n_stream"]
    gen = rng(dut._log, salt=2)
    a, b = random_pairs(gen, n * lanes, p["op"])
    payloads = pack_operands(a, b, lanes)
    assert len(set(payloads)) == n, "payloads must be distinct for the order check"
    src = StreamSource(dut, rng=gen, valid_prob=0.6)
    sink = StreamSink(dut, rng=np.random.default_rng(gen.integers(1 << 32)),
                      ready_prob=0.5).start()
    sending = cocotb.start_soon(src.send(payloads))
    while len(src.sent) < n // 2:
        await RisingEdge(dut.clk)
    # Assert reset at a falling edge: no beat moves at the next rising edge (the unit holds
    # its handshake off in reset), so the counts now split the stream into before/after.
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    sent_before, got_before = len(src.sent), len(sink.received)
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await sending
    total = got_before + len(src.sent) - sent_before
    await sink.wait_for(total, timeout_cycles=20 * n)
    for _ in range(10):                                   # nothing more may come out
        await RisingEdge(dut.clk)
    sink.stop()
    assert len(src.sent) == n and src.sent == payloads, "source did not send every beat"
    in_flight = sent_before - got_before
    assert 0 <= in_flight <= latency(), f"{in_flight} beats in flight at the reset"
    assert len(sink.received) == total, f"{len(sink.received)} beats out, expected {total}"
    # Per sent beat: the output that belongs to it, or -1 (dropped by the reset).
    got_r, got_f = unpack_results(sink.received, lanes)
    got = (got_r | (got_f << 16)).reshape(-1, lanes)
    er, ef = expected(model, a, b)
    want = (er | (ef << 16)).reshape(n, lanes)
    dropped = np.full((in_flight, lanes), -1)
    got = np.concatenate([got[:got_before], dropped, got[got_before:]])
    want = np.concatenate([want[:got_before], dropped, want[sent_before:]])
    sb = Scoreboard(f"fp16_{p['op']}_stream", dut._log)
    sb.compare(got, want, a=a.reshape(n, lanes), b=b.reshape(n, lanes))
    sb.finish(expected_vectors=n * lanes, exhaustive=False)
    dut._log.info("stream: %d beats before the reset (%d delivered, %d dropped), %d after",
                  sent_before, got_before, in_flight, n - sent_before)
