"""Formal property harnesses for the converters (``hdl.rescale``, ``hdl.fp4``,
``hdl.tracker``), proven by SymbiYosys.

Each harness is an Amaranth component whose inputs are free: the solver picks them. The
combinational harnesses chain the units' own stage functions (the logic between the
pipeline registers), so a property proven here holds for the unit's datapath; with no state,
one BMC step covers every input -- a complete proof. The stream rules of every unit are
proven in ``streams.py``.

``HARNESSES`` maps a name to ``(factory, mode, depth)``; ``verif/test_formal.py`` runs them.
"""

from amaranth import hdl
from amaranth.hdl import Assert, Assume, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from golden.formats import (
    FLAG_INEXACT,
    FLAG_INVALID,
    FLAG_OVERFLOW,
    FLAG_SATURATED,
    FLAG_UNDERFLOW,
    FP4,
    FP16,
    G_BITS_MIN,
    INT_FORMATS,
)
from hdl.fp4 import decode_fp4, log_decode, log_level
from hdl.pipeline import bundle
from hdl.rescale import PROD_BITS, Q_HI, Q_LO, rescale_bad_scale, rescale_decode, rescale_round
from hdl.tracker import gradscale_step, tracker_max

_MAG15 = FP16.BITS - 1
_E = FP4.EXP_BITS


def _is_nan(x):
    return (x[FP16.FRAC_BITS:_MAG15] == FP16.EXP_MAX_FIELD) & (x[:FP16.FRAC_BITS] != 0)


def _real_key(x):
    """A signed integer ordering non-NaN fp16 codes like their values (-0 == +0)."""
    mag = Cat(x[:_MAG15], Const(0, 2)).as_signed()
    return Mux(x[_MAG15], -mag, mag)


def _log(m, x, g, phase):
    return log_level(m, bundle(m, log_decode(m, x, g, phase), "log_decode"))


class _LogHarness(wiring.Component):
    """A log-converter harness: the shared ``g`` and phase; :meth:`log` converts a code."""

    g: In(hdl.signed(G_BITS_MIN))
    phase: In(1)

    def log(self, m, x):
        return _log(m, x, self.g, self.phase)


class LogMonotone(_LogHarness):
    """Log converter: monotone in ``|x|`` (two instances, shared ``g`` and phase); never the
    code ``0b1000``; the sign kept on non-zero codes; odd symmetry; saturated only at 64;
    NaN gives ``0b0000`` with exactly ``invalid``."""

    x1: In(FP16.BITS)
    x2: In(FP16.BITS)

    def elaborate(self, platform):
        m = Module()
        c1, f1 = self.log(m, self.x1)
        c2, f2 = self.log(m, self.x2)
        cn, fn = self.log(m, self.x1 ^ FP16.SIGN_MASK)
        m.d.comb += Assume(~_is_nan(self.x1) & ~_is_nan(self.x2))
        with m.If(self.x1[:_MAG15] <= self.x2[:_MAG15]):
            m.d.comb += Assert(c1[:_E] <= c2[:_E])
        m.d.comb += [
            Assert(c1 != (1 << FP4.SIGN_BIT)),
            Assert((c1 == FP4.ZERO) | (c1[FP4.SIGN_BIT] == self.x1[_MAG15])),
            Assert((cn[:_E] == c1[:_E]) & (fn == f1)),
        ]
        with m.If((f1 & FLAG_SATURATED) != 0):
            m.d.comb += Assert(c1[:_E] == FP4.EXP_MAX)
        return m


class LogNaN(_LogHarness):
    """Log converter: every NaN code gives ``0b0000`` and exactly ``invalid``."""

    x: In(FP16.BITS)

    def elaborate(self, platform):
        m = Module()
        c, f = self.log(m, self.x)
        with m.If(_is_nan(self.x)):
            m.d.comb += Assert((c == FP4.ZERO) & (f == FLAG_INVALID))
        return m


