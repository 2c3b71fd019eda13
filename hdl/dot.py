"""The N-lane dot-product unit: multiply lanes, exact adder tree, normalizer, accumulator."""

import operator

from amaranth.hdl import Module, Mux, ResetSignal, Signal, Value, signed
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


def _tree_level(values):
    """One level of the balanced binary adder tree. Amaranth widens every ``+`` by one bit,
    so no level can overflow: after ``ceil(log2(len(values)))`` levels the root has
    ``width + ceil(log2(len(values)))`` bits."""
    return [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
            for k in range(0, len(values), 2)]


def _lane_bit(v, k):
    """Lane ``k``'s bit of a per-lane flag vector, or the one shared flag bit."""
    return v[k] if len(v) > 1 else v


def sum_width(lanes):
    """Beat sum width: |product| <= 15 << 12 < 2**16 (17 bits signed), times ``lanes``."""
    return FP4_PRODUCT_SHAPE.width + (lanes - 1).bit_length()


def beat_sum(m, beat, ctx, lanes, stage=None):
    """The lanes and the exact adder tree: ``(sum, products, operands)`` of one beat.

    ``beat`` supplies the operand arrays ``a``, ``b``; ``ctx`` the ``mode`` and signedness
    (``a_signed``, ``b_signed``: one bit for every lane, or one bit per lane).
    The sum has :func:`sum_width` bits, which it never overflows (proven in
    ``verif/formal/datapath.py``). ``stage``, when given, is called as
    ``stage(values, level) -> values`` on the lanes' outputs (level 0: the forward products,
    the backward lanes in ones' complement, the count of negative backward lanes and
    ``mode``, before the mode select) and on the partial sums
    after each tree level (1 .. log2(lanes)) and may return registered copies of the same
    shapes (the pipelined unit); ``products`` are the selected lane products, ``operands``
    the values the tree adds (lane values, then the carry count), whose sum is theirs.
    """
    fwd_p, bwd_x, products = [], [], []
    for k in range(lanes):
        fwd = m.submodules[f"int4_lane{k}"] = Int4MulLane()
        bwd = m.submodules[f"fp4_lane{k}"] = FP4ShiftLane()
        m.d.comb += [
            fwd.a.eq(beat.a[k]), fwd.b.eq(beat.b[k]),
            fwd.a_signed.eq(_lane_bit(ctx.a_signed, k)),
            fwd.b_signed.eq(_lane_bit(ctx.b_signed, k)),
            bwd.g.eq(beat.a[k]), bwd.a.eq(beat.b[k]),
            bwd.a_signed.eq(_lane_bit(ctx.b_signed, k)),
        ]
        # Backward lanes enter the tree in ones' complement: mag ^ sign = p - sign. The
        # missing +1 of every negative lane is added once, as the count `carries` below:
        # no lane has a negation (a carry chain) of its own.
        x = Signal(FP4_PRODUCT_SHAPE, name=f"ones{k}")
        m.d.comb += x.eq(bwd.mag ^ beat.a[k][FP4.SIGN_BIT].replicate(len(x)))
        fwd_p.append(fwd.p)
        bwd_x.append(x)
        # The lane products themselves, for checking (the formal harness); unused in the sum.
        p = Signal(FP4_PRODUCT_SHAPE, name=f"product{k}")
        m.d.comb += p.eq(Mux(ctx.mode == MODE_BACKWARD, bwd.p, fwd.p))
        products.append(p)
    carries = Signal(range(lanes + 1), name="carries")
    m.d.comb += carries.eq(sum(beat.a[k][FP4.SIGN_BIT] for k in range(lanes)))
    mode = ctx.mode
    if stage:           # the rank sits between the lanes and the mode select
        regs = stage(fwd_p + bwd_x + [carries, mode], 0)
        fwd_p, bwd_x, carries, mode = regs[:lanes], regs[lanes:2 * lanes], regs[-2], regs[-1]
    backward = mode == MODE_BACKWARD
    values = [Mux(backward, bwd_x[k], fwd_p[k]) for k in range(lanes)]
    values.append(Mux(backward, carries, 0))
    operands = values
    level = 0
    while len(values) > 1:
        values = _tree_level(values)
        level += 1
        if stage:
            values = stage(values, level)
    total = Signal(signed(sum_width(lanes)), name="beat_sum")
    m.d.comb += total.eq(values[0])
    return total, products, operands


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

    Timing: one beat per cycle; back-to-back dot products need no idle cycle. ``latency``
    cycles from the rising edge that transfers the ``last`` beat to the one that transfers
    its result on ``o`` (``o.ready`` high): ``L + 5 + R`` (``"fp16"``: 23 for 8 lanes) or
    ``L + 4 + R`` (``"exact"``: 23 for 8 lanes), with ``L = log2(lanes) + 1`` adder-tree
    levels (the lane values plus the count of negative backward lanes, see below) and
    ``R`` the rounder's ranks: one at every register point of :class:`FP16Rounder`
    (``rounder_stages``; 15 for the 8-lane exact register, 14 for an 8-lane beat sum).
    Pipeline (``|`` = a register rank, all of them loading together)::

        both:   i -> context select | operands, per-lane signedness | int4 and fp4 lanes |
                mode select, tree level 1 | tree level 2 | ... | tree level L | sum ->
        fp16:   -> chunk FP16Rounder (R ranks) | chunk code |
                acc <- first ? chunk : acc + chunk (FP16AddCore, the loop) | o
        exact:  -> acc <- (first ? 0 : acc) + sum (the loop) |
                final FP16Rounder of acc (R ranks) | o

    Backward lanes enter the tree as ``mag ^ sign`` (ones' complement) and the number of
    negative lanes is added once as one more tree operand, so no lane needs a negation.

    Fmax is set by the ``"fp16"`` loop, a whole binary16 addition per cycle (swap, align,
    add, normalize, round, pack); in ``"exact"`` mode by the single-cycle lanes of
    :mod:`hdl.lanes` (the 4 x 4-bit LUT multiplier, the fp4 shift and negate).

    Each rank carries the beat's valid, ``first``, ``last`` and exponent offset beside its
    data; the accumulator loads only on valid beats, and the rounder after the exact
    accumulator works on the register ``acc`` itself. Every rank advances together when the
    output register is free (``~o.valid | o.ready``), so backpressure stalls the whole
    pipeline without losing or repeating beats; ``i.ready`` is that same condition. The one
    loop that cannot be pipelined is the accumulator: in ``"fp16"`` mode an fp16 addition
    with its rounding per beat (the paper's sequential rounding order), in ``"exact"`` mode a
    ``acc_width``-bit integer addition. A synchronous reset empties the pipeline (beats in
    flight are dropped); no beat is accepted during reset.

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
    def rounder_stages(self):
        """Register ranks of the chunk (fp16) or final (exact) rounder: one per point."""
        if self._accumulator == "fp16":
            return len(FP16Rounder.points(self.sum_width, True))
        return len(FP16Rounder.points(self.acc_width, True))

    @property
    def latency(self):
        """Cycles from the transfer of a ``last`` beat to the transfer of its result."""
        tree = self._lanes.bit_length()     # levels for lanes + 1 operands (the carries)
        # input, products, tree levels, then (fp16) the chunk rounder's ranks, chunk code,
        # acc, o, or (exact) acc, the final rounder's ranks, o
        if self._accumulator == "fp16":
            return 2 + tree + self.rounder_stages + 3
        return 2 + tree + 1 + self.rounder_stages + 1

    @property
    def module_name(self):
        return f"dot{self._lanes}_{self._accumulator}"

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        beat = self.i.payload
        rst = ResetSignal("sync", allow_reset_less=True)
        # Every rank advances when the output register is free (module docstring).
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en & ~rst)]

        # --- context: taken from the `first` beat, held for the rest of the dot product ----
        ctx_layout = data.StructLayout({"mode": 1, "a_signed": 1, "b_signed": 1,
                                        "phase": 1, "g": G_SHAPE})
        ctx_reg = Signal(ctx_layout)
        ctx = Signal(ctx_layout)
        for name in ("mode", "a_signed", "b_signed", "phase", "g"):
            m.d.comb += getattr(ctx, name).eq(Mux(beat.first, getattr(beat, name),
                                                  getattr(ctx_reg, name)))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += ctx_reg.eq(ctx)
        exp = Signal(EXP_SHAPE)
        bias = -FP4.PRODUCT_FRAC
        m.d.comb += exp.eq(Mux(ctx.mode == MODE_BACKWARD, ctx.phase + bias - ctx.g, -ctx.g))

        # --- input rank: operands, resolved context and exponent offset --------------------
        # side: the beat's valid, first, last and exponent offset, riding along the ranks
        side = self._rank(m, en, {"valid": self.i.valid & self.i.ready, "first": beat.first,
                                  "last": beat.last, "exp": exp}, "in")
        # Signedness per lane, pre-AND-ed with the code's top bit: an operand code below 8
        # reads the same signed or unsigned, so lane k sees the same operands, while every
        # lane gets a flag register of its own (no high-fanout flag net; registers that
        # differ cannot be merged by synthesis).
        in_beat = Signal(self.input_layout(n), reset_less=True)
        in_ctx = Signal(data.StructLayout({"mode": 1, "a_signed": n, "b_signed": n}),
                        reset_less=True)
        with m.If(en):
            m.d.sync += [in_beat.eq(beat), in_ctx.mode.eq(ctx.mode)]
            for k in range(n):
                m.d.sync += [in_ctx.a_signed[k].eq(ctx.a_signed & beat.a[k][-1]),
                             in_ctx.b_signed[k].eq(ctx.b_signed & beat.b[k][-1])]

        # --- lanes and the exact adder tree, a rank after the lanes and every level --------

        def stage(values, level):
            side.update(self._rank(m, en, side, f"s{level}"))
            return [self._reg(m, en, v, f"s{level}_v{k}") for k, v in enumerate(values)]

        total, _, _ = beat_sum(m, in_beat, in_ctx, n, stage)
        if self._accumulator == "fp16":
            self._fp16_tail(m, en, total, side)
        else:
            self._exact_tail(m, en, total, side)
        return m

    @staticmethod
    def _reg(m, en, value, name, reset=False):
        """A register loading ``value`` while ``en``; only valid bits have a reset."""
        value = Value.cast(value)
        r = Signal(value.shape(), name=name, reset_less=not reset)
        with m.If(en):
            m.d.sync += r.eq(value)
        return r

    def _rank(self, m, en, side, name):
        return {k: self._reg(m, en, v, f"{name}_{k}", reset=k == "valid")
                for k, v in side.items()}

    def _fp16_tail(self, m, en, total, side):
        # The beat sum rounded to fp16 (the paper's chunk rounding), pipelined.
        rnd = m.submodules.chunk_rounder = FP16Rounder(self.sum_width, EXP_SHAPE.width,
                                                       signed=True,
                                                       stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(total), rnd.exp.eq(side["exp"]), rnd.en.eq(en)]
        flow = {k: side[k] for k in ("valid", "first", "last")}
        for k in range(rnd.latency):
            flow = self._rank(m, en, flow, f"r{k}")
        # The chunk code: a rank of its own, so that the loop starts from a register.
        chunk = self._reg(m, en, rnd.result, "chunk")
        chunk_flags = self._reg(m, en, rnd.flags, "chunk_flags")
        flow = self._rank(m, en, flow, "c")
        # Accumulator: acc <- first ? chunk : acc + chunk (IEEE binary16, RNE).
        acc = Signal(FP16.BITS)
        acc_flags = Signal(FLAGS_SHAPE)
        add = m.submodules.accumulator = FP16AddCore()
        m.d.comb += [add.a.eq(acc), add.b.eq(chunk)]
        done = Signal()                 # acc holds a finished dot product
        with m.If(en):
            m.d.sync += done.eq(flow["valid"] & flow["last"])
            with m.If(flow["valid"]):
                m.d.sync += [
                    acc.eq(Mux(flow["first"], chunk, add.result)),
                    acc_flags.eq(Mux(flow["first"], chunk_flags,
                                     acc_flags | chunk_flags | add.flags)),
                ]
            m.d.sync += [self.o.valid.eq(done), self.o.payload.result.eq(acc),
                         self.o.payload.flags.eq(acc_flags)]

    def _exact_tail(self, m, en, total, side):
        # Accumulate the beat sums; the final rounder works on the register itself.
        acc = Signal(signed(self.acc_width))
        acc_exp = Signal(EXP_SHAPE)
        done = Signal()                 # acc holds a finished dot product
        with m.If(en):
            m.d.sync += done.eq(side["valid"] & side["last"])
            with m.If(side["valid"]):
                # <= 2**16 beats: exact (verif/formal/datapath.py)
                m.d.sync += [acc.eq(Mux(side["first"], 0, acc) + total),
                             acc_exp.eq(side["exp"])]
        rnd = m.submodules.final_rounder = FP16Rounder(self.acc_width, EXP_SHAPE.width,
                                                       signed=True,
                                                       stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(acc), rnd.exp.eq(acc_exp), rnd.en.eq(en)]
        valid = done
        for k in range(rnd.latency):
            valid = self._reg(m, en, valid, f"r{k}_valid", reset=True)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(valid), self.o.payload.result.eq(rnd.result),
                         self.o.payload.flags.eq(rnd.flags)]
