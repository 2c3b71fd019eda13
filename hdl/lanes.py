"""The two 4-bit multiply lanes of the datapath."""

from amaranth.hdl import Cat, Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FP4, INT4, UINT4

__all__ = ["Int4MulLane", "FP4ShiftLane", "INT4_PRODUCT_SHAPE", "FP4_PRODUCT_SHAPE",
           "int4_partials", "int4_product", "fp4_partials", "fp4_ones", "operand", "FP4_HALF_SHAPE",
           "merged_operands", "merged_halves", "shifted_product"]

# Forward products lie in [-8 * 15, 15 * 15] = [-120, 225]: 9-bit two's complement.
INT4_PRODUCT_SHAPE = signed(9)
# Shift products lie in [-15 << 12, 15 << 12] (and +8 << 12): |p| <= 61440 < 2**16, 17 bits.
FP4_PRODUCT_SHAPE = signed(1 + UINT4.bits + FP4.PRODUCT_SHIFT_MAX)


def operand(code, is_signed):
    """A 4-bit code widened to signed(5): two's complement if ``is_signed``, else zero-extended."""
    return Mux(is_signed, code.as_signed(), code)


def _times_digit(a5, d):
    """``a5 * d`` for a 2-bit unsigned digit ``d``: two rows, one adder (each sum bit takes
    ``a[j] & d0`` and ``a[j-1] & d1``: four inputs, one LUT4 of the carry chain)."""
    row0 = Mux(d[0], a5, 0)
    row1 = Mux(d[1], a5, 0)
    return (row0.as_signed() + (row1.as_signed() << 1))[:8].as_signed()


def _partials(a5, b5):
    """``a5 * b5`` (two ``signed(5)`` values, ``b5`` in ``-8 .. 15``) as the two halves
    ``pp0 + (pp1 << 2)`` (see :func:`int4_partials`)."""
    b_neg = b5[4]
    row0 = Mux(b5[2], a5, 0).as_signed()
    twice = (a5 << 1).as_signed()
    row1 = Mux(b5[3], Mux(b_neg, ~twice, twice), 0).as_signed()
    pp1 = (row0 + row1 + (b5[3] & b_neg))[:8].as_signed()
    return {"pp0": _times_digit(a5, b5[:2])[:7].as_signed(), "pp1": pp1}


def merged_operands(a, b, backward, a_signed, b_signed):
    """One multiplier for both modes, its operands: ``x`` and ``y`` (``signed(5)``) and the
    rest of the backward shift, ``hi`` (0 .. 3; 0 in forward mode).

    ``y`` is the integer operand ``b`` in both modes. Forward: ``x`` is the integer ``a``.
    Backward: ``x`` is ``(-1)**s * 4**step[0]`` for the fp4 code ``a`` (``+1, +4, -1, -4``;
    0 for a zero code), ``step = e - 1``, so that ``x * y`` is the signed ``z << 2*step[0]``
    in two's complement: the fp4 sign is applied on the multiplicand's 5 bits, the lane
    needs no negation and no ones' complement, and the two modes share every adder.
    ``(x * y) << 4*hi`` (:func:`merged_halves`, :func:`shifted_product`) is the product."""
    e = a[:FP4.EXP_BITS]
    step = (e - FP4.EXP_MIN)[:FP4.EXP_BITS]
    live = e != 0
    s = a[FP4.SIGN_BIT]
    power = Cat(live & ~step[0], live & ~step[0] & s, live & (step[0] | s), live & s)
    return {"x": Mux(backward, power.as_signed(), operand(a, a_signed)),
            "y": operand(b, b_signed), "hi": Mux(backward, step[1:], 0)}


def merged_halves(ops):
    """The halves of ``x * y`` (:func:`int4_partials`) and ``hi``, from
    :func:`merged_operands`."""
    return {**_partials(ops["x"], ops["y"]), "hi": ops["hi"]}


def shifted_product(d):
    """``(pp0 + (pp1 << 2)) << 4*hi``, in ``signed(17)``: the merged lane's product (a 4:1
    multiplexer per bit after the halves' sum)."""
    p = int4_product(d)
    step4 = 2 * FP4.RADIX_LOG2
    hi = d["hi"]
    shifted = [Cat(Const(0, step4 * k), p).as_signed() for k in range(4)]
    out = Mux(hi[1], Mux(hi[0], shifted[3], shifted[2]), Mux(hi[0], shifted[1], shifted[0]))
    return out[:FP4_PRODUCT_SHAPE.width].as_signed()


def int4_partials(a, b, a_signed, b_signed, en=None):
    """The forward product's two halves: ``a * b = pp0 + (pp1 << 2)`` with ``pp0 = a *
    b[1:0]`` (``b``'s low digit) and ``pp1 = a * b_hi``, ``b_hi = b[2] + 2 * b[3] * t``
    (``t = -1`` when ``b`` is int4 and negative, else 1: its top bit weighs -8 then). The
    negated row is ``~(2 * a) + 1``, its +1 the adder's carry in: each half is one short
    add; a pipelined unit registers them. ``en`` (a 1-bit value), when given: 0 makes both
    halves 0."""
    return _partials(operand(a, a_signed),
                     operand(b if en is None else Mux(en, b, 0), b_signed))


