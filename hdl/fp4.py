"""The radix-4 fp4 converters: fp16 -> fp4 (:class:`LogConverter`) and fp4 -> fp16
(:class:`FP4Decoder`) (docs/numerics.md, "Log converter" and "fp4 -> fp16").

Stage functions (public, for the formal harnesses): :func:`log_decode`, :func:`log_level`,
:func:`decode_fp4`; each takes a ``cut`` for its register points
(:func:`hdl.rescale.point_cut`): ranks in the unit, wires in a harness.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data

from golden.formats import FP4, FP16

from .fp16 import Operand
from .params import FLAGS_SHAPE, ScaledStream, flag_byte, g_range
from .pipeline import Pipeline
from .rescale import point_cut
from .rounder import FP16Rounder, normalize

__all__ = ["LogConverter", "FP4Decoder", "log_decode", "log_level", "decode_fp4"]

# fp4 levels 4**(e-4) sit at even binary exponents from -6 (e = 1) to +6 (e = 7).
_LEVEL_LO_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MIN - FP4.EXP_BIAS)      # -6
_LEVEL_HI_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS)      # +6
# In an odd binade [2**E, 2**(E+1)) the midpoint 5/8 * 4**(k+1) is 5/4 * 2**E: with the
# normalized significand 1.f (10 fraction bits) the value rounds up iff f > 0.25 * 2**10.
_MID_FRAC = ((FP4.MID_NUM << (FP16.FRAC_BITS + FP4.RADIX_LOG2 - 1 - FP4.MID_DEN_LOG2))
             - (1 << FP16.FRAC_BITS))                               # 256


def log_decode(m, x, g, phase, cut=None):
    """Decode and normalize; ``e = floor(log2 |x * 2**g / 2**phase|)`` on an unbounded
    exponent, ``frac`` the 10 bits below the leading one (a subnormal ``x`` normalized by
    the shared :func:`hdl.rounder.normalize`, as :func:`hdl.fp16.log2_fields`). Register
    points (``cut``, see :func:`hdl.rescale.point_cut`; default: none): ``norm_hi`` (after
    the normalize shifts by 8 and 4), ``norm_lo`` (by 2 and 1; ``exp + g - phase`` beside
    them), ``exp`` (``e`` and ``frac``). Returns the ``exp`` view: ``sign, nan, inf, zero, e,
    frac``."""
    cut = cut or point_cut(m)
    op = Operand(x)
    # floor(log2 |x|) + g - phase = exp - 15 - lz + g - phase: the g, phase and constant
    # terms first (one add, beside the decode), exp next (beside the last shifts), lz last.
    gp = Signal(range(g_range(len(g))[0] - 16, g_range(len(g))[1] - 14))
    m.d.comb += gp.eq(g + Mux(phase, -(FP16.BIAS + 1), -FP16.BIAS))
    carry = {"sign": op.sign, "nan": op.nan, "inf": op.inf, "zero": op.zero, "exp": op.exp,
             "gp": gp}
    points = {"norm4": "norm_hi", "norm1": "norm_lo"}

    def norm_cut(name, v, lz_bits):
        if name == "norm1":
            g_lo, g_hi = g_range(len(g))
            base = Signal(range(1 - FP16.BIAS - len(v) + g_lo - 1, FP16.EMAX + 2 + g_hi))
            m.d.comb += base.eq(carry["exp"] + carry["gp"])
            for key in ("exp", "gp"):
                del carry[key]
            carry["base"] = base
        if name not in points:
            return v, lz_bits
        y = cut(points[name], {"v": v, "lz": Cat(*lz_bits), **carry})
        carry.update({key: y[key] for key in carry})
        return y.v, [y.lz[i] for i in range(len(lz_bits))]

    norm, lz = normalize(m, op.sig, FP16.SIG_BITS, cut=norm_cut)
    top = len(norm) - 1                             # the leading one lands here
    e = Signal(carry["base"].shape())
    m.d.comb += e.eq(carry["base"] - lz)
    return cut("exp", {"sign": carry["sign"], "nan": carry["nan"], "inf": carry["inf"],
                       "zero": carry["zero"], "e": e,
                       "frac": norm[top - FP16.FRAC_BITS:top]})


def log_level(m, d, cut=None):
    """The level: exponent parity and one compare against the 5/8 midpoint. Register point
    (``cut``; default: none): ``level`` (the compares of ``e`` and ``frac``, ``floor(e / 2)``);
    the code and flags are a small add and selects after it. Returns ``(code, flags)``."""
    cut = cut or point_cut(m)
    e, frac = d.e, d.frac
    number = ~d.nan & ~d.zero
    top = d.inf | (e > _LEVEL_HI_LOG2)
    x = cut("level", {
        "sign": d.sign, "nan": d.nan, "inf": d.inf, "number": number, "top": top,
        "half": (e >> 1)[:FP4.EXP_BITS],            # floor(e / 2), + 4 below (mod 8)
        "odd_up": e[0] & (frac > _MID_FRAC),        # odd binade: above 5/4 * 2**e rounds up
        # e == -7: [2**-7, 2**-6) lies between 0 and 4**-3, midpoint 2**-7: up unless exact.
        "zmid": e == FP4.ZERO_MID_LOG2, "frac_nz": frac != 0,
        "below": e < FP4.ZERO_MID_LOG2,
        "exact": ~e[0] & (frac == 0) & (e >= _LEVEL_LO_LOG2) & (e <= _LEVEL_HI_LOG2),
        "edge": (e == _LEVEL_HI_LOG2) & (frac != 0),
    })
    level = Signal(FP4.EXP_BITS)                     # floor(e / 2) + 4 (+1)
    m.d.comb += level.eq(x.half + FP4.EXP_BIAS + x.odd_up)
    ecode = Signal(FP4.EXP_BITS)
    m.d.comb += ecode.eq(Mux(x.top, FP4.EXP_MAX,
                             Mux(x.zmid, x.frac_nz, Mux(x.below, 0, level))))
    number = x.number
    flags = flag_byte(
        invalid=x.nan,
        saturated=number & (x.top | x.edge),
        underflow=number & ~x.inf & (ecode == 0),
        inexact=number & (x.inf | ~x.exact))
    code = Mux(number & (ecode != 0), Cat(ecode, x.sign), FP4.ZERO)
    return code, flags


class LogConverter(ScaledStream):
    """Radix-4 log converter (docs/numerics.md): fp16 ``x`` -> fp4 code of the level nearest to
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

    Pipeline (``latency = 5``, one beat per cycle; every stage ends in a register rank)::

        x, g, phase -> norm_hi -> norm_lo -> exp -> level -> out
                       decode,    << 2, 1,   e =    compares  level + 1,
                       << 8, 4    exp + g    base   of e and  code,
                       g-phase-15 - phase-15 - lz   frac      flags

    ``e`` is built in three short adds beside the normalize shifter (``g - phase - 15``,
    then ``+ exp``, then ``- lz``); the level stage registers every compare of ``e`` and
    ``frac`` and ``floor(e / 2)``, the output stage adds the round-up bit and selects. The
    ranks advance in lockstep (``hdl.pipeline``): all load while the output is free, so a
    stalled output stops the pipeline and ``i.ready`` drops at once; a synchronous reset
    drops the beats in flight.

    Timing (``make synth`` flow, LUT-only, seed 1; ``fp16_to_fp4_x1_g6``): 223 MHz on
    ECP5-25 (speed 6), 62 MHz on iCE40 UP5K (the unpipelined unit of latency 2: 93 / 30).

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

    #: The register points of :func:`log_decode` and :func:`log_level` that hold a rank, in
    #: datapath order; the output register follows the last one.
    register_points = ("norm_hi", "norm_lo", "exp", "level")
    latency = property(lambda self: len(self.register_points) + 1)

    _name = "fp16_to_fp4"

    _ports = staticmethod(lambda n, gs: (
        {"x": data.ArrayLayout(FP16.BITS, n), "g": gs, "phase": 1},
        {"c": data.ArrayLayout(FP4.BITS, n), "flags": data.ArrayLayout(FLAGS_SHAPE, n)}))

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.i, self.o, self.latency, lockstep=True)
        p = self.i.payload
        for k in range(self._lanes):
            cut = point_cut(m, pipe, self.register_points, suffix=str(k))
            code, flags = log_level(m, log_decode(m, p.x[k], p.g, p.phase, cut), cut)
            with m.If(pipe.en):
                m.d.sync += [self.o.payload.c[k].eq(code), self.o.payload.flags[k].eq(flags)]
        return m


