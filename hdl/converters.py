"""Converters between fp16 and the 4-bit formats, and the range tracker (SPEC 2 and 3).

Four stream units, each ``lanes`` values wide, pipelined to one beat per cycle::

    RangeRescale   fp16 x, fp16 scale s   --> int4 / int4_sym / uint4 q, flags   (SPEC 2.1)
    LogConverter   fp16 x, g, phase       --> fp4 code, flags                    (SPEC 2.2)
    FP4Decoder     fp4 code, g, phase     --> fp16, flags                        (SPEC 2.3)
    RangeTracker   fp16 x stream, last, g --> max|x|, NaN seen, next g           (SPEC 3)

Each unit's datapath is a chain of combinational stage functions (``_*_stage*`` below) with a
register after each; :class:`_Pipeline` runs the valid/ready side. The formal harnesses in
``verif/formal`` chain the same stage functions without the registers, so the properties are
proven on the very logic the units contain.
"""

import operator

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import (
    FLAG_INEXACT,
    FLAG_INVALID,
    FLAG_SATURATED,
    FLAG_UNDERFLOW,
    FP4,
    FP16,
    INT_FORMATS,
)
from golden.fp4 import G_RANGE
from golden.gradscale import M_HI_LOG2, M_LO_LOG2
from golden.rescale import R_BITS_MAX, ROUNDINGS

from .fp16 import Operand
from .rounder import FLAGS_SHAPE, FP16Rounder, normalize, positive_int

__all__ = ["RangeRescale", "LogConverter", "FP4Decoder", "RangeTracker",
           "G_BITS_MIN", "G_BITS_MAX"]

_MAG15 = FP16.BITS - 1                      # sign-less part of an fp16 code
_LSB_BIAS = FP16.BIAS + FP16.FRAC_BITS      # significand LSB weight = 2**(biased exp - 25)

# The scale exponent g is a signed register of g_bits: SPEC asks for at least -32 .. 31
# (6 bits); the golden model accepts G_RANGE = -256 .. 256, so 9 bits is the most that the
# benches can check.
G_BITS_MIN = 6
G_BITS_MAX = (G_RANGE[1] - 1).bit_length() + 1      # 9: -256 .. 255

# fp4 levels 4**(e-4) sit at even binary exponents from -6 (e = 1) to +6 (e = 7).
_LEVEL_LO_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MIN - FP4.EXP_BIAS)      # -6
_LEVEL_HI_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS)      # +6
# In an odd binade [2**E, 2**(E+1)) the midpoint 5/8 * 4**(k+1) is 5/4 * 2**E: with the
# normalized significand 1.f (10 fraction bits) the value rounds up iff f > 0.25 * 2**10.
_MID_FRAC = ((FP4.MID_NUM << (FP16.FRAC_BITS + FP4.RADIX_LOG2 - 1 - FP4.MID_DEN_LOG2))
             - (1 << FP16.FRAC_BITS))                               # 256


def _g_bits(value):
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"g_bits must be an integer, not {value!r}") from None
    if not G_BITS_MIN <= v <= G_BITS_MAX:
        raise ValueError(f"g_bits must be in {G_BITS_MIN} .. {G_BITS_MAX} (g spans at least "
                         f"-32 .. 31 and at most the golden model's {G_RANGE}), not {v}")
    return v


def _g_range(g_bits):
    return -(1 << (g_bits - 1)), (1 << (g_bits - 1)) - 1


def _lanes_of(shape, lanes):
    return data.ArrayLayout(shape, lanes)


def _clamp(v, lo, hi):
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def _flags(**bits):
    """An 8-bit flag byte from named conditions (``inexact=..., invalid=...``)."""
    table = {"inexact": FLAG_INEXACT, "underflow": FLAG_UNDERFLOW, "invalid": FLAG_INVALID,
             "saturated": FLAG_SATURATED}
    out = Const(0, FLAGS_SHAPE)
    for name, cond in bits.items():
        out = out | Mux(cond, table[name], 0)
    return out


