"""Formal property harnesses for the MAC datapath (``hdl.lanes``, ``hdl.dot``).

- ``shift_lane_is_multiply``: the fp4 shift lane equals an ordinary multiply of the decoded
  fp4 value (in units of 2**-6) by the integer, for every input: the shifter is a multiplier.
- ``int4_lane_is_multiply``: the forward lane equals the product of the two decoded integers.
- ``dot<N>_tree_width``: the dot unit's adder tree never overflows: every adder's node equals
  the sum of its two inputs and its carry-in in 32-bit arithmetic, for every input, and the
  root is the beat sum (with the elaboration checks of ``beat_sum``: every operand and carry
  enters one adder; so the beat sum is the sum of the operands).
- ``dot<N>_tree_operands``: those operands are the lane products, each taken from the
  contract's definitions (the decoded integers' product, the decoded fp4 value times the
  integer), not from ``hdl.lanes``: backward lanes 1 .. N-1 enter as ``p - sign`` (ones'
  complement), lane 0 as ``p``, the last operand counts the negative lanes 1 .. N-1 (the
  carry-ins the tree adders take), and forward lanes enter as their products. With the
  previous property: beat sum = sum of the exact products, for every input of the dot
  unit's own lanes.
- ``dot8_merged_tree_operands``: the same for the merged lanes of the fast units
  (``lane_stages >= 1``, :func:`hdl.lanes.merged_operands`): every operand is its lane's
  exact product, in either mode, and nothing is pending.
- ``dot<N>_exact_acc_width``: the exact accumulator's register holds any sum of up to 2**16
  beat sums without overflow (k-induction on ``|acc| <= beats * max|beat sum|``).

``HARNESSES`` maps a name to ``(factory, mode, depth)`` like ``properties.HARNESSES``.
"""

from amaranth.hdl import Array, Assert, Assume, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from golden.formats import FP4, INT4
from hdl.dot import MAX_BEATS_LOG2, DotProduct, beat_sum
from hdl.lanes import FP4ShiftLane, Int4MulLane, operand

WIDE = signed(32)


def _decoded_fp4_times_64(m, code):
    """Decoded fp4 magnitude in units of 2**-6, from the contract's definition 4**(e-4)."""
    table = Array([Const(0 if e == 0 else 4 ** (e - FP4.EXP_MIN), WIDE)
                   for e in range(1 << FP4.EXP_BITS)])
    mag = Signal(WIDE)
    m.d.comb += mag.eq(table[code[:FP4.EXP_BITS]])
    return Mux(code[FP4.SIGN_BIT], -mag, mag)


class ShiftLaneIsMultiply(wiring.Component):
    a: In(FP4.BITS)
    b: In(INT4.bits)
    b_signed: In(1)

    def elaborate(self, platform):
        m = Module()
        lane = m.submodules.lane = FP4ShiftLane()
        m.d.comb += [lane.a.eq(self.a), lane.b.eq(self.b), lane.b_signed.eq(self.b_signed)]
        ref = Signal(WIDE)
        m.d.comb += ref.eq(_decoded_fp4_times_64(m, self.a) * operand(self.b, self.b_signed))
        m.d.comb += Assert(lane.p == ref)
        m.d.comb += Assert(lane.ones == ref - self.a[FP4.SIGN_BIT])
        return m


class Int4LaneIsMultiply(wiring.Component):
    a: In(INT4.bits)
    b: In(INT4.bits)
    a_signed: In(1)
    b_signed: In(1)

    def elaborate(self, platform):
        m = Module()
        lane = m.submodules.lane = Int4MulLane()
        m.d.comb += [lane.a.eq(self.a), lane.b.eq(self.b),
                     lane.a_signed.eq(self.a_signed), lane.b_signed.eq(self.b_signed)]
        ref = Signal(WIDE)
        m.d.comb += ref.eq(operand(self.a, self.a_signed) * operand(self.b, self.b_signed))
        m.d.comb += Assert(lane.p == ref)
        return m


def _beat_harness(lanes, name, check, lane_stages=0):
    """A harness over one free input beat of the ``lanes``-lane dot unit's adder tree
    (:func:`beat_sum`, context straight from the beat): ``check(m, beat, sum, operands,
    adders)`` adds its assertions. ``lane_stages = 2``: the merged lanes, their ranks
    replaced by wires (a stage function that returns its values)."""
    class BeatHarness(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(DotProduct.input_layout(lanes))})

        def elaborate(self, platform):
            m = Module()
            stage = (lambda values, level: values) if lane_stages else None
            check(m, self.i, *beat_sum(m, self.i, self.i, lanes, stage, lane_stages))
            return m
    BeatHarness.__name__ = BeatHarness.__qualname__ = name
    return BeatHarness


