"""cocotb benches for the dot-product unit on the stream bench of :mod:`streams`, all against
:func:`golden.dot`: random dot products of random length and context, directed extremes and
short dot products at full rate (each result ``latency`` cycles after its ``last`` beat), and
the reset check under random gaps and backpressure.

Parameters (``FOURBIT_PARAMS``): ``lanes`` and ``accumulator``.
"""

import itertools

import cocotb
import funcov
import numpy as np

import golden
from golden.formats import MODES
from hdl.dot import MAX_BEATS_LOG2, DotProduct

from scoreboard import Scoreboard, cached, light, params, rng
from streams import Stimulus, StreamBench, first_last

PHASES = ("even", "odd")
CONTEXT = ("mode", "a_signed", "b_signed", "phase")
FORWARD = {"mode": 0, "a_signed": 1, "b_signed": 1, "phase": 0, "g": 0}
BACKWARD = {"mode": 1, "a_signed": 0, "b_signed": 0, "phase": 1, "g": 0}
RESET_DOTS = 240                 # dot products of the reset check
RESET_PRE = 40                   # results out before it
RESET_TINY = 60                  # of them, at tiny scales


def make_dots(r, lanes, lengths, *, g_range=(-8, 8), codes=None):
    """Random dot products: list of dicts with operand arrays (beats, lanes) and context;
    ``codes = (a, b, context)`` fixes them instead."""
    dots = []
    for nb in lengths:
        d = {k: int(r.integers(0, 2)) for k in CONTEXT}
        d["g"] = int(r.integers(g_range[0], g_range[1] + 1))
        if codes is None:
            d["a"] = r.integers(0, 16, (nb, lanes))
            d["b"] = r.integers(0, 16, (nb, lanes))
        else:
            d["a"] = np.full((nb, lanes), codes[0])
            d["b"] = np.full((nb, lanes), codes[1])
            d.update(codes[2])
        dots.append(d)
    return dots


def stimulus(dots, accumulator, lanes, r):
    """The beats of ``dots`` (context fields on non-first beats are random: they must be
    ignored) and each dot product's golden ``result | flags << 16`` (:func:`scoreboard.cached`:
    the fp16 accumulator's golden model takes seconds on the long dot products)."""
    first, last = first_last([len(d["a"]) for d in dots])
    beats = {"a": np.concatenate([d["a"] for d in dots]),
             "b": np.concatenate([d["b"] for d in dots]), "first": first, "last": last}
    for k in CONTEXT + ("g",):
        ctx = np.repeat([d[k] for d in dots], [len(d["a"]) for d in dots])
        noise = r.integers(-32, 32, len(first)) if k == "g" else r.integers(0, 2, len(first))
        beats[k] = np.where(first == 1, ctx, noise)

    def golden_results():
        out = []
        for d in dots:
            code, fl = golden.dot(d["a"].ravel(), d["b"].ravel(), mode=MODES[d["mode"]],
                                  x_signed=d["a_signed"], w_signed=d["b_signed"],
                                  phase=PHASES[d["phase"]], g=d["g"],
                                  accumulator=accumulator, lanes=lanes, flags=True)
            out.append(int(code) | int(fl) << 16)
        return out

    context = [[d[k] for k in CONTEXT + ("g",)] for d in dots]
    expected = cached(golden_results, "dot", accumulator, lanes, beats["a"], beats["b"], last,
                      np.array(context))
    return Stimulus(beats, expected, ends=last)


def key(out):
    return out["result"] | (out["flags"] << 16)


G_EXTREMES = (-32, 31)           # the 6-bit g range's ends
LENGTHS = {"one": 1, "short": 5, "long": 20}      # beats: a representative of each class


def directed_dots(r, lanes):
    """Random operands (and phase) in every context: mode x signedness x g (either end of
    its range, or 0) x one beat, a short and a long dot product (the coverage cross of
    :func:`_coverage`; 72 dot products, each costing the fp16 golden model a call)."""
    dots = []
    for mode, a_s, b_s, g, n in itertools.product((0, 1), (0, 1), (0, 1),
                                                   (G_EXTREMES[0], 0, G_EXTREMES[1]),
                                                   LENGTHS.values()):
        d = make_dots(r, lanes, [n])[0]
        d.update(mode=mode, a_signed=a_s, b_signed=b_s, g=g)
        dots.append(d)
    return dots


_COVERAGE = {}
CONTEXT_DIMS = {"mode": (0, 1), "a_signed": (0, 1), "b_signed": (0, 1), "phase": (0, 1),
                "length": tuple(LENGTHS), "g": ("min", "inside", "max")}
