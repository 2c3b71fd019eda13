"""cocotb benches for the converters (``hdl.rescale``, ``hdl.fp4``, ``hdl.tracker``)
against the golden model, on the stream bench of :mod:`streams`.

Each bench builds its sweep (a :class:`streams.Stimulus`: every input beat and the expected
result of each, computed with NumPy up front) and runs three checks on it (:func:`run`):

1. The reset check on the first ``RESET_RESULTS`` results: random ``valid`` gaps and
   ``ready`` backpressure, a result left waiting on ``o.ready`` after ``PRE_RESET_OUT``
   results, then the synchronous reset in mid-stream.
2. The whole sweep with gaps and backpressure: exactly the sweep's expectations, in order,
   each once.
3. Full rate: the first ``BURST_BEATS`` results again with ``valid`` and ``ready`` held high,
   one beat per cycle, each result ``latency`` cycles after its (last) beat.

Results are compared as arrays at the end; each vector is compared as one integer (result
code and flag byte together).
"""

import cocotb
import funcov
import numpy as np

import golden
from golden.formats import FLAG_INVALID, FLAG_SATURATED, FP4, FP16, INT_FORMATS
from golden.fp16 import decode_fp16, is_nan
from golden.gradscale import gradscale
from hdl import FP4Decoder, LogConverter, RangeRescale, RangeTracker
from hdl.params import g_range

from scoreboard import Scoreboard, cached, params, rng
from scoreboard import light as light_run
from streams import Stimulus, StreamBench, every_lane, rotate_lanes

RESET_RESULTS = 64        # results of the reset check (the sweep's first)
PRE_RESET_OUT = 24        # of which delivered before the reset
BURST_BEATS = 64          # results of the full-rate check (the sweep's first)
VALID_PROB = 0.8
READY_PROB = 0.75

# Sweeps (see test_converters.py for the vector counts they imply).
LOG_G = {6: (-32, -17, -5, 0, 3, 14, 31)}           # g values per g_bits, spanning the range
RESCALE_SCALES = (
    0x0001,   # 2**-24, smallest subnormal
    0x0155,   # subnormal, not a power of two
    0x0400,   # 2**-14, smallest normal
    0x2E66,   # 0.0999..., not a power of two
    0x3C00,   # 1.0
    0x4170,   # 2.71875
    0x4F80,   # 30.0
    0x5A40,   # 200.0
    0x7BFF,   # 65504, largest finite
)
BAD_SCALES = (0x0000, 0x8000, 0xBC00, FP16.INF, 0xFC00, FP16.QNAN, 0x7C01)
STOCHASTIC_SCALES = (0x0155, 0x2E66, 0x3C00, 0x4170)
# The light profile (Icarus, scoreboard.light): every fp16 code at fewer g values and scales.
LIGHT_LOG_G = {6: (-32, 0, 31)}
LIGHT_RESCALE_SCALES = (0x0155, 0x3C00)
LIGHT_STOCHASTIC_SCALES = (0x3C00, 0x4170)


def log_gs(g_bits, light=False):
    """The g values of :func:`log_converter_exhaustive`'s sweep."""
    return (LIGHT_LOG_G if light else LOG_G)[g_bits]


def rescale_scales(r_bits=0, light=False):
    """The scales of :func:`rescale_exhaustive`'s sweep (stochastic when ``r_bits``)."""
    if r_bits:
        return LIGHT_STOCHASTIC_SCALES if light else STOCHASTIC_SCALES
    return LIGHT_RESCALE_SCALES if light else RESCALE_SCALES
# Beats with a random valid scale each (the scale's significand goes through the
# multiplier's partial-product rows: a fixed set of scales leaves most patterns of them
# unseen), their codes mostly picked so that x * s lands in the 4-bit range (random codes
# times a random scale nearly always saturate or round to 0, where a wrong product bit shows
# in no output).
RANDOM_SCALE_BEATS = 1024
TRACKER_RANDOM_TENSORS = 1500
TRACKER_MAX_BEATS = 6


