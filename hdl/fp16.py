"""IEEE 754 binary16 addition and multiplication, round to nearest even.

Each operation is split in two halves around one raw value (the STYLE's "decode -> raw ->
one shared round/pack")::

    a, b --[ decode, align/add or multiply ]--> raw --[ FP16Rounder + specials ]--> result, flags

    raw:  [ invalid | inf | nan | exp (signed) | mag (unsigned) | sign ]     (LSB on the right)

``raw`` holds the exact value ``(-1)**sign * mag * 2**exp`` (exact up to a sticky bit for the
adder, see :class:`FP16AddCore`) and the special-case bits. The combinational cores
(:class:`FP16AddCore`, :class:`FP16MulCore`) wire the two halves directly; the stream units
(:class:`FP16Adder`, :class:`FP16Multiplier`) put a register after each half.
"""

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FLAG_INVALID, FP16

from .params import FLAGS_SHAPE, Staged, integer, positive_int
from .pipeline import Pipeline, bundle, rank
from .rounder import FP16Rounder, balanced_cuts, normalize

__all__ = ["FP16AddCore", "FP16MulCore", "FP16Adder", "FP16Multiplier",
           "ADD_RAW", "MUL_RAW", "GUARD_BITS", "Operand"]

_LSB_BIAS = FP16.BIAS + FP16.FRAC_BITS     # significand LSB weight = 2**(biased exp - 25)

# The adder keeps 3 bits below the larger operand's significand: guard, round and sticky.
# Why 3: a sticky (inexact) alignment needs an exponent difference >= 2 here, so an effective
# subtraction then loses at most one leading bit; the sum still has >= 11 + 1 bits above the
# sticky bit, and a sticky bit two places below the rounding point rounds as the exact sum.
GUARD_BITS = 3


def _exp_width(lo, hi):
    """Width of the smallest signed shape holding ``lo .. hi``."""
    return Shape.cast(range(min(lo, -1), hi + 1)).width


def _raw_layout(mag_width, exp_lo, exp_hi):
    return data.StructLayout({
        "sign": 1,
        "mag": mag_width,
        "exp": hdl.signed(_exp_width(exp_lo, exp_hi)),
        "nan": 1,
        "inf": 1,
        "invalid": 1,
    })


# Adder: |sum| < 2 * 2**(11 + 3) (carry bit); exp = weight of the guard-extended LSB of the
# larger operand, biased exponent 1 .. 30 minus (25 + 3).
ADD_RAW = _raw_layout(FP16.SIG_BITS + GUARD_BITS + 1,
                      1 - _LSB_BIAS - GUARD_BITS, FP16.EXP_MAX_FIELD - 1 - _LSB_BIAS - GUARD_BITS)
# Multiplier: the exact 11 x 11 -> 22-bit significand product; exp = sum of two LSB weights.
MUL_RAW = _raw_layout(2 * FP16.SIG_BITS,
                      2 * (1 - _LSB_BIAS), 2 * (FP16.EXP_MAX_FIELD - 1 - _LSB_BIAS))


class Operand:
    """Fields of an fp16 code: sign, effective biased exponent (1 for subnormals), integer
    significand (hidden bit included), and the special-value predicates."""

    def __init__(self, code):
        efield = code[FP16.FRAC_BITS:FP16.MAG_BITS]
        frac = code[:FP16.FRAC_BITS]
        self.sign = code[FP16.MAG_BITS]
        self.exp = Mux(efield == 0, 1, efield)
        self.sig = Cat(frac, efield != 0)
        top = efield == FP16.EXP_MAX_FIELD
        self.inf = top & (frac == 0)
        self.nan = top & (frac != 0)
        self.snan = self.nan & ~frac[-1]         # quiet bit = top fraction bit
        self.zero = code[:FP16.MAG_BITS] == 0


