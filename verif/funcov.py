"""Functional coverage: what "every case" means for a unit, as bins a bench must hit.

A :class:`Coverage` declares named crosses of dimensions with ``cocotb-coverage``
(``CoverPoint`` per dimension, ``CoverCross`` per cross); a bin is one combination of
values. Combinations that no input can produce are not bins: a unit passes ``reachable``
(the set the golden model produces over the whole input space, or a rule) and the others
go to the cross's ``ign_bins``.

Benches classify their vectors with NumPy (the classifiers below) and call
:meth:`Coverage.sample` with one array per dimension; every distinct combination is sampled
once (cocotb-coverage counts hits per call, and only "hit or not" is asked here, so the
millions of vectors of a sweep cost one call per distinct bin). Only vectors the scoreboard
compares are sampled: a bin counts as covered when a vector in it was checked.

:meth:`Coverage.finish` writes the counts for the pytest harness (``FOURBIT_COVERAGE``) and
cocotb-coverage's XML report beside the simulator's results, then fails the test if a bin
was never hit, naming the first holes.
"""

import itertools
import json
import os

import numpy as np
from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

from golden.formats import FLAG_OVERFLOW, FP4, FP16
from golden.fp16 import _bit_length, is_nan, is_snan

__all__ = ["Coverage", "fp16_class", "rounding_case", "fp4_situation", "ROUNDING_CASES",
           "FP16_CLASSES", "FP4_SITUATIONS"]

MAX_HOLES_SHOWN = 12


class Coverage:
    """Crosses of one bench.

    Parameters
    ----------
    name : str
        The unit and configuration (the prefix of every bin in the XML report).
    dims : dict of str to sequence
        Every dimension and its values (ints or strings).
    crosses : dict of str to tuple of str
        Each cross's dimensions; a one-dimension cross is a plain cover point.
    reachable : dict of str to set of tuple, optional
        Per cross, the combinations that exist; the rest are not bins.
    """

    def __init__(self, name, dims, crosses, reachable=None):
        self.name, self.dims, self.crosses = name, dict(dims), dict(crosses)
        self._sample = {}
        self._bins = {}
        for cname, cdims in self.crosses.items():
            full = list(itertools.product(*(self.dims[d] for d in cdims)))
            ok = (reachable or {}).get(cname)
            bins = [b for b in full if ok is None or b in ok]
            self._bins[cname] = bins
            prefix = f"{name}.{cname}"
            points = []
            for i, d in enumerate(cdims):
                points.append(CoverPoint(f"{prefix}.{d}", xf=lambda t, i=i: t[i],
                                         bins=list(self.dims[d])))
            if len(cdims) > 1:
                ign = [b for b in full if ok is not None and b not in ok]
                points.append(CoverCross(f"{prefix}.cross",
                                         items=[f"{prefix}.{d}" for d in cdims], ign_bins=ign))
            decorated = lambda t: None                  # noqa: E731 - the sampled function
            for p in points:
                decorated = p(decorated)
            self._sample[cname] = decorated
        self._hit = {c: set() for c in self.crosses}

    def sample(self, **columns):
        """One array (or scalar) per dimension, broadcast together; samples every cross
        whose dimensions are all given."""
        cols = {k: np.asarray(v) for k, v in columns.items()}
        shape = np.broadcast_shapes(*(c.shape for c in cols.values()))
        cols = {k: np.broadcast_to(v, shape).ravel() for k, v in cols.items()}
        for cname, cdims in self.crosses.items():
            if not all(d in cols for d in cdims):
                continue
            for t in set(zip(*(cols[d].tolist() for d in cdims))):
                if t not in self._hit[cname]:
                    self._hit[cname].add(t)
                    self._sample[cname](t)

    def holes(self):
        """``[(cross, bin)]`` never hit."""
        return [(c, b) for c, bins in self._bins.items() for b in bins
                if b not in self._hit[c]]

    def counts(self):
        bins = sum(len(b) for b in self._bins.values())
        return bins, bins - len(self.holes())

    def finish(self, log=None):
        """Write the counts (and cocotb-coverage's XML), then assert that every bin was hit."""
        bins, hit = self.counts()
        holes = self.holes()
        path = os.environ.get("FOURBIT_COVERAGE")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"name": self.name, "bins": bins, "hit": hit,
                                    "holes": [f"{c}: {b}" for c, b in
                                              holes[:MAX_HOLES_SHOWN]]}) + "\n")
            coverage_db.export_to_xml(filename=str(os.path.join(
                os.path.dirname(path), f"coverage_{self.name}.xml")))
        if log is not None:
            log.info("coverage %s: %d of %d bins", self.name, hit, bins)
        assert not holes, (f"coverage {self.name}: {len(holes)} of {bins} bins never hit, "
                           f"e.g. " + "; ".join(f"{c} {b}" for c, b in holes[:MAX_HOLES_SHOWN]))


