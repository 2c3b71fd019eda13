"""Bench side: the scoreboard every cocotb test checks through, plus small shared helpers.

A scoreboard counts every vector it compares, logs the first mismatches with their inputs,
and at :meth:`Scoreboard.finish` writes its counts for the pytest harness and asserts that
the count is the one expected and that nothing mismatched -- no bench can pass vacuously.
"""

import fcntl
import hashlib
import json
import os

import numpy as np

from hdl.toolchain import BUILD, ROOT

GOLDEN_CACHE = BUILD / "sim" / ".golden"


def params():
    """The unit's parameters as the pytest harness passed them."""
    return json.loads(os.environ.get("FOURBIT_PARAMS", "{}"))


def light():
    """Whether this run is the light profile (``harness.light``: Icarus, shorter sweeps)."""
    return os.environ.get("FOURBIT_LIGHT") == "1"


def latency():
    return int(os.environ.get("FOURBIT_LATENCY", "0"))


def cached(compute, *inputs):
    """The array ``compute()`` returns, kept in ``build/sim/.golden/`` under a hash of
    ``inputs`` (arrays, or values hashed by ``repr``: everything ``compute`` depends on) and
    of the golden model's source. For an expectation that costs seconds: the bench's run on
    the other simulator reads it (or waits for it) instead of computing it again."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "golden").glob("*.py")):
        h.update(path.read_bytes())
    for x in inputs:
        if isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x)
            h.update(repr((x.dtype.str, x.shape)).encode() + x.tobytes())
        else:
            h.update(repr(x).encode())
    path = GOLDEN_CACHE / f"{h.hexdigest()[:32]}.npy"
    GOLDEN_CACHE.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return np.load(path)
        value = np.asarray(compute())
        with open(path.with_suffix(".tmp"), "wb") as f:
            np.save(f, value)
        path.with_suffix(".tmp").replace(path)
    return value


def rng(log=None, salt=0):
    """A NumPy generator seeded from the harness's logged seed (``SEED=`` overrides it)."""
    seed = int(os.environ.get("FOURBIT_SEED", "0")) + salt
    if log is not None:
        log.info("numpy seed %d", seed)
    return np.random.default_rng(seed)


class Scoreboard:
    """Compare got/expected arrays, count, and report.

    Parameters
    ----------
    name : str
        What is being checked; one line of the report's ``checks``.
    log : logging.Logger
        Where the first mismatches go.
    """

    MAX_LOGGED = 10

    def __init__(self, name, log):
        self.name = name
        self.log = log
        self.vectors = 0
        self.mismatches = 0

    def compare(self, got, expected, **inputs):
        """Compare equally-shaped arrays element-wise; ``inputs`` are logged on mismatch."""
        got = np.asarray(got).astype(np.int64)
        expected = np.asarray(expected).astype(np.int64)
        if got.shape != expected.shape:
            raise AssertionError(f"{self.name}: got {got.shape} values, expected "
                                 f"{expected.shape}")
        bad = np.nonzero(got.ravel() != expected.ravel())[0]
        for i in bad[: max(0, self.MAX_LOGGED - self.mismatches)]:
            ctx = ", ".join(f"{k}={np.asarray(v).ravel()[i]:#x}" for k, v in inputs.items())
            self.log.error("%s mismatch: %s -> got %#x, expected %#x", self.name, ctx,
                           got.ravel()[i], expected.ravel()[i])
        self.vectors += got.size
        self.mismatches += bad.size
        if bad.size and os.environ.get("FOURBIT_FAIL_FAST"):
            # The mutation flow: one mismatch decides, the rest of the bench is not needed.
            raise AssertionError(f"{self.name}: {bad.size} mismatches (failing fast)")

    def finish(self, expected_vectors, exhaustive):
        """Write the counts for the harness, then assert the count and zero mismatches."""
        path = os.environ.get("FOURBIT_RESULT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"name": self.name, "vectors": int(self.vectors),
                                    "mismatches": int(self.mismatches),
                                    "exhaustive": bool(exhaustive)}) + "\n")
        self.log.info("%s: %d vectors, %d mismatches", self.name, self.vectors, self.mismatches)
        assert self.vectors == expected_vectors, \
            f"{self.name}: checked {self.vectors} vectors, expected {expected_vectors}"
        assert self.mismatches == 0, f"{self.name}: {self.mismatches} mismatches"