def _rescale_harness(fmt, r_bits, monotone):
    class RescaleProps(wiring.Component):
        __doc__ = (f"Range-rescale ({fmt}, {'rne' if not r_bits else f'stochastic {r_bits}'}):"
                   " inside the format's range (int4_sym never 0b1000); an invalid scale "
                   "gives 0 and exactly invalid; with ``monotone``: monotone in x for a "
                   "shared scale (and shared u), two instances (the costly part: two "
                   "multipliers, about two minutes of z3).")

        x1: In(FP16.BITS)
        x2: In(FP16.BITS)
        s: In(FP16.BITS)
        u: In(max(r_bits, 1))

        def elaborate(self, platform):
            m = Module()
            f = INT_FORMATS[fmt]
            bad = rescale_bad_scale(self.s)
            u = self.u if r_bits else None
            q1, fl1 = rescale_round(m, bundle(m, rescale_decode(m, self.x1, self.s), "d1"),
                                   u, bad, fmt, r_bits)
            v1 = q1.as_signed() if f.signed else q1
            if monotone:
                q2, _ = rescale_round(m, bundle(m, rescale_decode(m, self.x2, self.s), "d2"),
                                       u, bad, fmt, r_bits)
                v2 = q2.as_signed() if f.signed else q2
                m.d.comb += Assume(~_is_nan(self.x1) & ~_is_nan(self.x2))
                with m.If(_real_key(self.x1) <= _real_key(self.x2)):
                    m.d.comb += Assert(v1 <= v2)
            m.d.comb += Assert((v1 >= f.qmin) & (v1 <= f.qmax))
            with m.If(bad):
                m.d.comb += Assert((q1 == 0) & (fl1 == FLAG_INVALID))
            return m

    RescaleProps.__name__ = f"Rescale_{fmt}_{r_bits}{'_monotone' if monotone else ''}"
    return RescaleProps


def _round_monotone_harness(fmt, r_bits):
    class RoundMonotone(wiring.Component):
        __doc__ = (f"Range-rescale ({fmt}, {'rne' if not r_bits else f'stochastic {r_bits}'})"
                   ": the align/round/clamp stage is monotone in the exact product "
                   "``(-1)**sign * prod * 2**q`` (two instances, shared u), for every 22-bit "
                   "``prod`` and every ``q`` the multiplier stage can produce. Cheap: no "
                   "multiplier in the model (the bench checks the product exhaustively).")

        sign1: In(1)
        sign2: In(1)
        p1: In(PROD_BITS)
        p2: In(PROD_BITS)
        q1: In(hdl.signed(8))
        q2: In(hdl.signed(8))
        u: In(max(r_bits, 1))

        def elaborate(self, platform):
            m = Module()
            f = INT_FORMATS[fmt]
            u = self.u if r_bits else None
            vals, keys = [], []
            for sign, p, q in ((self.sign1, self.p1, self.q1), (self.sign2, self.p2, self.q2)):
                m.d.comb += Assume((q >= Q_LO) & (q <= Q_HI))
                d = bundle(m, {"sign": sign, "nan": Const(0, 1), "inf": Const(0, 1),
                               "prod": p, "sh": (Q_HI - q)[:6]}, "d")
                v, _ = rescale_round(m, d, u, Const(0), fmt, r_bits)
                vals.append(v.as_signed() if f.signed else v)
                # The exact value in units of 2**Q_LO: an 80-bit integer, no multiplier.
                mag = Signal(PROD_BITS + Q_HI - Q_LO)
                m.d.comb += mag.eq(p << (q - Q_LO).as_unsigned()[:6])
                keys.append(Mux(sign, -mag, mag))
            with m.If(keys[0] <= keys[1]):
                m.d.comb += Assert(vals[0] <= vals[1])
            return m

    RoundMonotone.__name__ = f"RoundMonotone_{fmt}_{r_bits}"
    return RoundMonotone