CONTEXT_CROSSES = {"context": ("mode", "a_signed", "b_signed", "length", "g"),
                   "mode_phase": ("mode", "phase")}


def _coverage(lanes, acc):
    """The dot unit's bins, per dot product: mode x a signedness x b signedness x length
    (one beat, 2-8 beats, more) x g (either end of its range, or inside), and mode x phase."""
    if (lanes, acc) not in _COVERAGE:
        _COVERAGE[lanes, acc] = funcov.Coverage(f"dot{lanes}_{acc}", CONTEXT_DIMS,
                                                CONTEXT_CROSSES)
    return _COVERAGE[lanes, acc]


def length_class(beats):
    """``"one"``, ``"short"`` (2-8 beats) or ``"long"`` per dot product length."""
    n = np.asarray(beats)
    return np.where(n == 1, "one", np.where(n <= 8, "short", "long"))


def g_class(g, ends=G_EXTREMES):
    """``"min"``, ``"max"`` (the ends of g's range, by default the 6-bit one) or ``"inside"``
    per ``g``."""
    g = np.asarray(g)
    return np.where(g == ends[0], "min", np.where(g == ends[1], "max", "inside"))


def context_columns(dots):
    """The columns of :data:`CONTEXT_CROSSES` of 4-bit dot products (dicts)."""
    return {**{k: np.array([d[k] for d in dots]) for k in CONTEXT},
            "length": length_class([len(d["a"]) for d in dots]),
            "g": g_class([d["g"] for d in dots])}


def _sample(lanes, acc, dots):
    _coverage(lanes, acc).sample(**context_columns(dots))


def accumulator_top_dots(r, lanes):
    """Backward dot products that fill the exact accumulator to its top bits: ``2**16``
    beats (the most it holds exactly), ``2**15`` and ``2**14`` beats of large products
    (``|p| >= 12 << 12`` each; the last with e = 6 or 7 and any ``b``), positive, negative,
    positive, so that the final rounder normalizes sums whose leading one lies in each of
    the register's top three bits with random bits below it (the 4096-beat extremes end
    four bits lower), and 6000 negative beats, whose sum lies between ``-2**(w - 4)`` and
    ``-2**(w - 5)`` for a ``w``-bit register at any lanes (``-2**32 .. -2**31`` at 8): there
    its bit ``w - 5`` is 0 under ones, a pattern the rounder's chunked negation must carry
    through (the ``2**15``-beat sum has random bits there; missing it hid a stuck bit).
    ``g`` keeps every result a normal fp16 number, so that its significand shows every
    normalized bit."""
    top = 1 << MAX_BEATS_LOG2
    dots = []
    for n, sign, e_lo, b_lo, g in ((top, 0, 7, 12, 31), (top >> 1, 1, 7, 12, 24),
                                    (top >> 2, 0, 6, 0, 20), (6000, 1, 7, 12, 22)):
        d = {**BACKWARD, "g": g}
        d["a"] = (sign << 3) | r.integers(e_lo, 8, (n, lanes))
        d["b"] = r.integers(b_lo, 16, (n, lanes))
        dots.append(d)
    return dots


def zero_dots(r, lanes):
    """Dot products whose exact sum is 0, in both modes at ``g`` across its range: one beat
    of zero operands, and a beat followed by its negation (forward: the signed ``a`` negated;
    backward: the fp4 sign flipped), so that the rounders see a zero at every scale. A zero
    is the one value whose exponent after normalization follows the scale alone: at a large
    scale (``g <= -14``) it lies in the normal range, and only the rounder's zero flag keeps
    the result +0."""
    dots = []
    for ctx, g in itertools.product((FORWARD, BACKWARD), (G_EXTREMES[0], -14, 0, G_EXTREMES[1])):
        base = {**ctx, "g": g, "phase": int(r.integers(0, 2))}
        b = r.integers(0, 16, (1, lanes))
        dots.append({**base, "a": np.zeros((1, lanes), np.int64), "b": b})
        if ctx is FORWARD:
            a = r.integers(-7, 8, (1, lanes))
            pair = np.concatenate([a, -a]) & 15
        else:
            a = r.integers(0, 16, (1, lanes))
            pair = np.concatenate([a, a ^ 8])
        dots.append({**base, "a": pair, "b": np.concatenate([b, b])})
    return dots


