"""The N-lane dot-product unit: multiply lanes, exact adder tree, normalizer, accumulator."""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import ACCUMULATORS, FP4, FP16, G_BITS_MIN, INT4, MODES

from .interleave import Interleaved, SlotStore
from .lanes import (
    FP4_PRODUCT_SHAPE,
    INT4_PRODUCT_SHAPE,
    fp4_ones,
    fp4_partials,
    int4_partials,
    int4_product,
    merged_halves,
    merged_operands,
    shifted_product,
)
from .params import FLAGS_SHAPE, check_g_bits, g_range, lanes_pow2
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


def _add_carry(x, y, carry):
    """``x + y + carry`` for two ``w``-bit signed values and a carry-in bit, in ``w + 1``
    bits: ``-2**w <= x + y + carry <= 2**w - 1`` for every input, so the truncation loses
    nothing (synthesis maps it to one adder with a carry-in)."""
    assert len(x) == len(y)
    return (x + y + carry)[:len(x) + 1].as_signed()


def _stage_nodes(stage, nodes, level):
    """``stage`` applied to tree nodes ``(value, pending carries)``."""
    regs = iter(stage([v for v, _ in nodes] + [c for _, pending in nodes for c in pending],
                      level))
    values = [next(regs) for _ in nodes]
    return [(v, [next(regs) for _ in pending]) for v, (_, pending) in zip(values, nodes)]


def sum_width(lanes):
    """Beat sum width: |product| <= 15 << 12 < 2**16 (17 bits signed), times ``lanes``."""
    return FP4_PRODUCT_SHAPE.width + (lanes - 1).bit_length()


def beat_sum(m, beat, ctx, lanes, stage=None, lane_stages=0):
    """The lanes and the exact adder tree: ``(sum, operands, adders)`` of one beat.

    ``beat`` supplies the operand arrays ``a``, ``b``; ``ctx`` the ``mode`` and signedness
    (``a_signed``, ``b_signed``: one bit for every lane).
    The sum has :func:`sum_width` bits, which it never overflows (proven in
    ``verif/formal/datapath.py``). ``stage``, when given, is called as
    ``stage(values, level) -> values`` and may return registered copies of the same shapes
    (the pipelined unit), on the lane values with their pending carries and then on the
    partial sums and pending carries after each tree level. ``operands`` are the values the
    tree adds (the lane values), then the sum of the pending carries; their sum is the beat
    sum. ``adders`` lists every tree adder as ``(node, x, y, carry)``, for checking.

    Two lane designs. Without a rank inside the lanes (``lane_stages = 0``): a forward and
    a backward lane (:mod:`hdl.lanes`), each gated by the mode, their values OR-ed;
    backward lanes 1 .. N-1 enter the tree in ones' complement (their sign bit is a pending
    carry, which a tree adder takes as its carry-in), lane 0 in two's complement. With
    ``lane_stages = 1`` or 2: one multiplier per lane for both modes
    (:func:`hdl.lanes.merged_operands`; the fp4 factor ``+-4**step[0]`` becomes the
    multiplicand), staged on its operands (level 0, ``lane_stages = 2`` only) and on its
    partial products; every lane value is its exact product and no carries are pending.
    """
    backward = ctx.mode == MODE_BACKWARD
    if stage and lane_stages:
        return _merged_beat_sum(m, beat, ctx, lanes, stage, backward, lane_stages)
    # The mode gates the operands: the product of the other mode is 0 (and so is the
    # backward sign), so the lane's value is the OR of the two products, which folds into
    # the last shift's multiplexers instead of a mode select of its own.
    # Backward lanes 1 .. N-1 enter the tree in ones' complement (p - sign, hdl.lanes.
    # fp4_ones) and lane 0 in two's complement (its 7-bit half negated). Each missing +1
    # rides along as a pending carry until a tree adder takes it as its carry-in: a tree of
    # N - 1 adders has one carry-in for each of lanes 1 .. N-1 (a subtree without lane 0
    # hands one carry up, the one with lane 0 none), so no lane has a negation of its own
    # beyond lane 0's 7 bits, and the tree needs no count of the negative lanes.
    nodes = []
    for k in range(lanes):
        a, b = beat.a[k], beat.b[k]
        fwd = int4_partials(a, b, ctx.a_signed, ctx.b_signed, en=~backward)
        bwd = fp4_partials(a, b, ctx.b_signed, en=backward, twos=k == 0)
        p = Signal(INT4_PRODUCT_SHAPE, name=f"fwd{k}")
        x = Signal(FP4_PRODUCT_SHAPE, name=f"ones{k}")
        v = Signal(FP4_PRODUCT_SHAPE, name=f"lane{k}")
        m.d.comb += [p.eq(int4_product(fwd)), x.eq(fp4_ones(bwd)), v.eq(x | p)]
        nodes.append((v, [bwd["sign"]] if k else []))
    if stage:           # the rank between the lanes and the tree
        nodes = _stage_nodes(stage, nodes, 0)
    return _tree(m, nodes, lanes, stage, 0)


