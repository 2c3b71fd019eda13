"""The N-lane dot-product unit: multiply lanes, exact adder tree, normalizer, accumulator."""

import operator

from amaranth.hdl import Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.dot import ACCUMULATORS, MODES
from golden.formats import FP4, FP16, INT4

from .fp16 import FP16AddCore
from .lanes import FP4_PRODUCT_SHAPE, FP4ShiftLane, Int4MulLane
from .rounder import FLAGS_SHAPE, FP16Rounder

__all__ = ["DotProduct", "beat_sum", "sum_width", "MODE_FORWARD", "MODE_BACKWARD",
           "G_SHAPE", "MAX_BEATS_LOG2"]

MODE_FORWARD = MODES.index("forward")     # 0: int4/uint4 x int4/uint4
MODE_BACKWARD = MODES.index("backward")   # 1: fp4 x int4/uint4
G_SHAPE = signed(6)                        # GradScale exponent g: -32 .. 31
MAX_BEATS_LOG2 = 16                        # the exact accumulator holds 2**16 beats exactly
# Scale exponent of a beat sum: -g (forward) or phase - 6 - g (backward): -37 .. 32.
EXP_SHAPE = signed(7)
LANES_MAX = 64


def _tree_sum(values):
    """Balanced binary adder tree. Amaranth widens every ``+`` by one bit, so no level can
    overflow: the root has ``width + ceil(log2(len(values)))`` bits."""
    values = list(values)
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


def sum_width(lanes):
    """Beat sum width: |product| <= 15 << 12 < 2**16 (17 bits signed), times ``lanes``."""
    return FP4_PRODUCT_SHAPE.width + (lanes - 1).bit_length()


def beat_sum(m, beat, ctx, lanes):
    """The lanes and the exact adder tree: ``(sum, products)`` of one beat.

    ``beat`` supplies the operand arrays ``a``, ``b``; ``ctx`` the ``mode`` and signedness.
    The sum has :func:`sum_width` bits, which it never overflows (proven in
    ``verif/formal/datapath.py``).
    """
    products = []
    for k in range(lanes):
        fwd = m.submodules[f"int4_lane{k}"] = Int4MulLane()
        bwd = m.submodules[f"fp4_lane{k}"] = FP4ShiftLane()
        p = Signal(FP4_PRODUCT_SHAPE, name=f"product{k}")
        m.d.comb += [
            fwd.a.eq(beat.a[k]), fwd.b.eq(beat.b[k]),
            fwd.a_signed.eq(ctx.a_signed), fwd.b_signed.eq(ctx.b_signed),
            bwd.g.eq(beat.a[k]), bwd.a.eq(beat.b[k]), bwd.a_signed.eq(ctx.b_signed),
            p.eq(Mux(ctx.mode == MODE_BACKWARD, bwd.p, fwd.p)),
        ]
        products.append(p)
    total = Signal(signed(sum_width(lanes)), name="beat_sum")
    m.d.comb += total.eq(_tree_sum(products))
    return total, products


