"""Bench side: ``amaranth.lib.stream`` drivers for cocotb, and payload packing.

Amaranth flattens a stream port ``i`` to ``i__payload`` (one bus, whatever its layout),
``i__valid`` and ``i__ready``. Both drivers act on the falling clock edge and sample the
handshake in the ReadOnly phase after it: the values every signal holds when the next rising
edge transfers a beat. A beat moves when ``valid & ready`` on that rising edge.

:class:`StreamSource` honours the stream rule that ``valid`` stays high until the beat is
taken; it inserts random idle cycles between beats (``valid_prob``). :class:`StreamSink`
drops ``ready`` at random (``ready_prob``) to apply backpressure.
"""

import cocotb
import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


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
    """Pack NumPy arrays of field values into payload integers and back.

    ``layout`` is an Amaranth shape: a plain width, a ``StructLayout`` or an ``ArrayLayout``
    (nested freely). Fields are addressed by their path joined with ``.``; an ``ArrayLayout``
    of scalars is one field whose arrays carry a trailing axis, element 0 in the low bits.
    """

    def __init__(self, layout):
        self.fields = {}                     # name -> (offset, width, signed, count)
        self.width = Shape.cast(layout).width
        self._walk(layout, "", 0)

    def _walk(self, layout, name, offset):
        if isinstance(layout, data.StructLayout):
            for fname, field in layout:
                self._walk(field.shape, f"{name}.{fname}" if name else fname,
                           offset + field.offset)
        elif isinstance(layout, data.ArrayLayout) and not isinstance(layout.elem_shape,
                                                                      data.Layout):
            s = Shape.cast(layout.elem_shape)
            self.fields[name or "payload"] = (offset, s.width, s.signed, layout.length)
        else:
            s = Shape.cast(layout)
            self.fields[name or "payload"] = (offset, s.width, s.signed, 0)

    def pack(self, n, **arrays):
        """``n`` payload integers; unnamed fields are 0."""
        unknown = set(arrays) - set(self.fields)
        if unknown:
            raise KeyError(f"no such payload fields: {sorted(unknown)}; "
                           f"fields are {sorted(self.fields)}")
        out = [0] * n
        for name, values in arrays.items():
            offset, width, _, count = self.fields[name]
            v = np.asarray(values, dtype=object)
            mask = (1 << width) - 1
            if count:
                v = np.broadcast_to(v, (n, count))
                cols = [(v[:, k], offset + k * width) for k in range(count)]
            else:
                cols = [(np.broadcast_to(v, (n,)), offset)]
            for col, off in cols:
                for j in range(n):
                    out[j] |= (int(col[j]) & mask) << off
        return out

    def unpack(self, ints):
        """Payload integers -> dict of int64 arrays (signed fields sign-extended)."""
        ints = [int(x) for x in ints]
        res = {}
        for name, (offset, width, signed, count) in self.fields.items():
            mask = (1 << width) - 1
            offs = [offset + k * width for k in range(count)] if count else [offset]
            arr = np.array([[(x >> o) & mask for o in offs] for x in ints],
                           dtype=np.int64).reshape(len(ints), len(offs))
            if signed:
                arr = np.where(arr >= (1 << (width - 1)), arr - (1 << width), arr)
            res[name] = arr if count else arr[:, 0]
        return res


class StreamSource:
    """Drive the stream port ``name`` of ``dut`` with payload integers.

    ``sent`` lists the payloads the DUT accepted, in order.
    """

    def __init__(self, dut, name="i", *, rng=None, valid_prob=1.0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng = rng or np.random.default_rng(0)
        self.valid_prob = valid_prob
        self.sent = []
        self.valid.value = 0

    async def send(self, payloads):
        payloads = list(payloads)
        i = 0
        holding = False
        while i < len(payloads):
            await FallingEdge(self.clk)
            if not holding:
                holding = self.valid_prob >= 1.0 or self.rng.random() < self.valid_prob
            self.valid.value = int(holding)
            self.payload.value = payloads[i]
            await ReadOnly()
            if holding and self.ready.value:
                self.sent.append(payloads[i])
                i += 1
                holding = False
        await FallingEdge(self.clk)
        self.valid.value = 0


class StreamSink:
    """Accept beats from the stream port ``name``; ``received`` lists their payloads."""

    def __init__(self, dut, name="o", *, rng=None, ready_prob=1.0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng = rng or np.random.default_rng(1)
        self.ready_prob = ready_prob
        self.received = []
        self.cycles = 0
        self.ready.value = 0
        self._task = None

    def start(self):
        self._task = cocotb.start_soon(self._run())
        return self

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self):
        while True:
            await FallingEdge(self.clk)
            r = self.ready_prob >= 1.0 or self.rng.random() < self.ready_prob
            self.ready.value = int(r)
            await ReadOnly()
            self.cycles += 1
            if r and self.valid.value:
                self.received.append(int(self.payload.value))

    async def wait_for(self, n, timeout_cycles):
        """Wait until ``n`` beats have arrived; fail after ``timeout_cycles`` clock cycles."""
        for _ in range(timeout_cycles):
            if len(self.received) >= n:
                return
            await RisingEdge(self.clk)
        raise AssertionError(f"timed out: {len(self.received)} of {n} beats after "
                             f"{timeout_cycles} cycles")
