"""Baselines for the density comparison: an FP16 and an INT8 dot-product unit, built from the
project's own cores, with the throughput of the 4-bit :class:`hdl.dot.DotProduct` (``lanes``
multiply-accumulates per cycle) and the same stream contract (``first`` / ``last`` beats)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FLAG_INVALID, FP16, FUSED_LSB_EXP

from .fp16 import FP16AddCore, FP16MulCore, Operand, radix4_rows
from .interleave import Interleaved
from .params import FLAGS_SHAPE, integer, lanes_pow2
from .pipeline import Pipeline, bundle
from .rounder import FP16Rounder

__all__ = ["FP16DotProduct", "FusedFP16DotProduct", "Int8DotProduct", "INT8_PRODUCT_SHAPE",
           "FUSED_PRODUCT_SHAPE", "MAX_BEATS_LOG2", "sig_product"]

# A finite fp16 product in units of 2**-48 (FUSED_LSB_EXP): a 22-bit significand product
# shifted left by (biased exponents) - 2 <= 58, below 2**80, with its sign: signed(81).
FUSED_SHIFT_MAX = 2 * (FP16.EXP_MAX_FIELD - 1) - 2
FUSED_PRODUCT_SHAPE = signed(2 * FP16.SIG_BITS + FUSED_SHIFT_MAX + 1)
# Bits of the fused beat sum below 2**-26 (weights 2**-48 .. 2**-27): they reach the rounder
# as one jam bit (FusedFP16DotProduct.elaborate).
JAM_BITS = FP16.LSB_EXP - 2 - FUSED_LSB_EXP
MAX_BEATS_LOG2 = 16          # the INT8 accumulator holds 2**16 beats exactly (as dot*_exact)
INT8_BITS = 8
# int8 x int8 lies in [-128 * 127, (-128)**2] = [-16256, 16384]: 16-bit two's complement.
INT8_PRODUCT_SHAPE = signed(2 * INT8_BITS)


class _DotBaseline(wiring.Component):
    """Shared by the baselines: ``lanes`` pairs of ``_code``-shaped operands per beat with
    ``first``/``last``, the ``lanes`` check and property, and the start of a lockstep
    pipeline whose output rank takes only the ``last`` beat of a dot product."""

    def __init__(self, lanes=8):
        self._lanes = lanes_pow2(lanes)
        i_layout, o_layout = self._layouts()
        super().__init__({
            "i": In(stream.Signature(i_layout)),
            "o": Out(stream.Signature(o_layout)),
        })

    def _layouts(self):
        return self.input_layout(self._lanes), self.output_layout(self._lanes)

    @classmethod
    def input_layout(cls, lanes):
        """The input beat (``W`` bits per operand)::

            | last | first | b[lanes] (W b each) | a[lanes] (W b each) |
              MSB                                               LSB
        """
        return data.StructLayout({
            "a": data.ArrayLayout(cls._code, lanes),
            "b": data.ArrayLayout(cls._code, lanes),
            "first": 1, "last": 1,
        })

    @property
    def lanes(self):
        return self._lanes

    @property
    def module_name(self):
        return f"{self._name}{self._lanes}"

    def _lockstep_pipeline(self, m, depth):
        """``(beat, pipe, last_in)``: drive ``last_in`` with the ``last`` flag of the beat
        entering the output rank (``depth - 1``)."""
        last_in = Signal()
        pipe = Pipeline(m, self.i, self.o, depth, lockstep=True, keep={depth - 1: last_in})
        return self.i.payload, pipe, last_in


class _InterleavedFP16(Interleaved, _DotBaseline):
    """Shared by the FP16 baselines: the interleaved unit's beat and result layouts (a
    ``slot`` field when ``slots > 1``) and a module name tagged with every parameter that
    differs from its default (``_tags``: ``(tag, value, default)``)."""

    _code = FP16.BITS

    @classmethod
    def input_layout(cls, lanes, slots=1):
        """The input beat: ``| slot | last | first | b[lanes] | a[lanes] |`` (MSB to LSB;
        ``slot`` when ``slots > 1``)."""
        return cls._slot_field({"a": data.ArrayLayout(cls._code, lanes),
                                "b": data.ArrayLayout(cls._code, lanes),
                                "first": 1, "last": 1}, slots)

    @classmethod
    def output_layout(cls, lanes=None, slots=1):
        return cls._slot_field({"result": FP16.BITS, "flags": FLAGS_SHAPE}, slots)

    def _layouts(self):
        return (self.input_layout(self._lanes, self._slots),
                self.output_layout(self._lanes, self._slots))

    @property
    def module_name(self):
        tail = f"_s{self._slots}" if self._slots > 1 else ""
        for tag, v, default in self._tags():
            tail += f"_{tag}{v}" if v != default else ""
        return f"{self._name}{self._lanes}{tail}"

    @property
    def levels(self):
        """Adder-tree levels: log2(lanes)."""
        return (self._lanes - 1).bit_length()

    @property
    def latency(self):
        return self.depth + (2 if self._out_depth else 0)


class FP16DotProduct(_InterleavedFP16):
    """FP16 dot products, ``lanes`` multiply-accumulates per cycle: the cascaded baseline.

    What an FP16 system computes in place of :class:`hdl.dot.DotProduct`: each beat carries
    ``lanes`` pairs of fp16 codes; ``lanes`` :class:`FP16MulCore` form the rounded products,
    a balanced tree of :class:`FP16AddCore` sums pairs ``(2j, 2j + 1)`` level by level (each
    sum rounded), and an fp16 accumulator adds the beat sum (:class:`FP16AddCore`); the
    ``first`` beat starts it (it adds the beat sum to ``-0``, which is exact). Every operation
    is IEEE binary16 with RNE, subnormals, Inf and NaN; ``flags`` is the OR of the flags of
    every multiply and add of the dot product. Bit-exact with
    :func:`golden.baselines.fp16_dot`.

    It gets the 4-bit unit's speed treatment, so that the throughput comparison is fair:
    the multipliers and every tree adder can be pipelined (``mul_stages``, ``add_stages``
    register ranks inside each core), and up to ``slots`` dot products interleave beat by
    beat on a pipelined accumulator (``acc_stages``; the same :class:`hdl.interleave.
    Interleaved` loop, interlock and slot field as :class:`hdl.dot.DotProduct`), with
    ranks that never stall and a results FIFO when ``out_depth > 0``.

    Pipeline (``M``, ``A``, ``D``: ``mul_stages``, ``add_stages``, ``acc_stages``)::

        i --> lanes x mul (M) | products | add level 1 (A) | ... | add level log2(lanes) (A)
              | beat sum | acc[slot] + sum (D, the loop) | o

    Timing: one beat per cycle, back-to-back dot products need no idle cycle. ``latency`` =
    ``M + 1 + log2(lanes) * (A + 1) + D + 1`` cycles (+ 2 with an output FIFO) from the
    transfer of the ``last`` beat to its result on ``o``, counted like
    :class:`hdl.dot.DotProduct`'s: 5 for the default 8 lanes. Backpressure stalls the whole
    pipeline (``out_depth = 0``) or stops the input once ``out_depth`` results wait, without
    losing or repeating beats; no beat is accepted during reset, and a reset drops the beats
    in flight.

    Parameters
    ----------
    lanes : int
        Operand pairs per beat: a power of two from 1 to 64 (default 8).
    slots, acc_stages, out_depth : int
        As :class:`hdl.dot.DotProduct`'s (defaults 1, 0, 0): ``slots >= acc_stages + 2``
        when ``acc_stages > 0``.
    mul_stages, add_stages : int
        Register ranks inside every multiplier and every tree adder (default 0; at most the
        cores' register points: :meth:`FP16MulCore.points`, :meth:`FP16AddCore.points`).

    Members
    -------
    i : ``In(stream.Signature(StructLayout))``
        ``a``, ``b``: ``ArrayLayout(16, lanes)`` fp16 codes (lane 0 in the low bits);
        ``first``, ``last``; ``slot`` when ``slots > 1``.
    o : ``Out(stream.Signature(StructLayout))``
        ``result``: fp16 code; ``flags``: ``inexact | underflow | overflow | invalid``;
        ``slot`` when ``slots > 1``.
    """

    _name = "fp16_dot"

    def __init__(self, lanes=8, *, slots=1, acc_stages=0, out_depth=0, mul_stages=0,
                 add_stages=0):
        self._setup_slots(slots, acc_stages, out_depth)
        self._mul_stages = integer(mul_stages, "mul_stages", 0, len(FP16MulCore.points()))
        self._add_stages = integer(add_stages, "add_stages", 0, len(FP16AddCore.points()))
        if self._acc_stages and lanes == 1 and not self._mul_stages:
            raise ValueError("a pipelined accumulator reads its slot a rank before the beat "
                             "sum's rank: with lanes=1 that needs mul_stages >= 1")
        super().__init__(lanes)

    def _tags(self):
        return (("a", self._acc_stages, 0), ("m", self._mul_stages, 0),
                ("t", self._add_stages, 0), ("q", self._out_depth, 0))

    @property
    def mul_stages(self):
        return self._mul_stages

    @property
    def add_stages(self):
        return self._add_stages

    @property
    def depth(self):
        """Register ranks from the input to the output rank."""
        return (self._mul_stages + 1 + self.levels * (self._add_stages + 1)
                + self._adder_stages + 1)

    def elaborate(self, platform):
        m = Module()
        beat = self.i.payload
        last_in = Signal()
        pipe, admit = self._pipeline(m, self.depth, self.depth - 1, last_in, beat.last)
        side = {"first": beat.first, "last": beat.last}
        if self._slots > 1:
            side["slot"] = beat.slot
        rank = 0

        def cores(core, stages, operands, name):
            """One core per operand pair, ``stages`` ranks deep; their results and flags
            once the side values have ridden along those ranks."""
            nonlocal side, rank
            out = []
            for k, (x, y) in enumerate(operands):
                c = m.submodules[f"{name}{k}"] = core(stages=stages)
                m.d.comb += [c.a.eq(x), c.b.eq(y)]
                if stages:
                    m.d.comb += c.en.eq(pipe.en)
                out.append(c)
            for j in range(stages):
                side = self._side(pipe, rank, side, f"{name}_p{j}_side")
                rank += 1
            flags = [c.flags for c in out]
            if name != "mul":
                flags.append(side["flags"])         # the flags of the levels before
            flag_or = flags[0]
            for f in flags[1:]:
                flag_or = flag_or | f
            side = self._side(pipe, rank, {**self._carry(side), "flags": flag_or},
                              f"{name}_side")
            regs = [pipe.register(rank, c.result, f"{name}_x{k}") for k, c in enumerate(out)]
            rank += 1
            return regs

        values = cores(FP16MulCore, self._mul_stages,
                       [(beat.a[k], beat.b[k]) for k in range(self._lanes)], "mul")
        for level in range(1, self.levels + 1):
            values = cores(FP16AddCore, self._add_stages,
                           [(values[2 * j], values[2 * j + 1]) for j in range(len(values) // 2)],
                           f"add{level}_")
        c = rank - 1            # the beat sum's rank: the accumulator loop starts there
        self._fp16_loop(m, pipe, values[0], side["flags"], side, c, last_in)
        if admit is not None:
            self._interlock(m, pipe, beat, admit)
        return m


def _keep(m, value, name):
    """``value`` on a wire that synthesis keeps (``keep``): yosys then maps each addition
    into a kept wire onto a carry chain of its own instead of merging a whole sum of
    products into one ``$macc`` that it builds from LUT full adders."""
    w = Signal(value.shape(), name=name, attrs={"keep": 1})
    m.d.comb += w.eq(value)
    return w


def sig_product(m, x, y, name, cut=None):
    """The exact unsigned product ``x * y`` (``len(x) + len(y)`` bits), radix 4: a partial
    product per two bits of ``x`` chosen from ``0, y, 2y, 3y`` (``3y`` precomputed once),
    the ``ceil(len(x) / 2)`` rows summed by a balanced tree of kept carry-chain adders. For
    11 x 11 bits on ECP5 (yosys, no DSP) about 200 LUT4 where ``x * y`` takes about 540.
    ``cut(point, values)``: called with the rows (``"rows"``) and with the tree's first-level
    sums (``"pairs"``), returns the values the tree goes on with (registers there: a rank
    inside the multiplier)."""
    y3 = _keep(m, y + (y << 1), f"{name}_y3")
    rows = [_keep(m, row, f"{name}_pp{k}") << (2 * k)
            for k, row in enumerate(radix4_rows(x, y, y3))]
    if cut is not None:
        rows = cut("rows", rows)
    level = 0
    while len(rows) > 1:
        rows = [_keep(m, rows[j] + rows[j + 1], f"{name}_sum{level}_{j // 2}")
                if j + 1 < len(rows) else rows[j] for j in range(0, len(rows), 2)]
        if level == 0 and cut is not None:
            rows = cut("pairs", rows)
        level += 1
    return rows[0][:len(x) + len(y)]


class FusedFP16DotProduct(_InterleavedFP16):
    """Fused FP16 dot products, ``lanes`` multiply-accumulates per cycle: the strongest FP16
    baseline (one rounding per beat, like the 4-bit unit's).

    The structure of :class:`hdl.dot.DotProduct` with fp16 operands: each beat carries
    ``lanes`` pairs of fp16 codes; every lane forms its product EXACTLY (the 11 x 11-bit
    significand product, the exponents summed) and aligns it into a fixed point with its LSB
    at ``2**-48`` (:data:`golden.formats.FUSED_LSB_EXP`), wide enough for every finite
    fp16 product (:data:`FUSED_PRODUCT_SHAPE`, 81 bits signed); a balanced adder tree sums
    the lanes EXACTLY (``81 + log2(lanes)`` bits); :class:`hdl.rounder.FP16Rounder` rounds
    the exact beat sum ONCE to fp16 (RNE, subnormals, overflow to Inf, ``inexact |
    underflow | overflow``, tininess after rounding); an fp16 accumulator
    (:class:`FP16AddCore`) adds the rounded beat sums, the ``first`` beat starting it (it
    adds the beat sum to ``-0``, which is exact).
    Special values per beat: any NaN operand or ``0 * Inf`` gives ``0x7E00``; Inf products
    of both signs give ``0x7E00`` with ``invalid``; other Inf products give that Inf (no
    flags); ``invalid`` also for a signalling NaN operand and ``0 * Inf``; an exact zero
    beat sum is ``+0`` unless every product of the beat is ``-0`` (padding lanes are ``+0``
    products). ``flags`` is the OR of every beat rounding's and every accumulator
    addition's flags. Bit-exact with :func:`golden.baselines.fused_fp16_dot`; the contract
    is ``docs/numerics.md``, Density baselines.

    It gets the 4-bit unit's speed treatment, as :class:`FP16DotProduct` does: a rank inside
    the multipliers (``mul_stages``), the alignment shift split over two ranks
    (``align_stages``), ``rounder_stages`` ranks inside the beat rounder, and up to
    ``slots`` dot products interleaved beat by beat on a pipelined accumulator
    (``acc_stages``; the :class:`hdl.interleave.Interleaved` loop, interlock and slot field
    of :class:`hdl.dot.DotProduct`), with ranks that never stall and a results FIFO when
    ``out_depth > 0``.

    Area (no DSPs): the 11 x 11 significand multipliers are radix 4 on carry chains
    (:func:`sig_product`); lane 0 is negated before its shift, the other lanes enter the
    tree in ones' complement and their ``+1`` is the carry-in of a tree adder (a tree has
    one adder per lane but lane 0), so no lane has a negation of its own. The alignment
    shifters (``22 -> 80`` bits, six levels) are the largest part.

    Pipeline (``M``, ``G``, ``R``, ``D``: ``mul_stages``, ``align_stages``,
    ``rounder_stages``, the accumulator adder's ranks of ``acc_stages``)::

        i --> [ lanes x (decode, 11 x 11 mul (M), specials) ] --> [ sign, align (G) ] -->
              [ tree level 1 ] --> ... --> [ tree level log2(lanes) ] -->
              [ FP16Rounder (R) ] --> [ beat code, specials ] --> acc[slot] + beat (D) --> o

    Timing: one beat per cycle, back-to-back dot products need no idle cycle. ``latency`` =
    ``4 + M + G + log2(lanes) + R + D`` cycles (+ 2 with an output FIFO) from the transfer
    of the ``last`` beat to its result on ``o`` (``o.ready`` high), counted like
    :class:`hdl.dot.DotProduct`'s: 8 for the default 8 lanes. Backpressure stalls the whole
    pipeline (``out_depth = 0``) or stops the input once ``out_depth`` results wait, without
    losing or repeating beats; no beat is accepted during reset, and a reset drops the beats
    in flight.

    Parameters
    ----------
    lanes : int
        Operand pairs per beat: a power of two from 1 to 64 (default 8).
    slots, acc_stages, out_depth : int
        As :class:`hdl.dot.DotProduct`'s (defaults 1, 0, 0): ``slots >= acc_stages + 2``
        when ``acc_stages > 0``.
    mul_stages : int
        0 to 2 (default 0): ranks inside every significand multiplier, after its radix-4
        rows, then also after its first level of adders.
    align_stages : int
        0 or 1 (default 0): a rank inside every alignment, after the shift by 0..3 (lane 0:
        after its negation).
    rounder_stages : int
        Ranks inside the beat rounder (default 1; at most its register points,
        ``len(FP16Rounder.points(rounder_width, signed=True))``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout))``
        ``a``, ``b``: ``ArrayLayout(16, lanes)`` fp16 codes (lane 0 in the low bits);
        ``first``, ``last``; ``slot`` when ``slots > 1``.
    o : ``Out(stream.Signature(StructLayout))``
        ``result``: fp16 code; ``flags``: ``inexact | underflow | overflow | invalid``;
        ``slot`` when ``slots > 1``.
    """

    _name = "fused_fp16_dot"
    # The multipliers' register points (sig_product), in the order mul_stages takes them.
    _MUL_CUTS = ("rows", "pairs")

    def __init__(self, lanes=8, *, slots=1, acc_stages=0, out_depth=0, mul_stages=0,
                 align_stages=0, rounder_stages=1):
        self._setup_slots(slots, acc_stages, out_depth)
        self._mul_stages = integer(mul_stages, "mul_stages", 0, len(self._MUL_CUTS))
        self._align_stages = integer(align_stages, "align_stages", 0, 1)
        super().__init__(lanes)
        self._rounder_stages = integer(rounder_stages, "rounder_stages", 0,
                                       len(FP16Rounder.points(self.rounder_width, signed=True)))

    def _tags(self):
        return (("a", self._acc_stages, 0), ("m", self._mul_stages, 0),
                ("g", self._align_stages, 0), ("r", self._rounder_stages, 1),
                ("q", self._out_depth, 0))

    @property
    def mul_stages(self):
        return self._mul_stages

    @property
    def align_stages(self):
        return self._align_stages

    @property
    def rounder_stages(self):
        return self._rounder_stages

    @property
    def sum_width(self):
        """Beat sum width: an aligned product (81 bits signed) times ``lanes``."""
        return FUSED_PRODUCT_SHAPE.width + self.levels

    @property
    def rounder_width(self):
        """Width of the beat rounder's input: the sum with its 22 bits below ``2**-26``
        jammed into one (63 for 8 lanes)."""
        return self.sum_width - JAM_BITS + 1

    @property
    def code_rank(self):
        """The rank of the beat's fp16 code, where the accumulator loop starts."""
        return (2 + self._mul_stages + self._align_stages + self.levels
                + self._rounder_stages)

    @property
    def depth(self):
        """Register ranks from the input to the output rank."""
        return self.code_rank + self._adder_stages + 2

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        beat = self.i.payload
        last_in = Signal()
        pipe, admit = self._pipeline(m, self.depth, self.depth - 1, last_in, beat.last)
        rank_k = 0

        # --- rank 0: exact significand products (a rank inside with mul_stages), exponent
        # sums, the operands' classes -----------------------------------------------------
        lanes, ride = [], []        # ride: per lane, what goes with the product's ranks
        classes = {f"{op}_{c}": [] for op in "xy" for c in ("zero", "inf", "nan", "snan")}
        signs = []
        for k in range(n):
            x, y = Operand(beat.a[k]), Operand(beat.b[k])
            sign = x.sign ^ y.sign
            signs.append(sign)
            for op, v in (("x", x), ("y", y)):
                for c in ("zero", "inf", "nan", "snan"):
                    classes[f"{op}_{c}"].append(getattr(v, c))
            # Weight of the product's LSB: (x.exp - 25) + (y.exp - 25) = shift - 48, so the
            # shift into the 2**-48 fixed point is x.exp + y.exp - 2 (0 .. 58 when finite;
            # Inf/NaN lanes shift garbage that the special values override).
            shift = Signal(range(2 * FP16.EXP_MAX_FIELD - 1), name=f"shift{k}")
            m.d.comb += shift.eq(x.exp + y.exp - 2)
            ride.append({"shift": shift, "sign": sign})

            at = [0]            # the rank the next cut in this lane's multiplier takes

            def cut(point, values, k=k, at=at):
                if point not in self._MUL_CUTS[:self._mul_stages]:
                    return values
                held = pipe.rank(at[0], {**{f"p{j}": v for j, v in enumerate(values)},
                                         **ride[k]}, f"mul{k}_{point}")
                at[0] += 1
                ride[k] = {"shift": held.shift, "sign": held.sign}
                return [held[f"p{j}"] for j in range(len(values))]

            sig = Signal(2 * FP16.SIG_BITS, name=f"sig_product{k}")   # exact: 22 bits
            m.d.comb += sig.eq(sig_product(m, x.sig, y.sig, f"mul{k}", cut=cut))
            lanes.append(pipe.rank(self._mul_stages, {"sig": sig, **ride[k]},
                                   f"product{k}"))

        # The beat's special values in three segments, on the side ranks: the operands'
        # classes per lane (rank 0), the products' special cases per lane (the next side
        # rank), the beat's (the one after): one decode-and-reduce over every lane would be
        # rank 0's longest path. There are at least two side ranks before the beat code:
        # the products' and the alignment's.
        side = {"first": beat.first, "last": beat.last, "sign": Cat(*signs),
                **{c: Cat(*bits) for c, bits in classes.items()}}
        if self._slots > 1:
            side["slot"] = beat.slot

        def lane_cases(s):
            zero_inf = (s.x_inf & s.y_zero) | (s.y_inf & s.x_zero)
            nan = s.x_nan | s.y_nan | zero_inf
            inf = (s.x_inf | s.y_inf) & ~nan
            return {**self._carry(s), "nan": nan, "pos_inf": inf & ~s.sign,
                    "neg_inf": inf & s.sign, "invalid": s.x_snan | s.y_snan | zero_inf,
                    "neg_zero": (s.x_zero | s.y_zero) & s.sign}

        def beat_cases(s):
            inf_inf = s.pos_inf.any() & s.neg_inf.any()
            return {**self._carry(s), "nan": s.nan.any() | inf_inf,
                    "inf": Cat(s.pos_inf, s.neg_inf).any(), "inf_sign": s.neg_inf.any(),
                    "invalid": s.invalid.any() | inf_inf,
                    "neg_zero": s.neg_zero.all()}    # every product -0: a -0 beat sum

        transforms = [lane_cases, beat_cases]

        def next_rank(name):
            nonlocal side, rank_k
            side = self._side(pipe, rank_k, side, f"{name}_side")
            rank_k += 1
            if transforms:
                side = transforms.pop(0)(side)

        for _ in range(1 + self._mul_stages):
            next_rank(f"s{rank_k}")

        # --- aligned into the 2**-48 fixed point, signed (a rank inside with align_stages) -
        # Lane 0 is negated in two's complement before its shift (a sign-extending shift);
        # every other lane shifts its magnitude (zeros in) and enters the tree in ones'
        # complement, (sig << shift) ^ sign = value - sign, and its missing +sign rides
        # along as a pending carry until a tree adder takes it as its carry-in: a tree of
        # lanes - 1 adders has exactly one carry-in for each of those lanes (a subtree
        # without lane 0 hands one carry up, the one with lane 0 none), so no lane needs a
        # negation of its own.
        w = FUSED_PRODUCT_SHAPE.width
        nodes = []
        for k, p in enumerate(lanes):
            if k == 0:
                v = Signal(signed(2 * FP16.SIG_BITS + 1), name=f"signed{k}")
                m.d.comb += v.eq(Mux(p.sign, -p.sig, p.sig))
            else:
                v = p.sig
            shift, sign = p.shift, p.sign
            if self._align_stages and k == 0:   # negated here, shifted after the rank
                held = pipe.rank(rank_k, {"v": v, "shift": shift}, f"align_neg{k}")
                v, shift = held.v.as_signed(), held.shift
            elif self._align_stages:    # by 0..3 here, by a multiple of 4 after the rank
                low = pipe.rank(rank_k, {"v": v << shift[:2], "high": shift[2:],
                                         "sign": sign}, f"align_low{k}")
                v, shift, sign = low.v, low.high << 2, low.sign
            aligned = Signal(FUSED_PRODUCT_SHAPE, name=f"aligned{k}")
            if k == 0:
                m.d.comb += aligned.eq((v << shift)[:w].as_signed())
                pending = []
            else:
                mag = Cat((v << shift)[:w - 1], Const(0, 1))
                m.d.comb += aligned.eq((mag ^ sign.replicate(w)).as_signed())
                pending = [pipe.register(rank_k + self._align_stages, sign, f"s1_c{k}")]
            nodes.append((pipe.register(rank_k + self._align_stages, aligned, f"s1_v{k}"),
                          pending))
        for _ in range(1 + self._align_stages):
            next_rank(f"a{rank_k}")

        # --- the exact adder tree (every level widens by a bit), a rank per level ---------
        # A node holds its subtree's exact sum minus its pending carries; the sum of at most
        # 2**L products has |sum| < 2**(80 + L) - 2**58, so a node of level L fits
        # 81 + L bits signed, its pending carry included.
        # The bits below 2**-26 enter the rounder only as a jam bit (their OR) at 2**-27:
        # 2 * floor(S / 2**22) + (S mod 2**22 != 0), in two's complement for either sign,
        # lies in the same open interval between multiples of 2**-26 as S (or equals S),
        # and every rounding FP16Rounder makes, the tininess test included, is at 2**-25
        # or coarser (two places above the jam bit) whenever it can matter: the result,
        # its flags and zero are those of S, with a normalizer half as wide. The last tree
        # level registers the jammed sum (its low bits settle early in the carry chain).
        def jam(total):
            return Cat(total[:JAM_BITS].any(), total[JAM_BITS:]).as_signed()

        while len(nodes) > 1:
            nxt = []
            for j in range(0, len(nodes), 2):
                (a, pa), (b, pb) = nodes[j], nodes[j + 1]
                carry, *rest = pa + pb
                total = (a + b + carry)[:len(a) + 1].as_signed()
                if len(nodes) == 2:
                    total = jam(total)
                node = pipe.register(rank_k, total, f"t{rank_k}_v{j // 2}")
                rest = [pipe.register(rank_k, c, f"t{rank_k}_c{j // 2}_{i}")
                        for i, c in enumerate(rest)]
                nxt.append((node, rest))
            nodes = nxt
            next_rank(f"t{rank_k}")
        assert not nodes[0][1]

        # --- the beat rounder (rounder_stages ranks), then the beat code -------------------
        jammed = Signal(signed(self.rounder_width), name="beat_sum_jammed")
        m.d.comb += jammed.eq(nodes[0][0] if self.levels else jam(nodes[0][0]))
        exp = Const(FUSED_LSB_EXP + JAM_BITS - 1, signed(len(Const(FUSED_LSB_EXP))))
        rnd = m.submodules.beat_rounder = FP16Rounder(
            self.rounder_width, len(exp), signed=True, stages=self._rounder_stages)
        m.d.comb += [rnd.value.eq(jammed), rnd.exp.eq(exp)]
        if self._rounder_stages:
            m.d.comb += rnd.en.eq(pipe.en)
        for _ in range(self._rounder_stages):
            next_rank(f"r{rank_k}")
        if isinstance(side, dict):      # the last side rank was the alignment's
            side = bundle(m, side, "beat_cases")
        inf = Cat(Const(FP16.INF, FP16.MAG_BITS), side.inf_sign)
        code = Mux(side.nan, FP16.QNAN,
                   Mux(side.inf, inf, Mux(side.neg_zero, FP16.SIGN_MASK, rnd.result)))
        flags = (Mux(side.nan | side.inf | side.neg_zero, 0, rnd.flags)
                 | Mux(side.invalid, FLAG_INVALID, 0))
        c = rank_k
        assert c == self.code_rank
        assert not transforms
        beat_code = pipe.register(c, code, "beat_code")
        beat_flags = pipe.register(c, flags, "beat_flags")
        flow = self._side(pipe, c, self._carry(side), "c_side")

        # --- the accumulator: acc[slot] + beat (IEEE binary16, RNE), the output -----------
        self._fp16_loop(m, pipe, beat_code, beat_flags, flow, c, last_in)
        if admit is not None:
            self._interlock(m, pipe, beat, admit)
        return m


class Int8DotProduct(_DotBaseline):
    """INT8 dot products, ``lanes`` multiply-accumulates per cycle: the integer baseline.

    Each beat carries ``lanes`` pairs of int8 operands (two's complement, ``-128 .. 127``);
    ``lanes`` 8 x 8 multipliers form exact 16-bit products, an exact adder tree sums them,
    and a two's complement accumulator of ``16 + log2(lanes) + 16`` bits adds the beat sums:
    any dot product of up to ``2**16`` beats is exact (longer ones wrap around). The
    ``first`` beat loads the accumulator. Nothing rounds. Bit-exact with
    :func:`golden.baselines.int8_dot`.

    Pipeline::

        i --> [ lanes x mul ] --> [ adder tree ] --> acc <-- acc + sum --> [ out ] --> o

    With ``tree_stages`` the adder tree has a rank after every level (``int8_dot8_t``).

    Timing: one beat per cycle, back-to-back dot products need no idle cycle. ``latency`` =
    3 cycles (``2 + log2(lanes)`` with ``tree_stages``, at least 3) from the transfer of the
    ``last`` beat to its result on ``o`` (``o.ready`` high), counted like
    :class:`hdl.dot.DotProduct`'s. Backpressure stalls the pipeline without losing or
    repeating beats; no beat is accepted during reset.

    Parameters
    ----------
    lanes : int
        Operand pairs per beat: a power of two from 1 to 64 (default 8).
    tree_stages : bool
        A register rank after every adder-tree level (default ``False``: one rank for the
        whole tree).

    Members
    -------
    i : ``In(stream.Signature(StructLayout))``
        ``a``, ``b``: ``ArrayLayout(signed(8), lanes)`` (lane 0 in the low bits);
        ``first``, ``last``.
    o : ``Out(stream.Signature(StructLayout))``
        ``result``: the dot product, ``signed(acc_width)``.
    """

    _code = signed(INT8_BITS)
    _name = "int8_dot"

    def __init__(self, lanes=8, *, tree_stages=False):
        if tree_stages not in (False, True):
            raise ValueError(f"tree_stages must be a bool, not {tree_stages!r}")
        self._tree_stages = tree_stages
        super().__init__(lanes)

    @property
    def tree_stages(self):
        """A register rank after every adder-tree level (the fast setting), else one for the
        whole tree."""
        return self._tree_stages

    @property
    def module_name(self):
        return f"{self._name}{self._lanes}" + ("_t" if self._tree_stages else "")

    @property
    def latency(self):
        levels = (self._lanes - 1).bit_length()
        return 2 + max(1, levels) if self._tree_stages else 3

    @classmethod
    def output_layout(cls, lanes):
        return data.StructLayout({"result": signed(cls._acc_width(lanes))})

    @staticmethod
    def _sum_width(lanes):
        return INT8_PRODUCT_SHAPE.width + (lanes - 1).bit_length()

    @classmethod
    def _acc_width(cls, lanes):
        return cls._sum_width(lanes) + MAX_BEATS_LOG2

    @property
    def sum_width(self):
        """Beat sum width: |product| <= 2**14, times ``lanes``: 16 + log2(lanes)."""
        return self._sum_width(self._lanes)

    @property
    def acc_width(self):
        """Accumulator width: a beat sum times 2**16 beats."""
        return self._acc_width(self._lanes)

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        # Lockstep ranks (hdl.pipeline): products, beat sum, then the output rank.
        beat, pipe, last_in = self._lockstep_pipeline(m, self.latency)

        # Rank 0: exact products (signed(8) x signed(8) -> signed(16), range above).
        side = pipe.rank(0, {"first": beat.first, "last": beat.last}, "s1_side")
        products = [pipe.register(0, beat.a[k] * beat.b[k], f"product{k}") for k in range(n)]

        # Rank 1 (or one rank per level with tree_stages): the exact adder tree (Amaranth
        # widens every + by a bit: no overflow).
        values = list(products)
        rank_k = 0

        def stage(values):
            nonlocal rank_k, side
            rank_k += 1
            side = pipe.rank(rank_k, side, f"s{rank_k + 1}_side")
            return [pipe.register(rank_k, v, f"t{rank_k}_{k}") for k, v in enumerate(values)]

        while len(values) > 1:
            values = [values[k] + values[k + 1] for k in range(0, len(values), 2)]
            if self._tree_stages:
                values = stage(values)
        if not rank_k:                  # the whole tree in one rank (or a one-lane unit)
            values = stage(values)
        beat_sum = values[0]                                    # sum_width bits

        # The last rank: accumulator and output register.
        acc = Signal(signed(self.acc_width), reset_less=True)
        new_acc = Signal(signed(self.acc_width))
        m.d.comb += [new_acc.eq(Mux(side.first, beat_sum, acc + beat_sum)),  # wraps past 2**16
                     last_in.eq(side.last)]
        with m.If(pipe.en & pipe.valid[rank_k]):
            m.d.sync += acc.eq(new_acc)
            with m.If(side.last):
                m.d.sync += self.o.payload.result.eq(new_acc)
        return m