def _tree_width(lanes, narrow=False):
    """Every tree adder is exact: its node equals ``x + y + carry`` in 32-bit arithmetic, for
    every input (not only those the lanes make), and the root is the beat sum. With
    ``beat_sum``'s elaboration checks (every operand and every carry enters exactly one
    adder; the root has ``sum_width`` bits, no truncation) the beat sum is the sum of the
    operands. Proven adder by adder: an equivalence of the whole tree against a chain of
    additions took z3 minutes. ``narrow=True`` is a mutant (each node one bit narrower)
    that the prover must refute."""
    def check(m, beat, s, operands, adders):
        for node, x, y, carry in adders:
            wide = Signal(WIDE)
            m.d.comb += wide.eq(x + y + carry)
            if narrow:
                node = node[:-1].as_signed()
            m.d.comb += Assert(node == wide)
        root = adders[-1][0] if adders else operands[0]
        m.d.comb += Assert(s == root)
    return _beat_harness(lanes, "TreeWidth", check)


def _tree_operands(lanes, twos=False, merged=False):
    """``twos=True`` is a mutant (it expects backward lanes in two's complement) that the
    prover must refute: the reference products are not vacuous. ``merged=True``: the merged
    lanes (``lane_stages = 2``), every operand the exact product, no pending carries
    (with ``twos=False`` then a mutant that expects ones' complement)."""
    expect_ones = merged == twos       # the gated lanes, or the merged lanes' mutant

    def check(m, beat, s, operands, adders):
        backward = beat.mode == 1
        negative = [beat.a[k][FP4.SIGN_BIT] for k in range(lanes)]
        for k in range(lanes):
            a, b = beat.a[k], beat.b[k]
            # The lane's product from the contract's definitions, not from hdl.lanes.
            ref = Signal(WIDE, name=f"ref{k}")
            m.d.comb += ref.eq(Mux(backward,
                                   _decoded_fp4_times_64(m, a) * operand(b, beat.b_signed),
                                   operand(a, beat.a_signed) * operand(b, beat.b_signed)))
            # Lane 0 enters in two's complement, the others in ones' complement (the
            # merged lanes: all in two's complement).
            ones = backward & negative[k] if expect_ones and k else 0
            m.d.comb += Assert(operands[k] == ref - ones)
        pending = sum(negative[1:]) if expect_ones else 0
        m.d.comb += Assert(operands[lanes] == Mux(backward, pending, 0))
    return _beat_harness(lanes, "TreeOperands", check, 2 if merged else 0)


def _exact_acc_width(lanes):
    unit = DotProduct(lanes, "exact")
    limit = lanes * (15 << FP4.PRODUCT_SHIFT_MAX)      # max |beat sum|
    big = signed(unit.acc_width + 8)

    class ExactAccWidth(wiring.Component):
        s: In(signed(unit.sum_width))

        def elaborate(self, platform):
            m = Module()
            acc = Signal(signed(unit.acc_width))           # the unit's register width
            ref = Signal(big)                              # the same sum, 8 bits wider
            beats = Signal(MAX_BEATS_LOG2 + 2)
            m.d.comb += Assume((self.s <= limit) & (self.s >= -limit))
            m.d.comb += Assume(beats <= (1 << MAX_BEATS_LOG2))
            m.d.sync += [acc.eq(acc + self.s), ref.eq(ref + self.s), beats.eq(beats + 1)]
            m.d.comb += [
                Assert(acc == ref),
                Assert(ref <= beats * limit),
                Assert(ref >= -(beats * limit)),
            ]
            return m
    return ExactAccWidth


HARNESSES = {
    "shift_lane_is_multiply": (ShiftLaneIsMultiply, "bmc", 1),
    "int4_lane_is_multiply": (Int4LaneIsMultiply, "bmc", 1),
    "dot8_tree_width": (_tree_width(8), "bmc", 1),
    "dot8_tree_operands": (_tree_operands(8), "bmc", 1),
    "dot32_tree_width": (_tree_width(32), "bmc", 1),
    "dot8_merged_tree_operands": (_tree_operands(8, merged=True), "bmc", 1),
    "dot8_exact_acc_width": (_exact_acc_width(8), "prove", 2),
}

# Mutants: each must FAIL, which shows the properties above are not vacuous.
MUTANTS = {
    "dot8_tree_width_narrow": (_tree_width(8, narrow=True), "bmc", 1),
    "dot8_tree_operands_twos": (_tree_operands(8, twos=True), "bmc", 1),
    "dot8_merged_tree_operands_ones": (_tree_operands(8, twos=True, merged=True), "bmc", 1),
}
