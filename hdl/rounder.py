"""The one normalizer/rounder of the project: an exact value in, an fp16 code and flags out."""

from amaranth import hdl
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FLAG_INEXACT, FLAG_OVERFLOW, FLAG_UNDERFLOW, FP16

from .params import FLAGS_SHAPE, Staged, integer, positive_int
from .pipeline import bundle, rank

__all__ = ["FP16Rounder", "normalize", "balanced_cuts"]

# The rounder keeps the 11 significand bits plus the round bit after normalization; every
# bit below them only matters through its OR (sticky).
_KEEP = FP16.SIG_BITS + 1
# Longest carry chain of the signed input's negation (see FP16Rounder.elaborate).
_CHUNK = 12


def normalize(m, value, width, cut=None, first_zero=None):
    """Shift ``value`` (``width`` bits) left until its top bit is set, in log2 stages.

    Returns ``(norm, lz)``: ``norm`` has a power-of-two width ``p >= width`` with ``value``
    in its top bits, shifted left by ``lz``, the count of ``value``'s leading zeros (for a
    zero input ``norm`` is 0 and ``lz`` is meaningless). Each stage tests whether the top
    ``s`` bits are zero and shifts by ``s`` if so: the leading-zero count and the normalize
    shift in one structure.

    ``cut``, when given, is called after the stage that shifts by ``s`` as
    ``cut(f"norm{s}", v, lz_bits) -> (v, lz_bits)`` and may return registered copies (the
    pipelined :class:`FP16Rounder`); ``lz_bits`` lists the count's bits found so far, MSB
    first. ``first_zero``, when given, is the first stage's test (the top ``p / 2`` bits are
    zero), found earlier by the caller.
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
        test = v[p - s:] == 0
        if first_zero is not None and s == p >> 1:
            test = first_zero
        m.d.comb += [
            top_zero.eq(test),
            nxt.eq(Mux(top_zero, (v << s)[:p], v)),
        ]
        lz_bits.append(top_zero)
        v = nxt
        if cut is not None:
            v, lz_bits = cut(f"norm{s}", v, lz_bits)
    lz = Cat(*reversed(lz_bits)) if lz_bits else Const(0, 1)
    return v, lz


def _depth(bits):
    """LUT4 levels of an OR / zero test over ``bits`` inputs."""
    levels = 0
    while bits > 1:
        bits = -(-bits // 4)
        levels += 1
    return levels


def balanced_cuts(weights, k):
    """Indices ``i`` (a register after segment ``i``) of ``k`` cuts that split the chain of
    segment ``weights`` into ``k + 1`` parts with the smallest largest part (then the
    latest cuts among equals): a small linear-partition dynamic programme."""
    n = len(weights)
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    # best[j][c]: (largest part, cuts) for segments j.. with c cuts left
    memo = {}

    def best(j, c):
        if (j, c) in memo:
            return memo[(j, c)]
        if c == 0:
            res = (prefix[n] - prefix[j], ())
        else:
            res = None
            for i in range(j, n - c):          # cut after segment i, keep c - 1 for the rest
                rest, cuts = best(i + 1, c - 1)
                cand = (max(prefix[i + 1] - prefix[j], rest), (i,) + cuts)
                if res is None or cand[0] <= res[0]:
                    res = cand
        memo[(j, c)] = res
        return res

    return best(0, k)[1]


class FP16Rounder(Staged, wiring.Component):
    """Round an exact value ``(-1)**sign * mag * 2**exp`` to fp16: the hardware twin of
    :func:`golden.round_fp16`, bit for bit (codes and flags).

    The one normalizer/rounder of the project, inside every unit that produces fp16 (adder,
    multiplier, fp4 decoder, dot-product normalizer). Structure: leading-zero count and
    normalize shift in ``log2`` stages (:func:`normalize`), then the exponent ``e`` of the
    leading one, a denormalize shift by ``clamp(-14 - e, 0, 12)`` for subnormal results,
    round to nearest even on the 11 kept bits with round and sticky bits, and pack.

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

    Timing: combinational by default (``stages = 0``, ``latency = 0``). With ``stages = k``
    the datapath is cut by ``k`` register ranks, ``latency = k`` cycles from ``value`` /
    ``mag`` to ``result``, one value per cycle. The ranks sit at ``k`` of the register
    points below (``register_points`` names the chosen ones), placed by an estimate of each
    segment's LUT4 depth so that the longest segment is as short as possible::

        abs_lo -> abs -> norm<p/2> -> ... -> norm1 -> exp -> ecmp -> clamp -> denorm ->
        sticky -> round -> pack -> out
        (abs_lo, abs: low and high half of |value|, only when ``signed``; norm<s>: the
        normalize stage shifting by s; the last segment, overflow and the final select, is
        combinational to ``result``)

    All ranks load together while ``en`` is high and hold while it is low (a pipeline
    stall); they have no reset: whether a rank holds a value is the caller's business.

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
    stages : int
        Register ranks inside the rounder (default 0: combinational), at most
        ``len(FP16Rounder.points(width, signed))``.
    register_points : tuple of str, optional
        The points that hold the ``stages`` ranks, when a unit that contains the rounder
        places them itself (the pipelined fp16 adder balances its own and the rounder's
        segments together); by default the rounder balances its own.

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
    en : ``In(1, init=1)``
        Clock enable of every register rank (only when ``stages > 0``).
    result : ``Out(16)``
        fp16 code, rounded to nearest even.
    flags : ``Out(8)``
        ``inexact | underflow | overflow`` bits, layout of :mod:`golden.formats`.
    """

    def __init__(self, width, exp_width, *, signed=False, stages=0, register_points=None):
        self._width = positive_int(width, "width")
        self._exp_width = positive_int(exp_width, "exp_width")
        if not isinstance(signed, bool):
            raise TypeError(f"signed must be a bool, not {signed!r}")
        self._signed = signed
        points = self.points(self._width, signed)
        stages = integer(stages, "stages", 0, len(points))
        if register_points is None:
            cuts = balanced_cuts([d for _, d in points] + [self._OUT_DEPTH], stages)
            self._cuts = tuple(points[i][0] for i in cuts)
        else:
            names = [name for name, _ in points]
            unknown = set(register_points) - set(names)
            if unknown or len(set(register_points)) != stages:
                raise ValueError(f"register_points must be {stages} distinct names of "
                                 f"{names}, not {register_points!r}")
            self._cuts = tuple(n for n in names if n in register_points)
        self._stages = stages
        ports = {}
        if signed:
            ports["value"] = In(hdl.signed(self._width))
        else:
            ports["sign"] = In(1)
            ports["mag"] = In(self._width)
        ports["exp"] = In(hdl.signed(self._exp_width))
        if stages:
            ports["en"] = In(1, init=1)
        ports["result"] = Out(FP16.BITS)
        ports["flags"] = Out(FLAGS_SHAPE)
        super().__init__(ports)

    # Estimated LUT4 levels of the segments (carry chains count 2): weights for the cuts.
    _OUT_DEPTH = 3          # overflow compare, inexact, final select

    @staticmethod
    def points(width, signed=False):
        """``[(name, depth)]``: the register points in datapath order, each with the
        estimated LUT4 depth of the segment that ends there."""
        p = 1 << (positive_int(width, "width") - 1).bit_length()
        out = [("abs_lo", 2), ("abs", 2)] if signed else []
        out += [(f"norm{1 << k}", _depth(1 << k) + 1)
                for k in reversed(range((p - 1).bit_length()))]
        out += [("exp", max(2, _depth(max(p - _KEEP, 1)))), ("ecmp", 2), ("clamp", 2),
                ("denorm", 3),
                ("sticky", 3), ("round", 2), ("pack", 2)]
        return out

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
        tail = f"_p{self._stages}" if self._stages else ""
        return f"fp16_rounder_{kind}{self._width}_e{self._exp_width}{tail}"

    def elaborate(self, platform):
        m = Module()
        w = self._width

        def cut(name, **values):
            """A register point: ``values`` as a rank if ``name`` holds one, else as is."""
            if name in self._cuts:
                return rank(m, self.en, values, name)
            return bundle(m, values, name)

        if self._signed:
            # |value| <= 2**(w-1) fits w bits. Negation in chunks of at most _CHUNK bits, so
            # that no carry runs through all w bits: -v = ~v + 1, whose +1 reaches chunk i
            # iff every chunk below it is zero. abs_lo negates the low chunk and tests the
            # chunks for zero; abs complements the others, each with its own short carry.
            h = min(w // 2, _CHUNK)
            sign = self.value[-1]
            v = self.value.as_unsigned()
            bounds = list(range(h, w, _CHUNK)) + [w]
            lo = v[:h]
            lo_mag = Signal(h)
            m.d.comb += lo_mag.eq(Mux(sign, -lo, lo))
            zeros = Cat(lo == 0, *[v[a:b] == 0 for a, b in zip(bounds[:-2], bounds[1:-1])])
            # The first normalize stage's test, |value| < 2**(w - p/2), from the raw value
            # beside the negation: value >> k is 0, or -1 with value != -2**k.
            k = w - (1 << (w - 1).bit_length()) // 2
            small = (v[k:] == 0) | (v[k:].all() & (v[:k] != 0)) if k > 0 else Const(0, 1)
            x = cut("abs_lo", sign=sign, lo=lo_mag, zeros=zeros, hi=v[h:], small=small,
                    exp=self.exp)
            parts = [x.lo] if h else []
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                chunk = x.hi[a - h:b - h]
                carry = x.zeros[:i + 1].all()
                part = Signal(b - a, name=f"abs_hi{i}")
                m.d.comb += part.eq(Mux(x.sign, ~chunk + carry, chunk))
                parts.append(part)
            x = cut("abs", sign=x.sign, mag=Cat(*parts), small=x.small, exp=x.exp)
        else:
            x = bundle(m, {"sign": self.sign, "mag": self.mag, "exp": self.exp}, "unsigned_in")
        carry = {"sign": x.sign, "exp": x.exp}   # values riding along the normalizer

        def norm_cut(name, v, lz_bits):
            y = cut(name, v=v, lz=Cat(*lz_bits), **carry)
            carry.update(sign=y.sign, exp=y.exp)
            return y.v, [y.lz[i] for i in range(len(lz_bits))]

        # --- normalize: norm = mag << lz, leading one at the top of a p-bit vector -------
        norm, lz = normalize(m, x.mag, w, cut=norm_cut,
                             first_zero=x.small if self._signed else None)
        sign, exp = carry["sign"], carry["exp"]
        p = len(norm)
        top = Signal(_KEEP)             # the 11 significand bits and the round bit
        low_sticky = Signal()           # OR of every bit below them
        if p >= _KEEP:
            m.d.comb += top.eq(norm[p - _KEEP:])
            m.d.comb += low_sticky.eq(norm[:p - _KEEP].any() if p > _KEEP else 0)
        else:
            m.d.comb += top.eq(Cat(Const(0, _KEEP - p), norm))

        # Exponent of the leading one: e = exp + (w - 1) - lz.  lz <= p - 1 (zero input
        # included), so e spans [exp_min + w - p, exp_max + w - 1]: sized from that range.
        exp_lo, exp_hi = -(1 << (self._exp_width - 1)), (1 << (self._exp_width - 1)) - 1
        e_lo, e_hi = exp_lo + w - p, exp_hi + w - 1
        e = Signal(Shape.cast(range(e_lo, e_hi + 1)))
        m.d.comb += e.eq(exp + (w - 1) - lz)
        x = cut("exp", sign=sign, top=top, low_sticky=low_sticky, e=e)
        sign, top, low_sticky, e = x.sign, x.top, x.low_sticky, x.e

        # --- denormalize: results below 2**EMIN keep fewer bits --------------------------
        # Shift right by EMIN - e, clamped at _KEEP: by then every kept bit is sticky.
        # Every comparison tests e itself (d_raw <= 0 is e >= EMIN, d_raw >= _KEEP is
        # e <= EMIN - _KEEP, efield >= EXP_MAX_FIELD is e >= EMIN + EXP_MAX_FIELD): they run
        # beside the subtractions, and the selects after the "ecmp" point only pick.
        d_raw = Signal(Shape.cast(range(FP16.EMIN - e_hi, FP16.EMIN - e_lo + 1)))
        e_off = Signal(Shape.cast(range(e_lo - FP16.EMIN, e_hi - FP16.EMIN + 1)))
        m.d.comb += [d_raw.eq(FP16.EMIN - e), e_off.eq(e - FP16.EMIN)]
        d_bits = Shape.cast(range(_KEEP + 1)).width
        x = cut("ecmp", sign=sign, top=top, low_sticky=low_sticky,
                d_low=d_raw[:d_bits], normal=e >= FP16.EMIN,
                flush=e <= FP16.EMIN - _KEEP, e_off=e_off[:FP16.EXP_BITS],
                big=e >= FP16.EMIN + FP16.EXP_MAX_FIELD,
                below=e < FP16.EMIN - 1, edge=e == FP16.EMIN - 1)
        sign, top, low_sticky, big = x.sign, x.top, x.low_sticky, x.big
        zero = ~top[-1]                 # after normalization the top bit is set unless mag == 0
        d = Signal(range(_KEEP + 1))
        m.d.comb += d.eq(Mux(x.normal, 0, Mux(x.flush, _KEEP, x.d_low)))
        # The exponent field: code = (max(e, EMIN) - EMIN) << 10 + rounded significand. For
        # a normal result the hidden bit (bit 10 of the rounded significand) adds the 1 that
        # turns max(e, EMIN) - EMIN into the biased exponent; carries land in the field.
        # Only its 5 low bits are kept: a larger field is ``big`` (certainly past Inf).
        efield = Signal(FP16.EXP_BITS)
        m.d.comb += efield.eq(Mux(x.normal, x.e_off, 0))
        # Tininess after rounding: e < EMIN - 1, or e == EMIN - 1 unless the 11 bits below
        # the leading one round up to 2**11 (all 12 kept bits ones: round up from 0x7FF).
        tiny = Signal()
        m.d.comb += tiny.eq(x.below | (x.edge & (top != (1 << _KEEP) - 1)))
        x = cut("clamp", sign=sign, zero=zero, top=top, low_sticky=low_sticky, d=d,
                efield=efield, big=big, tiny=tiny)
        shifted = Signal(2 * _KEEP)     # [kept bits | bits shifted out]
        m.d.comb += shifted.eq(Cat(Const(0, _KEEP), x.top) >> x.d)
        keep = ("sign", "zero", "efield", "big", "tiny")
        x = cut("denorm", shifted=shifted, low_sticky=x.low_sticky,
                **{k: x[k] for k in keep})
        shifted = x.shifted
        sig = shifted[_KEEP + 1:]       # the (up to) 11 significand bits
        rnd = shifted[_KEEP]            # round bit
        sticky = x.low_sticky | shifted[:_KEEP].any()

        # --- round to nearest, ties to even ---------------------------------------------
        up = rnd & (sticky | sig[0])
        x = cut("sticky", sig=sig, up=up, lost=rnd | sticky, **{k: x[k] for k in keep})
        rounded = Signal(FP16.SIG_BITS + 1)          # 0x7FF + 1 carries into bit 11
        m.d.comb += rounded.eq(x.sig + x.up)
        x = cut("round", rounded=rounded, lost=x.lost, **{k: x[k] for k in keep})

        # --- pack ------------------------------------------------------------------------
        # code = (efield << 10) + rounded: the 10 low bits are rounded's own, and only its
        # top bits (0 .. 2) add into the field, in a 6-bit adder instead of a 16-bit one.
        field = Signal(FP16.EXP_BITS + 1)            # <= 31 + 2; code >= Inf iff >= 31
        m.d.comb += field.eq(x.efield + x.rounded[FP16.FRAC_BITS:])
        x = cut("pack", field=field, frac=x.rounded[:FP16.FRAC_BITS], lost=x.lost,
                **{k: x[k] for k in keep})
        zero = x.zero
        code = Cat(x.frac, x.field)
        overflow = Signal()
        m.d.comb += overflow.eq(~zero & (x.big | (x.field >= FP16.EXP_MAX_FIELD)))
        inexact = Signal()
        m.d.comb += inexact.eq(~zero & (x.lost | overflow))

        magnitude = Mux(zero, 0, Mux(overflow, FP16.INF, code[:FP16.BITS - 1]))
        m.d.comb += [
            self.result.eq(Cat(magnitude, x.sign)),
            self.flags.eq(Mux(inexact, FLAG_INEXACT, 0) | Mux(overflow, FLAG_OVERFLOW, 0)
                          | Mux(inexact & x.tiny, FLAG_UNDERFLOW, 0)),
        ]
        return m