# Corner codes that every lane of a multi-lane converter must see (a sweep of all codes in
# order gives lane k only the codes = k mod lanes: only lane 0 would see +-0, +-Inf or an
# exact power of two). Zeros, infinities, quiet and signalling NaNs, the subnormal ends,
# the smallest normal, the largest finite, exact levels and powers of two, ties of the
# integer rescale (every x.5 up to 7.5, both signs: stochastic rounding must meet each in
# both directions) and of the log converter's midpoints, values past saturation, and
# subnormal powers of two and midpoints at every normalizing shift.
_NEG = FP16.SIGN_MASK
FP16_CORNERS = (
    0x0000, _NEG, FP16.INF, _NEG | FP16.INF, FP16.QNAN, _NEG | FP16.QNAN,
    FP16.INF | 1, _NEG | FP16.INF | 1,                       # signalling NaNs
    0x0001, _NEG | 0x0001, 0x03FF, 0x0400, FP16.MAX_FINITE, _NEG | FP16.MAX_FINITE,
    0x3C00, 0xBC00, 0x3400, 0x4000, 0x4400, 0x5400, 0x5800,
    0x3800, 0xB800, 0x3E00, 0xBE00, 0x4100, 0x4780, 0xC780, 0x4BC0,
    0x4500, 0x3A00, 0x4800, 0xC800, 0x4C00, 0x5640, 0xD640,
    0xC100, 0x4300, 0xC300, 0x4480, 0xC480, 0x4580, 0xC580, 0x4680, 0xC680,
    # Subnormal powers of two and midpoints (1.01b): an exact value and a tie after every
    # path through the normalizing shifter.
    0x0002, 0x0004, 0x0008, 0x0010, 0x0020, 0x0040, 0x0080, 0x0100, 0x0200,
    0x0005, 0x000A, 0x0028, 0x00A0, 0x0280,
)


# Every finite power of two (positive): 10 subnormal, 30 normal. A product of two of them
# has one bit set, so that every bit of the rescale unit's alignment shifter is the only
# one set in some beat, at every shift (a fixed scale with several significand bits, or a
# normal scale, always sets other product bits that mask a faulty one: an 11 x 11 product
# with a bit below 2**20 set alone needs a subnormal power-of-two operand).
POW2 = tuple([1 << i for i in range(FP16.FRAC_BITS)]
             + [e << FP16.FRAC_BITS for e in range(1, FP16.EXP_MAX_FIELD)])


def pow2_beats(lanes):
    """Every power of two of :data:`POW2` (both signs) times every one as the scale, in
    every lane: ``len(POW2)`` scales x ``2 * len(POW2)`` beats (full profile only)."""
    xs = np.array(POW2 + tuple(c | FP16.SIGN_MASK for c in POW2), np.int64)
    x = np.concatenate([xs[every_lane(len(xs), lanes)]] * len(POW2))
    s = np.repeat(np.array(POW2, np.int64), len(xs))
    return x, s


def rescale_beats(lanes, r_bits=0, light=False):
    """Beats of :func:`rescale_exhaustive`."""
    return (len(rescale_scales(r_bits, light)) * sweep_beats(lanes) + RANDOM_SCALE_BEATS
            + len(BAD_SCALES) + (0 if light else 2 * len(POW2) ** 2))


def sweep_beats(lanes):
    """Beats of one sweep of :func:`_sweep_codes`."""
    return (1 << FP16.BITS) // lanes + len(FP16_CORNERS)


def _sweep_codes(lanes):
    """Every fp16 code once, as ``(65536 // lanes, lanes)`` rotated (:func:`rotate_lanes`:
    every lane gets every residue of the code mod ``lanes``, so every lane sees a lone low
    significand bit), then ``len(FP16_CORNERS)`` beats in which lane ``k`` of beat ``j`` gets
    corner ``(j + k) mod len(FP16_CORNERS)``: every lane sees every corner."""
    assert (1 << FP16.BITS) % lanes == 0, "lanes must divide 65536"
    corners = np.asarray(FP16_CORNERS, np.int64)[every_lane(len(FP16_CORNERS), lanes)]
    return np.concatenate([rotate_lanes(np.arange(1 << FP16.BITS, dtype=np.int64)
                                        .reshape(-1, lanes)),
                           corners])


def _key(code, flags, width):
    """One integer per vector: the result code, its flag byte above it."""
    return np.asarray(code, np.int64) | (np.asarray(flags, np.int64) << width)


def vectors(results, lanes=1):
    """Vectors checked by :func:`run` on a sweep of ``results`` results of ``lanes`` values
    each (the full-rate check adds one latency per result)."""
    return (RESET_RESULTS + results + BURST_BEATS) * lanes + BURST_BEATS


