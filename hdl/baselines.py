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
from .pipeline import Pipeline
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


class FP16DotProduct(Interleaved, _DotBaseline):
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

    _code = FP16.BITS
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
        for tag, v in (("a", self._acc_stages), ("m", self._mul_stages),
                       ("t", self._add_stages), ("q", self._out_depth)):
            tail += f"_{tag}{v}" if v else ""
        return f"{self._name}{self._lanes}{tail}"

    @property
    def levels(self):
        """Adder-tree levels: log2(lanes)."""
        return (self._lanes - 1).bit_length()

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

    @property
    def latency(self):
        return self.depth + (2 if self._out_depth else 0)

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


def sig_product(m, x, y, name):
    """The exact unsigned product ``x * y`` (``len(x) + len(y)`` bits), radix 4: a partial
    product per two bits of ``x`` chosen from ``0, y, 2y, 3y`` (``3y`` precomputed once),
    the ``ceil(len(x) / 2)`` rows summed by a balanced tree of kept carry-chain adders. For
    11 x 11 bits on ECP5 (yosys, no DSP) about 200 LUT4 where ``x * y`` takes about 540."""
    y3 = _keep(m, y + (y << 1), f"{name}_y3")
    rows = [_keep(m, row, f"{name}_pp{k}") << (2 * k)
            for k, row in enumerate(radix4_rows(x, y, y3))]
    level = 0
    while len(rows) > 1:
        rows = [_keep(m, rows[j] + rows[j + 1], f"{name}_sum{level}_{j // 2}")
                if j + 1 < len(rows) else rows[j] for j in range(0, len(rows), 2)]
        level += 1
    return rows[0][:len(x) + len(y)]


