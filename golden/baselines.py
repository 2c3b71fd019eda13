"""Golden models of the density baselines (:mod:`hdl.baselines`): FP16 and INT8 dot products
in the hardware's order of operations.

``fp16_dot``: a dot product of length K is fed to an N-lane unit as ``ceil(K / lanes)`` beats
(the last one padded with ``+0`` codes). Each beat's products are rounded to fp16
(:func:`golden.fp16_mul`), summed in a balanced tree of :func:`golden.fp16_add` over pairs
``(2j, 2j + 1)`` level by level, and the beat sums are accumulated in fp16, the first beat
loading the accumulator. Flags are the OR of every operation's flags.

``int8_dot``: the exact integer dot product of int8 operands (the INT8 unit's accumulator
holds ``2**16`` beats exactly).
"""

import numpy as np

from . import _check
from .fp16 import fp16_add, fp16_mul

__all__ = ["fp16_dot", "int8_dot"]


def _pair(a, b, name_a, name_b, check):
    a = np.ravel(check(a, name_a))
    b = np.ravel(check(b, name_b))
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same length, not "
                         f"{a.size} and {b.size}")
    if a.size == 0:
        raise ValueError(f"{name_a} and {name_b} must not be empty")
    return a, b


def _lanes(lanes):
    n = int(_check.integer(lanes, "lanes", 1, 1 << 20))
    if n & (n - 1):
        raise ValueError(f"lanes must be a power of two, not {n}")
    return n


def fp16_dot(a, b, *, lanes=8, flags=False):
    """FP16 dot product of fp16 code vectors ``a`` and ``b`` as the ``lanes``-lane unit
    computes it; returns an fp16 code (and the OR of all flags with ``flags=True``)."""
    a, b = _pair(a, b, "a", "b", lambda x, n: _check.codes(x, 16, n))
    n = _lanes(lanes)
    beats = -(-a.size // n)
    pa = np.zeros(beats * n, dtype=np.int64)
    pb = np.zeros(beats * n, dtype=np.int64)
    pa[:a.size], pb[:b.size] = a, b
    vals, fl = fp16_mul(pa.reshape(beats, n), pb.reshape(beats, n), flags=True)
    beat_flags = np.bitwise_or.reduce(fl, axis=1)
    while vals.shape[1] > 1:
        vals, fl = fp16_add(vals[:, 0::2], vals[:, 1::2], flags=True)
        beat_flags |= np.bitwise_or.reduce(fl, axis=1)
    sums = vals[:, 0]
    acc, acc_flags = sums[0], beat_flags[0]
    for k in range(1, beats):
        acc, f = fp16_add(acc, sums[k], flags=True)
        acc_flags = acc_flags | beat_flags[k] | f
    acc = np.uint16(acc)
    return (acc, np.uint8(acc_flags)) if flags else acc


def int8_dot(a, b):
    """Exact dot product of int8 values ``a`` and ``b`` (``-128 .. 127``), a Python int."""
    a, b = _pair(a, b, "a", "b", lambda x, n: _check.integer(x, n, -128, 127))
    return int(np.dot(a, b))
