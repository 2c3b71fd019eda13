"""Bench side: the one stream bench (:class:`StreamBench`) and the one payload packer
(:class:`Packer`).

Amaranth flattens a stream port ``i`` to ``i__payload`` (one bus, whatever its layout),
``i__valid`` and ``i__ready``. The bench drives both ports of a unit from one coroutine: after
each falling clock edge it sets ``i.valid``, ``i.payload`` and ``o.ready``, then samples the
handshake in the ReadOnly phase, the values every signal holds when the next rising edge
transfers a beat. A beat moves when ``valid & ready`` on that rising edge.

A ``tb_<unit>`` module keeps only its stimulus and its golden expectation, as a
:class:`Stimulus` (input beats as NumPy field arrays, one expected row per result, computed
up front), and a ``key`` that turns the unpacked output fields into the same rows. The checks
pack the whole stimulus at once, collect the output payloads, unpack them at once and compare
whole arrays at the end (:class:`scoreboard.Scoreboard`):

- :meth:`StreamBench.traffic`: random ``valid`` gaps (the source holds ``valid`` until its
  beat is taken) and random ``ready`` backpressure; every result once, in order, no extra.
- :meth:`StreamBench.full_rate`: ``valid`` and ``o.ready`` held high, beats back to back:
  ``i.ready`` never drops, and every result is transferred exactly ``latency`` cycles after
  the transfer of the beat that ends it (one vector per result besides the result's own).
- :meth:`StreamBench.credit_check` (a unit in credit mode, with an output FIFO): the source
  offers every cycle and the sink is slow; a beat that ends a result is taken exactly while
  fewer results than the FIFO holds are owed, and every other beat at once.
- :meth:`StreamBench.reset_check`: traffic, then ``o.ready`` low while the source goes on
  (a result waits ``STALL_CYCLES`` cycles, held), then ``rst`` and ``o.ready`` raised together
  with a beat offered: while ``rst`` is high no beat is delivered (``o.valid`` low) or accepted
  (``i.ready`` low); after it, the rest of the stream with gaps and backpressure. Every result
  of the stimulus is accounted for, in order: delivered before the reset (the first ones),
  dropped (in flight at the reset: at least the waiting one, at most ``latency``; or its
  beats were cut by the reset), or delivered after it (exactly those whose beats all went in
  after the reset).

A result is one output beat. It ends with the input beat marked in :attr:`Stimulus.ends`
(every beat for a one-in, one-out unit; the ``last`` beat of a dot product or tensor).
"""

import cocotb
import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from scoreboard import latency

__all__ = ["Packer", "Stimulus", "StreamBench", "first_last", "start_clock", "reset"]

VALID_PROB = 0.7          # traffic: chance that an idle source offers its next beat
READY_PROB = 0.6          # traffic: chance that the sink is ready in a cycle
CREDIT_READY_PROB = 0.3  # credit check: the sink's chance to be ready (slower than the source)
STALL_CYCLES = 40         # reset check: cycles a result waits on o.ready before the reset
RESET_CYCLES = 3          # rising edges with rst high
DRAIN_CYCLES = 8          # cycles past the latency in which nothing more may come out
_CHUNK_BITS = 1 << 22     # payload bits packed or unpacked at once (bounds the memory)


def start_clock(dut, period_ns=10):
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())


