"""Argument checks shared by the golden functions: every bad input is a ValueError naming it."""

import numpy as np

from .formats import PHASES


def codes(x, bits, name):
    """Return ``x`` as an int64 array of raw ``bits``-bit codes, or raise ValueError."""
    a = np.asarray(x)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must be an array of integer raw codes (e.g. uint16 for fp16, uint8 for "
            f"4-bit codes), not dtype {a.dtype}; convert floats with fp16_from_float() first")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= (1 << bits)):
        bad = a[(a < 0) | (a >= (1 << bits))].flat[0]
        raise ValueError(f"{name} holds {bad}, which is not a {bits}-bit code "
                         f"(0 .. {(1 << bits) - 1})")
    return a


def integer(x, name, lo, hi):
    """Return ``x`` as an int64 array with every element in ``lo .. hi``, or raise."""
    a = np.asarray(x)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be an integer or an integer array, not dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{name} must lie in {lo} .. {hi}; got {int(a.min())} .. {int(a.max())}")
    return a


def flag_array(x, name):
    """Return a 0/1 int64 array from a bool or integer array (signedness, phase bits)."""
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return a.astype(np.int64)
    return integer(a, name, 0, 1)


def phase_bit(phase):
    """``"even"``/``"odd"`` (or a 0/1 array, one phase bit per element) -> int64 array."""
    if isinstance(phase, str):
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {sorted(PHASES)}, not {phase!r}")
        return np.int64(PHASES[phase])
    return flag_array(phase, "phase")