def log2_fields(m, op):
    """``floor(log2 |x|)`` and the 10 fraction bits below the leading one of a finite non-zero
    fp16 operand (subnormals normalized by the shared :func:`hdl.rounder.normalize`)."""
    norm, lz = normalize(m, op.sig, FP16.SIG_BITS)
    top = len(norm) - 1                             # the leading one lands here
    e = Signal(range(FP16.LSB_EXP, FP16.EMAX + 2))  # +1: Inf/NaN codes (masked by callers)
    m.d.comb += e.eq(op.exp - (FP16.BIAS + FP16.FRAC_BITS) + FP16.FRAC_BITS - lz)
    return e, norm[top - FP16.FRAC_BITS:top]


def _fit(exp, layout):
    """``exp`` in the raw layout's exponent width (its range is sized to hold every value)."""
    return exp[:Shape.cast(layout["exp"].shape).width].as_signed()


def _add_raw(m, a, b, cut):
    """Swap so that ``|x| >= |y|``, align ``y`` with a sticky bit, add or subtract. Register
    points (``cut(name, values) -> view``): ``swap``, ``shamt``, ``align``, ``sum``.
    Returns ``raw``."""
    swap = Signal(name="swap")
    # Code order is magnitude order (finite values).
    m.d.comb += swap.eq(b[:FP16.MAG_BITS] > a[:FP16.MAG_BITS])
    # The exponent difference both ways, beside the compare (not after the swap): the
    # selected one is x.exp - y.exp >= 0, since |x| >= |y|.
    ea, eb = Operand(a).exp, Operand(b).exp
    dexp = Signal(range(FP16.EXP_MAX_FIELD), name="dexp")
    m.d.comb += dexp.eq(Mux(swap, eb - ea, ea - eb))
    s = cut("swap", {"x": Mux(swap, b, a), "y": Mux(swap, a, b), "dexp": dexp})
    wide = FP16.SIG_BITS + GUARD_BITS              # 14: significand + guard bits
    shift = Signal(range(wide + 1), name="align_shift")     # beyond 14 everything is sticky
    m.d.comb += shift.eq(Mux(s.dexp > wide, wide, s.dexp))
    s = cut("shamt", {"x": s.x, "y": s.y, "shift": shift})
    y = Operand(s.y)
    aligned = Signal(2 * wide, name="aligned")              # [kept | shifted out]
    m.d.comb += aligned.eq(Cat(Const(0, wide + GUARD_BITS), y.sig) >> s.shift)
    y_al = Signal(wide, name="y_aligned")
    m.d.comb += y_al.eq(Cat(aligned[wide] | aligned[:wide].any(), aligned[wide + 1:]))
    s = cut("align", {"x": s.x, "y": s.y, "y_al": y_al})
    x, y = Operand(s.x), Operand(s.y)
    x_al = Cat(Const(0, GUARD_BITS), x.sig)
    sub = x.sign ^ y.sign
    total = Signal(Shape.cast(ADD_RAW["mag"].shape), name="sum")
    # Subtraction: x_al >= y_al (|x| >= |y|; a sticky-rounded y_al never passes x_al), so
    # the difference is non-negative and fits.
    m.d.comb += total.eq(Mux(sub, x_al - s.y_al, x_al + s.y_al))
    inf_inf = x.inf & y.inf & sub
    # An exact zero sum is +0 unless both operands are -0 (RNE). The sum is zero exactly
    # when the aligned operands are equal and subtract (or are both zero, and then their
    # signs agree): the compare runs beside the adder, not after it.
    sign = Mux(x_al == s.y_al, x.sign & y.sign, x.sign)
    return cut("sum", {
        "sign": Mux(x.inf, x.sign, Mux(y.inf, y.sign, sign)),
        "mag": total,
        "exp": _fit(x.exp - (_LSB_BIAS + GUARD_BITS), ADD_RAW),
        "nan": x.nan | y.nan | inf_inf,
        "inf": x.inf | y.inf,
        "invalid": x.snan | y.snan | inf_inf,
    })