async def run(dut, unit, stim, key, name, *, exhaustive):
    """The three checks of the module docstring on the sweep ``stim``."""
    bench = await StreamBench(dut, unit, key, rng(dut._log, salt=1)).setup()
    sb = Scoreboard(name, dut._log)
    await bench.reset_check(sb, stim.head(RESET_RESULTS), pre_results=PRE_RESET_OUT,
                            valid_prob=VALID_PROB, ready_prob=READY_PROB)
    await bench.traffic(sb, stim, valid_prob=VALID_PROB, ready_prob=READY_PROB)
    await bench.full_rate(sb, stim.head(BURST_BEATS))
    lanes = stim.expected[0].size
    sb.finish(expected_vectors=vectors(len(stim), lanes), exhaustive=exhaustive)


@cocotb.test()
async def log_converter_exhaustive(dut):
    """Every fp16 code (and the lane corners) x both phases x the g values of ``LOG_G``."""
    p = params()
    unit = LogConverter(p["lanes"], p["g_bits"])
    lanes = unit.lanes
    codes = _sweep_codes(lanes)
    rows = [(g, ph) for g in log_gs(unit.g_bits, light_run()) for ph in (0, 1)]
    x = np.concatenate([codes] * len(rows))
    g = np.repeat([r[0] for r in rows], len(codes))
    ph = np.repeat([r[1] for r in rows], len(codes))
    c, fl = golden.to_fp4(x, g[:, None], ph[:, None], flags=True)
    stim = Stimulus({"x": x, "g": g, "phase": ph}, _key(c, fl, FP4.BITS),
                    inputs={"x": x, "g": g[:, None], "phase": ph[:, None]})
    cov = log_coverage(unit)
    cov.sample(code=c, phase=ph[:, None], lane=np.arange(lanes)[None, :],
               situation=_log_situation(x, g[:, None], ph[:, None], c),
               input=funcov.fp16_class(x))
    await run(dut, unit, stim, lambda o: _key(o["c"], o["flags"], FP4.BITS), "log_converter",
              exhaustive=True)
    cov.finish(dut._log)


def _log_situation(x, g, ph, c):
    """:func:`funcov.fp4_situation` of fp16 codes ``x`` converted with ``g`` and phase
    ``ph`` to the fp4 codes ``c``."""
    _, sig, exp = decode_fp16(x)
    y = np.ldexp(sig.astype(np.float64), (exp + g - ph).astype(np.int64))
    return funcov.fp4_situation(y, c, is_nan(x), (np.asarray(x) & FP16.MAG_MASK) == FP16.INF)


def log_coverage(unit):
    """The log converter's bins: every fp4 code x phase x rounding situation that some fp16
    input and g of the unit's range produce (the golden model over all of them), every lane x
    situation and every lane x input class."""
    lo, hi = g_range(unit.g_bits)

    def reachable():
        x = np.arange(1 << FP16.BITS, dtype=np.int64)
        out = set()
        for g in range(lo, hi + 1):
            for ph in (0, 1):
                c = golden.to_fp4(x, g, ph)
                sit = _log_situation(x, g, ph, c)
                out |= set(zip(c.tolist(), [ph] * len(x), sit.tolist()))
        return np.array(sorted(f"{a}|{b}|{s_}" for a, b, s_ in out))

    triples = {tuple(int(v) if v.isdigit() else v for v in t.split("|"))
               for t in cached(reachable, "log_coverage", lo, hi).tolist()}
    return funcov.Coverage(
        f"log_converter_x{unit.lanes}_g{unit.g_bits}",
        {"code": range(1 << FP4.BITS), "phase": (0, 1), "situation": funcov.FP4_SITUATIONS,
         "lane": range(unit.lanes), "input": funcov.FP16_CLASSES},
        {"code_phase_situation": ("code", "phase", "situation"),
         "lane_situation": ("lane", "situation"), "lane_input": ("lane", "input")},
        reachable={"code_phase_situation": triples})


def _rescale_expected(x, s, fmt, u=None, r_bits=0):
    """Golden expectations; a bad scale (golden raises) gives 0 + invalid (docs/numerics.md)."""
    q = np.zeros(x.shape, np.int64)
    fl = np.full(x.shape, FLAG_INVALID, np.int64)
    for sc in np.unique(s):
        rows = s == sc
        if sc in BAD_SCALES:
            continue
        kw = {"rounding": "stochastic", "u": u[rows], "r_bits": r_bits} if r_bits else {}
        q[rows], fl[rows] = golden.rescale(x[rows], sc, fmt, flags=True, **kw)
    return _key(q, fl, INT_FORMATS[fmt].bits)


