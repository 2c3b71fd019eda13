"""The two 4-bit multiply lanes of the datapath."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FP4, INT4, UINT4

__all__ = ["Int4MulLane", "FP4ShiftLane", "INT4_PRODUCT_SHAPE", "FP4_PRODUCT_SHAPE"]

# Forward products lie in [-8 * 15, 15 * 15] = [-120, 225]: 9-bit two's complement.
INT4_PRODUCT_SHAPE = signed(9)
# Shift products lie in [-15 << 12, 15 << 12] (and +8 << 12): |p| <= 61440 < 2**16, 17 bits.
FP4_PRODUCT_SHAPE = signed(1 + UINT4.bits + FP4.PRODUCT_SHIFT_MAX)


def operand(code, is_signed):
    """A 4-bit code widened to signed(5): two's complement if ``is_signed``, else zero-extended."""
    return Mux(is_signed, code.as_signed(), code)


class Int4MulLane(wiring.Component):
    """Forward lane: 4-bit x 4-bit integer product, each operand int4 or uint4.

    Combinational (``latency = 0``). The product is exact: ``p = a * b`` with each code read
    as two's complement (``-8 .. 7``) when its ``*_signed`` input is 1, else unsigned
    (``0 .. 15``). Nothing rounds or saturates.

    Members
    -------
    a, b : ``In(4)``
        Operand codes (activation and weight).
    a_signed, b_signed : ``In(1)``
        1: the code is ``int4``; 0: ``uint4``.
    p : ``Out(signed(9))``
        The product, in ``[-120, 225]``.
    """

    a: In(INT4.bits)
    b: In(INT4.bits)
    a_signed: In(1)
    b_signed: In(1)
    p: Out(INT4_PRODUCT_SHAPE)

    latency = 0
    module_name = "int4_mul_lane"

    def elaborate(self, platform):
        m = Module()
        # signed(5) x signed(5) -> signed(10); the value fits signed(9) (range above).
        m.d.comb += self.p.eq(operand(self.a, self.a_signed) * operand(self.b, self.b_signed))
        return m


class FP4ShiftLane(wiring.Component):
    """Backward lane: radix-4 fp4 gradient times a 4-bit integer, with a shifter.

    Combinational (``latency = 0``). For fp4 code ``a = s e2 e1 e0`` and integer code ``b``
    (int4 when ``b_signed``, else uint4) the output is ``(-1)**s * b << 2*(e-1)`` for
    ``e >= 1`` and 0 for ``e = 0``: the exact product ``decode(a) * b`` in units of
    ``2**-6``. There is no multiplier: a 4-position barrel shift and a negation. The ports
    are named as :class:`hdl.dot.DotProduct`'s operands in backward mode.

    Members
    -------
    a : ``In(4)``
        fp4 code of the gradient.
    b : ``In(4)``
        Weight (int4) or activation (uint4) code.
    b_signed : ``In(1)``
        1: ``b`` is int4; 0: uint4.
    p : ``Out(signed(17))``
        The product in units of ``2**-6``, ``|p| <= 61440``.
    mag : ``Out(signed(17))``
        The shifted integer before the fp4 sign is applied: ``p = -mag if a[3] else mag``.
        A unit that sums many lanes can take ``mag ^ a[3]`` (ones' complement) and add the
        count of negative lanes once, instead of a negation per lane.
    """

    a: In(FP4.BITS)
    b: In(INT4.bits)
    b_signed: In(1)
    p: Out(FP4_PRODUCT_SHAPE)
    mag: Out(FP4_PRODUCT_SHAPE)

    latency = 0
    module_name = "fp4_shift_lane"

    def elaborate(self, platform):
        m = Module()
        e = self.a[:FP4.EXP_BITS]
        s = self.a[FP4.SIGN_BIT]
        # Shift by RADIX_LOG2 * (e - 1): (e - 1) with a zero bit appended below.
        step = Signal(FP4.EXP_BITS)
        m.d.comb += step.eq(e - FP4.EXP_MIN)
        shifted = operand(self.b, self.b_signed) << Cat(Const(0, FP4.RADIX_LOG2 - 1), step)
        m.d.comb += self.mag.eq(Mux(e == 0, 0, shifted))   # |b| << 12 <= 61440: fits
        m.d.comb += self.p.eq(Mux(s, -self.mag, self.mag))
        return m
