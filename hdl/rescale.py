"""Range-rescale: fp16 -> int4 / int4_sym / uint4 with an fp16 scale (docs/numerics.md).

Stage functions (public, so that ``verif/formal`` proves properties on the very logic the
unit contains): :func:`rescale_decode` (decode and one 11 x 11 multiply),
:func:`rescale_bad_scale`, :func:`rescale_round` (align, round, clamp). Each takes a
``cut(name, values)`` called at its register points (:func:`point_cut`, shared by the
converters of ``hdl/fp4.py`` and ``hdl/tracker.py``): the unit puts a rank there, a formal
harness wires them through.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FLAG_INVALID, FP16, INT_FORMATS, R_BITS_MAX, ROUNDINGS

from .fp16 import Operand
from .params import FLAGS_SHAPE, flag_byte, integer, positive_int
from .pipeline import Pipeline, bundle, rank

__all__ = ["RangeRescale", "RescaleMultiply", "RescaleRound", "point_cut",
           "rescale_decode", "rescale_bad_scale", "rescale_round", "PROD_BITS", "Q_LO", "Q_HI"]

_LSB_BIAS = FP16.BIAS + FP16.FRAC_BITS      # significand LSB weight = 2**(biased exp - 25)

# Product exponent: LSB weights 2**(exp - 25) of x and s add; each lies in -24 .. +5.
Q_LO = 2 * (1 - _LSB_BIAS)                                   # -48
Q_HI = 2 * (FP16.EXP_MAX_FIELD - 1 - _LSB_BIAS)              # +10
PROD_BITS = 2 * FP16.SIG_BITS                                # 22: 11 x 11 bits, exact
# Integer parts of 2**5 = 32 or more clamp in every format (|q| <= 15 + 1 after rounding).
INT_KEEP = 5


def point_cut(m, pipe=None, points=(), suffix="", *, en=None):
    """The ``cut(name, values) -> view`` that the converters' stage functions call at each of
    their register points. The points named in ``points`` (in datapath order) become ranks
    0, 1, ... of the :class:`hdl.pipeline.Pipeline` ``pipe``, or with ``en`` (a submodule of
    a lockstep pipeline) ranks loading while ``en``; every other point (all of them when
    neither is given: the formal harnesses) is a :func:`hdl.pipeline.bundle`, wires only.
    Signal names get ``suffix`` (the lane)."""
    index = {name: k for k, name in enumerate(points)}

    def cut(name, values):
        if name in index and en is not None:
            return rank(m, en, values, f"{name}{suffix}")
        if name in index and pipe is not None:
            return pipe.rank(index[name], values, f"{name}{suffix}")
        return bundle(m, values, f"{name}{suffix}")
    return cut


def _rows(a, a3, b):
    """Radix-4 partial products of ``a * b``: row ``j`` is ``{0, a, 2a, 3a}[b[2j:2j+2]]``
    (weight ``4**j``); ``a3 = 3 * a`` comes precomputed."""
    rows = []
    for j in range(0, len(b), 2):
        digit = b[j:j + 2]
        if len(digit) == 1:
            rows.append(Mux(digit, a, 0))
        else:
            rows.append(Mux(digit[1], Mux(digit[0], a3, a << 1), Mux(digit[0], a, 0)))
    return rows


def rescale_decode(m, x, s, cut=None, carry=None):
    """Decode, then the exact 11 x 11 significand product in radix-4 rows added in a tree.
    ``s`` is shared by the lanes (its checks are too). Register points (``cut``, see
    :func:`point_cut`; default: none): ``decode`` (the fields), ``triple`` (``3 * a`` and the
    alignment shift), ``select`` (the six rows), ``rows`` (the rows added in pairs), ``sum``
    (four rows), ``product``. ``carry``: values riding along (the unit's ``u`` and ``bad``).
    Returns the ``product`` view: ``sign, nan, inf, prod`` (22 bits) and ``sh = Q_HI - q``,
    where ``q`` (-48 .. 10 for finite values) is the weight of ``prod``'s LSB; then
    ``carry``."""
    cut = cut or point_cut(m)
    carry = dict(carry or {})
    a, b = Operand(x), Operand(s)
    d = cut("decode", {"sign": a.sign, "nan": a.nan, "inf": a.inf, "a": a.sig, "b": b.sig,
                       "ea": a.exp, "eb": b.exp, **carry})
    keep = {key: d[key] for key in ("sign", "nan", "inf", *carry)}
    a3 = Signal(FP16.SIG_BITS + 2)
    m.d.comb += a3.eq(d.a + (d.a << 1))
    # The right shift that aligns prod to the units bit, Q_HI - q (0 .. 58 for finite
    # values; Inf/NaN, whose results do not read it, wrap), found beside 3 * a.
    sh = Signal(6)
    m.d.comb += sh.eq(Q_HI + 2 * _LSB_BIAS - d.ea - d.eb)
    d = cut("triple", {**keep, "a": d.a, "a3": a3, "b": d.b, "sh": sh})
    keep = {key: d[key] for key in ("sign", "nan", "inf", "sh", *carry)}
    rows = _rows(d.a, d.a3, d.b)                 # 6 rows, row j of weight 4**j
    d = cut("select", {**keep, **{f"r{j}": row for j, row in enumerate(rows)}})
    keep = {key: d[key] for key in keep}
    rows = [d[f"r{j}"] for j in range(len(rows))]
    pairs = [rows[j] + (rows[j + 1] << 2) for j in range(0, len(rows), 2)]
    d = cut("rows", {**keep, "p0": pairs[0], "p1": pairs[1], "p2": pairs[2]})
    keep = {key: d[key] for key in keep}
    d = cut("sum", {**keep, "p01": d.p0 + (d.p1 << 4), "p2": d.p2})
    keep = {key: d[key] for key in keep}
    prod = Signal(PROD_BITS)                     # exact: 22 bits
    m.d.comb += prod.eq(d.p01 + (d.p2 << 8))
    return cut("product", {"sign": keep["sign"], "nan": keep["nan"], "inf": keep["inf"],
                           "prod": prod, "sh": keep["sh"],
                           **{key: keep[key] for key in carry}})


def rescale_bad_scale(s):
    """Zero, negative (-0 included), Inf or NaN scale: the caller's error (docs/numerics.md)."""
    efield = s[FP16.FRAC_BITS:FP16.MAG_BITS]
    return (s[:FP16.MAG_BITS] == 0) | s[FP16.MAG_BITS] | (efield == FP16.EXP_MAX_FIELD)


def rescale_round(m, d, u, bad, fmt, r_bits, cut=None):
    """Align ``prod * 2**q`` (``d.sh = Q_HI - q``) to ``r`` fraction bits (``r = r_bits``, or 1
    round bit for RNE), round, clamp. Returns ``(code, flags)``.

    Register points (``cut``, see :func:`point_cut`; default: none): ``shift_hi`` (after the
    shifts by 32, 16 and 8, a sticky bit collecting what falls out), ``shift_lo`` (after the
    shifts by 4, 2 and 1), ``split`` (integer bits, ``big``, the round-up decision),
    ``round`` (the 4-bit result and the saturation test); the code and flags that come out
    are a select of ``round``'s fields. ``u`` and ``bad`` ride along to where they are read.
    """
    cut = cut or point_cut(m)
    r = r_bits or 1
    width = PROD_BITS + r + Q_HI                    # prod << (r + 10): the largest value
    sh = d.sh                                       # 0 .. 58 for finite values
    v = Cat(Const(0, r + Q_HI), d.prod)             # floor(|x * s| * 2**r) once shifted
    sticky = Const(0, 1)                            # bits shifted out below 2**-r
    keep = {"sign": d.sign, "nan": d.nan, "inf": d.inf, "bad": bad}
    if r_bits:
        # Stochastic (see the class doc): a positive value rounds up iff F + u >= 2**r, a
        # negative one's magnitude iff F + sticky > u, i.e. F + ~u + sticky >= 2**r: both
        # are the carry out of F + (u, complemented when negative) + (sticky if negative).
        keep["u"] = Mux(d.sign, ~u, u)
    for k, point in ((5, None), (4, None), (3, "shift_hi"), (2, None), (1, None),
                     (0, "shift_lo")):
        step = 1 << k
        out = Signal(width, name=f"shift{step}")
        m.d.comb += out.eq(Mux(sh[k], v >> step, v))
        sticky = sticky | (sh[k] & v[:step].any())
        v = out
        if point:
            x = cut(point, {**keep, "v": v, "sticky": sticky, "sh": sh})
            keep = {key: x[key] for key in keep}
            v, sticky, sh = x.v, x.sticky, x.sh
    frac = v[:r]
    integer = v[r:r + INT_KEEP]
    big = v[r + INT_KEEP:].any()                    # 2**5 or more: clamps in every format
    sign = keep["sign"]
    if r_bits == 0:                                 # RNE: frac is the round bit
        up = frac[0] & (sticky | integer[0])
    else:                                           # floor(v + u / 2**r), see the class doc
        cin = sign & sticky                         # Cat(cin, .) + Cat(cin, .): carry-in
        up = (Cat(cin, frac) + Cat(cin, keep["u"]))[r + 1]
    # mag = int + up <= 32; the value is +-mag. Saturation compares the magnitude with the
    # format's bound on its side (no signed compare): mag > K iff int > K, or int == K and
    # up; the compares of int run beside the rounding decision.
    f = INT_FORMATS[fmt]
    bound = Mux(sign, -f.qmin, f.qmax)
    x = cut("split", {"sign": sign, "nan": keep["nan"], "inf": keep["inf"],
                      "bad": keep["bad"], "int": integer[:f.bits], "up": up,
                      "over": keep["inf"] | big | (integer > bound),
                      "edge": integer == bound, "lost": (frac != 0) | sticky})
    sat = ~x.nan & (x.over | (x.edge & x.up))
    # +-mag modulo 16: -(int + up) = ~int + ~up.
    s4 = Mux(x.sign, (1 << f.bits) - 1, 0)
    value = Signal(f.bits)
    m.d.comb += value.eq((x.int ^ s4) + (x.up ^ x.sign))
    x = cut("round", {"sign": x.sign, "nan": x.nan, "bad": x.bad, "value": value, "sat": sat,
                      "inexact": ~x.nan & (x.lost | sat)})
    q = Mux(x.nan | x.bad, 0, Mux(x.sat, Mux(x.sign, f.qmin, f.qmax), x.value))
    flags = Mux(x.bad, FLAG_INVALID,
                flag_byte(invalid=x.nan, saturated=x.sat, inexact=x.inexact))
    return q[:f.bits], flags


class RangeRescale(wiring.Component):
    """Range-rescale (docs/numerics.md): ``q = clamp(round(x * s), qmin, qmax)`` for ``lanes`` fp16
    values ``x`` and one fp16 scale ``s`` per beat, into int4, int4_sym or uint4.

    ``x * s`` is exact (one 11 x 11 significand multiply per lane; subnormals included).
    Rounding (``rounding``):

    - ``"rne"``: to nearest, ties to even.
    - ``"stochastic"``: ``floor(x * s + u / 2**r_bits)`` with the lane's ``r_bits``-bit random
      integer ``u`` from the payload. Only the top ``r_bits`` fraction bits ``F`` and the OR of
      the rest (sticky) matter: a positive value rounds up iff ``F + u >= 2**r_bits``, a
      negative one's magnitude iff ``F + sticky > u``.

    Saturation: values outside ``[qmin, qmax]`` after rounding and +-Inf clamp to the nearer
    end and raise ``saturated | inexact``. NaN gives 0 and ``invalid``. An invalid scale (zero,
    negative, Inf or NaN; subnormal scales are fine) gives 0 and exactly ``invalid`` in every
    lane of the beat. ``inexact``: ``x * s`` is not an integer (or it saturated).
    Bit-exact with :func:`golden.rescale` (``flags=True``).

    Pipeline (``latency = 11``, one beat per cycle; every stage ends in a register rank)::

        x, s, u -> decode -> triple -> select -> rows -> sum -> product
                   fields    3a, shift  radix-4  3 pair  4+2   22-bit
                             amount     rows     sums    rows  product
                -> shift_hi -> shift_lo -> split -> round -> out
                   >> 32/16/8  >> 4/2/1    int bits  +-mag,  code,
                   + sticky    + sticky    big, up   sat     flags

    The 11 x 11 multiply is six radix-4 rows ``{0, a, 2a, 3a}`` added in a tree of three
    ranks (one carry chain each); the alignment is a 6-level shifter cut in two, each level
    OR-ing what it shifts out into the sticky bit; rounding and saturation are decided on
    the 5 integer bits of the magnitude (a larger integer part always saturates), no signed
    compare. The ranks advance in lockstep (``hdl.pipeline``): they all load while the
    output is free (``~o.valid | o.ready``), so a stalled output stops the whole pipeline
    and ``i.ready`` drops at once; a synchronous reset drops the beats in flight. Each lane
    is two instances, :class:`RescaleMultiply` (the first six ranks) and
    :class:`RescaleRound` (the last four), on the pipeline's one enable.

    Timing (``make synth`` flow, LUT-only, seed 1; one lane): ``rescale1_int4_rne`` 203 MHz
    on ECP5-25 (speed 6) and 67 MHz on iCE40 UP5K, ``rescale1_int4_sr8`` 203 / 67 MHz (the
    unpipelined unit of latency 2: 60 / 19 and 47 / 15 MHz).

    Parameters
    ----------
    lanes : int
        Values per beat (default 1).
    fmt : ``"int4"``, ``"int4_sym"`` or ``"uint4"``
        Output format (:data:`golden.formats.INT_FORMATS`).
    rounding : ``"rne"`` or ``"stochastic"``
    r_bits : int
        Width of ``u``: 0 for ``"rne"``, 1 .. 32 for ``"stochastic"``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(16, lanes), "s": 16[,
        "u": ArrayLayout(r_bits, lanes)]})))``
        fp16 codes, the shared fp16 scale, and (stochastic only) the random integers.
    o : ``Out(stream.Signature(StructLayout({"q": ArrayLayout(4, lanes),
        "flags": ArrayLayout(8, lanes)})))``
        4-bit codes (two's complement for the signed formats) and flag bytes
        (``invalid | saturated | inexact``, layout of :mod:`golden.formats`).
    """

    #: The register points of the stage functions that hold a rank, in datapath order; the
    #: output register follows the last one.
    register_points = ("decode", "triple", "select", "rows", "sum", "product", "shift_hi",
                       "shift_lo", "split", "round")
    latency = property(lambda self: len(self.register_points) + 1)

    def __init__(self, lanes=1, fmt="int4", rounding="rne", r_bits=0):
        self._lanes = positive_int(lanes, "lanes")
        if fmt not in INT_FORMATS:
            raise ValueError(f"fmt must be one of {sorted(INT_FORMATS)}, not {fmt!r}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
        r_bits = integer(r_bits, "r_bits", 0)
        if rounding == "rne" and r_bits != 0:
            raise ValueError(f"r_bits must be 0 with rounding='rne' (there is no random "
                             f"input), not {r_bits}; use rounding='stochastic'")
        if rounding == "stochastic" and not 1 <= r_bits <= R_BITS_MAX:
            raise ValueError(f"r_bits must be in 1 .. {R_BITS_MAX} with "
                             f"rounding='stochastic', not {r_bits}")
        self._fmt, self._rounding, self._r_bits = fmt, rounding, r_bits
        fields = {"x": data.ArrayLayout(FP16.BITS, self._lanes), "s": FP16.BITS}
        if r_bits:
            fields["u"] = data.ArrayLayout(r_bits, self._lanes)
        out = {"q": data.ArrayLayout(INT_FORMATS[fmt].bits, self._lanes),
               "flags": data.ArrayLayout(FLAGS_SHAPE, self._lanes)}
        super().__init__({"i": In(stream.Signature(data.StructLayout(fields))),
                          "o": Out(stream.Signature(data.StructLayout(out)))})

    lanes = property(lambda self: self._lanes)
    fmt = property(lambda self: self._fmt)
    rounding = property(lambda self: self._rounding)
    r_bits = property(lambda self: self._r_bits)

    @property
    def module_name(self):
        mode = "rne" if self._rounding == "rne" else f"sr{self._r_bits}"
        return f"rescale{self._lanes}_{self._fmt}_{mode}"

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.i, self.o, self.latency, lockstep=True)
        p = self.i.payload
        bad = rescale_bad_scale(p.s)
        # Each lane is two instances (:class:`RescaleMultiply`, :class:`RescaleRound`) on
        # the pipeline's one enable: the same logic as inline stages, but a fault in either
        # half can be checked on that half alone (``make mutate``'s local check).
        for k in range(self._lanes):
            mul = m.submodules[f"multiply{k}"] = RescaleMultiply(self._r_bits)
            rnd = m.submodules[f"round{k}"] = RescaleRound(self._fmt, self._r_bits)
            m.d.comb += [mul.en.eq(pipe.en), mul.x.eq(p.x[k]), mul.s.eq(p.s), mul.bad.eq(bad),
                         rnd.en.eq(pipe.en), rnd.product.eq(mul.product)]
            if self._r_bits:
                m.d.comb += mul.u.eq(p.u[k])
            with m.If(pipe.en):
                m.d.sync += [self.o.payload.q[k].eq(rnd.q),
                             self.o.payload.flags[k].eq(rnd.flags)]
        return m


def _product_layout(r_bits):
    """The ``product`` point's fields (:func:`rescale_decode` with ``bad`` and ``u``)."""
    fields = {"sign": 1, "nan": 1, "inf": 1, "prod": PROD_BITS, "sh": 6, "bad": 1}
    if r_bits:
        fields["u"] = r_bits
    return data.StructLayout(fields)


class RescaleMultiply(wiring.Component):
    """One lane of :class:`RangeRescale`, first half: :func:`rescale_decode` with its six
    ranks (``decode`` .. ``product``), all loading while ``en``. ``latency = 6``.

    Members: ``x`` (fp16 code), ``s`` (the scale), ``bad`` (the scale's check, carried),
    ``u`` (stochastic only, carried), ``en``: in; ``product`` (the ``product`` rank): out.
    """

    points = RangeRescale.register_points[:6]
    latency = len(points)

    def __init__(self, r_bits=0):
        self._r_bits = r_bits
        ports = {"x": In(FP16.BITS), "s": In(FP16.BITS), "bad": In(1), "en": In(1),
                 "product": Out(_product_layout(r_bits))}
        if r_bits:
            ports["u"] = In(r_bits)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        carry = {"bad": self.bad}
        if self._r_bits:
            carry["u"] = self.u
        d = rescale_decode(m, self.x, self.s, point_cut(m, points=self.points, en=self.en), carry)
        m.d.comb += self.product.as_value().eq(d.as_value())
        return m


class RescaleRound(wiring.Component):
    """One lane of :class:`RangeRescale`, second half: :func:`rescale_round` with its four
    ranks (``shift_hi`` .. ``round``), all loading while ``en``; ``q`` and ``flags`` are a
    select of the last rank (combinational). ``latency = 4``.

    Members: ``product`` (:class:`RescaleMultiply`'s), ``en``: in; ``q``, ``flags``: out.
    """

    points = RangeRescale.register_points[6:]
    latency = len(points)

    def __init__(self, fmt, r_bits=0):
        self._fmt, self._r_bits = fmt, r_bits
        super().__init__({"product": In(_product_layout(r_bits)), "en": In(1),
                          "q": Out(INT_FORMATS[fmt].bits), "flags": Out(FLAGS_SHAPE)})

    def elaborate(self, platform):
        m = Module()
        d = self.product
        u = d.u if self._r_bits else None
        q, flags = rescale_round(m, d, u, d.bad, self._fmt, self._r_bits,
                                 point_cut(m, points=self.points, en=self.en))
        m.d.comb += [self.q.eq(q), self.flags.eq(flags)]
        return m