@cocotb.test()
async def rescale_exhaustive(dut):
    """Every fp16 code (and the lane corners) x ``RESCALE_SCALES`` (RNE) or
    ``STOCHASTIC_SCALES`` with random ``u``; ``RANDOM_SCALE_BEATS`` beats of random codes and
    a random valid scale each; every power of two times every one in every lane
    (:func:`pow2_beats`; not in the light profile); one beat of random codes per invalid
    scale."""
    p = params()
    unit = RangeRescale(p["lanes"], p["fmt"], p["rounding"], p["r_bits"])
    lanes, r_bits = unit.lanes, unit.r_bits
    gen = rng(None, salt=7)
    codes = _sweep_codes(lanes)
    scales = rescale_scales(r_bits, light_run())
    rs = gen.integers(1, FP16.INF, RANDOM_SCALE_BEATS)
    px, ps = pow2_beats(lanes) if not light_run() else (np.zeros((0, lanes), np.int64), [])
    x = np.concatenate([codes] * len(scales) + [_in_range_codes(gen, rs, lanes), px]
                       + [gen.integers(0, 1 << FP16.BITS, (len(BAD_SCALES), lanes))])
    s = np.concatenate([np.repeat(scales, len(codes)), rs, np.asarray(ps, np.int64),
                        BAD_SCALES])
    beats = {"x": x, "s": s}
    u = None
    if r_bits:
        u = gen.integers(0, 1 << r_bits, x.shape)
        beats["u"] = u
    expected = _rescale_expected(x, np.broadcast_to(s[:, None], x.shape), unit.fmt, u, r_bits)
    stim = Stimulus(beats, expected, inputs={"x": x, "s": s[:, None]})
    w = INT_FORMATS[unit.fmt].bits
    cov = rescale_coverage(unit)
    good = ~np.isin(s, BAD_SCALES)
    q, fl = (expected[good] & 0xF), (expected[good] >> w)
    cov.sample(q=_int_value(q, unit.fmt), lane=np.arange(lanes)[None, :],
               situation=_rescale_situation(x[good], s[good][:, None], fl),
               input=funcov.fp16_class(x[good]))
    await run(dut, unit, stim, lambda o: _key(o["q"], o["flags"], w),
              f"rescale_{unit.fmt}_{unit.rounding}", exhaustive=not r_bits)
    cov.finish(dut._log)


def _in_range_codes(gen, s, lanes):
    """Per scale code in ``s``, ``lanes`` fp16 codes: the nearest to ``y / s`` for ``y``
    within a few fp16 ulps of a midpoint ``m + 0.5`` (-8 <= m <= 7: where a low product bit
    decides the rounding; 1 in 2), uniform in -8.5 .. 8.5 (3 in 8), or any code (1 in 8)."""
    shape = (len(s), lanes)
    near = (gen.integers(-8, 8, shape) + 0.5) * (1 + gen.uniform(-4, 4, shape) * 2.0 ** -11)
    y = np.where(gen.random(shape) < 0.5, near, gen.uniform(-8.5, 8.5, shape))
    with np.errstate(over="ignore"):
        x = golden.fp16_from_float(y / golden.fp16_to_float(s)[:, None]).astype(np.int64)
    return np.where(gen.random(shape) < 7 / 8, x, gen.integers(0, 1 << FP16.BITS, shape))


RESCALE_SITUATIONS = ("exact", "tie", "inexact", "clamp", "nan")


def _int_value(code, fmt):
    return golden.fp4.int4_value(code, signed=INT_FORMATS[fmt].qmin < 0)


def _rescale_situation(x, s, flags):
    """``x * s`` (exact) on an integer, on a tie (.5), elsewhere; clamped (saturated, Inf
    included); NaN."""
    with np.errstate(invalid="ignore"):
        v = np.abs(golden.fp16.fp16_to_float(x) * golden.fp16.fp16_to_float(s))
        frac = v - np.floor(v)
    out = np.where(frac == 0, "exact", np.where(frac == 0.5, "tie", "inexact"))
    out = np.where((flags & FLAG_SATURATED) != 0, "clamp", out)
    return np.where(is_nan(x), "nan", out)


