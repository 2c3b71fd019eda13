"""Formal stream rules: the pipeline primitive (``hdl.pipeline``) and every stream unit.

:class:`StreamHold` wraps a unit under free stimulus (payload, ``i.valid``, ``o.ready`` and
the reset are the solver's) and proves by k-induction, for every reachable state:

- once ``o.valid`` is up and ``o.ready`` low, the next cycle (no reset) still offers the same
  beat: the rule every stream consumer relies on;
- while ``rst`` is high nothing is offered or accepted (``o.valid`` and ``i.ready`` low), so a
  result waiting on ``o.ready`` is never handed over during a reset.

``HARNESSES`` maps a name to ``(factory, mode, depth)`` like ``properties.HARNESSES``. The
units are instantiated small (1-2 lanes): the handshake does not depend on the width.
"""

from amaranth import hdl
from amaranth.hdl import Assert, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl import (
    DotProduct,
    FP4Decoder,
    FP16Adder,
    FP16Multiplier,
    LogConverter,
    RangeRescale,
    RangeTracker,
)
from hdl.baselines import FP16DotProduct, FusedFP16DotProduct, Int8DotProduct
from hdl.pipeline import Pipeline


class StreamHold(wiring.Component):
    """A whole unit under free stimulus, with the two stream rules above as assertions."""

    def __init__(self, unit):
        self._unit = unit
        super().__init__({
            "i_payload": In(unit.i.payload.shape()), "i_valid": In(1), "o_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self._unit
        m.d.comb += [dut.i.payload.eq(self.i_payload), dut.i.valid.eq(self.i_valid),
                     dut.o.ready.eq(self.o_ready)]
        rst = hdl.ResetSignal()
        stalled = Signal()
        held = Signal.like(dut.o.payload.as_value())
        m.d.sync += [stalled.eq(dut.o.valid & ~self.o_ready),
                     held.eq(dut.o.payload.as_value())]
        with m.If(stalled & ~rst):
            m.d.comb += Assert(dut.o.valid & (dut.o.payload.as_value() == held))
        with m.If(rst):
            m.d.comb += Assert(~dut.o.valid & ~dut.i.ready)
        return m


class PipelineUnit(wiring.Component):
    """The bare primitive: a 3-rank pipeline of 4-bit data, elastic, lockstep or credit
    (with ``credit``: and its output FIFO never overflows), with a rank that keeps only
    beats whose data is odd (the accumulator pattern)."""

    def __init__(self, lockstep, credit=0):
        self._lockstep = lockstep
        self._credit = credit
        layout = data.StructLayout({"x": 4})
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        odd = Signal()
        pipe = Pipeline(m, self.i, self.o, 3, lockstep=self._lockstep, credit=self._credit,
                        keep={2: odd}, ends=(self.i.payload.x + 1)[0])
        r0 = pipe.rank(0, {"x": self.i.payload.x}, "r0")
        r1 = pipe.rank(1, {"x": r0.x + 1}, "r1")
        m.d.comb += odd.eq(r1.x[0])
        r2 = pipe.register(2, r1.x, "r2")
        m.d.comb += pipe.payload.x.eq(r2)
        if self._credit:        # the credits keep the output FIFO from ever overflowing
            fifo = pipe.fifo
            m.d.comb += Assert(~fifo.w_en | fifo.w_rdy)
            # The results owed are those in the ranks (that will be kept) and in the FIFO.
            in_ranks = ((pipe.valid[0] & (r0.x + 1)[0]) + (pipe.valid[1] & r1.x[0])
                        + pipe.valid[2])
            m.d.comb += Assert(pipe.owed + pipe.fresh == fifo.level + in_ranks)
            # The count's and the FIFO's registered flags are their comparisons (hdl.
            # pipeline): stated, they make the harness inductive.
            n = self._credit
            m.d.comb += [Assert(pipe.owed + pipe.fresh <= n),
                         Assert(pipe.at_limit == (pipe.owed >= n)),
                         Assert(pipe.near_limit == (pipe.owed >= n - 1)),
                         Assert(fifo.inner_level <= fifo.depth - 1),
                         Assert(fifo.inner_any == (fifo.inner_level != 0)),
                         Assert(fifo.inner_room == (fifo.inner_level != fifo.depth - 1))]
        return m


HARNESSES = {
    "stream_hold_pipeline_elastic": (lambda: StreamHold(PipelineUnit(False)), "prove", 4),
    "stream_hold_pipeline_lockstep": (lambda: StreamHold(PipelineUnit(True)), "prove", 4),
    "stream_hold_pipeline_credit": (lambda: StreamHold(PipelineUnit(False, 2)), "prove", 6),
    "stream_hold_rescale": (lambda: StreamHold(RangeRescale(2, "int4")), "prove", 3),
    "stream_hold_log": (lambda: StreamHold(LogConverter(2)), "prove", 3),
    "stream_hold_decoder": (lambda: StreamHold(FP4Decoder(2)), "prove", 3),
    "stream_hold_tracker": (lambda: StreamHold(RangeTracker(2)), "prove", 4),
    "stream_hold_fp16_add": (lambda: StreamHold(FP16Adder()), "prove", 3),
    "stream_hold_fp16_mul": (lambda: StreamHold(FP16Multiplier()), "prove", 3),
    "stream_hold_dot_fp16": (lambda: StreamHold(DotProduct(1, "fp16")), "prove", 3),
    "stream_hold_dot_exact": (lambda: StreamHold(DotProduct(1, "exact")), "prove", 3),
    "stream_hold_dot_interleaved": (
        lambda: StreamHold(DotProduct(1, "fp16", slots=4, acc_stages=2)), "prove", 3),
    "stream_hold_dot_credit": (
        lambda: StreamHold(DotProduct(1, "exact", acc_stages=1, out_depth=2)), "prove", 6),
    "stream_hold_fp16_dot": (lambda: StreamHold(FP16DotProduct(2)), "prove", 3),
    "stream_hold_fused_fp16_dot": (lambda: StreamHold(FusedFP16DotProduct(2)), "prove", 3),
    "stream_hold_int8_dot": (lambda: StreamHold(Int8DotProduct(2)), "prove", 3),
}


class UnheldOutput(wiring.Component):
    """The bug the dot units had before ``hdl.pipeline``: a one-rank stream whose output
    register is cleared by the synchronous reset but not gated by it, so a beat waiting on
    ``o.ready`` is handed over in the first cycle of a reset. :class:`StreamHold` must
    refute it (``MUTANTS``), which shows that the reset rule is not vacuous."""

    i: In(stream.Signature(data.StructLayout({"x": 4})))
    o: Out(stream.Signature(data.StructLayout({"x": 4})))

    def elaborate(self, platform):
        m = Module()
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en & ~hdl.ResetSignal())
        with m.If(en):
            m.d.sync += [self.o.valid.eq(self.i.valid & self.i.ready),
                         self.o.payload.eq(self.i.payload)]
        return m


MUTANTS = {
    "stream_hold_mutant_unheld_output": (lambda: StreamHold(UnheldOutput()), "prove", 3),
}
