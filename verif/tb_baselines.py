"""cocotb benches for the density baselines (cascaded and fused FP16, and INT8 dot products)
on the stream bench of :mod:`streams`, all against golden.baselines: random dot products and
directed extremes at full rate (each result ``latency`` cycles after its ``last`` beat),
random ones with gaps and backpressure, and the reset check.

Parameters (``FOURBIT_PARAMS``): ``kind`` (``"fp16"``, ``"fused"`` or ``"int8"``),
``lanes``, and ``tree_stages`` (INT8: a rank per tree level).
"""

import cocotb
import numpy as np

from golden.baselines import fp16_dot, fused_fp16_dot, int8_dot
from hdl.baselines import FP16DotProduct, FusedFP16DotProduct, Int8DotProduct

from scoreboard import Scoreboard, params, rng
from streams import Stimulus, StreamBench, first_last

RESET_DOTS = 200                 # dot products of the reset check
RESET_PRE = 48                   # results out before it
# fp16 codes worth meeting often: zeros, smallest/largest subnormal and normal, one, Inf,
# the canonical quiet NaN and a signalling NaN.
SPECIALS = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                     0x3C00, 0xBC00, 0x7C00, 0xFC00, 0x7E00, 0x7D00], dtype=np.int64)


UNITS = {"fp16": FP16DotProduct, "fused": FusedFP16DotProduct, "int8": Int8DotProduct}
GOLDEN = {"fp16": fp16_dot, "fused": fused_fp16_dot}
# The operand styles of an FP16 baseline's dot products (fp16_operands) and how often each
# is drawn; the fused unit also meets finite codes of every exponent.
FP16_STYLES = {"fp16": {"tame": 0.6, "mixed": 0.3, "raw": 0.1},
               "fused": {"tame": 0.4, "mixed": 0.25, "raw": 0.1, "wide": 0.25}}


def unit_for(p):
    if p.get("tree_stages"):
        return Int8DotProduct(p["lanes"], tree_stages=True)
    return UNITS[p["kind"]](p["lanes"])


def is_fp16(p):
    return p["kind"] in GOLDEN


def fp16_operands(r, size, style):
    """fp16 codes: ``tame`` (|x| in 2**-7 .. 2**8, sums stay finite), ``mixed`` (tame with
    specials sprinkled in), ``raw`` (any 16-bit code), ``wide`` (finite, every exponent:
    the fused unit's products from 2**-48 to overflow)."""
    if style == "raw":
        return r.integers(0, 1 << 16, size)
    if style == "wide":
        return (r.integers(0, 2, size) << 15) | (r.integers(0, 31, size) << 10) \
            | r.integers(0, 1024, size)
    codes = (r.integers(0, 2, size) << 15) | (r.integers(8, 23, size) << 10) \
        | r.integers(0, 1024, size)
    if style == "mixed":
        pick = r.random(size) < 0.05
        codes = np.where(pick, SPECIALS[r.integers(0, len(SPECIALS), size)], codes)
    return codes


def fp16_style(r, kind):
    """A style of :data:`FP16_STYLES` for the FP16 baseline ``kind``, drawn by its weight."""
    styles = FP16_STYLES[kind]
    return list(styles)[int(r.choice(len(styles), p=list(styles.values())))]


def make_dots(r, p, lengths):
    """Random dot products: a list of (a, b) arrays of shape (beats, lanes)."""
    n = p["lanes"]
    dots = []
    for nb in lengths:
        shape = (int(nb), n)
        if is_fp16(p):
            style = fp16_style(r, p["kind"])
            dots.append((fp16_operands(r, shape, style), fp16_operands(r, shape, style)))
        else:
            dots.append((r.integers(-128, 128, shape), r.integers(-128, 128, shape)))
    return dots


def expected(dots, p):
    """Golden result (fp16: code | flags << 16) for each dot product."""
    out = []
    for a, b in dots:
        if is_fp16(p):
            code, fl = GOLDEN[p["kind"]](a.ravel(), b.ravel(), lanes=p["lanes"], flags=True)
            out.append(int(code) | int(fl) << 16)
        else:
            out.append(int8_dot(a.ravel(), b.ravel()))
    return out


def stimulus(dots, p):
    """The beats of ``dots`` and their golden results."""
    first, last = first_last([len(a) for a, _ in dots])
    beats = {"a": np.concatenate([a for a, _ in dots]),
             "b": np.concatenate([b for _, b in dots]), "first": first, "last": last}
    return Stimulus(beats, expected(dots, p), ends=last)


def key(out):
    if "flags" in out:
        return out["result"] | (out["flags"] << 16)
    return out["result"]