def radix4_rows(x, y, y3=None):
    """The partial products of the unsigned ``x * y``, radix 4: one row per two bits of
    ``x`` (row ``k`` weighs ``4**k``), each ``0``, ``y``, ``2y`` or ``3y`` (``y3``: formed once,
    here unless given). Their sum is the product; the rows are what a register rank inside a
    multiplier holds."""
    if y3 is None:
        y3 = y + (y << 1)
    rows = []
    for i in range(0, len(x), 2):
        d = x[i:i + 2]
        if len(d) == 2:
            row = Mux(d[1], Mux(d[0], y3, y << 1), Mux(d[0], y, 0))
        else:
            row = Mux(d[0], y, 0)
        rows.append(row)
    return rows


def _mul_raw(m, a, b, cut):
    """Exact product of the significands; exponents add. Register points: ``rows`` (the
    six radix-4 partial products, :func:`radix4_rows`), ``pairs`` (added in pairs) and
    ``product``."""
    x, y = Operand(a), Operand(b)
    zero_inf = (x.inf & y.zero) | (y.inf & x.zero)
    s = cut("rows", {
        **{f"row{k}": r for k, r in enumerate(radix4_rows(x.sig, y.sig))},
        "sign": x.sign ^ y.sign,
        "exp": _fit(x.exp + y.exp - 2 * _LSB_BIAS, MUL_RAW),
        "nan": x.nan | y.nan | zero_inf,
        "inf": x.inf | y.inf,
        "invalid": x.snan | y.snan | zero_inf,
    })
    rows = [s[f"row{k}"] << (2 * k) for k in range((FP16.SIG_BITS + 1) // 2)]
    side = {"sign": s.sign, "exp": s.exp, "nan": s.nan, "inf": s.inf, "invalid": s.invalid}
    pairs = [rows[j] + rows[j + 1] for j in range(0, len(rows), 2)]    # 6 rows: 3 pairs
    s = cut("pairs", {**{f"pair{k}": p for k, p in enumerate(pairs)}, **side})
    pairs = [s[f"pair{k}"] for k in range(len(pairs))]
    total = pairs[0]
    for p in pairs[1:]:
        total = total + p
    return cut("product", {
        "sign": s.sign,
        "mag": total[:2 * FP16.SIG_BITS],           # 11 x 11 bits: exactly 22
        "exp": s.exp, "nan": s.nan, "inf": s.inf, "invalid": s.invalid,
    })


def _pack(m, raw, name, points=(), en=None):
    """Round ``raw`` with the project's FP16Rounder and apply the special cases.

    NaN -> the canonical quiet NaN; Inf -> +-Inf with ``raw.sign``; both without the
    rounder's flags. ``invalid`` is OR-ed in. ``points``: the rounder's register points
    (loading on ``en``); the special cases ride along in ranks of their own. Returns
    ``(result, flags)`` values.
    """
    rounder = FP16Rounder(len(raw.mag), len(raw.exp), stages=len(points),
                          register_points=tuple(points))
    m.submodules[name] = rounder
    m.d.comb += [rounder.sign.eq(raw.sign), rounder.mag.eq(raw.mag), rounder.exp.eq(raw.exp)]
    special = {"sign": raw.sign, "nan": raw.nan, "inf": raw.inf, "invalid": raw.invalid}
    if points:
        m.d.comb += rounder.en.eq(en)
        for k in range(len(points)):
            special = rank(m, en, special, f"{name}_special{k}")
        special = {key: special[key] for key in ("sign", "nan", "inf", "invalid")}
    inf = Cat(Const(FP16.INF, FP16.MAG_BITS), special["sign"])
    result = Mux(special["nan"], FP16.QNAN, Mux(special["inf"], inf, rounder.result))
    flags = (Mux(special["nan"] | special["inf"], 0, rounder.flags)
             | Mux(special["invalid"], FLAG_INVALID, 0))
    return result, flags


class _FP16Core(Staged, wiring.Component):
    """Shared by the add and multiply cores: raw result, then the rounder; ``stages``
    register ranks placed over the core's own points and the rounder's (balanced by their
    estimated LUT4 depth), all loading on ``en``."""

    def __init__(self, *, stages=0):
        points = self.points()
        stages = integer(stages, "stages", 0, len(points))
        self._stages = stages
        cuts = balanced_cuts([d for _, d in points] + [0], stages)
        self._cuts = tuple(points[i][0] for i in cuts)
        ports = {"a": In(FP16.BITS), "b": In(FP16.BITS)}
        if stages:
            ports["en"] = In(1, init=1)
        ports["result"] = Out(FP16.BITS)
        ports["flags"] = Out(FLAGS_SHAPE)
        super().__init__(ports)

    @classmethod
    def points(cls):
        """``[(name, depth)]``: the core's register points, its rounder's, and ``out``
        (the rounder's last segment and the special-case select, registered)."""
        raw = cls._raw_layout
        return (cls._own_points + FP16Rounder.points(Shape.cast(raw["mag"].shape).width)
                + [("out", FP16Rounder._OUT_DEPTH + 2)])

    @property
    def module_name(self):
        return self._name + (f"_p{self._stages}" if self._stages else "")

    def elaborate(self, platform):
        m = Module()
        en = self.en if self._stages else None

        def cut(name, values):
            if name in self._cuts:
                return rank(m, en, values, name)
            return bundle(m, values, name)

        raw = type(self)._raw(m, self.a, self.b, cut)
        own = {name for name, _ in self._own_points} | {"out"}
        result, flags = _pack(m, raw, "rounder", [c for c in self._cuts if c not in own], en)
        out = cut("out", {"result": result, "flags": flags})
        m.d.comb += [self.result.eq(out.result), self.flags.eq(out.flags)]
        return m


class FP16AddCore(_FP16Core):
    """IEEE binary16 addition ``a + b``, round to nearest even: combinational core.

    Combinational (``latency = 0``): the datapath of :class:`FP16Adder` without registers or
    handshake, for units that add inside their own pipeline (the dot-product accumulator).

    A classic adder: swap so that ``|x| >= |y|``, align ``y`` right by the exponent
    difference keeping guard, round and a sticky bit (14 bits), add or subtract in 15 bits,
    then normalize and round in :class:`hdl.rounder.FP16Rounder` (leading-zero count,
    shift, RNE). The sticky bit makes the rounded result, tininess and inexact flag equal to
    those of the exact sum (see ``GUARD_BITS``), so results match :func:`golden.fp16_add`.

    - Subnormals in and out; an exact zero sum is ``+0`` unless both operands are ``-0``.
    - Overflow rounds to ``+-Inf`` (``overflow | inexact``); underflow uses tininess after
      rounding; ``Inf + x`` is that Inf without flags.
    - Any NaN operand or ``Inf - Inf`` gives the canonical quiet NaN ``0x7E00``; ``invalid``
      is raised for a signalling NaN operand or ``Inf - Inf`` (not for quiet NaNs).

    Members
    -------
    a, b : ``In(16)``
        Operand codes.
    result : ``Out(16)``
        fp16 code of the sum.
    flags : ``Out(8)``
        ``inexact | underflow | overflow | invalid`` (layout of :mod:`golden.formats`).
    """

    _name = "fp16_add_core"
    _raw_layout = ADD_RAW
    _raw = staticmethod(_add_raw)
    # Estimated LUT4 depth of each segment: magnitude compare and swap; exponent difference
    # and clamp; the 4-level align shifter and sticky; the 15-bit add/subtract (a carry).
    _own_points = [("swap", 3), ("shamt", 3), ("align", 5), ("sum", 3)]


class FP16MulCore(_FP16Core):
    """IEEE binary16 multiplication ``a * b``, round to nearest even: combinational core.

    Combinational (``latency = 0``): the datapath of :class:`FP16Multiplier` without
    registers or handshake. The 11 x 11-bit significand product (22 bits, exact) and the
    summed exponents go to :class:`hdl.rounder.FP16Rounder`, which normalizes subnormal
    products and rounds once, as :func:`golden.fp16_mul`.

    - A zero product carries the sign ``sa ^ sb``; ``Inf * x`` (x non-zero) is Inf.
    - Any NaN operand or ``0 * Inf`` gives ``0x7E00``; ``invalid`` for a signalling NaN
      operand or ``0 * Inf``.

    Members
    -------
    a, b : ``In(16)``
        Operand codes.
    result : ``Out(16)``
        fp16 code of the product.
    flags : ``Out(8)``
        ``inexact | underflow | overflow | invalid`` (layout of :mod:`golden.formats`).
    """

    _name = "fp16_mul_core"
    _raw_layout = MUL_RAW
    _raw = staticmethod(_mul_raw)
    # decode and partial products; pairs of rows added; the three pairs added
    _own_points = [("rows", 3), ("pairs", 2), ("product", 3)]


class _FP16Stream(wiring.Component):
    latency = 2

    def __init__(self, lanes=1):
        self._lanes = positive_int(lanes, "lanes")
        n = self._lanes

        def field(shape):
            return shape if n == 1 else data.ArrayLayout(shape, n)

        in_layout = data.StructLayout({"a": field(FP16.BITS), "b": field(FP16.BITS)})
        out_layout = data.StructLayout({"result": field(FP16.BITS), "flags": field(FLAGS_SHAPE)})
        super().__init__({"i": In(stream.Signature(in_layout)),
                          "o": Out(stream.Signature(out_layout))})

    @property
    def lanes(self):
        return self._lanes

    @property
    def module_name(self):
        return self._name + (f"_x{self._lanes}" if self._lanes > 1 else "")

    def elaborate(self, platform):
        m = Module()
        n = self._lanes

        def lane(view, k):
            return view if n == 1 else view[k]

        # Two elastic ranks (hdl.pipeline): the raw result, then the packed code.
        pipe = Pipeline(m, self.i, self.o, 2)
        for k in range(n):
            raw = self._raw(m, lane(self.i.payload.a, k), lane(self.i.payload.b, k),
                            lambda name, values, k=k: bundle(m, values, f"{name}{k}"))
            held = pipe.rank(0, raw, f"stage1_{k}")
            result, flags = _pack(m, held, f"rounder{k}")
            with m.If(pipe.take[1]):
                m.d.sync += [lane(self.o.payload.result, k).eq(result),
                             lane(self.o.payload.flags, k).eq(flags)]
        return m


_DATASHEET_STREAM = """

    Pipelined: ``latency = 2`` cycles from an input transfer to the output beat (``o.ready``
    held high), one beat per cycle. Stage 1 is the {first} half, stage 2 the
    :class:`hdl.rounder.FP16Rounder` and special cases. Full backpressure: while ``o.ready``
    is low, beats wait in the pipeline and ``i.ready`` drops once both stages are full;
    nothing is lost or duplicated. A synchronous reset empties the pipeline (beats in flight
    are dropped) and holds ``i.ready`` and ``o.valid`` low while it is asserted.

    Parameters
    ----------
    lanes : int
        Independent operations per beat (default 1). With ``lanes > 1`` every payload field
        is an ``ArrayLayout`` of ``lanes`` elements, lane 0 in the low bits.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({{"a": 16, "b": 16}})))``
        Operand codes.
    o : ``Out(stream.Signature(StructLayout({{"result": 16, "flags": 8}})))``
        Result code and flags (``inexact | underflow | overflow | invalid``).
"""


class FP16Adder(_FP16Stream):
    __doc__ = ("""IEEE binary16 addition ``a + b``, round to nearest even, on a stream.

    Numerics, flags and special cases exactly as :class:`FP16AddCore` (bit-exact with
    :func:`golden.fp16_add` and TestFloat).""" + _DATASHEET_STREAM.format(first="swap/align/add"))

    _name = "fp16_add"
    _raw_layout = ADD_RAW
    _raw = staticmethod(_add_raw)


class FP16Multiplier(_FP16Stream):
    __doc__ = ("""IEEE binary16 multiplication ``a * b``, round to nearest even, on a stream.

    Numerics, flags and special cases exactly as :class:`FP16MulCore` (bit-exact with
    :func:`golden.fp16_mul` and TestFloat).""" + _DATASHEET_STREAM.format(first="multiply"))

    _name = "fp16_mul"
    _raw_layout = MUL_RAW
    _raw = staticmethod(_mul_raw)