def rescale_coverage(unit):
    """The rescale unit's bins (its rounding mode in the name): every output value x
    situation that the mode can produce -- a tie rounds to an even value under RNE (either
    neighbour under stochastic rounding), a clamp gives the format's ends, NaN gives 0 --
    every lane x situation and every lane x input class."""
    f = INT_FORMATS[unit.fmt]
    values = range(f.qmin, f.qmax + 1)
    ok = {(q, "exact") for q in values} | {(q, "inexact") for q in values}
    ok |= {(q, "tie") for q in values if unit.rounding == "stochastic" or q % 2 == 0}
    ok |= {(f.qmin, "clamp"), (f.qmax, "clamp"), (0, "nan")}
    return funcov.Coverage(
        f"rescale_x{unit.lanes}_{unit.fmt}_{unit.rounding}",
        {"q": values, "situation": RESCALE_SITUATIONS, "lane": range(unit.lanes),
         "input": funcov.FP16_CLASSES},
        {"value_situation": ("q", "situation"), "lane_situation": ("lane", "situation"),
         "lane_input": ("lane", "input")},
        reachable={"value_situation": ok})


@cocotb.test()
async def decoder_exhaustive(dut):
    """Every fp4 code x both phases x every g of the unit's range."""
    p = params()
    unit = FP4Decoder(p["lanes"], p["g_bits"])
    lanes = unit.lanes
    lo, hi = -(1 << (unit.g_bits - 1)), (1 << (unit.g_bits - 1)) - 1
    rows = [(g, ph) for g in range(lo, hi + 1) for ph in (0, 1)]
    assert lanes % (1 << FP4.BITS) == 0, "lanes must be a multiple of 16"
    # One beat per (g, phase), every code in it (repeated when lanes > 16), rotated by one
    # lane per beat: every lane sees every code.
    n = 1 << FP4.BITS
    c = (np.arange(lanes)[None, :] - np.arange(len(rows))[:, None]) % n
    g = np.array([r[0] for r in rows])
    ph = np.array([r[1] for r in rows])
    x, fl = golden.from_fp4(c, g[:, None], ph[:, None], flags=True)
    stim = Stimulus({"c": c, "g": g, "phase": ph}, _key(x, fl, FP16.BITS),
                    inputs={"c": c, "g": g[:, None], "phase": ph[:, None]})
    cov = decoder_coverage(unit)
    cov.sample(code=c, phase=ph[:, None], case=_decode_case(c, g[:, None], ph[:, None], x, fl),
               lane=np.arange(lanes)[None, :])
    await run(dut, unit, stim, lambda o: _key(o["x"], o["flags"], FP16.BITS), "fp4_decoder",
              exhaustive=True)
    cov.finish(dut._log)


def _decode_case(c, g, ph, x, fl):
    """:func:`funcov.rounding_case` of the decoder's power of two ``2**(2(e-4) + ph - g)``."""
    e = np.asarray(c, np.int64) & ((1 << FP4.EXP_BITS) - 1)
    exp = FP4.RADIX_LOG2 * (e - FP4.EXP_BIAS) + ph - g
    return funcov.rounding_case((e != 0).astype(np.int64), exp, x, fl)


def decoder_coverage(unit):
    """The decoder's bins: every fp4 code x phase x result case (exact, subnormal, overflow,
    underflow to zero, zero) that some g of the unit's range gives, and every lane x code."""
    lo, hi = g_range(unit.g_bits)
    c, g, ph = np.meshgrid(np.arange(1 << FP4.BITS), np.arange(lo, hi + 1), (0, 1))
    x, fl = golden.from_fp4(c, g, ph, flags=True)
    ok = set(zip(c.ravel().tolist(), ph.ravel().tolist(),
                 _decode_case(c, g, ph, x, fl).ravel().tolist()))
    return funcov.Coverage(
        f"fp4_decoder_x{unit.lanes}_g{unit.g_bits}",
        {"code": range(1 << FP4.BITS), "phase": (0, 1), "case": funcov.ROUNDING_CASES,
         "lane": range(unit.lanes)},
        {"code_phase_case": ("code", "phase", "case"), "lane_code": ("lane", "code")},
        reachable={"code_phase_case": ok})


def tracker_tensor_count(lanes):
    """Tensors of :func:`tracker_tensors`."""
    return FP16.INF + 1 + TRACKER_RANDOM_TENSORS + lanes + 6 + FP16.FRAC_BITS * lanes