class _Pipeline:
    """Valid/ready control of ``depth`` registered stages between stream ports ``i`` and ``o``.

    Stage ``k`` takes a beat (``take[k]``) when it is empty or its successor takes its beat.
    Ready flows back combinationally, so the pipeline moves one beat per cycle and, under
    backpressure, fills up before ``i.ready`` drops; nothing is lost or duplicated. ``keep``
    maps a stage to a condition and-ed into the valid bit it loads (a stage that swallows
    beats: the range tracker's accumulator passes on only the ``last`` beat of a tensor).
    A synchronous reset empties every stage and holds ``i.ready`` and ``o.valid`` low.
    """

    def __init__(self, m, i, o, depth, keep=None):
        keep = keep or {}
        self.valid = [Signal(name=f"valid{k}") for k in range(depth)]
        self.take = [Signal(name=f"take{k}") for k in range(depth)]
        nxt = o.ready
        for k in reversed(range(depth)):
            m.d.comb += self.take[k].eq(~self.valid[k] | nxt)
            nxt = self.take[k]
        rst = ResetSignal("sync", allow_reset_less=True)
        m.d.comb += [i.ready.eq(self.take[0] & ~rst), o.valid.eq(self.valid[-1] & ~rst)]
        prev = i.valid
        for k in range(depth):
            with m.If(self.take[k]):
                m.d.sync += self.valid[k].eq(prev & keep.get(k, 1))
            prev = self.valid[k]

    def register(self, m, k, values, name):
        """Registers loading ``values`` (a dict of values) when stage ``k`` takes a beat."""
        regs = {}
        for key, v in values.items():
            v = hdl.Value.cast(v)
            regs[key] = Signal(v.shape(), name=f"{name}_{key}", reset_less=True)
            with m.If(self.take[k]):
                m.d.sync += regs[key].eq(v)
        return regs


def _log2_fields(m, op):
    """``floor(log2 |x|)`` and the 10 fraction bits below the leading one of a finite non-zero
    fp16 operand (subnormals normalized by the shared :func:`hdl.rounder.normalize`)."""
    norm, lz = normalize(m, op.sig, FP16.SIG_BITS)
    top = len(norm) - 1                             # the leading one lands here
    e = Signal(range(FP16.LSB_EXP, FP16.EMAX + 2))  # +1: Inf/NaN codes (masked by callers)
    m.d.comb += e.eq(op.exp - _LSB_BIAS + FP16.FRAC_BITS - lz)
    return e, norm[top - FP16.FRAC_BITS:top]


# --- range-rescale -----------------------------------------------------------------------

# Product exponent: LSB weights 2**(exp - 25) of x and s add; each lies in -24 .. +5.
_Q_LO = 2 * (1 - _LSB_BIAS)                                   # -48
_Q_HI = 2 * (FP16.EXP_MAX_FIELD - 1 - _LSB_BIAS)              # +10
_PROD_BITS = 2 * FP16.SIG_BITS                                # 22: 11 x 11 bits, exact
# Integer parts of 2**5 = 32 or more clamp in every format (|q| <= 15 + 1 after rounding).
_INT_KEEP = 5


def _rescale_stage1(m, x, s):
    """Decode, one 11 x 11 multiply. ``s`` is shared by the lanes (its checks are too)."""
    a, b = Operand(x), Operand(s)
    return {"sign": a.sign, "nan": a.nan, "inf": a.inf,
            "prod": a.sig * b.sig,                     # exact: 22 bits
            "q": a.exp + b.exp - 2 * _LSB_BIAS}        # weight of prod's LSB: -48 .. 10


def _rescale_bad_scale(s):
    """Zero, negative (-0 included), Inf or NaN scale: the caller's error (SPEC 2.1)."""
    return (s[:_MAG15] == 0) | s[_MAG15] | (s[FP16.FRAC_BITS:_MAG15] == FP16.EXP_MAX_FIELD)


