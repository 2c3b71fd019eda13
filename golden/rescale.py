"""Range-rescale (docs/numerics.md): fp16 -> int4 / int4_sym / uint4 with a fp16 scale."""

import numpy as np

from . import _check
from .formats import (
    FLAG_INEXACT,
    FLAG_INVALID,
    FLAG_SATURATED,
    FP16,
    INT_FORMATS,
    R_BITS_MAX,
    ROUNDINGS,
)
from .fp16 import fp16_to_float, is_nan

__all__ = ["rescale", "R_BITS_MAX", "ROUNDINGS"]



def _check_scale(s):
    s = _check.codes(s, FP16.BITS, "s")
    mag = s & FP16.MAG_MASK
    bad = (mag == 0) | (s >= FP16.SIGN_MASK) | (mag >= FP16.INF)
    if s.size and np.any(bad):
        bad = s[bad].flat[0]
        raise ValueError(f"scale s must be a positive finite fp16 code (subnormals allowed); "
                         f"got 0x{int(bad):04x}")
    return s


def rescale(x, s, fmt="int4", rounding="rne", u=None, r_bits=0, *, flags=False):
    """``q = clamp(round(x * s), qmin, qmax)`` on fp16 codes ``x`` with fp16 scale code ``s``.

    ``x * s`` is the exact real product. ``rounding="rne"`` rounds half to even;
    ``"stochastic"`` computes ``floor(x*s + u / 2**r_bits)`` with the caller's random integers
    ``u`` (``0 <= u < 2**r_bits``, ``1 <= r_bits <= 32``). Returns 4-bit codes (uint8, two's
    complement for the signed formats). NaN -> 0 + invalid; +-Inf and values that round
    outside ``[qmin, qmax]`` clamp + saturated; inexact when ``x * s`` is not an integer.
    A zero, negative, Inf or NaN scale raises ValueError.
    """
    if fmt not in INT_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(INT_FORMATS)}, not {fmt!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
    f = INT_FORMATS[fmt]
    x = _check.codes(x, FP16.BITS, "x")
    s = _check_scale(s)
    with np.errstate(invalid="ignore"):           # NaN inputs are handled below
        v = fp16_to_float(x) * fp16_to_float(s)   # 11 x 11 significand bits: exact in float64
    if rounding == "rne":
        if u is not None:
            raise ValueError("u is only used with rounding='stochastic'")
        q = np.rint(v)
    else:
        if u is None:
            raise ValueError("rounding='stochastic' needs the random integers u")
        r_bits = int(_check.integer(r_bits, "r_bits", 1, R_BITS_MAX))
        u = _check.integer(u, "u", 0, (1 << r_bits) - 1)
        with np.errstate(invalid="ignore"):
            n = np.floor(v)
            frac = v - n                                  # exact
            q = n + (frac >= 1.0 - np.ldexp(u.astype(np.float64), -r_bits))
    nan = is_nan(np.broadcast_to(x, np.shape(v)))
    with np.errstate(invalid="ignore"):
        sat = ~nan & ((q < f.qmin) | (q > f.qmax))
        q = np.where(nan, 0, np.clip(np.nan_to_num(q, nan=0.0), f.qmin, f.qmax)).astype(np.int64)
        inexact = ~nan & (np.isinf(v) | (v != np.rint(v)) | sat)
    code = (q & 0xF).astype(np.uint8)
    fl = (np.where(nan, FLAG_INVALID, 0) | np.where(sat, FLAG_SATURATED, 0)
          | np.where(inexact, FLAG_INEXACT, 0)).astype(np.uint8)
    return (code, fl) if flags else code