def tracker_tensors(lanes, g_bits, gen):
    """Tensors for the tracker bench: first one single-beat tensor per fp16 magnitude from
    +0 to +Inf (that magnitude in a random lane, random signs, smaller values and NaNs in
    the others, random g), then random multi-beat tensors, then the directed ones of
    :func:`tracker_corner_tensors`. Returns the beat fields and the
    per-tensor ``(max, nan, g)``."""
    lo, hi = -(1 << (g_bits - 1)), (1 << (g_bits - 1)) - 1
    mags = np.arange(FP16.INF + 1, dtype=np.int64)
    n = len(mags)
    below = (gen.random((n, lanes)) * mags[:, None]).astype(np.int64)      # < the max
    nan = gen.random((n, lanes)) < 0.02
    below = np.where(nan, FP16.QNAN | gen.integers(0, 1 << 9, (n, lanes)), below)
    below[np.arange(n), gen.integers(0, lanes, n)] = mags
    x1 = below | (gen.integers(0, 2, (n, lanes)) << (FP16.BITS - 1))
    g1 = gen.integers(lo, hi + 1, n)
    g1[:8] = (lo, hi, lo, hi, 0, 0, lo + 1, hi - 1)
    xs, lasts, gs, tensor_g = [x1], [np.ones(n, np.int64)], [g1], [g1]
    beats = gen.integers(1, TRACKER_MAX_BEATS + 1, TRACKER_RANDOM_TENSORS)
    total = int(beats.sum())
    x2 = gen.integers(0, 1 << FP16.BITS, (total, lanes))
    kind = gen.integers(0, 4, total)          # scale some beats down, zero some out
    x2 = np.where((kind == 0)[:, None], x2 & 0x83FF, x2)
    x2 = np.where((kind == 1)[:, None] & (gen.random((total, lanes)) < 0.9), 0, x2)
    last2 = np.zeros(total, np.int64)
    last2[np.cumsum(beats) - 1] = 1
    g2 = gen.integers(lo, hi + 1, total)
    xs.append(x2)
    lasts.append(last2)
    gs.append(g2)
    tensor_g.append(g2[last2 == 1])
    x3, last3, g3 = tracker_corner_tensors(lanes, lo, hi, gen)
    xs.append(x3)
    lasts.append(last3)
    gs.append(g3)
    tensor_g.append(g3[last3 == 1])
    x = np.concatenate(xs)
    last = np.concatenate(lasts)
    g = np.concatenate(gs)
    # Reference per tensor.
    tensor = np.concatenate([[0], np.cumsum(last)[:-1]])
    isnan = is_nan(x)
    mag = np.where(isnan, 0, x & 0x7FFF).max(axis=1)
    nt = int(last.sum())
    tmax = np.zeros(nt, np.int64)
    np.maximum.at(tmax, tensor, mag)
    tnan = np.zeros(nt, bool)
    np.logical_or.at(tnan, tensor, isnan.any(axis=1))
    return {"x": x, "g": g, "last": last}, tmax, tnan, np.concatenate(tensor_g)


def tracker_corner_tensors(lanes, lo, hi, gen):
    """The tracker's directed tensors (``lanes + 6 + 10 * lanes``): +-Inf in each lane
    of a single beat without NaN; three-beat tensors all zero, with a subnormal max and a
    NaN, with an Inf and a NaN; the GradScale rules pushed against both ends of g
    (an Inf at ``lo`` and ``lo + 1``, a zero tensor at ``hi``); and single-beat tensors with
    one NaN whose payload is one bit, every bit in every lane (a NaN detector blind to one
    payload bit in one lane shows nowhere else)."""
    small = gen.integers(0, 0x7000, (lanes, lanes))
    inf = np.where(np.eye(lanes, dtype=bool), FP16.INF, small)
    inf |= gen.integers(0, 2, (lanes, lanes)) << (FP16.BITS - 1)
    zeros = np.zeros((3, lanes), np.int64)
    sub = gen.integers(0, 0x400, (3, lanes))
    sub[1, gen.integers(0, lanes)] = FP16.QNAN
    infnan = gen.integers(0, 0x7C00, (3, lanes))
    infnan[0, 0], infnan[2, lanes - 1] = FP16.INF, FP16.QNAN | 1
    ends = np.zeros((3, lanes), np.int64)
    ends[0, 0] = ends[1, 0] = FP16.INF
    m = FP16.FRAC_BITS
    lane, bit = np.divmod(np.arange(m * lanes), m)
    nans = gen.integers(0, 0x7000, (m * lanes, lanes))
    nans[np.arange(m * lanes), lane] = FP16.INF | (1 << bit)
    nans |= gen.integers(0, 2, nans.shape) << (FP16.BITS - 1)
    x = np.concatenate([inf, zeros, sub, infnan, ends, nans])
    last = np.concatenate([np.ones(lanes, np.int64)] + [np.array([0, 0, 1])] * 3
                          + [np.ones(3 + m * lanes, np.int64)])
    g = np.concatenate([gen.integers(lo, hi + 1, lanes + 9), [lo, lo + 1, hi],
                        gen.integers(lo, hi + 1, m * lanes)])
    return x, last, g