def _decoder_exp_shape(g_bits):
    # exp = 2 * (e - 4) + phase - g for e = 1 .. 7: -6 - g_max .. 7 - g_min.
    g_lo, g_hi = g_range(g_bits)
    lo = FP4.RADIX_LOG2 * (FP4.EXP_MIN - FP4.EXP_BIAS) - g_hi
    hi = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS) + 1 - g_lo
    return Shape.cast(range(lo, hi + 1))


def decode_fp4(m, c, g, phase, g_bits, name, cut=None, stages=0, en=None):
    """``decode(c) * 2**phase * 2**-g`` as sign, magnitude 1, exponent, through the project's
    one rounder (:class:`hdl.rounder.FP16Rounder`). Register points: ``exp`` (``cut``, see
    :func:`hdl.rescale.point_cut`; default: none), then ``stages`` ranks inside the rounder
    (placed by it, loading on ``en``). Returns ``(code, flags)``."""
    cut = cut or point_cut(m)
    e = c[:FP4.EXP_BITS]
    nonzero = e != 0
    exp = Signal(_decoder_exp_shape(g_bits), name=f"{name}_exp")
    m.d.comb += exp.eq((e - FP4.EXP_BIAS) * FP4.RADIX_LOG2 + phase - g)
    d = cut("exp", {"sign": c[FP4.SIGN_BIT] & nonzero, "mag": nonzero, "exp": exp})
    rounder = FP16Rounder(1, exp.shape().width, stages=stages)
    m.submodules[f"{name}_rounder"] = rounder
    m.d.comb += [rounder.sign.eq(d.sign), rounder.mag.eq(d.mag), rounder.exp.eq(d.exp)]
    if stages:
        m.d.comb += rounder.en.eq(en)
    return rounder.result, rounder.flags


