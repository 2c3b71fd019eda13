"""Parameter checks and small helpers that every unit shares.

Each check returns the value as a plain ``int`` or raises ``TypeError``/``ValueError`` with a
message naming the parameter and the fix, at construction (elaboration never sees a bad
parameter).
"""

import operator

from amaranth import hdl
from amaranth.hdl import Cat, Const, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import (
    FLAG_INEXACT,
    FLAG_INVALID,
    FLAG_OVERFLOW,
    FLAG_SATURATED,
    FLAG_UNDERFLOW,
    G_BITS_MAX,
    G_BITS_MIN,
    G_RANGE,
)

__all__ = ["FLAGS_SHAPE", "FP16_FLAGS", "LANES_MAX", "pack_flags", "unpack_flags",
           "positive_int", "lanes_pow2", "check_g_bits", "g_range",
           "g_shape", "flag_byte", "clamp", "ScaledStream", "Staged", "integer"]

# Flags are one byte per result (golden.formats); the bit positions come from its FLAG_*.
FLAGS_SHAPE = hdl.unsigned(8)
# The flags an fp16 rounding or addition can raise (none of them saturates): state that
# holds flags across beats stores these bits only, so the others are 0 by construction.
FP16_FLAGS = FLAG_INEXACT | FLAG_UNDERFLOW | FLAG_OVERFLOW | FLAG_INVALID
LANES_MAX = 64            # widest dot unit: a 64-lane adder tree (synth sweeps up to it)

_FLAG_BITS = {"inexact": FLAG_INEXACT, "underflow": FLAG_UNDERFLOW,
              "overflow": FLAG_OVERFLOW, "invalid": FLAG_INVALID,
              "saturated": FLAG_SATURATED}


def _index(value, name, what):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {what}, not {value!r}") from None


def integer(value, name, lo, hi=None):
    """``value`` as an ``int`` from ``lo`` to ``hi`` (no upper bound when ``None``)."""
    v = _index(value, name, "an integer")
    if v < lo or (hi is not None and v > hi):
        span = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {span}, not {v}")
    return v


def positive_int(value, name):
    """``value`` as a positive ``int``, or ``TypeError``/``ValueError`` naming ``name``."""
    v = _index(value, name, "a positive integer")
    if v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v}")
    return v


def lanes_pow2(value, name="lanes"):
    """Lanes of a dot unit: a power of two from 1 to :data:`LANES_MAX`."""
    v = _index(value, name, "an integer")
    if v < 1 or v > LANES_MAX or v & (v - 1):
        raise ValueError(f"{name} must be a power of two from 1 to {LANES_MAX}, not {v}")
    return v


def check_g_bits(value):
    """Width of the signed GradScale exponent register ``g``."""
    v = _index(value, "g_bits", "an integer")
    if not G_BITS_MIN <= v <= G_BITS_MAX:
        raise ValueError(f"g_bits must be in {G_BITS_MIN} .. {G_BITS_MAX} (g spans at least "
                         f"-32 .. 31 and at most the golden model's {G_RANGE}), not {v}")
    return v


def g_range(bits):
    """``(lo, hi)`` of a signed ``bits``-bit ``g``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def g_shape(bits):
    return hdl.signed(bits)


def flag_byte(**conditions):
    """A flag byte from named conditions (``inexact=..., invalid=...``)."""
    out = Const(0, FLAGS_SHAPE)
    for name, cond in conditions.items():
        out = out | Mux(cond, _FLAG_BITS[name], 0)
    return out


def _bits(mask):
    return [i for i in range(FLAGS_SHAPE.width) if mask >> i & 1]


def pack_flags(flags, mask=FP16_FLAGS):
    """The bits of the flag byte ``flags`` that ``mask`` selects, LSB first."""
    return Cat(flags[i] for i in _bits(mask))


def unpack_flags(packed, mask=FP16_FLAGS):
    """The flag byte of :func:`pack_flags`' ``packed`` bits (the others 0)."""
    where = _bits(mask)
    return Cat(packed[where.index(i)] if i in where else Const(0, 1)
               for i in range(FLAGS_SHAPE.width))


def clamp(v, lo, hi):
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


class ScaledStream(wiring.Component):
    """Base of the converter streams: ``lanes`` values per beat and a signed ``g_bits``-bit
    GradScale exponent. Checks both parameters, builds ``i`` and ``o``, reads both parameters
    back and names the module ``<_name>_x<lanes>_g<g_bits>``. A subclass gives its
    ``(input fields, output fields)`` as ``_ports(lanes, g_shape)``."""

    def __init__(self, lanes=1, g_bits=G_BITS_MIN):
        self._lanes = positive_int(lanes, "lanes")
        self._g_bits = check_g_bits(g_bits)
        i, o = self._ports(self._lanes, hdl.signed(self._g_bits))
        super().__init__({"i": In(stream.Signature(data.StructLayout(i))),
                          "o": Out(stream.Signature(data.StructLayout(o)))})

    lanes = property(lambda self: self._lanes)
    g_bits = property(lambda self: self._g_bits)

    @property
    def module_name(self):
        return f"{self._name}_x{self._lanes}_g{self._g_bits}"


class Staged:
    """Mixin of the units with optional register ranks (``stages``, at ``register_points``,
    set by the unit as ``_stages`` and ``_cuts``); their latency is the rank count."""

    stages = property(lambda self: self._stages)
    latency = property(lambda self: self._stages)
    register_points = property(lambda self: self._cuts)
