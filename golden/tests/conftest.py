import numpy as np
import pytest


@pytest.fixture(scope="session")
def all_fp16():
    return np.arange(1 << 16, dtype=np.uint16)