class DecoderRoundTrip(wiring.Component):
    """fp4 decoder then log converter with the same ``g`` and phase gives the code back
    (``0b0000`` for both zeros) whenever the decoder raised no flag; the decoder raises
    only ``overflow``/``underflow`` (+ inexact), and a flagged result is Inf or below 2**-14."""

    c: In(FP4.BITS)
    g: In(hdl.signed(G_BITS_MIN))
    phase: In(1)

    def elaborate(self, platform):
        m = Module()
        x, fl = decode_fp4(m, self.c, self.g, self.phase, G_BITS_MIN, "dec")
        back, _ = _log(m, x, self.g, self.phase)
        nonzero = self.c[:_E] != 0
        canonical = Mux(nonzero, self.c, FP4.ZERO)
        with m.If(fl == 0):
            m.d.comb += Assert(back == canonical)
        m.d.comb += Assert((fl & ~(FLAG_OVERFLOW | FLAG_UNDERFLOW | FLAG_INEXACT)) == 0)
        with m.If(fl != 0):
            m.d.comb += Assert((x[:_MAG15] == FP16.INF)
                               | (x[FP16.FRAC_BITS:_MAG15] == 0))
        return m


class TrackerCore(wiring.Component):
    """Range tracker datapath: the lane maximum is >= every non-NaN lane magnitude and is
    one of them (0 if all are NaN); GradScale moves ``g`` by at most one step (paper rule),
    and the direct rule's ``g`` is a fixed point of the paper rule when not clamped."""

    x: In(4 * FP16.BITS)
    mx: In(_MAG15)
    g: In(hdl.signed(G_BITS_MIN))

    def elaborate(self, platform):
        m = Module()
        xs = [self.x[k * FP16.BITS:(k + 1) * FP16.BITS] for k in range(4)]
        s = tracker_max(m, xs)
        mags = [Mux(_is_nan(x), 0, x[:_MAG15]) for x in xs]
        for v in mags:
            m.d.comb += Assert(s["max"] >= v)
        m.d.comb += Assert(Cat(*[s["max"] == v for v in mags]).any())
        m.d.comb += Assert(s["nan"] == Cat(*[_is_nan(x) for x in xs]).any())

        lo, hi = -(1 << (G_BITS_MIN - 1)), (1 << (G_BITS_MIN - 1)) - 1
        m.d.comb += Assume(self.mx <= FP16.INF)
        paper, direct = gradscale_step(m, self.mx, self.g, G_BITS_MIN)
        step = paper - self.g
        m.d.comb += Assert((step >= -1) & (step <= 1))
        again, _ = gradscale_step(m, self.mx, direct, G_BITS_MIN)
        finite = (self.mx != 0) & (self.mx != FP16.INF)
        with m.If(finite & (direct > lo) & (direct < hi)):
            m.d.comb += Assert(again == direct)
        return m


HARNESSES = {
    "log_monotone": (LogMonotone, "bmc", 1),
    "log_nan": (LogNaN, "bmc", 1),
    "rescale_int4_rne_monotone": (_rescale_harness("int4", 0, True), "bmc", 1),
    "rescale_round_int4_sym_rne_monotone": (_round_monotone_harness("int4_sym", 0), "bmc", 1),
    "rescale_round_uint4_rne_monotone": (_round_monotone_harness("uint4", 0), "bmc", 1),
    "rescale_round_int4_sr8_monotone": (_round_monotone_harness("int4", 8), "bmc", 1),
    "rescale_int4_sym_rne": (_rescale_harness("int4_sym", 0, False), "bmc", 1),
    "rescale_uint4_sr4": (_rescale_harness("uint4", 4, False), "bmc", 1),
    "decoder_round_trip": (DecoderRoundTrip, "bmc", 1),
    "tracker_core": (TrackerCore, "bmc", 1),
}
