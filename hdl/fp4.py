"""The radix-4 fp4 converters: fp16 -> fp4 (:class:`LogConverter`) and fp4 -> fp16
(:class:`FP4Decoder`) (docs/numerics.md, "Log converter" and "fp4 -> fp16").

Stage functions (public, for the formal harnesses): :func:`log_decode`, :func:`log_level`,
:func:`decode_fp4`.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data

from golden.formats import FP4, FP16

from .fp16 import Operand, log2_fields
from .params import FLAGS_SHAPE, ScaledStream, flag_byte, g_range
from .pipeline import Pipeline
from .rounder import FP16Rounder

__all__ = ["LogConverter", "FP4Decoder", "log_decode", "log_level", "decode_fp4"]

# fp4 levels 4**(e-4) sit at even binary exponents from -6 (e = 1) to +6 (e = 7).
_LEVEL_LO_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MIN - FP4.EXP_BIAS)      # -6
_LEVEL_HI_LOG2 = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS)      # +6
# In an odd binade [2**E, 2**(E+1)) the midpoint 5/8 * 4**(k+1) is 5/4 * 2**E: with the
# normalized significand 1.f (10 fraction bits) the value rounds up iff f > 0.25 * 2**10.
_MID_FRAC = ((FP4.MID_NUM << (FP16.FRAC_BITS + FP4.RADIX_LOG2 - 1 - FP4.MID_DEN_LOG2))
             - (1 << FP16.FRAC_BITS))                               # 256


def log_decode(m, x, g, phase):
    """Decode and normalize; ``e = floor(log2 |x * 2**g / 2**phase|)`` on an unbounded
    exponent, ``frac`` the 10 bits below the leading one."""
    op = Operand(x)
    ex, frac = log2_fields(m, op)
    return {"sign": op.sign, "nan": op.nan, "inf": op.inf, "zero": op.zero,
            "e": ex + g - phase, "frac": frac}


def log_level(m, d):
    """The level: exponent parity and one compare against the 5/8 midpoint. Returns
    ``(code, flags)``."""
    e, frac = d.e, d.frac
    odd = e[0]
    up = frac > _MID_FRAC                   # odd binade: above 5/4 * 2**e rounds up
    level = (e >> 1) + FP4.EXP_BIAS + (odd & up)      # floor(e / 2) + 4 (+1)
    top = d.inf | (e > _LEVEL_HI_LOG2)
    ecode = Signal(FP4.EXP_BITS)
    # e == -7: [2**-7, 2**-6) lies between 0 and 4**-3, midpoint 2**-7: up unless exact.
    m.d.comb += ecode.eq(Mux(top, FP4.EXP_MAX,
                             Mux(e == FP4.ZERO_MID_LOG2, frac != 0,
                                 Mux(e < FP4.ZERO_MID_LOG2, 0, level[:FP4.EXP_BITS]))))
    number = ~d.nan & ~d.zero
    exact = ~odd & (frac == 0) & (e >= _LEVEL_LO_LOG2) & (e <= _LEVEL_HI_LOG2)
    flags = flag_byte(
        invalid=d.nan,
        saturated=number & (top | ((e == _LEVEL_HI_LOG2) & (frac != 0))),
        underflow=number & ~d.inf & (ecode == 0),
        inexact=number & (d.inf | ~exact))
    code = Mux(number & (ecode != 0), Cat(ecode, d.sign), FP4.ZERO)
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

    _name = "fp16_to_fp4"

    _ports = staticmethod(lambda n, gs: (
        {"x": data.ArrayLayout(FP16.BITS, n), "g": gs, "phase": 1},
        {"c": data.ArrayLayout(FP4.BITS, n), "flags": data.ArrayLayout(FLAGS_SHAPE, n)}))

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.i, self.o, 2)
        p = self.i.payload
        for k in range(self._lanes):
            d = pipe.rank(0, log_decode(m, p.x[k], p.g, p.phase), f"lane{k}")
            code, flags = log_level(m, d)
            with m.If(pipe.take[1]):
                m.d.sync += [self.o.payload.c[k].eq(code), self.o.payload.flags[k].eq(flags)]
        return m


def _decoder_exp_shape(g_bits):
    # exp = 2 * (e - 4) + phase - g for e = 1 .. 7: -6 - g_max .. 7 - g_min.
    g_lo, g_hi = g_range(g_bits)
    lo = FP4.RADIX_LOG2 * (FP4.EXP_MIN - FP4.EXP_BIAS) - g_hi
    hi = FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS) + 1 - g_lo
    return Shape.cast(range(lo, hi + 1))


def decode_fp4(m, c, g, phase, g_bits, name):
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


class FP4Decoder(ScaledStream):
    """fp4 decoder (docs/numerics.md): fp4 code ``c`` -> fp16 code of
    ``decode(c) * 2**phase * 2**-g`` for ``lanes`` codes per beat.

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

    _name = "fp4_to_fp16"

    _ports = staticmethod(lambda n, gs: (
        {"c": data.ArrayLayout(FP4.BITS, n), "g": gs, "phase": 1},
        {"x": data.ArrayLayout(FP16.BITS, n), "flags": data.ArrayLayout(FLAGS_SHAPE, n)}))

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.i, self.o, 1)
        p = self.i.payload
        for k in range(self._lanes):
            x, flags = decode_fp4(m, p.c[k], p.g, p.phase, self._g_bits, f"lane{k}")
            with m.If(pipe.take[0]):
                m.d.sync += [self.o.payload.x[k].eq(x), self.o.payload.flags[k].eq(flags)]
        return m