class FusedFP16DotProduct(_DotBaseline):
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
    (:class:`FP16AddCore`) adds the rounded beat sums, the ``first`` beat loading it.
    Special values per beat: any NaN operand or ``0 * Inf`` gives ``0x7E00``; Inf products
    of both signs give ``0x7E00`` with ``invalid``; other Inf products give that Inf (no
    flags); ``invalid`` also for a signalling NaN operand and ``0 * Inf``; an exact zero
    beat sum is ``+0`` unless every product of the beat is ``-0`` (padding lanes are ``+0``
    products). ``flags`` is the OR of every beat rounding's and every accumulator
    addition's flags. Bit-exact with :func:`golden.baselines.fused_fp16_dot`; the contract
    is ``docs/numerics.md``, Density baselines.

    Area (no DSPs): the 11 x 11 significand multipliers are radix 4 on carry chains
    (:func:`sig_product`); lane 0 is negated before its shift, the other lanes enter the
    tree in ones' complement and their ``+1`` is the carry-in of a tree adder (a tree has
    one adder per lane but lane 0), so no lane has a negation of its own. The alignment
    shifters (``22 -> 80`` bits, six levels) are the largest part.

    Pipeline (register ranks like :class:`FP16DotProduct`'s: after the products, after every
    tree level, around the rounder, ``rounder_stages`` inside it)::

        i --> [ lanes x (decode, 11 x 11 mul, specials) ] --> [ sign, align << 0..58 ] -->
              [ tree level 1 ] --> ... --> [ tree level log2(lanes) ] -->
              [ FP16Rounder (rounder_stages ranks) ] --> [ beat code, specials ] -->
                                        o <-- [ out ] <-- acc <-- acc + beat

    Timing: one beat per cycle, back-to-back dot products need no idle cycle. ``latency`` =
    ``4 + log2(lanes) + rounder_stages`` cycles from the transfer of the ``last`` beat to
    its result on ``o`` (``o.ready`` high), counted like :class:`hdl.dot.DotProduct`'s: 8
    for 8 lanes. Backpressure stalls the whole pipeline without losing or repeating beats;
    no beat is accepted during reset, and a reset drops the beats in flight.

    Fmax: the accumulator loop, one combinational :class:`FP16AddCore` per cycle, as in
    :class:`FP16DotProduct`; every other segment is shorter (the rounder, about as deep as
    the adder, is cut once).

    Parameters
    ----------
    lanes : int
        Operand pairs per beat: a power of two from 1 to 64 (default 8).

    Members
    -------
    i : ``In(stream.Signature(StructLayout))``
        ``a``, ``b``: ``ArrayLayout(16, lanes)`` fp16 codes (lane 0 in the low bits);
        ``first``, ``last``.
    o : ``Out(stream.Signature(StructLayout))``
        ``result``: fp16 code; ``flags``: ``inexact | underflow | overflow | invalid``.
    """

    _code = FP16.BITS
    _name = "fused_fp16_dot"
    # Register ranks inside the beat rounder (balanced over its points): one cut makes the
    # 84-bit rounder's halves shorter than the accumulator's adder, which sets Fmax.
    rounder_stages = 1

    output_layout = staticmethod(FP16DotProduct.output_layout)

    @property
    def levels(self):
        """Adder-tree levels: log2(lanes)."""
        return (self._lanes - 1).bit_length()

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
    def latency(self):
        # products, aligned, tree levels, rounder ranks, beat code, out
        return 4 + self.levels + self.rounder_stages

    def elaborate(self, platform):
        m = Module()
        n = self._lanes
        depth = self.latency
        beat, pipe, last_in = self._lockstep_pipeline(m, depth)

        # --- rank 0: exact significand products, exponent sums, the beat's special values -
        lanes, any_nan, pos_inf, neg_inf, invalid, neg_zero = [], [], [], [], [], []
        for k in range(n):
            x, y = Operand(beat.a[k]), Operand(beat.b[k])
            sign = x.sign ^ y.sign
            zero_inf = (x.inf & y.zero) | (y.inf & x.zero)
            nan = x.nan | y.nan | zero_inf
            inf = (x.inf | y.inf) & ~nan
            sig = Signal(2 * FP16.SIG_BITS, name=f"sig_product{k}")   # exact: 22 bits
            # Weight of the product's LSB: (x.exp - 25) + (y.exp - 25) = shift - 48, so the
            # shift into the 2**-48 fixed point is x.exp + y.exp - 2 (0 .. 58 when finite;
            # Inf/NaN lanes shift garbage that the special values override).
            shift = Signal(range(2 * FP16.EXP_MAX_FIELD - 1), name=f"shift{k}")
            m.d.comb += [sig.eq(sig_product(m, x.sig, y.sig, f"mul{k}")),
                         shift.eq(x.exp + y.exp - 2)]
            lanes.append(pipe.rank(0, {"sig": sig, "shift": shift, "sign": sign},
                                   f"product{k}"))
            any_nan.append(nan)
            pos_inf.append(inf & ~sign)
            neg_inf.append(inf & sign)
            invalid.append(x.snan | y.snan | zero_inf)
            neg_zero.append((x.zero | y.zero) & sign)
        inf_inf = Cat(*pos_inf).any() & Cat(*neg_inf).any()
        side = pipe.rank(0, {
            "first": beat.first, "last": beat.last,
            "nan": Cat(*any_nan).any() | inf_inf,
            "inf": Cat(*pos_inf, *neg_inf).any(),
            "inf_sign": Cat(*neg_inf).any(),
            "invalid": Cat(*invalid).any() | inf_inf,
            "neg_zero": Cat(*neg_zero).all(),       # every product -0: a -0 beat sum
        }, "s0_side")

        # --- rank 1: aligned into the 2**-48 fixed point, signed ---------------------------
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
            aligned = Signal(FUSED_PRODUCT_SHAPE, name=f"aligned{k}")
            if k == 0:
                v = Signal(signed(2 * FP16.SIG_BITS + 1), name=f"signed{k}")
                m.d.comb += [v.eq(Mux(p.sign, -p.sig, p.sig)),
                             aligned.eq((v << p.shift)[:w].as_signed())]
                pending = []
            else:
                mag = Cat((p.sig << p.shift)[:w - 1], Const(0, 1))
                m.d.comb += aligned.eq((mag ^ p.sign.replicate(w)).as_signed())
                pending = [pipe.register(1, p.sign, f"s1_c{k}")]
            nodes.append((pipe.register(1, aligned, f"s1_v{k}"), pending))
        side = pipe.rank(1, side, "s1_side")

        # --- ranks 2 .. 1 + levels: the exact adder tree (every level widens by a bit) -----
        # A node holds its subtree's exact sum minus its pending carries; the sum of at most
        # 2**L products has |sum| < 2**(80 + L) - 2**58, so a node of level L fits
        # 81 + L bits signed, its pending carry included.
        rank_k = 1
        while len(nodes) > 1:
            rank_k += 1
            nxt = []
            for j in range(0, len(nodes), 2):
                (a, pa), (b, pb) = nodes[j], nodes[j + 1]
                carry, *rest = pa + pb
                total = (a + b + carry)[:len(a) + 1].as_signed()
                node = pipe.register(rank_k, total, f"s{rank_k}_v{j // 2}")
                rest = [pipe.register(rank_k, c, f"s{rank_k}_c{j // 2}_{i}")
                        for i, c in enumerate(rest)]
                nxt.append((node, rest))
            nodes = nxt
            side = pipe.rank(rank_k, side, f"s{rank_k}_side")
        assert not nodes[0][1]
        values = [nodes[0][0]]
        total = Signal(signed(self.sum_width), name="beat_sum")
        m.d.comb += total.eq(values[0])

        # --- the beat rounder (rounder_stages ranks), then the beat code -------------------
        # The bits below 2**-26 enter the rounder only as a jam bit (their OR) at 2**-27:
        # 2 * floor(S / 2**22) + (S mod 2**22 != 0), in two's complement for either sign,
        # lies in the same open interval between multiples of 2**-26 as S (or equals S),
        # and every rounding FP16Rounder makes, the tininess test included, is at 2**-25
        # or coarser (two places above the jam bit) whenever it can matter: the result,
        # its flags and zero are those of S, with a normalizer half as wide.
        jammed = Signal(signed(self.rounder_width), name="beat_sum_jammed")
        m.d.comb += jammed.eq(Cat(total[:JAM_BITS].any(), total[JAM_BITS:]))
        exp = Const(FUSED_LSB_EXP + JAM_BITS - 1, signed(len(Const(FUSED_LSB_EXP))))
        rnd = m.submodules.beat_rounder = FP16Rounder(
            self.rounder_width, len(exp), signed=True, stages=self.rounder_stages)
        m.d.comb += [rnd.value.eq(jammed), rnd.exp.eq(exp), rnd.en.eq(pipe.en)]
        for _ in range(self.rounder_stages):
            rank_k += 1
            side = pipe.rank(rank_k, side, f"r{rank_k}_side")
        inf = Cat(Const(FP16.INF, FP16.MAG_BITS), side.inf_sign)
        code = Mux(side.nan, FP16.QNAN,
                   Mux(side.inf, inf, Mux(side.neg_zero, FP16.SIGN_MASK, rnd.result)))
        flags = (Mux(side.nan | side.inf | side.neg_zero, 0, rnd.flags)
                 | Mux(side.invalid, FLAG_INVALID, 0))
        rank_k += 1
        beat_sum = pipe.register(rank_k, code, "beat_code")
        beat_flags = pipe.register(rank_k, flags, "beat_flags")
        side = pipe.rank(rank_k, {"first": side.first, "last": side.last}, "c_side")
        assert rank_k == depth - 2

        # --- accumulator: acc <- first ? beat : acc + beat (IEEE binary16, RNE); output ---
        acc = Signal(FP16.BITS, reset_less=True)
        acc_flags = Signal(FLAGS_SHAPE, reset_less=True)
        add = m.submodules.accumulator = FP16AddCore()
        new_acc = Signal(FP16.BITS)
        new_flags = Signal(FLAGS_SHAPE)
        m.d.comb += [
            add.a.eq(acc), add.b.eq(beat_sum),
            new_acc.eq(Mux(side.first, beat_sum, add.result)),
            new_flags.eq(Mux(side.first, beat_flags, acc_flags | beat_flags | add.flags)),
            last_in.eq(side.last),
        ]
        with m.If(pipe.en & pipe.valid[rank_k]):
            m.d.sync += [acc.eq(new_acc), acc_flags.eq(new_flags)]
            with m.If(side.last):
                m.d.sync += [self.o.payload.result.eq(new_acc),
                             self.o.payload.flags.eq(new_flags)]
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