def int4_product(pp):
    """``pp0 + (pp1 << 2)``: the exact product in ``[-120, 225]`` (signed(9))."""
    return (pp["pp0"] + (pp["pp1"] << 2))[:INT4_PRODUCT_SHAPE.width].as_signed()


# The backward lane's first half: the integer shifted by 0 or 2, in ones' complement.
FP4_HALF_SHAPE = signed(INT4.bits + 1 + FP4.RADIX_LOG2)


def fp4_partials(a, b, b_signed, en=None, *, twos=False):
    """The backward product's first half: ``half = (z << 2*step[0]) ^ sign`` (``signed(7)``)
    and the rest of the shift, ``hi = step >> 1`` (0 .. 3), with ``step = e - 1`` and ``z``
    the integer operand, 0 for a zero fp4 code. XOR-ing the sign in here, on 7 bits, gives
    the ones' complement of the signed product: ``p - sign``. ``en`` (a 1-bit value), when
    given: 0 makes the product and its sign 0. ``twos=True``: ``half`` is negated in two's
    complement instead (a 7-bit increment), so that :func:`fp4_ones` gives ``p`` itself."""
    e = a[:FP4.EXP_BITS]
    step = (e - FP4.EXP_MIN)[:FP4.EXP_BITS]
    kill = e == 0 if en is None else (e == 0) | ~en
    z = Mux(kill, 0, operand(b, b_signed))
    sign = a[FP4.SIGN_BIT] if en is None else a[FP4.SIGN_BIT] & en
    shifted = Mux(step[0], z << FP4.RADIX_LOG2, z)
    if twos:
        half = Mux(sign, -shifted, shifted)
        fill = Const(0, 1)
    else:
        half = shifted ^ sign.replicate(FP4_HALF_SHAPE.width)
        fill = sign
    return {"half": half[:FP4_HALF_SHAPE.width].as_signed(), "hi": step[1:], "sign": sign,
            "fill": fill}


def fp4_ones(d):
    """``half << 4*hi``, the vacated bits filled with the sign: the ones' complement of the
    product, ``p - sign`` (``signed(17)``; with ``twos``, zeros fill and it is ``p``). A 4:1
    multiplexer per bit."""
    step4 = 2 * FP4.RADIX_LOG2
    shifted = [Cat(d["fill"].replicate(step4 * k), d["half"]).as_signed() if k else d["half"]
               for k in range(4)]
    hi = d["hi"]
    ones = Mux(hi[1], Mux(hi[0], shifted[3], shifted[2]), Mux(hi[0], shifted[1], shifted[0]))
    return ones[:FP4_PRODUCT_SHAPE.width].as_signed()


class Int4MulLane(wiring.Component):
    """Forward lane: 4-bit x 4-bit integer product, each operand int4 or uint4.

    Combinational (``latency = 0``). The product is exact: ``p = a * b`` with each code read
    as two's complement (``-8 .. 7``) when its ``*_signed`` input is 1, else unsigned
    (``0 .. 15``). Nothing rounds or saturates. Built as two partial products
    (:func:`int4_partials`) and their sum (:func:`int4_product`), the split point of a
    pipelined dot unit.

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
        pp = int4_partials(self.a, self.b, self.a_signed, self.b_signed)
        m.d.comb += self.p.eq(int4_product(pp))
        return m


class FP4ShiftLane(wiring.Component):
    """Backward lane: radix-4 fp4 gradient times a 4-bit integer, with a shifter.

    Combinational (``latency = 0``). For fp4 code ``a = s e2 e1 e0`` and integer code ``b``
    (int4 when ``b_signed``, else uint4) the output is ``(-1)**s * b << 2*(e-1)`` for
    ``e >= 1`` and 0 for ``e = 0``: the exact product ``decode(a) * b`` in units of
    ``2**-6``. There is no multiplier: a shift by 0 or 2 and the sign XOR on 7 bits
    (:func:`fp4_partials`), then a shift by 0, 4, 8 or 12 (:func:`fp4_ones`), the split
    point of a pipelined dot unit. The ports are named as :class:`hdl.dot.DotProduct`'s
    operands in backward mode.

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
    ones : ``Out(signed(17))``
        The product in ones' complement, ``p - a[3]``: what the dot unit's adder tree takes
        from lanes 1 .. N-1 (their +1s are its adders' carry-ins, so no lane needs a
        negation). ``p`` is ``ones + a[3]``, an incrementer this lane has and the dot unit's
        lanes do not.
    """

    a: In(FP4.BITS)
    b: In(INT4.bits)
    b_signed: In(1)
    p: Out(FP4_PRODUCT_SHAPE)
    ones: Out(FP4_PRODUCT_SHAPE)

    latency = 0
    module_name = "fp4_shift_lane"

    def elaborate(self, platform):
        m = Module()
        d = fp4_partials(self.a, self.b, self.b_signed)
        m.d.comb += self.ones.eq(fp4_ones(d))
        m.d.comb += self.p.eq(self.ones + d["sign"])
        return m