def _rescale_stage2(m, d, u, bad, fmt, r_bits):
    """Align ``prod * 2**q`` to ``r`` fraction bits (``r = r_bits``, or 1 round bit for RNE),
    round, clamp. Returns ``(code, flags)``."""
    r = r_bits or 1
    width = _PROD_BITS + r + _Q_HI                    # prod << (r + 10): the largest value
    wide = Cat(Const(0, r + _Q_HI), d["prod"])
    sh = Signal(range(_Q_HI - _Q_LO + 1))             # 0 .. 58
    m.d.comb += sh.eq(_Q_HI - d["q"])
    aligned = Signal(width)                           # floor(|x * s| * 2**r)
    m.d.comb += aligned.eq(wide >> sh)
    low = ~(Const((1 << width) - 1, width) << sh)[:width]
    sticky = (wide & low).any()                       # bits below 2**-r
    frac = aligned[:r]
    integer = aligned[r:]
    big = integer[_INT_KEEP:].any()

    if r_bits == 0:                                   # RNE: frac is the round bit
        up = frac[0] & (sticky | integer[0])
    else:                                             # floor(v + u / 2**r), see the class doc
        carry = Signal()                              # F + u >= 2**r
        m.d.comb += carry.eq((frac + u)[r])
        up = Mux(d["sign"], (frac + sticky) > u, carry)
    mag = Signal(_INT_KEEP + 1)
    m.d.comb += mag.eq(integer[:_INT_KEEP] + up)
    value = Signal(hdl.signed(_INT_KEEP + 2))
    m.d.comb += value.eq(Mux(d["sign"], -mag, mag))

    f = INT_FORMATS[fmt]
    sat = Signal()
    m.d.comb += sat.eq(~d["nan"] & (d["inf"] | big | (value < f.qmin) | (value > f.qmax)))
    q = Mux(d["nan"] | bad, 0, Mux(sat, Mux(d["sign"], f.qmin, f.qmax), value))
    inexact = ~d["nan"] & ((frac != 0) | sticky | d["inf"] | sat)
    flags = Mux(bad, FLAG_INVALID,
                _flags(invalid=d["nan"], saturated=sat, inexact=inexact))
    return q[:f.bits], flags