async def _bench(dut, test, salt):
    p = params()
    r = rng(dut._log, salt=salt)
    bench = await StreamBench(dut, unit_for(p), key, r).setup()
    return p, r, bench, Scoreboard(f"{test}_{p['kind']}_{p['lanes']}", dut._log)


@cocotb.test()
async def baseline_random(dut):
    """Random lengths 1..512 beats (mostly short) at full rate, then short ones with gaps
    and backpressure."""
    p, r, bench, sb = await _bench(dut, "baseline_random", salt=11)
    lengths = list(r.integers(1, 9, 200)) + list(r.integers(9, 65, 8)) + [512, 1]
    await bench.full_rate(sb, stimulus(make_dots(r, p, lengths), p))
    await bench.traffic(sb, stimulus(make_dots(r, p, list(r.integers(1, 6, 80))), p),
                        valid_prob=0.6, ready_prob=0.5)
    sb.finish(expected_vectors=2 * len(lengths) + 80, exhaustive=False)


@cocotb.test()
async def baseline_extremes(dut):
    """At full rate. fp16: overflow to Inf, subnormal products, exact cancellation, -0
    sums, a long run of 1 * 1 that stagnates in the fp16 accumulator, Inf - Inf, NaN; the
    fused unit also Inf - Inf inside a beat, an overflowing beat that cancels, the smallest
    products, a sticky bit below a tie. int8: every product at its most positive and most
    negative for 2048 beats."""
    p, r, bench, sb = await _bench(dut, "baseline_extremes", salt=12)
    n = p["lanes"]

    def const(nb, x, y):
        return (np.full((nb, n), x), np.full((nb, n), y))

    if is_fp16(p):
        alt = np.resize([0x3C00, 0xBC00], n)          # +1, -1, ... per lane
        dots = [const(3, 0x7BFF, 0x7BFF), const(4, 0x0001, 0x3800), const(2, 0x8000, 0x3C00),
                (np.tile(alt, (5, 1)), np.full((5, n), 0x4500)),
                const(2048, 0x3C00, 0x3C00), const(1, 0x7C00, 0x3C00),
                (np.tile(alt, (1, 1)), np.full((1, n), 0x7C00)),
                const(2, 0x7D00, 0x3C00), const(1, 0x0000, 0x7C00), const(3, 0x0400, 0x0400)]
        if p["kind"] == "fused":
            big = np.resize([0x7BFF, 0xFBFF], n)       # +-65504 per lane
            tie = np.zeros(n, np.int64)
            tie[0], tie[-1] = 0x6800, 0x0001           # 2048 + 1 + 2**-48: not a tie
            tie_b = np.zeros(n, np.int64)
            tie_b[0], tie_b[-1] = 0x3C00, 0x0001
            if n > 1:
                tie[1], tie_b[1] = 0x3C00, 0x3C00
            # around 2**-25, the tie between 0 and the smallest subnormal: the tie alone
            # (to 0), plus and minus 2**-48 (the rounder's jam bit decides)
            half = np.zeros((3, n), np.int64)
            half_b = np.zeros((3, n), np.int64)
            half[:, 0], half_b[:, 0] = 0x0001, 0x3800        # 2**-24 * 0.5
            if n > 1:
                half[1:, 1], half_b[1:, 1] = [0x0001, 0x8001], 0x0001
            dots += [(half[k:k + 1], half_b[k:k + 1]) for k in range(3)]
            dots += [(np.tile(alt, (2, 1)), np.tile(np.resize([0x7C00, 0x7C00], n), (2, 1))),
                     (np.full((2, n), 0x7BFF), np.tile(big, (2, 1))),
                     const(3, 0x0001, 0x0001), const(2, 0x8001, 0x0001),
                     const(2, 0x8000, 0x3C00), (tie[None, :], tie_b[None, :])]
    else:
        dots = [const(2048, -128, -128), const(2048, -128, 127), const(1, 127, 127)]
    dots += make_dots(r, p, [1, 2, 3])
    await bench.full_rate(sb, stimulus(dots, p))
    sb.finish(expected_vectors=2 * len(dots), exhaustive=False)


@cocotb.test()
async def baseline_reset(dut):
    """The reset check over ``RESET_DOTS`` short dot products (1 to 5 beats)."""
    p, r, bench, sb = await _bench(dut, "baseline_stream", salt=13)
    dots = make_dots(r, p, list(r.integers(1, 6, RESET_DOTS)))
    await bench.reset_check(sb, stimulus(dots, p), pre_results=RESET_PRE)
    sb.finish(expected_vectors=RESET_DOTS, exhaustive=False)
