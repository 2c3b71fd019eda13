"""cocotb benches for the fp16 stream units (FP16Adder / FP16Multiplier, ``lanes`` per beat),
on the stream bench of :mod:`streams`.

Parameters (from the pytest side): ``op`` (``"add"`` or ``"mul"``), ``lanes``, ``n_random``
(random pairs), ``n_stream`` (beats of the reset check).

- ``full_rate`` on ``testfloat``: every case of Berkeley TestFloat's level-1 vectors, read
  from ``golden/testvectors/`` (:mod:`golden.testfloat`): result (a NaN expectation means
  ``0x7E00``, our canonical NaN) and flags; on ``random``: ``n_random`` pairs biased toward
  close exponents, cancellation, subnormals and the underflow/overflow windows, against
  :func:`golden.fp16_add` / :func:`golden.fp16_mul`, then every pair of
  :data:`CORNERS` in every lane. One beat per cycle, each beat's results
  ``latency`` cycles later.
- ``stream``: random valid gaps, random backpressure and the reset in mid-stream.
"""

import cocotb
import funcov
import numpy as np

import golden
from golden.formats import FP16
from golden.testfloat import load as load_testfloat
from hdl.fp16 import FP16Adder, FP16Multiplier

from scoreboard import Scoreboard, params, rng
from streams import Stimulus, StreamBench, every_lane

UNITS = {"add": (FP16Adder, golden.fp16_add), "mul": (FP16Multiplier, golden.fp16_mul)}


def _codes(sign, efield, frac):
    return ((sign << 15) | (efield << FP16.FRAC_BITS) | frac).astype(np.uint16)


# Operands that every lane must meet against each other (the random pairs reach +Inf + -Inf
# or a signalling NaN in a given lane rarely: a mutant breaking lane 3's Inf - Inf went
# unnoticed): signed zeros, infinities, quiet and signalling NaNs, the smallest subnormal,
# the smallest normal, one, the largest finite.
CORNERS = (0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0xFC01, 0x0001, 0x8001,
           0x0400, 0x8400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF)
CORNER_PAIRS = len(CORNERS) ** 2


