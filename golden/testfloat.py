"""Berkeley TestFloat level-1 vectors for binary16 add and mul, shipped in ``testvectors/``.

The one reader of the reference vectors (see ``golden/testvectors/README.md`` for their
provenance and format). Used by the golden tests and by the hardware benches.
"""

import gzip
from pathlib import Path

import numpy as np

__all__ = ["OPS", "CASES", "path", "load"]

DIR = Path(__file__).resolve().parent / "testvectors"
OPS = ("add", "mul")
CASES = 46464                   # per operation: testfloat_gen -level 1 for f16 operands


def path(op):
    """The vector file of ``op`` (``"add"`` or ``"mul"``)."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, not {op!r}")
    return DIR / f"f16_{op}_rne_level1.tv.gz"


def load(op):
    """``(a, b, result, flags)``: four int64 arrays of ``CASES`` entries each.

    Raises ``FileNotFoundError`` when the file is missing (a broken checkout: the vectors are
    part of the repository) and ``ValueError`` when it does not hold ``CASES`` cases.
    """
    p = path(op)
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing: the TestFloat vectors are part of the "
                                "repository (golden/testvectors/); restore them with git")
    with gzip.open(p, "rt") as f:
        words = f.read().split()
    rows = np.array([int(w, 16) for w in words], dtype=np.int64).reshape(-1, 4)
    if len(rows) != CASES:
        raise ValueError(f"{p}: expected {CASES} cases, found {len(rows)}")
    return rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
