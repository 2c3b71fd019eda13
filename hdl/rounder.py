"""The one normalizer/rounder of the project: an exact value in, an fp16 code and flags out."""

import operator

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FLAG_INEXACT, FLAG_OVERFLOW, FLAG_UNDERFLOW, FP16

__all__ = ["FP16Rounder", "FLAGS_SHAPE", "positive_int"]

# Flags are one byte per result (golden.formats); the bit positions come from its FLAG_*.
FLAGS_SHAPE = hdl.unsigned(8)

# The rounder keeps the 11 significand bits plus the round bit after normalization; every
# bit below them only matters through its OR (sticky).
_KEEP = FP16.SIG_BITS + 1


def positive_int(value, name):
    """``value`` as a positive ``int``, or ``TypeError``/``ValueError`` naming ``name``."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, not {value!r}") from None
    if v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v}")
    return v


def _normalize(m, value, width):
    """Shift ``value`` (``width`` bits) left until its top bit is set, in log2 stages.

    Returns ``(norm, lz)``: ``norm`` has a power-of-two width ``p >= width`` with ``value``
    in its top bits, shifted left by ``lz``, the count of ``value``'s leading zeros (for a
    zero input ``norm`` is 0 and ``lz`` is meaningless). Each stage tests whether the top
    ``s`` bits are zero and shifts by ``s`` if so: the leading-zero count and the normalize
    shift in one structure.
    """
    p = 1 << (width - 1).bit_length()
    stages = (p - 1).bit_length()
    v = Signal(p, name="norm_in")
    m.d.comb += v.eq(Cat(Const(0, p - width), value))
    lz_bits = []
    for k in reversed(range(stages)):
        s = 1 << k
        top_zero = Signal(name=f"lz{s}")
        nxt = Signal(p, name=f"norm{s}")
        m.d.comb += [
            top_zero.eq(v[p - s:] == 0),
            nxt.eq(Mux(top_zero, (v << s)[:p], v)),
        ]
        lz_bits.append(top_zero)
        v = nxt
    lz = Cat(*reversed(lz_bits)) if lz_bits else Const(0, 1)
    return v, lz


class FP16Rounder(wiring.Component):
    """Round an exact value ``(-1)**sign * mag * 2**exp`` to fp16: the hardware twin of
    :func:`golden.round_fp16`, bit for bit (codes and flags).

    Combinational (``latency = 0``); meant to be instantiated inside the units that produce
    fp16 (adder, multiplier, fp4 decoder, dot-product normalizer). Structure: leading-zero
    count and normalize shift in ``log2`` stages (:func:`_normalize`), then the exponent
    ``e`` of the leading one, a denormalize shift by ``clamp(-14 - e, 0, 12)`` for subnormal
    results, round to nearest even on the 11 kept bits with round and sticky bits, and pack.

    - The rounding carry of a significand ``0x7FF`` and a subnormal rounding up to ``2**-14``
      run into the exponent field by themselves (the code is ``field << 10`` plus the
      rounded significand).
    - Overflow: a rounded value of ``2**16`` or more gives ``+-Inf`` and raises
      ``overflow | inexact``.
    - Underflow: raised when the result is inexact and tiny, with tininess detected *after*
      rounding (SoftFloat's default, matching TestFloat's vectors): the value rounded to 11
      bits with an unbounded exponent stays below ``2**-14``.
    - A zero magnitude gives a zero of the input sign (``-0`` for ``sign = 1``) and no flags;
      in ``signed`` mode zero is always ``+0``.

    Every ``mag`` of ``width`` bits and every ``exp`` of ``exp_width`` bits is handled; the
    internal exponent is wide enough for their full range (no wrap-around).

    Parameters
    ----------
    width : int
        Width of the magnitude (or of the two's complement ``value`` when ``signed``).
    exp_width : int
        Width of the signed exponent input ``exp``.
    signed : bool
        ``False`` (default): the input is ``sign`` and an unsigned ``mag``. ``True``: the
        input is one two's complement integer ``value`` (the dot-product unit's exact sums);
        its magnitude (up to ``2**(width-1)``) fits ``width`` bits unsigned.

    Members
    -------
    sign : ``In(1)``
        Sign of the value (only when not ``signed``).
    mag : ``In(width)``
        Exact magnitude, an unsigned integer (only when not ``signed``).
    value : ``In(signed(width))``
        Exact value, two's complement (only when ``signed``).
    exp : ``In(signed(exp_width))``
        Weight of the least significant bit of ``mag`` / ``value``: ``2**exp``.
    result : ``Out(16)``
        fp16 code, rounded to nearest even.
    flags : ``Out(8)``
        ``inexact | underflow | overflow`` bits, layout of :mod:`golden.formats`.
    """

    latency = 0

    def __init__(self, width, exp_width, *, signed=False):
        self._width = positive_int(width, "width")
        self._exp_width = positive_int(exp_width, "exp_width")
        if not isinstance(signed, bool):
            raise TypeError(f"signed must be a bool, not {signed!r}")
        self._signed = signed
        ports = {}
        if signed:
            ports["value"] = In(hdl.signed(self._width))
        else:
            ports["sign"] = In(1)
            ports["mag"] = In(self._width)
        ports["exp"] = In(hdl.signed(self._exp_width))
        ports["result"] = Out(FP16.BITS)
        ports["flags"] = Out(FLAGS_SHAPE)
        super().__init__(ports)

    @property
    def width(self):
        return self._width

    @property
    def exp_width(self):
        return self._exp_width

    @property
    def signed(self):
        return self._signed

    @property
    def module_name(self):
        kind = "s" if self._signed else "m"
        return f"fp16_rounder_{kind}{self._width}_e{self._exp_width}"

    def elaborate(self, platform):
        m = Module()
        w = self._width
        if self._signed:
            sign = self.value[-1]
            mag = Signal(w)
            m.d.comb += mag.eq(abs(self.value))      # |value| <= 2**(w-1): fits w bits
        else:
            sign, mag = self.sign, self.mag

        # --- normalize: norm = mag << lz, leading one at the top of a p-bit vector -------
        norm, lz = _normalize(m, mag, w)
        p = len(norm)
        top = Signal(_KEEP)             # the 11 significand bits and the round bit
        low_sticky = Signal()           # OR of every bit below them
        if p >= _KEEP:
            m.d.comb += top.eq(norm[p - _KEEP:])
            m.d.comb += low_sticky.eq(norm[:p - _KEEP].any() if p > _KEEP else 0)
        else:
            m.d.comb += top.eq(Cat(Const(0, _KEEP - p), norm))
        zero = ~top[-1]                 # after normalization the top bit is set unless mag == 0

        # Exponent of the leading one: e = exp + (w - 1) - lz.  lz <= p - 1 (zero input
        # included), so e spans [exp_min + w - p, exp_max + w - 1]: sized from that range.
        exp_lo, exp_hi = -(1 << (self._exp_width - 1)), (1 << (self._exp_width - 1)) - 1
        e_lo, e_hi = exp_lo + w - p, exp_hi + w - 1
        e = Signal(Shape.cast(range(e_lo, e_hi + 1)))
        m.d.comb += e.eq(self.exp + (w - 1) - lz)

        # --- denormalize: results below 2**EMIN keep fewer bits --------------------------
        # Shift right by EMIN - e, clamped at _KEEP: by then every kept bit is sticky.
        d_raw = Signal(Shape.cast(range(FP16.EMIN - e_hi, FP16.EMIN - e_lo + 1)))
        d = Signal(range(_KEEP + 1))
        m.d.comb += [
            d_raw.eq(FP16.EMIN - e),
            d.eq(Mux(d_raw <= 0, 0, Mux(d_raw >= _KEEP, _KEEP, d_raw[:len(d)]))),
        ]
        shifted = Signal(2 * _KEEP)     # [kept bits | bits shifted out]
        m.d.comb += shifted.eq(Cat(Const(0, _KEEP), top) >> d)
        sig = shifted[_KEEP + 1:]       # the (up to) 11 significand bits
        rnd = shifted[_KEEP]            # round bit
        sticky = low_sticky | shifted[:_KEEP].any()

        # --- round to nearest, ties to even ---------------------------------------------
        up = rnd & (sticky | sig[0])
        rounded = Signal(FP16.SIG_BITS + 1)          # 0x7FF + 1 carries into bit 11
        m.d.comb += rounded.eq(sig + up)

        # --- pack: code = (max(e, EMIN) - EMIN) << 10 + rounded --------------------------
        # For a normal result the hidden bit (bit 10 of ``rounded``) adds the 1 that turns
        # max(e, EMIN) - EMIN into the biased exponent; carries land in the field by themselves.
        efield = Signal(range(max(e_hi - FP16.EMIN, 1) + 1))
        m.d.comb += efield.eq(Mux(e < FP16.EMIN, 0, e - FP16.EMIN))
        big = efield >= FP16.EXP_MAX_FIELD           # certainly past Inf
        code = Signal(FP16.BITS)                     # <= (30 << 10) + 2**11 when not big
        m.d.comb += code.eq((efield[:FP16.EXP_BITS] << FP16.FRAC_BITS) + rounded)
        overflow = Signal()
        m.d.comb += overflow.eq(~zero & (big | (code >= FP16.INF)))

        # Tininess after rounding: e < EMIN - 1, or e == EMIN - 1 unless the 11 bits below
        # the leading one round up to 2**11 (all 12 kept bits ones: round up from 0x7FF).
        tiny = (e < FP16.EMIN - 1) | ((e == FP16.EMIN - 1) & (top != (1 << _KEEP) - 1))
        inexact = Signal()
        m.d.comb += inexact.eq(~zero & (rnd | sticky | overflow))

        magnitude = Mux(zero, 0, Mux(overflow, FP16.INF, code[:FP16.BITS - 1]))
        m.d.comb += [
            self.result.eq(Cat(magnitude, sign)),
            self.flags.eq(Mux(inexact, FLAG_INEXACT, 0) | Mux(overflow, FLAG_OVERFLOW, 0)
                          | Mux(inexact & tiny, FLAG_UNDERFLOW, 0)),
        ]
        return m