# --- classifiers: NumPy arrays in, bin labels out ------------------------------------------

FP16_CLASSES = ("zero", "subnormal", "normal", "inf", "qnan", "snan")


def fp16_class(x):
    """The class of each fp16 code (sign ignored): one of :data:`FP16_CLASSES`."""
    x = np.asarray(x, np.int64)
    mag = x & FP16.MAG_MASK
    exp = mag >> FP16.FRAC_BITS
    out = np.where(mag == 0, "zero", np.where(exp == 0, "subnormal", "normal"))
    out = np.where(mag == FP16.INF, "inf", out)
    return np.where(is_snan(x), "snan", np.where(is_nan(x), "qnan", out))


ROUNDING_CASES = ("zero", "exact", "below_tie", "tie_even", "tie_odd", "above_tie",
                  "overflow", "subnormal", "underflow_zero")


def rounding_case(mag, exp, code, flags):
    """How an exact ``mag * 2**exp`` rounded to the fp16 ``code`` with ``flags`` (the golden
    rounder's outputs): one of :data:`ROUNDING_CASES`.

    ``subnormal``: a non-zero subnormal result; ``underflow_zero``: a non-zero value that
    rounded to zero; ``overflow``: to infinity. Otherwise the bits below the result's last
    place: none (``exact``), less than half, exactly half with the kept last bit even
    (``tie_even``: rounded down) or odd (``tie_odd``: rounded up), or more than half.
    """
    mag = np.asarray(mag).astype(np.uint64)
    exp = np.asarray(exp, np.int64)
    code = np.asarray(code, np.int64)
    flags = np.asarray(flags, np.int64)
    nz = mag != 0
    q = np.maximum(_bit_length(mag) - 1 + exp, FP16.EMIN) - FP16.FRAC_BITS   # last kept bit
    sh = q - exp                                                 # bits dropped
    # The dropped bits against half a unit of the last place, in integers (mag < 2**62).
    s_ = np.clip(sh, 1, 63).astype(np.uint64)
    trunc = np.where(sh <= 0, mag, np.where(sh >= 64, np.uint64(0), mag >> s_))
    rem = np.where(sh <= 0, np.uint64(0), np.where(sh >= 64, mag, mag - (trunc << s_)))
    half = np.where(sh >= 64, np.uint64(1) << np.uint64(62), np.uint64(1) << (s_ - np.uint64(1)))
    odd = (trunc & np.uint64(1)) == 1
    case = np.where(rem == 0, "exact",
                    np.where(rem < half, "below_tie",
                             np.where(rem > half, "above_tie",
                                      np.where(odd, "tie_odd", "tie_even"))))
    mag_code = code & FP16.MAG_MASK
    case = np.where((mag_code >> FP16.FRAC_BITS == 0) & (mag_code != 0), "subnormal", case)
    case = np.where(nz & (mag_code == 0), "underflow_zero", case)
    case = np.where((flags & FLAG_OVERFLOW) != 0, "overflow", case)
    return np.where(nz, case, "zero")


FP4_SITUATIONS = ("exact", "below_mid", "at_mid", "above_mid", "saturate", "underflow",
                  "nan", "inf")


def fp4_situation(y, code, nan, inf):
    """How the log converter reached ``code`` from the scaled magnitude ``y`` (float64,
    exact): on a level, between the level and the midpoint above it (rounded down), on a
    midpoint (ties to the smaller magnitude), between the midpoint below and the level
    (rounded up), past the largest level, non-zero to zero; NaN and Inf inputs."""
    from golden.fp4 import FP4_MIDPOINTS
    e = np.asarray(code, np.int64) & ((1 << FP4.EXP_BITS) - 1)
    level = np.where(e == 0, 0.0, 2.0 ** (FP4.RADIX_LOG2 * (e - FP4.EXP_BIAS)))
    top = 2.0 ** (FP4.RADIX_LOG2 * (FP4.EXP_MAX - FP4.EXP_BIAS))
    on_mid = np.isin(y, FP4_MIDPOINTS)
    out = np.where(y == level, "exact",
                   np.where(on_mid, "at_mid", np.where(y > level, "below_mid", "above_mid")))
    out = np.where((e == 0) & (y != 0) & ~on_mid, "underflow", out)
    out = np.where(y > top, "saturate", out)
    return np.where(nan, "nan", np.where(inf, "inf", out))