def _backward_lanes(total, lanes, dense=False):
    """Backward lane operands ``(a, b)`` (fp4 code, unsigned ``b``) whose products
    ``b * 4**(e - 1)`` sum to ``total``, taken greedily from the top: the largest product
    whose ``b`` holds the top one or two bits, or with ``dense`` four bits per lane (an
    11-bit significand in three lanes); ``None`` if ``lanes`` do not suffice (or, dense, a
    product would need a shift past ``4**6``)."""
    a, b = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    for k in range(lanes):
        if total == 0:
            break
        if dense:
            shift = 2 * max(0, -(-(total.bit_length() - 4) // 2))
            if shift > 12:
                return None
        else:
            shift = 2 * min(6, (total.bit_length() - 1) // 2)
        a[k], b[k] = shift // 2 + 1, min(15, total >> shift)
        total -= int(b[k]) << shift
    return (a, b) if total == 0 else None


def sticky_dots(r, lanes):
    """One-beat backward dot products whose sum is ``2**L + 2**(L - 11) + 2**j``: the
    rounders' round bit set, the kept significand even and one bit below the round bit, at
    each position ``j`` under it, for the two largest ``L`` that ``lanes`` products reach,
    with either sign. Only such a sum rounds up through that one bit (without it, the tie
    rounds down to even), so each bit of the rounders' sticky OR shows in a result; the
    lowest of them needs a sum of 19 bits, which random operands never make exact."""
    dots = []
    top = (lanes * 15 << 12).bit_length() - 1
    for big in (top, top - 1):
        for j in range(big - 11):
            lane_ops = _backward_lanes((1 << big) + (1 << (big - 11)) + (1 << j), lanes)
            if lane_ops is None:
                continue
            a, b = lane_ops
            sign = int(r.integers(0, 2)) << 3
            dots.append({**BACKWARD, "g": big - 10, "a": (a | sign)[None], "b": b[None]})
    return dots


def range_dots(r, lanes):
    """Backward dot products whose beat sums lie ``2**16`` and more apart: a *tiny* beat (one
    lane, the smallest product: code 1 x 1) and *huge* beats (every lane a product of code 6
    or 7 x 12..15, about ``2**19`` times larger), tiny then huge (the fp16 adder swaps its
    operands), huge then tiny, huge cancelled by its negation then tiny, and random
    sequences of both with random signs, at ``g`` from 0 to 5 (every result finite). Only
    there does the accumulator's exponent difference reach 16 or more: random operands
    keep it below."""
    def tiny(sign=0):
        a, b = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
        k = r.integers(0, lanes)
        a[k], b[k] = (sign << 3) | 1, 1
        return a, b

    def huge(sign=0):
        return (sign << 3) | r.integers(6, 8, lanes), r.integers(12, 16, lanes)

    dots = []
    for g in (0, 3, 5):
        h = huge()
        seqs = [[tiny(), huge()], [huge(), tiny()],
                [h, ((h[0] ^ 8), h[1]), tiny(int(r.integers(0, 2)))]]
        seqs += [[(tiny if r.random() < 0.5 else huge)(int(r.integers(0, 2)))
                  for _ in range(6)] for _ in range(4)]
        for seq in seqs:
            d = {**BACKWARD, "g": g}
            d["a"], d["b"] = (np.array(x) for x in zip(*seq, strict=True))
            dots.append(d)
    return dots


def subnormal_dots(r, lanes):
    """Backward dot products at the scale of fp16's smallest subnormal (each beat sum an
    integer times ``2**-24``): beats summing to an accumulator of exactly ``2**(E - 15)``
    (exponent field ``E`` from 4 to 15: up to 64 beats of the largest power of two the
    lanes make), then one beat of ``2**(j - 24)``, a subnormal with one significand bit, with
    either sign each. The fp16 adder aligns that subnormal by ``E - 1`` places (14 at most),
    and ``j`` runs over every place where its one bit lands in the bits below the round bit,
    so that each bit of the alignment's sticky OR alone decides the inexact flag. Normal
    small operands (:func:`range_dots`) always bring their hidden bit to the top two of those
    places; random operands never reach an accumulator ``2**23`` times their smallest beat."""
    scale = -24                                         # the exponent of a beat sum's unit
    g = BACKWARD["phase"] - 6 - scale                   # golden.dot: exp = -6 + phase - g
    most = 15 + (lanes.bit_length() - 1)                # lanes * 2**15 for a power of two
    dots = []
    for e in range(4, 16):
        shift = min(e - 1, 14)                          # the subnormal counts as exponent 1
        for j in range(min(10, shift - 2)):             # its bit at 17 + j - shift <= 14
            big = min(e + 9, most)
            a, b = _backward_lanes(1 << big, lanes)
            tiny_a, tiny_b = _backward_lanes(1 << j, lanes)
            sign, tiny_sign = (int(x) << 3 for x in r.integers(0, 2, 2))
            beats = 1 << (e + 9 - big)
            d = {**BACKWARD, "g": g,
                 "a": np.concatenate([np.tile(a | sign, (beats, 1)), (tiny_a | tiny_sign)[None]]),
                 "b": np.concatenate([np.tile(b, (beats, 1)), tiny_b[None]])}
            dots.append(d)
    return dots


def power_dots(r, lanes):
    """One-beat backward dot products whose sum is ``2**L + r`` or ``-(2**L + 1 + r)`` (``r``
    random below 16) for every ``L`` the lanes reach: the sum's bits from 4 up are one single
    bit (or, negative, all ones but one), so that each bit of the rounders' leading zero and
    sign tests alone decides where the normalizer shifts. Random sums have several bits set
    up there; a rounder whose zero test ignored bit 15 shifted 2**15 + r as if it were
    small, and no bench sum was ever in that window."""
    dots = []
    top = (lanes * 15 << 12).bit_length() - 1
    for big in range(top + 1):
        for neg in (0, 1):
            low = int(r.integers(0, 16))
            lane_ops = _backward_lanes((1 << big) + low + neg, lanes)
            if lane_ops is None:
                continue
            a, b = lane_ops
            dots.append({**BACKWARD, "g": 0, "a": (a | neg << 3)[None], "b": b[None]})
    return dots


def tininess_dots(r, lanes):
    """One-beat backward dot products whose sum lies just below fp16's smallest normal
    (its leading one at ``2**-15``, where tininess is decided after rounding) with the 12
    bits from the leading one down to the round bit all ones (the sum rounds up to
    ``2**-14``: not tiny, no underflow) or all ones but one, at each of the 12 places (tiny,
    and inexact through the round bit unless the cleared bit is that one: underflow), with
    and without bits below them, either sign. The rounder tells the two apart by comparing
    those 12 bits with all ones: a fault in any bit of that compare shows in one of them.
    Sums that ``lanes`` products cannot make are left out."""
    dots = []
    for low in (0, 2):                                  # 2 more bits below: 0b01 (sticky)
        g = BACKWARD["phase"] - 6 + 26 + low            # the sum's unit: 2**-(26 + low)
        for cleared in (None, *range(12)):
            top = 0xFFF if cleared is None else 0xFFF ^ (1 << cleared)
            lane_ops = _backward_lanes((top << low) | (low > 0), lanes)
            if lane_ops is None:
                continue
            a, b = lane_ops
            sign = int(r.integers(0, 2)) << 3
            dots.append({**BACKWARD, "g": g, "a": (a | sign)[None], "b": b[None]})
    return dots



CANCEL_SEED = 0xCA7              # cancel_dots' own generator: the family draws from no bench's


def cancel_dots(lanes):
    """Two-beat backward dot products whose beat sums have opposite signs: ``x = 2**(10 + d)
    + u * 2**d`` and ``y``, an 11-bit integer whose two low bits take each of their four
    values (both exact in fp16, so that the accumulator adds them as they are), for an
    exponent difference ``d`` from 0 to 4, in either order, either sign first. The fp16
    adder subtracts the smaller operand aligned by ``d`` places: at ``d <= 1`` the difference
    loses up to 10 leading bits (each normalize shift of the accumulator's rounder, low bits
    set); at ``d >= 2`` one leading bit goes and the aligned low bits land on the round and
    sticky places, where those two bits decide a tie. Random sums rarely line up so: a fault
    in the lowest bit of the accumulator rounder's sticky OR was killed by one draw of the
    engine's bench and not by the next. The family has its own generator
    (:data:`CANCEL_SEED`), so that adding it moved no other family's draws."""
    r = np.random.default_rng(CANCEL_SEED)
    dots = []
    for d, low, u in itertools.product(range(5), range(4), (0, 1)):
        x = (1 << (10 + d)) + (int(r.integers(1, 64)) << d if u else 0)
        y = (1 << 10) | int(r.integers(0, 256)) << 2 | low
        ops = [_backward_lanes(x, lanes, dense=True), _backward_lanes(y, lanes, dense=True)]
        if None in ops:
            continue
        sign = int(r.integers(0, 2))
        beats = [(ops[0][0] | sign << 3, ops[0][1]), (ops[1][0] | (sign ^ 1) << 3, ops[1][1])]
        for order in (beats, beats[::-1]):
            dots.append({**BACKWARD, "a": np.stack([a for a, _ in order]),
                         "b": np.stack([b for _, b in order])})
    return dots

def corner_dots(r, lanes):
    """Every directed family of corner dot products, for each bench that runs them (this one,
    the interleaved unit's, the engine's): :func:`range_dots`, :func:`zero_dots`,
    :func:`sticky_dots`, :func:`subnormal_dots`, :func:`tininess_dots`, :func:`power_dots`,
    :func:`cancel_dots`."""
    return (range_dots(r, lanes) + zero_dots(r, lanes) + sticky_dots(r, lanes)
            + subnormal_dots(r, lanes) + tininess_dots(r, lanes) + power_dots(r, lanes)
            + cancel_dots(lanes))


def full_rate_dots(case, r, lanes, accumulator="fp16", light=False):
    """``random``: lengths 1..4096 beats (mostly short), random mode/signedness/phase/g;
    ``extremes``: all -8 x -8 (forward, signed) and all 64 x 15 (backward, unsigned), 4096
    beats, and the largest/smallest scales, :func:`corner_dots`, and with the exact
    accumulator :func:`accumulator_top_dots` (not in the light profile: 120k beats);
    ``latency``: one-beat and short dot products back to back, then a long one."""
    if case == "random":
        lengths = list(r.integers(1, 9, 300)) + list(r.integers(9, 257, 12)) + [4096, 1]
        return (make_dots(r, lanes, lengths)
                + make_dots(r, lanes, [int(x) for x in r.integers(1, 5, 100)],
                            g_range=(-32, 31))
                + directed_dots(r, lanes))
    if case == "extremes":
        dots = []
        for g in (-32, 0, 16, 31):
            dots += make_dots(r, lanes, [4096], codes=(0b1000, 0b1000, {**FORWARD, "g": g}))
            dots += make_dots(r, lanes, [4096], codes=(0b0111, 15, {**BACKWARD, "g": g}))
            dots += make_dots(r, lanes, [3], codes=(0b1111, 0b1000, {**BACKWARD, "g": g,
                                                                     "b_signed": 1}))
        dots += corner_dots(r, lanes)
        if accumulator == "exact" and not light:
            dots += accumulator_top_dots(r, lanes)
        return dots
    return make_dots(r, lanes, [1] * 5 + [int(x) for x in r.integers(1, 5, 60)] + [300])


async def _bench(dut, name, salt):
    p = params()
    lanes, acc = p["lanes"], p["accumulator"]
    r = rng(dut._log, salt=salt)
    bench = await StreamBench(dut, DotProduct(lanes, acc), key, r).setup()
    return bench, lanes, acc, r, Scoreboard(f"dot_{name}_{acc}_{lanes}", dut._log)


@cocotb.test()
@cocotb.parametrize(case=("random", "extremes", "latency"))
async def dot_full_rate(dut, case):
    """The dot products of :func:`full_rate_dots` back to back with ``o.ready`` high."""
    bench, lanes, acc, r, sb = await _bench(dut, case, salt={"random": 1, "extremes": 2,
                                                             "latency": 4}[case])
    dots = full_rate_dots(case, r, lanes, acc, light())
    stim = stimulus(dots, acc, lanes, r)
    await bench.full_rate(sb, stim)
    sb.finish(expected_vectors=2 * len(stim), exhaustive=False)
    _sample(lanes, acc, dots)


@cocotb.test()
async def dot_reset(dut):
    """The reset check over ``RESET_DOTS`` short dot products (1 to 5 beats), the last
    ``RESET_TINY`` of them at scales (``g`` 16 .. 31) where results and beat sums come out
    subnormal or zero, so that a rounder's underflow flag is held under backpressure too."""
    bench, lanes, acc, r, sb = await _bench(dut, "stream", salt=3)
    lengths = [int(x) for x in r.integers(1, 6, RESET_DOTS)]
    dots = (make_dots(r, lanes, lengths[:-RESET_TINY])
            + make_dots(r, lanes, lengths[-RESET_TINY:], g_range=(16, 31)))
    await bench.reset_check(sb, stimulus(dots, acc, lanes, r), pre_results=RESET_PRE)
    sb.finish(expected_vectors=RESET_DOTS, exhaustive=False)
    _sample(lanes, acc, dots)
    # The last test of the module: the bins of all of them (cocotb runs them in order).
    _coverage(lanes, acc).finish(dut._log)