class DotProduct(wiring.Component):
    """Dot products of 4-bit operands, ``lanes`` multiply-accumulates per cycle, fp16 out.

    Each input beat carries ``lanes`` operand pairs. Every lane forms an exact product: in
    forward mode ``a * b`` of two 4-bit integers (:class:`Int4MulLane`), in backward mode the
    fp4 gradient ``a`` times the integer ``b`` by shifting (:class:`FP4ShiftLane`, units of
    ``2**-6``). A balanced adder tree sums the lanes exactly. The beat sum ``S`` stands for
    ``S * 2**(-g)`` (forward) or ``S * 2**(phase - 6 - g)`` (backward): the fp4 bias, the TPR
    phase and GradScale are applied as one exponent offset inside the normalizer, never by a
    multiply. Then, per ``accumulator``:

    - ``"fp16"`` (the paper): each beat sum is rounded to fp16 (RNE) by :class:`FP16Rounder`
      and added into an fp16 accumulator by an IEEE binary16 adder (:class:`FP16AddCore`);
      the ``first`` beat loads the accumulator instead. Flags are OR-ed over the dot product.
    - ``"exact"``: beat sums add into a two's complement register of
      ``17 + log2(lanes) + 16`` bits, which holds any dot product of up to ``2**16`` beats
      without error; at ``last`` it is rounded once to fp16.

    Results are bit-exact with :func:`golden.dot` (same order of rounding, same flags).

    Context: ``mode``, ``a_signed``, ``b_signed``, ``phase`` and ``g`` are read on the
    ``first`` beat of a dot product and hold for all of its beats (they are ignored on the
    others). A dot product ends with a ``last`` beat; a beat with both is a one-beat dot
    product. After reset the context is forward, unsigned, even, ``g = 0``.

    Timing: one beat per cycle; back-to-back dot products need no idle cycle. ``latency`` = 3
    cycles from the transfer of the ``last`` beat to its result on ``o`` (``o.ready`` high).
    Backpressure stalls the pipeline without losing or repeating beats; no beat is accepted
    during reset.

    Parameters
    ----------
    lanes : int
        Operand pairs per beat: a power of two from 1 to 64 (default 8).
    accumulator : str
        ``"fp16"`` (default) or ``"exact"``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout))``
        ``a``, ``b``: ``ArrayLayout(4, lanes)`` operand codes (lane 0 in the low bits);
        ``mode`` (0 forward, 1 backward), ``a_signed``, ``b_signed`` (1: int4, 0: uint4;
        ``a_signed`` is unused in backward mode), ``phase`` (TPR phase bit), ``g``
        (``signed(6)``), ``first``, ``last``.
    o : ``Out(stream.Signature(StructLayout))``
        ``result``: fp16 code; ``flags``: ``inexact | underflow | overflow | invalid``.
    """

    latency = 3

    def __init__(self, lanes=8, accumulator="fp16"):
        try:
            lanes = operator.index(lanes)
        except TypeError:
            raise TypeError(f"lanes must be an integer, not {lanes!r}") from None
        if lanes < 1 or lanes > LANES_MAX or lanes & (lanes - 1):
            raise ValueError(f"lanes must be a power of two from 1 to {LANES_MAX}, not {lanes}")
        if accumulator not in ACCUMULATORS:
            raise ValueError(f"accumulator must be one of {ACCUMULATORS}, not {accumulator!r}")
        self._lanes = lanes
        self._accumulator = accumulator
        super().__init__({
            "i": In(stream.Signature(self.input_layout(lanes))),
            "o": Out(stream.Signature(self.output_layout())),
        })

    @staticmethod
    def input_layout(lanes):
        """The input beat::

            | last | first | g[5:0] | phase | b_signed | a_signed | mode | b[lanes] | a[lanes] |
              MSB                                                                    LSB
        """
        return data.StructLayout({
            "a": data.ArrayLayout(INT4.bits, lanes),
            "b": data.ArrayLayout(INT4.bits, lanes),
            "mode": 1, "a_signed": 1, "b_signed": 1, "phase": 1,
            "g": G_SHAPE, "first": 1, "last": 1,
        })

    @staticmethod
    def output_layout():
        return data.StructLayout({"result": FP16.BITS, "flags": FLAGS_SHAPE})

    @property
    def lanes(self):
        return self._lanes

    @property
    def accumulator(self):
        return self._accumulator

    @property
    def sum_width(self):
        """Beat sum width: |product| <= 15 << 12 < 2**16, times ``lanes``: 17 + log2(lanes)."""
        return sum_width(self._lanes)

    @property
    def acc_width(self):
        """Exact register width: a beat sum times 2**16 beats."""
        return self.sum_width + MAX_BEATS_LOG2

    @property
    def module_name(self):
        return f"dot{self._lanes}_{self._accumulator}"

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        beat = self.i.payload
        rst = ResetSignal("sync", allow_reset_less=True)

        # --- context: taken from the `first` beat, held for the rest of the dot product ----
        ctx_layout = data.StructLayout({"mode": 1, "a_signed": 1, "b_signed": 1,
                                        "phase": 1, "g": G_SHAPE})
        ctx_reg = Signal(ctx_layout)
        ctx = Signal(ctx_layout)
        for name in ("mode", "a_signed", "b_signed", "phase", "g"):
            m.d.comb += getattr(ctx, name).eq(Mux(beat.first, getattr(beat, name),
                                                  getattr(ctx_reg, name)))

        # --- lanes and the exact adder tree -------------------------------------------------
        beat_sum_, _ = beat_sum(m, beat, ctx, n)
        exp = Signal(EXP_SHAPE)
        bias = -FP4.PRODUCT_FRAC
        m.d.comb += exp.eq(Mux(ctx.mode == MODE_BACKWARD, ctx.phase + bias - ctx.g, -ctx.g))

        # --- handshake: stage A (beat sum), stage B, output register --------------------------
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_sum = Signal(signed(self.sum_width))
        a_exp = Signal(EXP_SHAPE)
        b_valid = Signal()
        out_free = ~self.o.valid | self.o.ready
        a_leaves = Signal()        # stage A's beat moves on this cycle (set by the tail)
        take_a = ~a_valid | a_leaves
        m.d.comb += self.i.ready.eq(take_a & ~rst)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += ctx_reg.eq(ctx)
        with m.If(take_a):
            m.d.sync += [
                a_valid.eq(self.i.valid & ~rst), a_sum.eq(beat_sum_), a_exp.eq(exp),
                a_first.eq(beat.first), a_last.eq(beat.last),
            ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        if self._accumulator == "fp16":
            self._fp16_tail(m, a_valid, a_sum, a_exp, a_first, a_last, b_valid, a_leaves,
                            out_free)
        else:
            self._exact_tail(m, a_valid, a_sum, a_exp, a_first, a_last, b_valid, a_leaves,
                             out_free)
        return m

    def _fp16_tail(self, m, a_valid, a_sum, a_exp, a_first, a_last, b_valid, a_leaves,
                   out_free):
        # Stage B: the beat sum rounded to fp16 (the paper's chunk rounding).
        rnd = m.submodules.chunk_rounder = FP16Rounder(self.sum_width, EXP_SHAPE.width,
                                                       signed=True)
        m.d.comb += [rnd.value.eq(a_sum), rnd.exp.eq(a_exp)]
        b_chunk = Signal(FP16.BITS)
        b_flags = Signal(FLAGS_SHAPE)
        b_first, b_last = Signal(), Signal()
        # Stage B hands its beat to the accumulator when it is not a `last` beat, or when the
        # output register is free for the result.
        consume_b = b_valid & (~b_last | out_free)
        take_b = ~b_valid | consume_b
        m.d.comb += a_leaves.eq(take_b)
        with m.If(take_b):
            m.d.sync += [b_valid.eq(a_valid), b_chunk.eq(rnd.result), b_flags.eq(rnd.flags),
                         b_first.eq(a_first), b_last.eq(a_last)]
        # Accumulator: acc <- first ? chunk : acc + chunk (IEEE binary16, RNE).
        acc = Signal(FP16.BITS)
        acc_flags = Signal(FLAGS_SHAPE)
        add = m.submodules.accumulator = FP16AddCore()
        new_acc = Signal(FP16.BITS)
        new_flags = Signal(FLAGS_SHAPE)
        m.d.comb += [
            add.a.eq(acc), add.b.eq(b_chunk),
            new_acc.eq(Mux(b_first, b_chunk, add.result)),
            new_flags.eq(Mux(b_first, b_flags, acc_flags | b_flags | add.flags)),
        ]
        with m.If(consume_b):
            m.d.sync += [acc.eq(new_acc), acc_flags.eq(new_flags)]
            with m.If(b_last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.result.eq(new_acc),
                             self.o.payload.flags.eq(new_flags)]

    def _exact_tail(self, m, a_valid, a_sum, a_exp, a_first, a_last, b_valid, a_leaves,
                    out_free):
        # Accumulate stage A's beat sums; at `last`, stage B holds the total for rounding.
        acc = Signal(signed(self.acc_width))
        new_acc = Signal(signed(self.acc_width))
        m.d.comb += new_acc.eq(Mux(a_first, a_sum, acc + a_sum))   # <= 2**16 beats: exact
        b_total = Signal(signed(self.acc_width))
        b_exp = Signal(EXP_SHAPE)
        consume_b = b_valid & out_free
        take_b = ~b_valid | consume_b
        # A beat leaves stage A when it is not `last`, or when stage B is free for the total.
        consume_a = a_valid & (~a_last | take_b)
        m.d.comb += a_leaves.eq(consume_a)
        with m.If(consume_a):
            m.d.sync += acc.eq(new_acc)
        with m.If(take_b):
            m.d.sync += [b_valid.eq(consume_a & a_last), b_total.eq(new_acc), b_exp.eq(a_exp)]
        rnd = m.submodules.final_rounder = FP16Rounder(self.acc_width, EXP_SHAPE.width,
                                                       signed=True)
        m.d.comb += [rnd.value.eq(b_total), rnd.exp.eq(b_exp)]
        with m.If(consume_b):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.result.eq(rnd.result),
                         self.o.payload.flags.eq(rnd.flags)]