async def reset(dut, cycles=2):
    """Hold the synchronous ``rst`` high for ``cycles`` rising edges (driven off the edge)."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


class Packer:
    """Pack NumPy arrays of field values into payload integers and back, vectorised.

    ``layout`` is an Amaranth shape: a plain width, a ``StructLayout`` or an ``ArrayLayout``
    (nested freely). Fields are addressed by their path joined with ``.``; an ``ArrayLayout``
    of scalars is one field whose arrays carry a trailing axis, element 0 in the low bits.
    A field (an array's element) is at most 63 bits wide.
    """

    def __init__(self, layout):
        self.fields = {}                     # name -> (offset, width, signed, count)
        self.width = Shape.cast(layout).width
        self._nbytes = (self.width + 7) // 8
        self._step = max(1, _CHUNK_BITS // max(1, self.width))    # rows per block
        self._walk(layout, "", 0)

    def _walk(self, layout, name, offset):
        if isinstance(layout, data.StructLayout):
            for fname, field in layout:
                self._walk(field.shape, f"{name}.{fname}" if name else fname,
                           offset + field.offset)
            return
        count = 0
        if isinstance(layout, data.ArrayLayout) and not isinstance(layout.elem_shape,
                                                                    data.Layout):
            layout, count = layout.elem_shape, layout.length
        s = Shape.cast(layout)
        if s.width > 63:
            raise ValueError(f"field {name or 'payload'!r} is {s.width} bits wide: at most 63")
        self.fields[name or "payload"] = (offset, s.width, s.signed, count)

    def pack(self, n=None, **arrays):
        """Payload integers, one per row of the arrays (``n`` rows, by default the length of
        the first array; arrays broadcast); unnamed fields are 0."""
        unknown = set(arrays) - set(self.fields)
        if unknown:
            raise KeyError(f"no such payload fields: {sorted(unknown)}; "
                           f"fields are {sorted(self.fields)}")
        if n is None:
            n = len(next(iter(arrays.values())))
        cols = []
        for name, values in arrays.items():
            offset, width, _, count = self.fields[name]
            v = np.broadcast_to(np.asarray(values, np.int64), (n, count) if count else (n,))
            cols.append((v.reshape(n, -1), offset, width))
        nb, out = self._nbytes, []
        for lo in range(0, n, self._step):
            hi = min(n, lo + self._step)
            bits = np.zeros((hi - lo, nb * 8), np.uint8)
            for v, offset, width in cols:
                b = (v[lo:hi, :, None] >> np.arange(width)) & 1
                bits[:, offset:offset + b.shape[1] * width] = b.reshape(hi - lo, -1)
            buf = np.packbits(bits, axis=1, bitorder="little").tobytes()
            out += [int.from_bytes(buf[k:k + nb], "little") for k in range(0, len(buf), nb)]
        return out

    def unpack(self, ints):
        """Payload integers -> dict of int64 arrays (signed fields sign-extended)."""
        n, nb = len(ints), self._nbytes
        buf = b"".join(int(x).to_bytes(nb, "little") for x in ints)
        parts = {name: [] for name in self.fields}
        for lo in range(0, max(n, 1), self._step):
            hi = min(n, lo + self._step)
            rows = np.frombuffer(buf[lo * nb:hi * nb], np.uint8).reshape(hi - lo, nb)
            bits = np.unpackbits(rows, axis=1, bitorder="little")
            for name, (offset, width, signed, count) in self.fields.items():
                k = max(count, 1)
                b = bits[:, offset:offset + k * width].reshape(hi - lo, k, width)
                v = b.astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))
                if signed:
                    half = np.int64(1 << (width - 1))
                    v = np.where(v >= half, v - half - half, v)
                parts[name].append(v if count else v[:, 0])
        return {name: np.concatenate(p) for name, p in parts.items()}


def rotate_lanes(rows):
    """``rows`` (``(n, lanes)``) with row ``j`` rotated right by the sum of ``j``'s base-
    ``lanes`` digits. A sweep laid out in plain order gives lane ``k`` only the values
    ``= k mod lanes`` (the zeros, the ties, a lone low bit all in the same lanes); rotated,
    every lane sees every residue, and with each of them the high bits vary too."""
    rows = np.asarray(rows)
    lanes = rows.shape[1]
    j, shift = np.arange(len(rows)), np.zeros(len(rows), np.int64)
    while np.any(j):
        shift, j = shift + j % lanes, j // lanes
    turn = (np.arange(lanes)[None, :] - shift[:, None]) % lanes
    return rows[np.arange(len(rows))[:, None], turn]


def every_lane(n, lanes):
    """``(n, lanes)`` indices ``(j + k) mod n``: ``n`` beats in which lane ``k`` of beat ``j``
    gets item ``(j + k) mod n``, so that every lane meets every one of ``n`` items."""
    return (np.arange(n)[:, None] + np.arange(lanes)[None, :]) % n


def first_last(lengths):
    """``(first, last)`` flags (0/1 arrays, one per beat) of runs of ``lengths`` beats: a dot
    product's or a tensor's beats."""
    ends = np.cumsum(lengths)
    first, last = np.zeros(int(ends[-1]), np.int64), np.zeros(int(ends[-1]), np.int64)
    first[ends - np.asarray(lengths)] = 1
    last[ends - 1] = 1
    return first, last


class Stimulus:
    """The input beats of a check and the golden expectation of its results.

    Parameters
    ----------
    beats : dict of arrays
        Input payload fields (:class:`Packer` names), one row per beat.
    expected : array
        One row per result (a scalar, or one value per lane), as the bench's ``key`` gives.
    ends : bool array, optional
        Per beat: this beat ends a result (default: every beat does).
    starts : bool array, optional
        Per beat: this beat starts a result (default: the beat after an end does). Needed
        when results interleave (the interleaved dot unit): the reset check resumes only
        where no result is open.
    inputs : dict of arrays, optional
        One row per result (broadcastable to ``expected``), logged with a mismatch.
    """

    def __init__(self, beats, expected, *, ends=None, starts=None, inputs=None):
        self.beats = {k: np.asarray(v) for k, v in beats.items()}
        self.n_beats = len(next(iter(self.beats.values())))
        self.expected = np.asarray(expected, np.int64)
        self.ends = (np.ones(self.n_beats, bool) if ends is None
                     else np.asarray(ends, bool).copy())
        if starts is None:
            starts = np.concatenate([[True], self.ends[:-1]]) if self.n_beats else []
        self.starts = np.asarray(starts, bool).copy()
        self.inputs = {k: np.broadcast_to(v, self.expected.shape)
                       for k, v in (inputs or {}).items()}
        if len(self.ends) != self.n_beats or int(self.ends.sum()) != len(self.expected):
            raise ValueError(f"{int(self.ends.sum())} results end in {self.n_beats} beats, "
                             f"{len(self.expected)} expected")
        if self.n_beats and not self.ends[-1]:
            raise ValueError("the last beat must end a result")

    def __len__(self):
        return len(self.expected)

    def head(self, n):
        """The first ``n`` results and their beats."""
        stop = int(np.flatnonzero(self.ends)[n - 1]) + 1 if n else 0
        return Stimulus({k: v[:stop] for k, v in self.beats.items()}, self.expected[:n],
                        ends=self.ends[:stop], starts=self.starts[:stop],
                        inputs={k: v[:n] for k, v in self.inputs.items()})


class StreamBench:
    """One stream unit under test: its ports, payload packers and latency (the one the
    harness built, ``FOURBIT_LATENCY``), and the checks of the module docstring.

    ``key`` maps the dict of unpacked output fields to an array with one row per result,
    compared with :attr:`Stimulus.expected`; ``rng`` draws the gaps and backpressure.
    """

    def __init__(self, dut, unit, key, rng):
        self.dut, self.key, self.rng = dut, key, rng
        self.pin = Packer(unit.i.payload.shape())
        self.pout = Packer(unit.o.payload.shape())
        self.latency = latency()
        if self.latency != unit.latency:
            raise ValueError(f"built with latency {self.latency}, unit has {unit.latency}")
        self.cycle = 0                    # rising edges since set-up
        self._rst = 0                     # rst, driven with the other inputs
        self._holding = False             # the source offers a beat it must hold
        self.refused = 0                  # cycles an offered beat waited (traffic)
        self._driven = {}

    async def setup(self):
        """Start the clock, idle both ports, reset."""
        dut = self.dut
        start_clock(dut)
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        await reset(dut)
        self._driven = {"rst": 0, "i__valid": 0, "o__ready": 0}
        self._ports = {name: getattr(dut, name) for name in
                       ("rst", "i__valid", "i__payload", "i__ready", "o__valid", "o__ready",
                        "o__payload")}
        self._fall = FallingEdge(dut.clk)
        return self

    def _drive(self, name, value):
        """Write ``value`` to port ``name`` unless it holds it already (a write costs a VPI
        call)."""
        if self._driven.get(name) != value:
            self._ports[name].value = value
            self._driven[name] = value

    async def _cycle(self, payload, ready, *, peek=False):
        """One clock cycle: offer ``payload`` (``None``: ``i.valid`` low), set ``o.ready``
        and ``rst`` after the falling edge; sample as the next rising edge sees it. Returns
        ``(taken, o.valid, o.payload)``: the payload is read when a beat is delivered or
        ``peek``."""
        ports = self._ports
        await self._fall
        self._drive("rst", self._rst)
        self._drive("i__valid", int(payload is not None))
        if payload is not None:
            self._drive("i__payload", payload)
        self._drive("o__ready", int(ready))
        await ReadOnly()
        self.cycle += 1
        taken = payload is not None and bool(ports["i__ready"].value)
        valid = bool(ports["o__valid"].value)
        out = ports["o__payload"].value.to_unsigned() if valid and (ready or peek) else None
        return taken, valid, out

    def _results(self, payloads):
        return np.asarray(self.key(self.pout.unpack(payloads)), np.int64)

    async def _drain(self):
        """``o.ready`` high, nothing offered: nothing more may come out."""
        for _ in range(self.latency + DRAIN_CYCLES):
            _, valid, _ = await self._cycle(None, True)
            assert not valid, f"cycle {self.cycle}: a result nobody sent"

    def _offer(self, payloads, sent, valid_prob):
        """The source's beat this cycle: once offered, a beat is held until taken (a cycle
        it waits counts in ``refused``)."""
        if sent < len(payloads) and not self._holding:
            self._holding = self.rng.random() < valid_prob
        return payloads[sent] if self._holding else None

    async def _traffic(self, payloads, n_out, valid_prob, ready_prob, *, until=None):
        """Send ``payloads`` with gaps and take results with backpressure until all went in
        and ``n_out`` came out (with ``until``: as soon as ``until`` came out). Returns the
        beats sent and the result payloads."""
        sent, got = 0, []
        stop = n_out if until is None else until
        limit = self.cycle + 20 * (len(payloads) + n_out) + 10 * self.latency + 1000
        while (sent < len(payloads) and until is None) or len(got) < stop:
            assert self.cycle < limit, f"timed out: {sent} of {len(payloads)} beats in, " \
                                       f"{len(got)} of {stop} results out"
            offer = self._offer(payloads, sent, valid_prob)
            taken, _, out = await self._cycle(offer, self.rng.random() < ready_prob)
            if taken:
                sent, self._holding = sent + 1, False
            elif offer is not None:
                self.refused += 1
            if out is not None:
                got.append(out)
        return sent, got

    async def traffic(self, sb, stim, *, valid_prob=VALID_PROB, ready_prob=READY_PROB):
        """Gaps and backpressure: every result of ``stim``, in order, once, nothing more.
        Returns the cycles an offered beat waited (``i.ready`` low)."""
        self._holding = False
        self.refused = 0
        _, got = await self._traffic(self.pin.pack(**stim.beats), len(stim), valid_prob,
                                     ready_prob)
        await self._drain()
        sb.compare(self._results(got), stim.expected, **stim.inputs)
        return self.refused

    async def full_rate(self, sb, stim):
        """Back to back with ``o.ready`` high: one beat per cycle, and each result exactly
        ``latency`` cycles after the beat that ends it. Checks ``2 * len(stim)`` rows."""
        payloads = self.pin.pack(**stim.beats)
        ends_at, out_at, got = [], [], []
        limit = self.cycle + len(payloads) + self.latency + DRAIN_CYCLES
        for k, payload in enumerate(payloads):
            taken, _, out = await self._cycle(payload, True)
            assert taken, f"i.ready low at beat {k} with o.ready high: not one beat per cycle"
            if stim.ends[k]:
                ends_at.append(self.cycle)
            if out is not None:
                got.append(out)
                out_at.append(self.cycle)
        while len(got) < len(stim) and self.cycle < limit:
            _, _, out = await self._cycle(None, True)
            if out is not None:
                got.append(out)
                out_at.append(self.cycle)
        assert len(got) == len(stim), f"{len(got)} results of {len(stim)} at full rate"
        await self._drain()
        sb.compare(self._results(got), stim.expected, **stim.inputs)
        sb.compare(np.array(out_at) - np.array(ends_at), np.full(len(stim), self.latency))

    async def credit_check(self, sb, stim, credit, *, free=True, ready_prob=CREDIT_READY_PROB):
        """Credit mode (an output FIFO of ``credit`` results, ``hdl.pipeline``): the source
        offers every cycle, the sink is slow, so the FIFO fills and drains over and over.
        A beat that ends a result must wait while ``credit`` results are owed (accepted, not
        yet taken before this cycle's edge); with ``free`` (nothing else may hold a beat:
        no interlock wait in this stimulus) every other offer must be taken at once. Checks
        the results and one row per offer checked; returns ``(offers checked, offers at the
        limit)``, the second asserted > 0."""
        payloads = self.pin.pack(**stim.beats)
        sent, owed, got, taken_, expect = 0, 0, [], [], []
        limit = self.cycle + int(4 * (len(payloads) + len(stim)) / ready_prob) + 1000
        while sent < len(payloads) or len(got) < len(stim):
            assert self.cycle < limit, f"timed out: {sent} of {len(payloads)} beats in"
            offer = payloads[sent] if sent < len(payloads) else None
            taken, _, out = await self._cycle(offer, self.rng.random() < ready_prob)
            if offer is not None:
                room = not stim.ends[sent] or owed < credit
                if free or not room:
                    taken_.append(taken)
                    expect.append(room)
                if taken:
                    owed += int(stim.ends[sent])
                    sent += 1
            if out is not None:
                got.append(out)
                owed -= 1
        await self._drain()
        sb.compare(self._results(got), stim.expected, **stim.inputs)
        taken_, expect = np.array(taken_, np.int64), np.array(expect, np.int64)
        sb.compare(taken_, expect, offer=np.arange(len(expect)))     # i.ready vs the count
        at_limit = int((expect == 0).sum())
        assert at_limit > 0, "the output FIFO never filled: the check saw no full state"
        return len(expect), at_limit

    async def reset_check(self, sb, stim, *, pre_results, valid_prob=VALID_PROB,
                          ready_prob=READY_PROB):
        """The reset in mid-stream of the module docstring, after ``pre_results`` results;
        checks ``len(stim)`` rows, the dropped ones as ``-1``."""
        payloads, ends = self.pin.pack(**stim.beats), stim.ends
        dut = self.dut
        self._holding = False
        sent, got = await self._traffic(payloads, len(stim), valid_prob, ready_prob,
                                        until=pre_results)
        # o.ready low; the source goes on until a result has waited STALL_CYCLES cycles.
        waited, held = 0, None
        limit = self.cycle + STALL_CYCLES + 20 * len(payloads)
        while waited < STALL_CYCLES:
            assert self.cycle < limit, "no result waits on o.ready"
            assert sent < len(payloads), "the stream must outlast the stall"
            taken, valid, out = await self._cycle(self._offer(payloads, sent, valid_prob),
                                                  False, peek=True)
            if taken:
                sent, self._holding = sent + 1, False
            if held is not None:
                assert valid and out == held, f"cycle {self.cycle}: the waiting result " \
                                              f"was not held on o"
            if valid:
                held, waited = out, waited + 1
        # rst and o.ready together, a beat offered: nothing delivered, nothing accepted.
        assert sent < len(payloads), "the stream must outlast the stall"
        self._rst = 1
        for k in range(RESET_CYCLES):
            taken, valid, _ = await self._cycle(payloads[sent], True)
            assert not valid, f"reset cycle {k}: o.valid high, a beat handed over in reset"
            assert not taken, f"reset cycle {k}: i.ready high, a beat accepted in reset"
        self._rst = 0
        # Accounting: results complete before the reset, delivered or in flight.
        done = int(ends[:sent].sum())
        in_flight = done - pre_results
        assert 1 <= in_flight <= self.latency, \
            f"{in_flight} results in flight at the reset (latency {self.latency})"
        # The stream goes on at the first beat (from the first not sent) where no result is
        # open: every result started before it has ended before it.
        open_ = np.cumsum(stim.starts.astype(np.int64) - ends)       # open after each beat
        resume = sent if sent == 0 or open_[sent - 1] == 0 else \
            int(np.flatnonzero(open_[sent - 1:] == 0)[0]) + sent
        first_after = int(ends[:resume].sum())
        dut._log.info("reset: %d beats in, %d results out, %d in flight, %d cut; %d results "
                      "after", sent, pre_results, in_flight, first_after - done,
                      len(stim) - first_after)
        self._holding = False
        _, after = await self._traffic(payloads[resume:], len(stim) - first_after, valid_prob,
                                       ready_prob)
        await self._drain()
        lost = np.full((first_after - pre_results,) + stim.expected.shape[1:], -1)
        want = stim.expected.copy()
        want[pre_results:first_after] = -1
        got = np.concatenate([self._results(got), lost, self._results(after)])
        sb.compare(got, want, **stim.inputs)