class RangeRescale(wiring.Component):
    """Range-rescale, SPEC 2.1: ``q = clamp(round(x * s), qmin, qmax)`` for ``lanes`` fp16
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
        try:
            r_bits = operator.index(r_bits)
        except TypeError:
            raise TypeError(f"r_bits must be an integer, not {r_bits!r}") from None
        if rounding == "rne" and r_bits != 0:
            raise ValueError(f"r_bits must be 0 with rounding='rne' (there is no random "
                             f"input), not {r_bits}; use rounding='stochastic'")
        if rounding == "stochastic" and not 1 <= r_bits <= R_BITS_MAX:
            raise ValueError(f"r_bits must be in 1 .. {R_BITS_MAX} with "
                             f"rounding='stochastic', not {r_bits}")
        self._fmt, self._rounding, self._r_bits = fmt, rounding, r_bits
        fields = {"x": _lanes_of(FP16.BITS, self._lanes), "s": FP16.BITS}
        if r_bits:
            fields["u"] = _lanes_of(r_bits, self._lanes)
        out = {"q": _lanes_of(INT_FORMATS[fmt].bits, self._lanes),
               "flags": _lanes_of(FLAGS_SHAPE, self._lanes)}
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
        pipe = _Pipeline(m, self.i, self.o, 2)
        p = self.i.payload
        bad = pipe.register(m, 0, {"bad": _rescale_bad_scale(p.s)}, "scale")["bad"]
        for k in range(self._lanes):
            d = _rescale_stage1(m, p.x[k], p.s)
            if self._r_bits:
                d["u"] = p.u[k]
            d = pipe.register(m, 0, d, f"lane{k}")
            q, flags = _rescale_stage2(m, d, d.get("u"), bad, self._fmt, self._r_bits)
            with m.If(pipe.take[1]):
                m.d.sync += [self.o.payload.q[k].eq(q), self.o.payload.flags[k].eq(flags)]
        return m


# --- radix-4 log converter ---------------------------------------------------------------

def _log_stage1(m, x, g, phase):
    """Decode and normalize; ``e = floor(log2 |x * 2**g / 2**phase|)`` on an unbounded
    exponent, ``frac`` the 10 bits below the leading one."""
    op = Operand(x)
    ex, frac = _log2_fields(m, op)
    return {"sign": op.sign, "nan": op.nan, "inf": op.inf, "zero": op.zero,
            "e": ex + g - phase, "frac": frac}


def _log_stage2(m, d):
    """The level: exponent parity and one compare against the 5/8 midpoint. Returns
    ``(code, flags)``."""
    e, frac = d["e"], d["frac"]
    odd = e[0]
    up = frac > _MID_FRAC                   # odd binade: above 5/4 * 2**e rounds up
    level = (e >> 1) + FP4.EXP_BIAS + (odd & up)      # floor(e / 2) + 4 (+1)
    top = d["inf"] | (e > _LEVEL_HI_LOG2)
    ecode = Signal(FP4.EXP_BITS)
    # e == -7: [2**-7, 2**-6) lies between 0 and 4**-3, midpoint 2**-7: up unless exact.
    m.d.comb += ecode.eq(Mux(top, FP4.EXP_MAX,
                             Mux(e == FP4.ZERO_MID_LOG2, frac != 0,
                                 Mux(e < FP4.ZERO_MID_LOG2, 0, level[:FP4.EXP_BITS]))))
    number = ~d["nan"] & ~d["zero"]
    exact = ~odd & (frac == 0) & (e >= _LEVEL_LO_LOG2) & (e <= _LEVEL_HI_LOG2)
    flags = _flags(
        invalid=d["nan"],
        saturated=number & (top | ((e == _LEVEL_HI_LOG2) & (frac != 0))),
        underflow=number & ~d["inf"] & (ecode == 0),
        inexact=number & (d["inf"] | ~exact))
    code = Mux(number & (ecode != 0), Cat(ecode, d["sign"]), FP4.ZERO)
    return code, flags


class LogConverter(wiring.Component):
    """Radix-4 log converter, SPEC 2.2: fp16 ``x`` -> fp4 code of the level nearest to
    ``y = x * 2**g / 2**phase`` in the linear domain, for ``lanes`` values per beat.

    ``y`` is never formed: ``E = floor(log2 |x|) + g - phase`` is computed on an unbounded
    exponent (subnormal ``x`` normalized first, so every ``x`` and every ``g`` is exact), and
    the level follows from ``E``'s parity and one compare of the top significand bits:

    - ``E`` even: ``|y|`` lies in ``[4**k, 2 * 4**k)``, level ``4**k`` (``k = E / 2``).
    - ``E`` odd: ``|y|`` lies in ``[2 * 4**k, 4 * 4**k)``; above the midpoint ``5/8 * 4**(k+1)``
      (significand ``1.f`` with ``f > 0.25``) it rounds up to ``4**(k+1)``, else down (ties
      go down). ``E = -7`` is the zero boundary: ``|y| > 2**-7`` gives ``4**-3``, else 0.

    Saturation: ``|y| > 64`` and +-Inf give +-64 and ``saturated | inexact``. NaN gives
    ``0b0000`` and ``invalid``. A non-zero ``y`` that rounds to zero raises ``underflow |
    inexact``; zero results are always ``0b0000``. Bit-exact with :func:`golden.to_fp4`
    (``flags=True``).

    Latency 2 (decode/normalize | level), one beat per cycle, full backpressure; a
    synchronous reset drops the beats in flight.

    Parameters
    ----------
    lanes : int
        Values per beat (default 1); ``g`` and ``phase`` are shared by the beat.
    g_bits : int
        Width of the signed scale exponent ``g`` (6 .. 9, default 6: ``-32 .. 31``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(16, lanes),
        "g": signed(g_bits), "phase": 1})))``
        fp16 codes, scale exponent, TPR phase (0 even, 1 odd).
    o : ``Out(stream.Signature(StructLayout({"c": ArrayLayout(4, lanes),
        "flags": ArrayLayout(8, lanes)})))``
        fp4 codes and flag bytes (``invalid | saturated | underflow | inexact``).
    """

    latency = 2

    def __init__(self, lanes=1, g_bits=G_BITS_MIN):
        self._lanes = positive_int(lanes, "lanes")
        self._g_bits = _g_bits(g_bits)
        n = self._lanes
        i = {"x": _lanes_of(FP16.BITS, n), "g": hdl.signed(self._g_bits), "phase": 1}
        o = {"c": _lanes_of(FP4.BITS, n), "flags": _lanes_of(FLAGS_SHAPE, n)}
        super().__init__({"i": In(stream.Signature(data.StructLayout(i))),
                          "o": Out(stream.Signature(data.StructLayout(o)))})

    lanes = property(lambda self: self._lanes)
    g_bits = property(lambda self: self._g_bits)

    @property
    def module_name(self):
        return f"fp16_to_fp4_x{self._lanes}_g{self._g_bits}"

    def elaborate(self, platform):
        m = Module()
        pipe = _Pipeline(m, self.i, self.o, 2)
        p = self.i.payload
        for k in range(self._lanes):
            d = pipe.register(m, 0, _log_stage1(m, p.x[k], p.g, p.phase), f"lane{k}")
            code, flags = _log_stage2(m, d)
            with m.If(pipe.take[1]):
                m.d.sync += [self.o.payload.c[k].eq(code), self.o.payload.flags[k].eq(flags)]
        return m


# --- fp4 decoder -------------------------------------------------------------------------

def _decoder_exp_shape(g_bits):
    # exp = 2 * (e - 4) + phase - g for e = 1 .. 7: -6 - g_max .. 7 - g_min.
    g_lo, g_hi = _g_range(g_bits)
    lo = FP4.RADIX_LOG2 * (FP4.EXP_MIN - FP4.EXP_BIAS) - g_hi
    hi = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS) + 1 - g_lo
    return Shape.cast(range(lo, hi + 1))


def _decoder_stage(m, c, g, phase, g_bits, name):
    """``decode(c) * 2**phase * 2**-g`` as sign, magnitude 1, exponent, through the project's
    one rounder (:class:`hdl.rounder.FP16Rounder`). Returns ``(code, flags)``."""
    e = c[:FP4.EXP_BITS]
    nonzero = e != 0
    exp = Signal(_decoder_exp_shape(g_bits), name=f"{name}_exp")
    m.d.comb += exp.eq((e - FP4.EXP_BIAS) * FP4.RADIX_LOG2 + phase - g)
    rounder = FP16Rounder(1, exp.shape().width)
    m.submodules[f"{name}_rounder"] = rounder
    m.d.comb += [rounder.sign.eq(c[FP4.SIGN_BIT] & nonzero), rounder.mag.eq(nonzero),
                 rounder.exp.eq(exp)]
    return rounder.result, rounder.flags


class FP4Decoder(wiring.Component):
    """fp4 decoder, SPEC 2.3: fp4 code ``c`` -> fp16 code of ``decode(c) * 2**phase * 2**-g``
    for ``lanes`` codes per beat.

    Every value is a power of two, so the result is exact while it stays inside fp16's range.
    Outside it the value goes through the project's one normalizer/rounder
    (:class:`hdl.rounder.FP16Rounder`): above 65504 it overflows to +-Inf (``overflow |
    inexact``); below 2**-14 it is a subnormal while >= 2**-24, 2**-25 rounds (ties to even)
    to zero, and anything smaller is zero (``underflow | inexact``). Both zero codes give
    ``+0``. Bit-exact with :func:`golden.from_fp4` (``flags=True``).

    Latency 1 (exponent add and rounder, then the output register), one beat per cycle, full
    backpressure; a synchronous reset drops the beat in flight.

    Parameters
    ----------
    lanes : int
        Codes per beat (default 1); ``g`` and ``phase`` are shared by the beat.
    g_bits : int
        Width of the signed scale exponent ``g`` (6 .. 9, default 6: ``-32 .. 31``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"c": ArrayLayout(4, lanes),
        "g": signed(g_bits), "phase": 1})))``
        fp4 codes, scale exponent, TPR phase (0 even, 1 odd).
    o : ``Out(stream.Signature(StructLayout({"x": ArrayLayout(16, lanes),
        "flags": ArrayLayout(8, lanes)})))``
        fp16 codes and flag bytes (``overflow | underflow | inexact``).
    """

    latency = 1

    def __init__(self, lanes=1, g_bits=G_BITS_MIN):
        self._lanes = positive_int(lanes, "lanes")
        self._g_bits = _g_bits(g_bits)
        n = self._lanes
        i = {"c": _lanes_of(FP4.BITS, n), "g": hdl.signed(self._g_bits), "phase": 1}
        o = {"x": _lanes_of(FP16.BITS, n), "flags": _lanes_of(FLAGS_SHAPE, n)}
        super().__init__({"i": In(stream.Signature(data.StructLayout(i))),
                          "o": Out(stream.Signature(data.StructLayout(o)))})

    lanes = property(lambda self: self._lanes)
    g_bits = property(lambda self: self._g_bits)

    @property
    def module_name(self):
        return f"fp4_to_fp16_x{self._lanes}_g{self._g_bits}"

    def elaborate(self, platform):
        m = Module()
        pipe = _Pipeline(m, self.i, self.o, 1)
        p = self.i.payload
        for k in range(self._lanes):
            x, flags = _decoder_stage(m, p.c[k], p.g, p.phase, self._g_bits, f"lane{k}")
            with m.If(pipe.take[0]):
                m.d.sync += [self.o.payload.x[k].eq(x), self.o.payload.flags[k].eq(flags)]
        return m


# --- range tracker -----------------------------------------------------------------------

def _tracker_stage1(m, xs):
    """Per beat: the largest non-NaN magnitude (a 15-bit code compares like its value) and
    whether any lane is NaN. A balanced tree of compares."""
    mags, nans = [], []
    for k, x in enumerate(xs):
        op = Operand(x)
        mag = Signal(_MAG15, name=f"mag{k}")
        m.d.comb += mag.eq(Mux(op.nan, 0, x[:_MAG15]))
        mags.append(mag)
        nans.append(op.nan)
    level = 0
    while len(mags) > 1:
        nxt = []
        for j in range(0, len(mags) - 1, 2):
            a, b = mags[j], mags[j + 1]
            mx = Signal(_MAG15, name=f"max{level}_{j // 2}")
            m.d.comb += mx.eq(Mux(a > b, a, b))
            nxt.append(mx)
        if len(mags) % 2:
            nxt.append(mags[-1])
        mags, level = nxt, level + 1
    return {"max": mags[0], "nan": Cat(*nans).any()}


def _gradscale_stage(m, mx, g, g_bits):
    """The GradScale rules of :func:`golden.gradscale` on a 15-bit magnitude code ``mx``:
    ``(paper, direct)``, both clamped to the range of ``g_bits``."""
    op = Operand(Cat(mx, Const(0, 1)))
    e, frac = _log2_fields(m, op)
    pow2 = frac == 0
    zero, inf = op.zero, op.inf
    a = e + g                                         # floor(log2 (max * 2**g))
    over = inf | (~zero & ((a > M_HI_LOG2) | ((a == M_HI_LOG2) & ~pow2)))
    under = zero | (~inf & ((a < M_LO_LOG2) | ((a == M_LO_LOG2) & pow2)))
    lo, hi = _g_range(g_bits)
    paper = Signal(hdl.signed(g_bits))
    direct = Signal(hdl.signed(g_bits))
    m.d.comb += [
        paper.eq(_clamp(g - over + under, lo, hi)),
        direct.eq(_clamp(Mux(zero, g, Mux(inf, g - 1, M_LO_LOG2 - e + pow2)), lo, hi)),
    ]
    return paper, direct


class RangeTracker(wiring.Component):
    """Range tracker, SPEC 2.1 and 3: the exact ``max|x|`` of each tensor of an fp16 stream,
    whether it held a NaN, and the GradScale exponent for the next iteration.

    A tensor is a run of beats of ``lanes`` values ending with ``last = 1``; one output beat
    follows each tensor. NaN values are left out of the maximum (and raise ``nan``); +-Inf
    counts (``max = 0x7C00``); a tensor of zeros and NaNs has ``max = 0``. ``max`` is the fp16
    code of the largest magnitude (sign cleared): fp16 magnitudes order like their codes, so
    the tracker compares 15-bit codes and never rounds.

    GradScale (:func:`golden.gradscale`, clamped to ``g``'s range): with the ``g`` of the
    ``last`` beat, ``g_paper`` is the paper's one-step rule (``m = max * 2**g``: ``m > 64`` ->
    ``g - 1``; ``m <= 32`` -> ``g + 1``; else ``g``; so ``max = 0`` gives ``g + 1`` and Inf
    ``g - 1``) and ``g_direct`` the ``g`` that puts ``m`` in ``(32, 64]`` in one step (``max = 0``
    keeps ``g``; Inf gives ``g - 1``).

    Latency 3 from the ``last`` beat to the result (lane max | accumulate | GradScale), one
    input beat per cycle, full backpressure; a synchronous reset drops the partial tensor
    and the results in flight (the next beat starts a new tensor).

    Parameters
    ----------
    lanes : int
        Values per beat (default 1).
    g_bits : int
        Width of the signed scale exponent (6 .. 9, default 6: ``-32 .. 31``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(16, lanes),
        "g": signed(g_bits), "last": 1})))``
        fp16 codes; the layer's current ``g`` (read on the ``last`` beat); end of tensor.
    o : ``Out(stream.Signature(StructLayout({"max": 16, "nan": 1, "g_paper": signed(g_bits),
        "g_direct": signed(g_bits)})))``
        One beat per tensor.
    """

    latency = 3

    def __init__(self, lanes=1, g_bits=G_BITS_MIN):
        self._lanes = positive_int(lanes, "lanes")
        self._g_bits = _g_bits(g_bits)
        gs = hdl.signed(self._g_bits)
        i = {"x": _lanes_of(FP16.BITS, self._lanes), "g": gs, "last": 1}
        o = {"max": FP16.BITS, "nan": 1, "g_paper": gs, "g_direct": gs}
        super().__init__({"i": In(stream.Signature(data.StructLayout(i))),
                          "o": Out(stream.Signature(data.StructLayout(o)))})

    lanes = property(lambda self: self._lanes)
    g_bits = property(lambda self: self._g_bits)

    @property
    def module_name(self):
        return f"range_tracker_x{self._lanes}_g{self._g_bits}"

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        beat = Signal()                       # stage 0's beat is valid and moves on
        last0 = Signal()
        # Stage 1 accumulates; only the last beat of a tensor moves on to stage 2.
        pipe = _Pipeline(m, self.i, self.o, 3, keep={1: last0})
        s0 = _tracker_stage1(m, [p.x[k] for k in range(self._lanes)])
        s0.update(g=p.g, last=p.last)
        s0 = pipe.register(m, 0, s0, "beat")
        m.d.comb += last0.eq(s0["last"])
        acc_max = Signal(_MAG15)
        acc_nan = Signal()
        cur_max = Mux(acc_max > s0["max"], acc_max, s0["max"])
        cur_nan = acc_nan | s0["nan"]
        m.d.comb += beat.eq(pipe.valid[0] & pipe.take[1])
        with m.If(beat):
            m.d.sync += [acc_max.eq(Mux(s0["last"], 0, cur_max)),
                         acc_nan.eq(~s0["last"] & cur_nan)]
        s1 = pipe.register(m, 1, {"max": cur_max, "nan": cur_nan, "g": s0["g"]}, "tensor")
        paper, direct = _gradscale_stage(m, s1["max"], s1["g"], self._g_bits)
        with m.If(pipe.take[2]):
            m.d.sync += [self.o.payload.max.eq(s1["max"]), self.o.payload.nan.eq(s1["nan"]),
                         self.o.payload.g_paper.eq(paper), self.o.payload.g_direct.eq(direct)]
        return m