def _stage_dicts(stage, dicts, level):
    regs = iter(stage([v for d in dicts for v in d.values()], level))
    return [{key: next(regs) for key in d} for d in dicts]


def _merged_beat_sum(m, beat, ctx, lanes, stage, backward, lane_stages):
    """:func:`beat_sum` with ranks inside the lanes: each lane is one multiplier for both
    modes (:func:`hdl.lanes.merged_operands`), with a rank after its operands (when
    ``lane_stages = 2``) and one after its halves, then summed and shifted
    (:func:`hdl.lanes.shifted_product`): every lane's value is its exact product in two's
    complement, and the tree's adders take no carry-ins."""
    ops = [merged_operands(beat.a[k], beat.b[k], backward, ctx.a_signed, ctx.b_signed)
           for k in range(lanes)]
    level = 0
    if lane_stages == 2:
        ops = _stage_dicts(stage, ops, level)
        level += 1
    halves = _stage_dicts(stage, [merged_halves(d) for d in ops], level)
    level += 1
    nodes = []
    for k, d in enumerate(halves):
        v = Signal(FP4_PRODUCT_SHAPE, name=f"lane{k}")
        m.d.comb += v.eq(shifted_product(d))
        nodes.append((v, []))
    nodes = _stage_nodes(stage, nodes, level)
    return _tree(m, nodes, lanes, stage, level)


def _tree(m, nodes, lanes, stage, level):
    """The adder tree over ``nodes`` (``(value, pending carries)``), ``stage`` after each
    level: ``(sum, operands, adders)`` as :func:`beat_sum` returns them."""
    # For checking only: the pending carries, one operand beside the lane values
    # (``operands``), whose sum is the beat sum.
    carries = Signal(range(lanes + 1), name="carries")
    m.d.comb += carries.eq(sum(c for _, pending in nodes for c in pending))
    operands = [v for v, _ in nodes] + [carries]
    adders = []
    while len(nodes) > 1:
        nxt = []
        for j in range(0, len(nodes), 2):
            (x, px), (y, py) = nodes[j], nodes[j + 1]
            carry, *rest = px + py or [Const(0, 1)]
            node = Signal(signed(len(x) + 1), name=f"node{level}_{j // 2}")
            m.d.comb += node.eq(_add_carry(x, y, carry))
            adders.append((node, x, y, carry))
            nxt.append((node, rest))
        nodes = nxt
        level += 1
        if stage:
            nodes = _stage_nodes(stage, nodes, level)
    (root, pending), = nodes
    assert not pending                              # every carry taken exactly once
    assert len(root) == sum_width(lanes)            # the root needs no truncation
    total = Signal(signed(sum_width(lanes)), name="beat_sum")
    m.d.comb += total.eq(root)
    return total, operands, adders