@cocotb.test()
async def tracker_tensors_test(dut):
    """Every max magnitude once (single-beat tensors), then random multi-beat tensors."""
    p = params()
    unit = RangeTracker(p["lanes"], p["g_bits"])
    gen = rng(None, salt=11)
    beats, tmax, tnan, tg = tracker_tensors(unit.lanes, unit.g_bits, gen)
    lo, hi = -(1 << (unit.g_bits - 1)), (1 << (unit.g_bits - 1)) - 1
    paper = gradscale(tmax, tg, "paper", g_min=lo, g_max=hi)
    direct = gradscale(tmax, tg, "direct", g_min=lo, g_max=hi)
    gw = unit.g_bits
    mask = (1 << gw) - 1

    def key(mx, nan, gp, gd):
        return (np.asarray(mx, np.int64) | (np.asarray(nan, np.int64) << 16)
                | ((np.asarray(gp, np.int64) & mask) << 17)
                | ((np.asarray(gd, np.int64) & mask) << (17 + gw)))

    stim = Stimulus(beats, key(tmax, tnan, paper, direct), ends=beats["last"],
                    inputs={"max": tmax, "g": tg})
    cov = tracker_coverage(unit)
    tracker_sample(cov, beats, tmax, tnan, tg, {"paper": paper, "direct": direct}, lo, hi)
    await run(dut, unit, stim, lambda o: key(o["max"], o["nan"], o["g_paper"], o["g_direct"]),
              "range_tracker", exhaustive=False)
    cov.finish(dut._log)


def tracker_coverage(unit):
    """The tracker's bins, per tensor: class of the max magnitude x NaN present x length
    (one beat or more); the lane holding the max x its class (single-beat tensors); per
    GradScale rule, the move of g (down, same, up) and where it lands (the range's ends or
    inside)."""
    return funcov.Coverage(
        f"range_tracker_x{unit.lanes}_g{unit.g_bits}",
        {"max": ("zero", "subnormal", "normal", "inf"), "nan": (0, 1),
         "length": ("one", "more"), "lane": range(unit.lanes), "rule": ("paper", "direct"),
         "move": ("down", "same", "up"), "lands": ("lo", "inside", "hi")},
        {"max_nan_length": ("max", "nan", "length"), "lane_max": ("lane", "max"),
         "rule_move": ("rule", "move"), "rule_lands": ("rule", "lands")},
        reachable={"lane_max": {(k, c) for k in range(unit.lanes)
                                for c in ("subnormal", "normal", "inf")}})


def tracker_sample(cov, beats, tmax, tnan, tg, rules, lo, hi):
    last = beats["last"]
    start = np.concatenate([[0], np.nonzero(last)[0][:-1] + 1])
    length = np.where(np.diff(np.concatenate([start, [len(last)]])) == 1, "one", "more")
    cov.sample(max=funcov.fp16_class(tmax), nan=tnan.astype(np.int64), length=length)
    one = length == "one"
    x = beats["x"][start[one]]
    mag = np.where(is_nan(x), -1, x & FP16.MAG_MASK)
    top = tmax[one]
    keep = top > 0
    cov.sample(lane=np.argmax(mag == top[:, None], axis=1)[keep],
               max=funcov.fp16_class(top[keep]))
    for rule, new in rules.items():
        new = np.asarray(new, np.int64)
        cov.sample(rule=rule, move=np.where(new < tg, "down", np.where(new > tg, "up", "same")),
                   lands=np.where(new == lo, "lo", np.where(new == hi, "hi", "inside")))