class FP4Decoder(ScaledStream):
    """fp4 decoder (docs/numerics.md): fp4 code ``c`` -> fp16 code of
    ``decode(c) * 2**phase * 2**-g`` for ``lanes`` codes per beat.

    Every value is a power of two, so the result is exact while it stays inside fp16's range.
    Outside it the value goes through the project's one normalizer/rounder
    (:class:`hdl.rounder.FP16Rounder`): above 65504 it overflows to +-Inf (``overflow |
    inexact``); below 2**-14 it is a subnormal while >= 2**-24, 2**-25 rounds (ties to even)
    to zero, and anything smaller is zero (``underflow | inexact``). Both zero codes give
    ``+0``. Bit-exact with :func:`golden.from_fp4` (``flags=True``).

    Pipeline (``latency = 8``, one beat per cycle)::

        c, g, phase -> exp -> [ FP16Rounder, 6 ranks: ecmp clamp denorm sticky round pack ]
                       2(e-4) + phase - g                                        -> out

    The exponent rank, then the shared rounder with ``ROUNDER_STAGES = 6`` of its own
    register ranks (placed by :class:`hdl.rounder.FP16Rounder`'s balanced cuts), then the
    output register. All ranks advance in lockstep (``hdl.pipeline``: the rounder's ranks
    take the pipeline's one enable), so a stalled output stops the pipeline and ``i.ready``
    drops at once; a synchronous reset drops the beats in flight.

    Timing (``make synth`` flow, LUT-only, seed 1; ``fp4_to_fp16_x1_g6``): 239 MHz on
    ECP5-25 (speed 6), 81 MHz on iCE40 UP5K (the unpipelined unit of latency 1: 80 / 30).

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

    #: Register ranks inside the shared rounder (its own balanced placement).
    ROUNDER_STAGES = 6
    #: The exponent rank, the rounder's ranks, the output register.
    latency = ROUNDER_STAGES + 2

    _name = "fp4_to_fp16"

    _ports = staticmethod(lambda n, gs: (
        {"c": data.ArrayLayout(FP4.BITS, n), "g": gs, "phase": 1},
        {"x": data.ArrayLayout(FP16.BITS, n), "flags": data.ArrayLayout(FLAGS_SHAPE, n)}))

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.i, self.o, self.latency, lockstep=True)
        p = self.i.payload
        for k in range(self._lanes):
            cut = point_cut(m, pipe, ("exp",), suffix=str(k))
            x, flags = decode_fp4(m, p.c[k], p.g, p.phase, self._g_bits, f"lane{k}", cut,
                                  self.ROUNDER_STAGES, pipe.en)
            with m.If(pipe.en):
                m.d.sync += [self.o.payload.x[k].eq(x), self.o.payload.flags[k].eq(flags)]
        return m