def corner_pairs(lanes):
    """Every pair of :data:`CORNERS` in every lane: ``CORNER_PAIRS`` beats, lane ``k`` of
    beat ``j`` getting pair ``(j + k) mod CORNER_PAIRS`` (flattened, beat by beat)."""
    n = len(CORNERS)
    pair = every_lane(CORNER_PAIRS, lanes)
    c = np.asarray(CORNERS, np.int64)
    return c[pair // n].ravel(), c[pair % n].ravel()


def random_pairs(gen, n, op):
    """``n`` operand pairs: a mix of uniform codes and corner-dense distributions."""
    top = FP16.EXP_MAX_FIELD - 1                      # largest finite exponent field
    kinds = gen.choice(6, size=n, p=[0.10, 0.30, 0.20, 0.10, 0.20, 0.10])
    sa, sb = gen.integers(0, 2, n), gen.integers(0, 2, n)
    fa, fb = gen.integers(0, 1 << FP16.FRAC_BITS, (2, n))
    ea = gen.integers(0, top + 1, n)
    eb = np.clip(ea + gen.integers(-3, 4, n), 0, top)            # kind 1: close exponents
    eb = np.where(kinds == 0, gen.integers(0, FP16.EXP_MAX_FIELD + 1, n), eb)
    ea = np.where(kinds == 0, gen.integers(0, FP16.EXP_MAX_FIELD + 1, n), ea)
    sub_a, sub_b = gen.integers(0, 3, (2, n))                    # kind 2: subnormal range
    ea, eb = np.where(kinds == 2, sub_a, ea), np.where(kinds == 2, sub_b, eb)
    hi_a, hi_b = gen.integers(top - 2, top + 1, (2, n))          # kind 3: top of the range
    ea, eb = np.where(kinds == 3, hi_a, ea), np.where(kinds == 3, hi_b, eb)
    if op == "add":
        # kind 4: cancellation, b close to -a; kind 5: alignment around the sticky bit.
        fb = np.where(kinds == 4, np.clip(fa + gen.integers(-4, 5, n), 0, 1023), fb)
        eb = np.where(kinds == 4, ea, eb)
        sb = np.where(kinds == 4, 1 - sa, sb)
        far = np.clip(ea - gen.integers(9, 17, n), 0, top)
        eb = np.where(kinds == 5, far, eb)
    else:
        # kind 4: products near 2**-14 .. 2**-25 (underflow); kind 5: near 2**16 (overflow).
        bias2 = 2 * FP16.BIAS
        s = np.where(kinds == 4, gen.integers(bias2 - 27, bias2 - 12, n),
                     gen.integers(bias2 + 14, bias2 + 18, n))
        lo, hi = np.maximum(0, s - top), np.minimum(top, s)
        pick = lo + (gen.random(n) * (hi - lo + 1)).astype(np.int64)
        ea = np.where(kinds >= 4, pick, ea)
        eb = np.where(kinds >= 4, s - pick, eb)
    return _codes(sa, ea, fa), _codes(sb, eb, fb)


def stimulus(a, b, lanes, model, expected=None):
    """``a``, ``b`` (n,) operand codes, ``lanes`` per beat (the last beat zero-padded), and
    their results ``result | flags << 16`` (``model``'s, or ``expected`` for the first n)."""
    pad = -len(a) % lanes
    a, b = np.pad(a, (0, pad)).astype(np.int64), np.pad(b, (0, pad)).astype(np.int64)
    r, fl = model(a, b, flags=True)
    want = r.astype(np.int64) | (fl.astype(np.int64) << 16)
    if expected is not None:
        want[:len(expected)] = expected

    def rows(x):
        return x.reshape(-1, lanes) if lanes > 1 else x

    return Stimulus({"a": rows(a), "b": rows(b)}, rows(want), inputs={"a": rows(a), "b": rows(b)})


def key(out):
    return out["result"] | (out["flags"] << 16)


async def _setup(dut, salt):
    p = params()
    unit_cls, model = UNITS[p["op"]]
    bench = StreamBench(dut, unit_cls(lanes=p["lanes"]), key, rng(dut._log, salt=100 + salt))
    return p, model, await bench.setup()


@cocotb.test()
@cocotb.parametrize(source=("testfloat", "random"))
async def full_rate(dut, source):
    """Every TestFloat level-1 case, or ``n_random`` biased random pairs, at full rate
    (:meth:`streams.StreamBench.full_rate`): result and flags."""
    p, model, bench = await _setup(dut, salt=1)
    if source == "testfloat":
        a, b, r, fl = load_testfloat(p["op"])
        r = np.where(golden.fp16.is_nan(r), FP16.QNAN, r)   # "any NaN": ours is 0x7E00
        stim = stimulus(a, b, p["lanes"], model, expected=r | (fl << 16))
    else:
        a, b = random_pairs(rng(dut._log, salt=1), p["n_random"], p["op"])
        assert p["n_random"] % p["lanes"] == 0, "n_random must be a multiple of lanes"
        ca, cb = corner_pairs(p["lanes"])
        stim = stimulus(np.concatenate([a, ca]), np.concatenate([b, cb]), p["lanes"], model)
    sb = Scoreboard(f"fp16_{p['op']}_{source}", dut._log)
    await bench.full_rate(sb, stim)
    sb.finish(expected_vectors=stim.expected.size + len(stim), exhaustive=False)
    _sample(p, stim)


@cocotb.test()
async def stream(dut):
    """The reset check (:meth:`streams.StreamBench.reset_check`) over ``n_stream`` beats of
    random pairs: one check per lane of every beat (a dropped beat checks as "dropped")."""
    p, model, bench = await _setup(dut, salt=2)
    lanes, n = p["lanes"], p["n_stream"]
    a, b = random_pairs(rng(dut._log, salt=2), n * lanes, p["op"])
    stim = stimulus(a, b, lanes, model)
    sb = Scoreboard(f"fp16_{p['op']}_stream", dut._log)
    await bench.reset_check(sb, stim, pre_results=n // 2, valid_prob=0.6, ready_prob=0.5)
    sb.finish(expected_vectors=stim.expected.size, exhaustive=False)
    _sample(p, stim)
    # The last test of the module: the bins of all three (cocotb runs them in order).
    _coverage(p).finish(dut._log)


_COVERAGE = {}


def _coverage(p):
    """The unit's bins, shared by the module's tests: every IEEE case of the result
    (:data:`funcov.ROUNDING_CASES`, and ``special`` for a NaN or Inf operand) -- an exact sum
    of two fp16 values is never rounded to zero, so the adder has no ``underflow_zero`` --
    every pair of operand classes, every lane x case and every lane x pair of operand
    classes."""
    key = (p["op"], p["lanes"])
    if key not in _COVERAGE:
        cases = [c for c in funcov.ROUNDING_CASES + ("special",)
                 if not (p["op"] == "add" and c == "underflow_zero")]
        _COVERAGE[key] = funcov.Coverage(
            f"fp16_{p['op']}_x{p['lanes']}",
            {"case": cases, "a": funcov.FP16_CLASSES, "b": funcov.FP16_CLASSES,
             "lane": range(p["lanes"])},
            {"case": ("case",), "operands": ("a", "b"), "lane_case": ("lane", "case"),
             "lane_operands": ("lane", "a", "b")})
    return _COVERAGE[key]


def ieee_case(op, a, b, code, flags):
    """The IEEE case of each result: the exact sum or product of the operands (integers:
    significands below 2**11, aligned exponents within 2**40) through
    :func:`funcov.rounding_case`; ``special`` when an operand is NaN or Inf."""
    sa, ma, ea = golden.fp16.decode_fp16(a)
    sb, mb, eb = golden.fp16.decode_fp16(b)
    if op == "mul":
        mag, exp = ma * mb, ea + eb
    else:
        lo = np.minimum(ea, eb)
        va = np.where(sa == 1, -ma, ma) << (ea - lo)
        vb = np.where(sb == 1, -mb, mb) << (eb - lo)
        mag, exp = np.abs(va + vb), lo
    case = funcov.rounding_case(mag, exp, code, flags)
    special = ((np.asarray(a) & FP16.EXP_MASK) == FP16.EXP_MASK) | \
        ((np.asarray(b) & FP16.EXP_MASK) == FP16.EXP_MASK)
    return np.where(special, "special", case)


def _sample(p, stim):
    a, b = stim.inputs["a"], stim.inputs["b"]
    want = np.asarray(stim.expected, np.int64)
    lanes = np.arange(p["lanes"])[None, :] if np.ndim(a) == 2 else 0
    _coverage(p).sample(case=ieee_case(p["op"], a, b, want & 0xFFFF, want >> 16), lane=lanes,
                        a=funcov.fp16_class(a), b=funcov.fp16_class(b))
