"""The N-lane dot-product unit: multiply lanes, exact adder tree, normalizer, accumulator."""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import ACCUMULATORS, FP4, FP16, G_BITS_MIN, INT4, MODES

from .fp16 import FP16AddCore
from .lanes import FP4_PRODUCT_SHAPE, FP4ShiftLane, Int4MulLane
from .params import FLAGS_SHAPE, check_g_bits, g_range, lanes_pow2
from .pipeline import Pipeline
from .rounder import FP16Rounder

__all__ = ["DotProduct", "beat_sum", "sum_width", "exp_shape", "MODE_FORWARD",
           "MODE_BACKWARD", "MAX_BEATS_LOG2"]

MODE_FORWARD = MODES.index("forward")     # 0: int4/uint4 x int4/uint4
MODE_BACKWARD = MODES.index("backward")   # 1: fp4 x int4/uint4
MAX_BEATS_LOG2 = 16                        # the exact accumulator holds 2**16 beats exactly


def exp_shape(g_bits):
    """Scale exponent of a beat sum: ``-g`` (forward) or ``phase - 6 - g`` (backward), over
    the range of a ``g_bits``-bit ``g`` (6 bits: -37 .. 32, ``signed(7)``)."""
    g_lo, g_hi = g_range(g_bits)
    return Shape.cast(range(-FP4.PRODUCT_FRAC - g_hi, -g_lo + 1))


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
            bwd.a.eq(beat.a[k]), bwd.b.eq(beat.b[k]),
            bwd.b_signed.eq(_lane_bit(ctx.b_signed, k)),
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

    def __init__(self, lanes=8, accumulator="fp16", *, g_bits=G_BITS_MIN):
        lanes = lanes_pow2(lanes)
        if accumulator not in ACCUMULATORS:
            raise ValueError(f"accumulator must be one of {ACCUMULATORS}, not {accumulator!r}")
        self._lanes = lanes
        self._accumulator = accumulator
        self._g_bits = check_g_bits(g_bits)
        super().__init__({
            "i": In(stream.Signature(self.input_layout(lanes, self._g_bits))),
            "o": Out(stream.Signature(self.output_layout())),
        })

    @staticmethod
    def input_layout(lanes, g_bits=G_BITS_MIN):
        """The input beat (``G = g_bits``)::

            | last | first | g[G-1:0] | phase | b_signed | a_signed | mode | b[lanes] | a[lanes] |
              MSB                                                                      LSB
        """
        return data.StructLayout({
            "a": data.ArrayLayout(INT4.bits, lanes),
            "b": data.ArrayLayout(INT4.bits, lanes),
            "mode": 1, "a_signed": 1, "b_signed": 1, "phase": 1,
            "g": signed(g_bits), "first": 1, "last": 1,
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
    def g_bits(self):
        return self._g_bits

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
        tail = f"_g{self._g_bits}" if self._g_bits != G_BITS_MIN else ""
        return f"dot{self._lanes}_{self._accumulator}{tail}"

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        beat = self.i.payload
        tree = n.bit_length()           # adder-tree levels for lanes + 1 operands
        fp16 = self._accumulator == "fp16"
        # Lockstep ranks (hdl.pipeline), numbered as in the class docstring; the accumulator
        # rank passes on only the `last` beat of a dot product.
        acc_rank = self.latency - 2 if fp16 else tree + 2
        last_in = Signal()
        pipe = Pipeline(m, self.i, self.o, self.latency, lockstep=True,
                        keep={acc_rank: last_in})

        # --- context: taken from the `first` beat, held for the rest of the dot product ----
        ctx_layout = data.StructLayout({"mode": 1, "a_signed": 1, "b_signed": 1,
                                        "phase": 1, "g": signed(self._g_bits)})
        ctx_reg = Signal(ctx_layout)
        ctx = Signal(ctx_layout)
        for name, _ in ctx_layout:
            m.d.comb += ctx[name].eq(Mux(beat.first, beat[name], ctx_reg[name]))
        with m.If(pipe.accept):
            m.d.sync += ctx_reg.eq(ctx)
        exp = Signal(exp_shape(self._g_bits))
        bias = -FP4.PRODUCT_FRAC
        m.d.comb += exp.eq(Mux(ctx.mode == MODE_BACKWARD, ctx.phase + bias - ctx.g, -ctx.g))

        # --- rank 0: operands, resolved context and exponent offset ------------------------
        side = pipe.rank(0, {"first": beat.first, "last": beat.last, "exp": exp}, "in_side")
        # Signedness per lane, pre-AND-ed with the code's top bit: an operand code below 8
        # reads the same signed or unsigned, so lane k sees the same operands, while every
        # lane gets a flag register of its own (no high-fanout flag net; registers that
        # differ cannot be merged by synthesis).
        in_beat = pipe.register(0, beat, "in_beat")
        in_ctx = pipe.rank(0, {
            "mode": ctx.mode,
            "a_signed": Cat(ctx.a_signed & beat.a[k][-1] for k in range(n)),
            "b_signed": Cat(ctx.b_signed & beat.b[k][-1] for k in range(n)),
        }, "in_ctx")

        # --- ranks 1 .. tree + 1: the lanes, then each adder-tree level --------------------
        def stage(values, level):
            nonlocal side
            side = pipe.rank(level + 1, side, f"s{level}_side")
            return [pipe.register(level + 1, v, f"s{level}_v{k}") for k, v in enumerate(values)]

        total, _, _ = beat_sum(m, in_beat, in_ctx, n, stage)
        first_rank = tree + 2
        if fp16:
            self._fp16_tail(m, pipe, total, side, first_rank, last_in)
        else:
            self._exact_tail(m, pipe, total, side, first_rank, last_in)
        return m

    def _fp16_tail(self, m, pipe, total, side, r0, last_in):
        en = pipe.en
        # The beat sum rounded to fp16 (the paper's chunk rounding), R ranks.
        rnd = m.submodules.chunk_rounder = FP16Rounder(
            self.sum_width, len(side.exp), signed=True, stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(total), rnd.exp.eq(side.exp), rnd.en.eq(en)]
        flow = {"first": side.first, "last": side.last}
        for k in range(rnd.latency):
            flow = pipe.rank(r0 + k, flow, f"r{k}_side")
        # The chunk code: a rank of its own, so that the loop starts from a register.
        chunk_rank = r0 + rnd.latency
        chunk = pipe.register(chunk_rank, rnd.result, "chunk")
        chunk_flags = pipe.register(chunk_rank, rnd.flags, "chunk_flags")
        flow = pipe.rank(chunk_rank, flow, "c_side")
        # Accumulator rank: acc <- first ? chunk : acc + chunk (IEEE binary16, RNE).
        acc = Signal(FP16.BITS)
        acc_flags = Signal(FLAGS_SHAPE)
        add = m.submodules.accumulator = FP16AddCore()
        m.d.comb += [add.a.eq(acc), add.b.eq(chunk), last_in.eq(flow.last)]
        with m.If(en & pipe.valid[chunk_rank]):
            m.d.sync += [
                acc.eq(Mux(flow.first, chunk, add.result)),
                acc_flags.eq(Mux(flow.first, chunk_flags, acc_flags | chunk_flags | add.flags)),
            ]
        # Output rank.
        with m.If(en):
            m.d.sync += [self.o.payload.result.eq(acc), self.o.payload.flags.eq(acc_flags)]

    def _exact_tail(self, m, pipe, total, side, r0, last_in):
        en = pipe.en
        # Accumulator rank: the beat sums add up; the final rounder works on the register.
        acc = Signal(signed(self.acc_width))
        acc_exp = Signal.like(side.exp)
        m.d.comb += last_in.eq(side.last)
        with m.If(en & pipe.valid[r0 - 1]):
            # <= 2**16 beats: exact (verif/formal/datapath.py)
            m.d.sync += [acc.eq(Mux(side.first, 0, acc) + total), acc_exp.eq(side.exp)]
        rnd = m.submodules.final_rounder = FP16Rounder(
            self.acc_width, len(side.exp), signed=True, stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(acc), rnd.exp.eq(acc_exp), rnd.en.eq(en)]
        # R rounder ranks (valid bits only, in the pipeline), then the output rank.
        with m.If(en):
            m.d.sync += [self.o.payload.result.eq(rnd.result),
                         self.o.payload.flags.eq(rnd.flags)]
