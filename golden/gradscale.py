"""GradScale (docs/numerics.md): the per-layer gradient scale exponent ``g`` from ``max|x|``.

``m = max|x| * 2**g`` is the tensor's largest magnitude after scaling. The fp4 range tops out
at ``4**3 = 2**6``, so a well-scaled tensor has ``m`` in ``(2**5, 2**6]`` = ``(32, 64]``:

``paper``  (the default, Sun et al. 2020) one step per iteration: ``m > 64`` -> ``g - 1``;
           ``m <= 32`` -> ``g + 1``; otherwise ``g``.
``direct`` one jump: the ``g`` that puts ``m`` in ``(32, 64]``. With ``E = floor(log2
           max|x|)`` that is ``5 - E``, plus one when ``max|x|`` is a power of two (then
           ``m = 64`` exactly). It does not depend on the current ``g``, except where there is
           no finite non-zero maximum to aim with:

           - ``max|x| = 0`` (an all-zero tensor, or one holding only NaN): ``g`` is kept --
             there is nothing to scale, and the next non-zero tensor sets ``g`` in one step.
           - ``max|x| = Inf``: ``g - 1``, the paper rule's step: the true maximum is unknown.

The paper rule follows ``m``'s comparisons literally, so ``max|x| = 0`` gives ``g + 1`` and
``Inf`` gives ``g - 1``. Both rules optionally clamp to a hardware register's range
``[g_min, g_max]``. This is the golden twin of the range tracker's GradScale stage
(``hdl.converters.RangeTracker``).
"""

import numpy as np

from . import _check
from .formats import FP16
from .formats import GRADSCALE_HI_LOG2 as M_HI_LOG2
from .formats import GRADSCALE_LO_LOG2 as M_LO_LOG2
from .fp16 import _bit_length, decode_fp16, is_nan

__all__ = ["gradscale", "RULES", "M_HI_LOG2", "M_LO_LOG2"]

RULES = ("paper", "direct")
# The target window for m: (2**M_LO_LOG2, 2**M_HI_LOG2] = (32, 64], from golden.formats.


def gradscale(max_code, g, rule="paper", *, g_min=None, g_max=None):
    """The next scale exponent for a tensor whose largest magnitude is ``max_code``.

    Parameters
    ----------
    max_code : array of fp16 codes
        ``max|x|`` as the range tracker reports it. The sign bit is ignored (the magnitude is
        used); a NaN code is a ValueError (the tracker never reports one).
    g : integer or integer array
        The current scale exponent.
    rule : ``"paper"`` or ``"direct"``
        See the module docstring.
    g_min, g_max : int, optional
        Clamp the result to this range (a hardware register's), when given.

    Returns
    -------
    int64 array of the new ``g``.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    mx = _check.codes(max_code, FP16.BITS, "max_code") & ~FP16.SIGN_MASK
    if mx.size and np.any(is_nan(mx)):
        raise ValueError("max_code holds a NaN code; max|x| must be a number (the range "
                         "tracker ignores NaN and reports it in its own flag)")
    g = _check.integer(g, "g", -(1 << 62), 1 << 62)
    mx, g = np.broadcast_arrays(mx, g)
    _, sig, exp = decode_fp16(mx)
    sig = sig.astype(np.uint64)
    e = _bit_length(sig) - 1 + exp                     # floor(log2 max|x|) where max > 0
    pow2 = (sig & (sig - np.uint64(1))) == 0
    zero = mx == 0
    inf = mx == FP16.INF
    if rule == "paper":
        a = e + g                                      # floor(log2 m)
        over = inf | (~zero & ((a > M_HI_LOG2) | ((a == M_HI_LOG2) & ~pow2)))
        under = zero | (~inf & ((a < M_LO_LOG2) | ((a == M_LO_LOG2) & pow2)))
        new = g - over + under
    else:
        new = np.where(zero, g, np.where(inf, g - 1, M_LO_LOG2 - e + pow2))
    new = new.astype(np.int64)
    if g_min is not None or g_max is not None:
        new = np.clip(new, g_min, g_max)
    return new
