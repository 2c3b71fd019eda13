"""Bit-exact NumPy golden model of the 4-bit training datapath (``docs/numerics.md``).

The bit-level API (``docs/numerics.md``, Golden API) takes and returns raw codes: ``uint16``
for fp16, ``uint8`` for 4-bit codes in the low nibble. ``flags=True`` adds a uint8 flag
array (bits in :mod:`golden.formats`).
"""

from . import formats
from .baselines import fp16_dot, fused_fp16_dot, int8_dot
from .dot import dot, gemm
from .fp4 import fp4_mul, fp4_value, from_fp4, int4_mul, int4_value, to_fp4
from .fp16 import (
    decode_fp16,
    fp16_add,
    fp16_add_one,
    fp16_from_float,
    fp16_mul,
    fp16_to_float,
    round_fp16,
)
from .gradscale import gradscale
from .rescale import rescale

__all__ = ["formats", "fp16_add", "fp16_add_one", "fp16_mul", "to_fp4", "from_fp4", "rescale",
           "round_fp16", "decode_fp16", "fp16_to_float", "fp16_from_float",
           "fp4_value", "fp4_mul", "int4_value", "int4_mul", "dot", "gemm", "fp16_dot",
           "fused_fp16_dot", "int8_dot",
           "quantize_fp4", "quantize_int", "gradscale"]


def quantize_fp4(x, g=0, phase="even"):
    """Value level: float array -> the float values its fp4 codes stand for, scale and phase
    applied (``x`` is first rounded to fp16, as the hardware sees it)."""
    import numpy as np

    from ._check import phase_bit
    c = to_fp4(fp16_from_float(x), g, phase)
    return fp4_value(c) * np.ldexp(1.0, phase_bit(phase) - np.asarray(g))


def quantize_int(x, s, fmt="int4", **kw):
    """Value level: float array ``x``, float scale ``s`` -> integers of ``rescale``."""
    import numpy as np
    sc = fp16_from_float(np.float64(s))
    if float(fp16_to_float(sc)) != float(s):
        raise ValueError(f"scale {s!r} is not exactly representable in fp16")
    return int4_value(rescale(fp16_from_float(x), sc, fmt, **kw),
                      formats.INT_FORMATS[fmt].signed)