class DotProduct(Interleaved, wiring.Component):
    """Dot products of 4-bit operands, ``lanes`` multiply-accumulates per cycle, fp16 out;
    up to ``slots`` independent dot products interleaved beat by beat.

    Each input beat carries ``lanes`` operand pairs. Every lane forms an exact product: in
    forward mode ``a * b`` of two 4-bit integers (:class:`Int4MulLane`), in backward mode the
    fp4 gradient ``a`` times the integer ``b`` by shifting (:class:`FP4ShiftLane`, units of
    ``2**-6``). A balanced adder tree sums the lanes exactly. The beat sum ``S`` stands for
    ``S * 2**(-g)`` (forward) or ``S * 2**(phase - 6 - g)`` (backward): the fp4 bias, the TPR
    phase and GradScale are applied as one exponent offset inside the normalizer, never by a
    multiply. Then, per ``accumulator``:

    - ``"fp16"`` (the paper): each beat sum is rounded to fp16 (RNE) by :class:`FP16Rounder`
      and added into its slot's fp16 accumulator by an IEEE binary16 adder
      (:class:`FP16AddCore`, ``acc_stages`` register ranks); the ``first`` beat loads the
      accumulator instead (it adds ``-0``, which is exact). Flags are OR-ed over the dot
      product.
    - ``"exact"``: beat sums add into the slot's two's complement register of
      ``17 + log2(lanes) + 16`` bits, which holds any dot product of up to ``2**16`` beats
      without error; at ``last`` it is rounded once to fp16.

    Results are bit-exact with :func:`golden.dot` (same order of rounding, same flags).

    Interleaving: each beat names its dot product's accumulator, ``slot`` (a field of the
    beat when ``slots > 1``, declared ``range(slots)``: ``0 .. slots - 1``; the codes above
    it that its bits can carry are outside the contract and give undefined results). Beats
    of different slots may arrive in any order; each slot adds its own beat sums in arrival
    order, so every result is exactly the sequential one.
    In ``"fp16"`` mode the accumulator loop (memory read, adder, memory write) takes
    ``loop_cycles`` cycles: 1 with a combinational adder, ``acc_stages + 2`` with a pipelined
    one (whose memory read is registered too). A beat whose slot's previous beat is fewer
    than ``loop_cycles`` beats ahead waits at the input (``i.ready`` low, a bubble goes in;
    a ``first`` beat too), so it never reads a stale value and nothing inside the pipeline
    ever waits. A GEMM that
    feeds ``slots >= loop_cycles`` dot products round robin never waits: one beat per cycle
    at any clock the ranks allow. The result beat carries its ``slot``.

    Context: ``mode``, ``a_signed``, ``b_signed``, ``phase`` and ``g`` are read on the
    ``first`` beat of a dot product and hold for all of its beats, per slot (they are
    ignored on the others). A dot product ends with a ``last`` beat; a beat with both is a
    one-beat dot product. A slot's first beat after reset must be a ``first`` beat.

    Timing: one beat per cycle; back-to-back dot products need no idle cycle. ``latency``
    cycles from the rising edge that transfers the ``last`` beat to the one that transfers
    its result on ``o`` (``o.ready`` high, no interlock wait): ``L + P + C + 4 + R + D``
    (``"fp16"``, ``D = min(acc_stages, 16)``: 21 for 8 lanes, ``P = C = D = 0``) or
    ``L + P + 4 + R`` (``"exact"``: 22 for 8 lanes), plus 2 for the output FIFO in credit
    mode, with ``L = log2(lanes)`` adder-tree levels, ``C = 1`` when ``loop_cycles > 1``
    (the context's rank), ``P = lane_stages`` and
    ``R`` the rounder's ranks: one at every register point of :class:`FP16Rounder`
    (``rounder_stages``; 15 for the 8-lane exact register, 14 for an 8-lane beat sum).
    Pipeline (``|`` = a register rank; all ranks load together, see :mod:`hdl.pipeline`)::

        both:   i -> context select | operands, context [| context, only when
                loop_cycles > 1: read synchronously] [| the merged lane's operands, only
                with lane_stages = 2] [| its partial products, with lane_stages >= 1] |
                lane values (int4 and fp4 lanes OR-ed, or the merged lane's product) |
                tree level 1 | tree level 2 | ... | tree level L | sum ->
        fp16:   -> chunk FP16Rounder (R ranks) | chunk code, slot |
                acc[slot] read -> FP16AddCore (D ranks) -> acc[slot] write (the loop) | o
                (acc_stages = 17: acc[slot] is read with the rank before the chunk code,
                through the memory's own register)
        exact:  -> acc[slot] <- (first ? 0 : acc[slot]) + sum (the loop) | final
                FP16Rounder (R ranks) | o

    Lanes (:func:`beat_sum`). Without a rank inside them, backward lanes 1 .. N-1 enter the
    tree in ones' complement (``p - sign``: the sign is XOR-ed in on 7 bits, before the
    last shift, :func:`hdl.lanes.fp4_partials`), lane 0 in two's complement (its 7 bits
    negated); each missing +1 is the carry-in of one tree adder, so no lane needs a
    negation of its 17 bits. With ``lane_stages >= 1`` each lane is one multiplier for
    both modes: backward, its multiplicand is the fp4 factor ``+-1`` or ``+-4`` (the sign
    applied on 5 bits), its product shifted by 0, 4, 8 or 12; measured with ``make
    synth``, about 12 % fewer LUT4 than the two gated lanes at 32 lanes (iCE40 and ECP5).

    Fmax: with ``acc_stages = 0`` it is set by the ``"fp16"`` loop, a whole binary16
    addition per cycle; ``acc_stages`` cuts that loop (and ``slots`` hides its latency). In
    ``"exact"`` mode the single-cycle lanes of :mod:`hdl.lanes` and the ``acc_width``-bit
    accumulator addition set it.

    Handshake: every rank advances together when the output rank is free (``~o.valid |
    o.ready``), so backpressure stalls the whole pipeline without losing or repeating
    beats. A synchronous reset empties the pipeline (beats in flight are dropped); while
    ``rst`` is high no beat is accepted or delivered.

    Parameters
    ----------
    lanes : int
        Operand pairs per beat: a power of two from 1 to 64 (default 8).
    accumulator : str
        ``"fp16"`` (default) or ``"exact"``.
    g_bits : int
        Width of the signed GradScale exponent ``g`` (6 .. 9, default 6: ``-32 .. 31``).
    slots : int
        Independent accumulators (default 1): dot products in flight at once.
    lane_stages : int
        0 (default): two gated lanes per operand pair, no rank inside them. 1: one merged
        lane for both modes, a register rank after its partial products. 2: the same, and
        a rank after its operands (the fp4 decode and the signedness) too: the fast units,
        whose 4 x 4 multiply then starts at flip-flops.
    out_depth : int
        0 (default): under backpressure every rank stalls together (one enable for every
        register). N: the ranks never stall (no enable: the fast units) and up to N results
        wait in an output FIFO; a ``last`` beat goes in only while fewer than N results are
        owed. ``latency`` then counts the FIFO's 2 cycles.
    acc_stages : int
        ``"fp16"``: register ranks in the accumulator loop (default 0), 0 .. 17: up to 16
        inside the adder (one at each of :meth:`FP16AddCore.points`), and with 17 one more
        that reads the accumulator memory a rank early into its own register (block RAM on
        iCE40, whose slow output then ends at a register instead of in the adder's first
        compare); needs ``slots >= loop_cycles`` (``acc_stages + 2`` when
        ``acc_stages > 0``).
        ``"exact"``: 0, or 1 to add in two halves a rank apart (each half a one-cycle loop,
        so one dot product still takes a beat per cycle).
    paced : bool
        ``False`` (default): a beat whose slot has an addition in flight waits, and so does
        a ``last`` beat while ``out_depth`` results are owed (``i.ready`` low). ``True``
        (credit mode only): the source paces the beats itself, as the training engine's
        sequencer does: it spaces every slot's beats at least ``loop_cycles`` apart and
        never has more than ``out_depth`` results owed; the unit has neither the interlock
        nor the count, and ``i.ready`` is high outside reset. A beat that comes sooner
        reads a stale accumulator; a result past the count is lost.

    Members
    -------
    i : ``In(stream.Signature(StructLayout))``
        ``a``, ``b``: ``ArrayLayout(4, lanes)`` operand codes (lane 0 in the low bits);
        ``mode`` (0 forward, 1 backward), ``a_signed``, ``b_signed`` (1: int4, 0: uint4;
        ``a_signed`` is unused in backward mode), ``phase`` (TPR phase bit), ``g``
        (``signed(g_bits)``), ``first``, ``last``; ``slot`` when ``slots > 1``.
    o : ``Out(stream.Signature(StructLayout))``
        ``result``: fp16 code; ``flags``: ``inexact | underflow | overflow | invalid``;
        ``slot`` when ``slots > 1``.
    """

    def __init__(self, lanes=8, accumulator="fp16", *, g_bits=G_BITS_MIN, slots=1,
                 acc_stages=0, lane_stages=0, out_depth=0, paced=False):
        lanes = lanes_pow2(lanes)
        if accumulator not in ACCUMULATORS:
            raise ValueError(f"accumulator must be one of {ACCUMULATORS}, not {accumulator!r}")
        self._lanes = lanes
        self._accumulator = accumulator
        self._g_bits = check_g_bits(g_bits)
        if accumulator == "exact" and acc_stages not in (0, 1):
            raise ValueError(f"acc_stages must be 0 or 1 with accumulator='exact' (1: the "
                             f"integer addition in two halves), not {acc_stages!r}")
        self._setup_slots(slots, acc_stages, out_depth, fp16_loop=accumulator == "fp16",
                          paced=paced)
        if lane_stages not in (0, 1, 2):
            raise ValueError(f"lane_stages must be 0, 1 or 2, not {lane_stages!r}")
        self._lane_stages = lane_stages
        super().__init__({
            "i": In(stream.Signature(self.input_layout(lanes, self._g_bits, self._slots))),
            "o": Out(stream.Signature(self.output_layout(self._slots))),
        })

    @staticmethod
    def input_layout(lanes, g_bits=G_BITS_MIN, slots=1):
        """The input beat (``G = g_bits``; ``slot`` only when ``slots > 1``)::

            | slot | last | first | g[G-1:0] | phase | b_signed | a_signed | mode | b[lanes] |
              a[lanes] |
              MSB                                                                      LSB
        """
        fields = {
            "a": data.ArrayLayout(INT4.bits, lanes),
            "b": data.ArrayLayout(INT4.bits, lanes),
            "mode": 1, "a_signed": 1, "b_signed": 1, "phase": 1,
            "g": signed(g_bits), "first": 1, "last": 1,
        }
        if slots > 1:
            fields["slot"] = range(slots)
        return data.StructLayout(fields)

    @staticmethod
    def output_layout(slots=1):
        """``| slot | flags[7:0] | result[15:0] |`` (MSB to LSB; ``slot`` when ``slots > 1``)."""
        fields = {"result": FP16.BITS, "flags": FLAGS_SHAPE}
        if slots > 1:
            fields["slot"] = range(slots)
        return data.StructLayout(fields)

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
    def lane_stages(self):
        return self._lane_stages

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
    def depth(self):
        """Register ranks from the input to the output rank."""
        return self.latency - (2 if self._out_depth else 0)

    @property
    def latency(self):
        """Cycles from the transfer of a ``last`` beat to the transfer of its result."""
        # levels for lanes + 1 operands (the carries), and the rank inside the lanes
        tree = (self._lanes - 1).bit_length() + self._lane_stages
        # input, products, tree levels, then (fp16) the chunk rounder's ranks, chunk code,
        # the adder's ranks, o, or (exact) acc, the final rounder's ranks, o
        fifo = 2 if self._out_depth else 0     # the output FIFO (hdl.pipeline, credit mode)
        front = 2 + self._context_rank
        if self._accumulator == "fp16":
            return front + tree + self.rounder_stages + 2 + self._adder_stages + fifo
        return front + tree + 1 + self._acc_stages + self.rounder_stages + 1 + fifo

    @property
    def _context_rank(self):
        """1 when the context is read synchronously (``loop_cycles > 1``): a rank of its own
        between the input rank and the lanes."""
        return int(self.loop_cycles > 1)

    @property
    def module_name(self):
        tail = f"_g{self._g_bits}" if self._g_bits != G_BITS_MIN else ""
        if self._slots > 1:
            tail += f"_s{self._slots}"
        if self._acc_stages:
            tail += f"_a{self._acc_stages}"
        if self._lane_stages:
            tail += f"_l{self._lane_stages}"
        if self._out_depth:
            tail += f"_q{self._out_depth}"
        if self._paced:
            tail += "_p"
        return f"dot{self._lanes}_{self._accumulator}{tail}"

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        beat = self.i.payload
        tree = (n - 1).bit_length() + self._lane_stages   # tree levels (+ the lanes' rank)
        fp16 = self._accumulator == "fp16"
        slotted = self._slots > 1
        # Lockstep ranks (hdl.pipeline), numbered as in the class docstring: the output rank
        # (fp16) or the accumulator rank (exact) passes on only the `last` beat of a dot
        # product; in fp16 mode the chunk rank waits while its slot has an add in flight.
        c0 = self._context_rank
        keep_rank = self.depth - 1 if fp16 else tree + 2 + c0 + self._acc_stages
        last_in = Signal()
        pipe, admit = self._pipeline(m, self.depth, keep_rank, last_in, beat.last)

        # --- context: taken from the `first` beat, held per slot for its dot product -------
        ctx_layout = data.StructLayout({"mode": 1, "a_signed": 1, "b_signed": 1,
                                        "phase": 1, "g": signed(self._g_bits)})
        slot_in = beat.slot if slotted else 0
        side = {"first": beat.first, "last": beat.last}
        if slotted:
            side["slot"] = beat.slot
        if self.loop_cycles > 1:
            # The interlock keeps a slot's next beat out for at least loop_cycles >= 2
            # cycles, so the context can be read synchronously (block RAM on iCE40; the
            # data comes with the beat's rank 0) and written from rank 0, a cycle after the
            # beat came in: the input's paths end at flip-flops, not at a read multiplexer
            # or at the write enable of every slot's context.
            store = SlotStore(m, "context", ctx_layout, self._slots, sync_read=True)
            held = store.read(m, slot_in, en=pipe.take[0])
            raw = Signal(ctx_layout)
            m.d.comb += [raw[name].eq(beat[name]) for name, _ in ctx_layout]
            side = self._side(pipe, 0, {**side, "ctx": raw}, "in_side")
            now = Signal(ctx_layout)
            m.d.comb += now.eq(Mux(side.first, side.ctx, held))
            store.write(m, side.slot, now, pipe.take[0] & pipe.valid[0])
            # The resolved context gets a rank of its own (the block RAM's output is slow):
            # the lanes start from flip-flops.
            side = self._side(pipe, 1, {**self._carry(side), "ctx": now}, "ctx_side")
            ctx = side.ctx
        else:
            store = SlotStore(m, "context", ctx_layout, self._slots)
            held = store.read(m, slot_in)
            now = Signal(ctx_layout)
            for name, _ in ctx_layout:
                m.d.comb += now[name].eq(Mux(beat.first, beat[name], held[name]))
            store.write(m, slot_in, now, pipe.accept)
            side = self._side(pipe, 0, {**side, "ctx": now}, "in_side")
            ctx = side.ctx

        # --- rank 0: operands and resolved context; rank 1 adds the exponent offset --------
        exp = Signal(exp_shape(self._g_bits))
        bias = -FP4.PRODUCT_FRAC
        m.d.comb += exp.eq(Mux(ctx.mode == MODE_BACKWARD, ctx.phase + bias - ctx.g, -ctx.g))
        # One signedness flag for every lane: the AND with each code's top bit then falls
        # into the lane's own logic. (A flag per lane, pre-AND-ed, cost 2 LUT4 per lane and
        # its fanout never set the clock: measured with make synth.)
        in_beat = pipe.register(0, beat, "in_beat")
        if c0:
            in_beat = pipe.register(1, in_beat, "ctx_beat")

        # --- ranks 1 .. tree + 1: the lanes, then each adder-tree level --------------------
        def stage(values, level):
            nonlocal side
            if level == 0:
                side = {**self._carry(side), "exp": exp}
            side = self._side(pipe, c0 + level + 1, side, f"s{level}_side")
            return [pipe.register(c0 + level + 1, v, f"s{level}_v{k}")
                    for k, v in enumerate(values)]

        total, _, _ = beat_sum(m, in_beat, ctx, n, stage, self._lane_stages)
        if fp16:
            self._fp16_tail(m, pipe, total, side, c0 + tree + 2, last_in)
        else:
            self._exact_tail(m, pipe, total, side, c0 + tree + 2, last_in)
        if admit is not None:
            self._interlock(m, pipe, beat, admit)
        return m

    def _fp16_tail(self, m, pipe, total, side, r0, last_in):
        # The beat sum rounded to fp16 (the paper's chunk rounding), R ranks.
        rnd = m.submodules.chunk_rounder = FP16Rounder(
            self.sum_width, len(side.exp), signed=True, stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(total), rnd.exp.eq(side.exp), rnd.en.eq(pipe.en)]
        flow = self._carry(side)
        for k in range(rnd.latency):
            flow = self._side(pipe, r0 + k, flow, f"r{k}_side")
        # The chunk code: a rank of its own, so that the loop starts from a register.
        c = r0 + rnd.latency
        chunk = pipe.register(c, rnd.result, "chunk")
        chunk_flags = pipe.register(c, rnd.flags, "chunk_flags")
        flow = self._side(pipe, c, flow, "c_side")
        self._fp16_loop(m, pipe, chunk, chunk_flags, flow, c, last_in)

    def _exact_tail(self, m, pipe, total, side, r0, last_in):
        # Accumulator rank: acc[slot] <- (first ? 0 : acc[slot]) + sum, also registered
        # for the final rounder (only `last` beats move on). <= 2**16 beats: exact
        # (verif/formal/datapath.py). With acc_stages = 1 the addition is split in a low
        # and a high half, a rank apart, each its own one-cycle loop: the low half's carry
        # goes into the high half's addition of the same beat one cycle later.
        w = self.acc_width
        slot = side.slot if self._slots > 1 else 0
        enable = pipe.en & pipe.valid[r0 - 1]
        if not self._acc_stages:
            accs = SlotStore(m, "accumulators", signed(w), self._slots)
            new = Signal(signed(w))
            m.d.comb += new.eq(Mux(side.first, 0, accs.read(m, slot)) + total)
            accs.write(m, slot, new, enable)
            exp = side.exp
        else:
            lo_w = (w + 1) // 2
            lows = SlotStore(m, "accumulators_lo", lo_w, self._slots)
            highs = SlotStore(m, "accumulators_hi", signed(w - lo_w), self._slots)
            lo = Signal(lo_w + 1)
            m.d.comb += lo.eq(Mux(side.first, 0, lows.read(m, slot))
                              + total.as_unsigned()[:lo_w])
            lows.write(m, slot, lo[:lo_w], enable)
            half = pipe.rank(r0, {"lo": lo[:lo_w], "carry": lo[lo_w], "hi": total >> lo_w,
                                  "exp": side.exp}, "acc_lo")
            side = self._side(pipe, r0, self._carry(side), "acc_lo_side")
            r0 += 1
            slot = side.slot if self._slots > 1 else 0
            hi = Signal(signed(w - lo_w))
            m.d.comb += hi.eq(Mux(side.first, 0, highs.read(m, slot)) + half.hi + half.carry)
            highs.write(m, slot, hi, pipe.en & pipe.valid[r0 - 1])
            new = Cat(half.lo, hi).as_signed()
            exp = half.exp
        m.d.comb += last_in.eq(side.last)
        acc = pipe.register(r0, new, "acc")
        acc_exp = pipe.register(r0, exp, "acc_exp")
        flow = self._side(pipe, r0, self._carry(side), "acc_side")
        rnd = m.submodules.final_rounder = FP16Rounder(
            w, len(exp), signed=True, stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(acc), rnd.exp.eq(acc_exp), rnd.en.eq(pipe.en)]
        for k in range(rnd.latency):
            flow = self._side(pipe, r0 + 1 + k, flow, f"r{k}_side")
        self._output(m, pipe, rnd.result, rnd.flags, flow)
