"""Range-rescale: fp16 -> int4 / int4_sym / uint4 with an fp16 scale (docs/numerics.md).

Stage functions (public, so that ``verif/formal`` proves properties on the very logic the
unit contains): :func:`rescale_decode` (decode and one 11 x 11 multiply),
:func:`rescale_bad_scale`, :func:`rescale_round` (align, round, clamp).
"""

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FLAG_INVALID, FP16, INT_FORMATS, R_BITS_MAX, ROUNDINGS

from .fp16 import Operand
from .params import FLAGS_SHAPE, flag_byte, integer, positive_int
from .pipeline import Pipeline

__all__ = ["RangeRescale", "rescale_decode", "rescale_bad_scale", "rescale_round",
           "PROD_BITS", "Q_LO", "Q_HI"]

_LSB_BIAS = FP16.BIAS + FP16.FRAC_BITS      # significand LSB weight = 2**(biased exp - 25)

# Product exponent: LSB weights 2**(exp - 25) of x and s add; each lies in -24 .. +5.
Q_LO = 2 * (1 - _LSB_BIAS)                                   # -48
Q_HI = 2 * (FP16.EXP_MAX_FIELD - 1 - _LSB_BIAS)              # +10
PROD_BITS = 2 * FP16.SIG_BITS                                # 22: 11 x 11 bits, exact
# Integer parts of 2**5 = 32 or more clamp in every format (|q| <= 15 + 1 after rounding).
INT_KEEP = 5


def rescale_decode(m, x, s):
    """Decode, one 11 x 11 multiply. ``s`` is shared by the lanes (its checks are too)."""
    a, b = Operand(x), Operand(s)
    return {"sign": a.sign, "nan": a.nan, "inf": a.inf,
            "prod": a.sig * b.sig,                     # exact: 22 bits
            "q": a.exp + b.exp - 2 * _LSB_BIAS}        # weight of prod's LSB: -48 .. 10


def rescale_bad_scale(s):
    """Zero, negative (-0 included), Inf or NaN scale: the caller's error (docs/numerics.md)."""
    efield = s[FP16.FRAC_BITS:FP16.MAG_BITS]
    return (s[:FP16.MAG_BITS] == 0) | s[FP16.MAG_BITS] | (efield == FP16.EXP_MAX_FIELD)


def rescale_round(m, d, u, bad, fmt, r_bits):
    """Align ``prod * 2**q`` to ``r`` fraction bits (``r = r_bits``, or 1 round bit for RNE),
    round, clamp. Returns ``(code, flags)``."""
    r = r_bits or 1
    width = PROD_BITS + r + Q_HI                    # prod << (r + 10): the largest value
    wide = Cat(Const(0, r + Q_HI), d.prod)
    sh = Signal(range(Q_HI - Q_LO + 1))             # 0 .. 58
    m.d.comb += sh.eq(Q_HI - d.q)
    aligned = Signal(width)                           # floor(|x * s| * 2**r)
    m.d.comb += aligned.eq(wide >> sh)
    low = ~(Const((1 << width) - 1, width) << sh)[:width]
    sticky = (wide & low).any()                       # bits below 2**-r
    frac = aligned[:r]
    integer = aligned[r:]
    big = integer[INT_KEEP:].any()

    if r_bits == 0:                                   # RNE: frac is the round bit
        up = frac[0] & (sticky | integer[0])
    else:                                             # floor(v + u / 2**r), see the class doc
        carry = Signal()                              # F + u >= 2**r
        m.d.comb += carry.eq((frac + u)[r])
        up = Mux(d.sign, (frac + sticky) > u, carry)
    mag = Signal(INT_KEEP + 1)
    m.d.comb += mag.eq(integer[:INT_KEEP] + up)
    value = Signal(hdl.signed(INT_KEEP + 2))
    m.d.comb += value.eq(Mux(d.sign, -mag, mag))

    f = INT_FORMATS[fmt]
    sat = Signal()
    m.d.comb += sat.eq(~d.nan & (d.inf | big | (value < f.qmin) | (value > f.qmax)))
    q = Mux(d.nan | bad, 0, Mux(sat, Mux(d.sign, f.qmin, f.qmax), value))
    inexact = ~d.nan & ((frac != 0) | sticky | d.inf | sat)
    flags = Mux(bad, FLAG_INVALID,
                flag_byte(invalid=d.nan, saturated=sat, inexact=inexact))
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

    Latency 2 (decode + multiply | align, round, clamp), one beat per cycle, full
    backpressure; a synchronous reset drops the beats in flight.

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

    latency = 2

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
        pipe = Pipeline(m, self.i, self.o, 2)
        p = self.i.payload
        bad = pipe.rank(0, {"bad": rescale_bad_scale(p.s)}, "scale")["bad"]
        for k in range(self._lanes):
            d = rescale_decode(m, p.x[k], p.s)
            if self._r_bits:
                d["u"] = p.u[k]
            d = pipe.rank(0, d, f"lane{k}")
            u = d.u if self._r_bits else None
            q, flags = rescale_round(m, d, u, bad, self._fmt, self._r_bits)
            with m.If(pipe.take[1]):
                m.d.sync += [self.o.payload.q[k].eq(q), self.o.payload.flags[k].eq(flags)]
        return m


