import gzip
from pathlib import Path

import numpy as np
import pytest

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testvectors"


def load_testfloat(name):
    """TestFloat vectors read in place: arrays a, b, expected result, expected flags."""
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the reference vectors live in ../shared/testvectors/")
    with gzip.open(path, "rt") as f:
        rows = np.array([[int(w, 16) for w in line.split()] for line in f if line.strip()])
    return rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]


@pytest.fixture(scope="session")
def all_fp16():
    return np.arange(1 << 16, dtype=np.uint16)
