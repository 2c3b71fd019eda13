"""cocotb bench for FP16Rounder (through test_rounder.RounderBank) against golden.round_fp16.

Each configuration ``(width, exp_width, signed)`` is checked either exhaustively (every
sign, magnitude and exponent, when that is at most 2**20 vectors) or with
``N_RANDOM`` structured random values plus directed corners:

- random: the leading one lands mostly where fp16 results live (``2**-28 .. 2**17``), the
  10 fraction bits are random or all ones (carry into the exponent), and the bits below
  are exact, an exact tie, just above or below the tie, all ones, or random;
- corners, for every leading-one exponent from ``2**-28`` to ``2**17`` and both signs:
  exact powers of two, ties to even up and down, ``0xFFF`` (round up into the next binade,
  the tininess-after-rounding window at ``2**-15``), sticky-only tails; plus zero, the
  largest magnitudes, and the extreme exponents.

Values go to ``LANES`` rounders at once; one ``Timer`` step per group of lanes. A pipelined
configuration (``stages > 0``) gets a new group on every clock edge with ``en`` high (``en``
random, high 70 % of the time) and must show each group's results exactly ``stages`` enabled
edges later and hold them while ``en`` is low: every result is checked twice, on the first
and on the last cycle it is on the outputs.
"""

import cocotb
import funcov
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

import golden
from golden.formats import FP16
from hdl.rounder import FLAGS_SHAPE, FP16Rounder

from scoreboard import Scoreboard, params, rng
from scoreboard import light as light_run
from streams import Packer, rotate_lanes, start_clock

# (width, exp_width, signed, stages): an exhaustive 12-bit one, the dot-product normalizer's
# shape, the fp4 decoder's (a power of two: mag = 1); then pipelined: a rank at every register
# point of the 41-bit shape, and the dot8 chunk rounder's shape with 4 ranks.
CONFIGS = [(12, 6, False, 0), (41, 10, True, 0), (1, 10, False, 0),
           (41, 10, True, len(FP16Rounder.points(41, True))), (20, 7, True, 4)]
N_RANDOM = 200_000
LIGHT_RANDOM = 20_000           # the light profile's (Icarus: scoreboard.light)
EXHAUSTIVE_LIMIT = 1 << 20
E_LO, E_HI = -28, 17            # leading-one exponents worth dense coverage
CORNER_PATTERNS = (1, 0x800, 0x801, 0x803, 0xFFF, 0xFFE, 0x1001, 0x1FFF, 0x1FFE, 0xC00)


def _exp_range(ew):
    return -(1 << (ew - 1)), (1 << (ew - 1)) - 1


def _max_mag(w, signed):
    return (1 << (w - 1)) if signed else (1 << w) - 1


def exhaustive(w, ew, signed):
    return (w + ew + (0 if signed else 1)) <= EXHAUSTIVE_LIMIT.bit_length() - 1


def all_vectors(w, ew, signed):
    """Every input: ``(sign, mag, exp)`` arrays (signed: every two's complement value)."""
    lo, hi = _exp_range(ew)
    exps = np.arange(lo, hi + 1)
    if signed:
        vals = np.arange(-(1 << (w - 1)), 1 << (w - 1))
        v, e = np.meshgrid(vals, exps, indexing="ij")
        return (v < 0).astype(np.int64).ravel(), np.abs(v).ravel(), e.ravel()
    s, m, e = np.meshgrid([0, 1], np.arange(1 << w), exps, indexing="ij")
    return s.ravel(), m.ravel(), e.ravel()


def corners(w, ew, signed):
    """Directed corners: a fixed list whose length depends only on the configuration."""
    lo, hi = _exp_range(ew)
    top = _max_mag(w, signed)
    out = []
    for p in CORNER_PATTERNS:
        if p > top:
            continue
        for e in range(E_LO, E_HI + 1):
            x = e - (p.bit_length() - 1)
            if lo <= x <= hi:
                out += [(0, p, x), (1, p, x)]
    for x in (lo, lo + 1, -1, 0, 1, hi - 1, hi):
        for m in (0, 1, top, top - 1 if top > 1 else 1):
            out += [(0, m, x), (1, m, x)]
    s, m, e = (np.array(c, dtype=np.int64) for c in zip(*out, strict=True))
    if signed:                                    # +2**(w-1) does not exist in two's complement
        s = np.where(m == (1 << (w - 1)), 1, s)
    return s, m, e


def random_vectors(gen, n, w, ew, signed):
    """Structured random values (see the module docstring)."""
    lo, hi = _exp_range(ew)
    maxbits = w - 1 if signed else w               # positive magnitudes of every length
    length = gen.integers(1, maxbits + 1, n) if maxbits >= 1 else np.ones(n, np.int64)
    frac = np.where(gen.random(n) < 0.25, (1 << 10) - 1, gen.integers(0, 1 << 10, n))
    tail_len = np.maximum(length - 11, 0)          # bits below the 11 significand bits
    kind = gen.integers(0, 6, n)
    tl = tail_len.astype(np.uint64)
    ones = (np.uint64(1) << tl) - np.uint64(1)
    half = np.where(tail_len > 0, np.uint64(1) << (np.maximum(tl, 1) - np.uint64(1)),
                    np.uint64(0)).astype(np.uint64)
    rand = gen.integers(0, 1 << 62, n, dtype=np.uint64) & ones
    tail = np.select([kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
                     [np.uint64(0), half, half | (ones & np.uint64(1)), ones ^ half, ones],
                     rand).astype(np.uint64) & ones
    long_mag = ((np.uint64(1) << (length - 1).astype(np.uint64))
                | (frac.astype(np.uint64) << tl) | tail)
    short = gen.integers(0, 1 << 62, n, dtype=np.uint64) & ((np.uint64(1) << length.astype(
        np.uint64)) - np.uint64(1)) | (np.uint64(1) << (length - 1).astype(np.uint64))
    mag = np.where(length >= 12, long_mag, short).astype(np.int64)
    mag = np.where(gen.random(n) < 0.01, 0, mag)
    e = np.where(gen.random(n) < 0.9, gen.integers(E_LO, E_HI + 1, n),
                 gen.integers(lo, hi + w + 1, n))
    exp = np.clip(e - (length - 1), lo, hi)
    return gen.integers(0, 2, n), mag, exp


def random_count(light=False):
    return LIGHT_RANDOM if light else N_RANDOM


def vector_count(w, ew, signed, stages=0, lanes=1, light=False):
    if exhaustive(w, ew, signed):
        n = 1 << (w + ew + (0 if signed else 1))
        if not stages and lanes > 1:
            n += lanes * len(_lane_groups(*all_vectors(w, ew, signed), signed))
    else:
        n = random_count(light) + len(corners(w, ew, signed)[0])
    return 2 * n if stages else n           # pipelined: first and last cycle of each result


def expected_vectors(configs, lanes, light=False):
    return sum(vector_count(*c, lanes=lanes, light=light) for c in configs)


def _lane_groups(s, m, e, signed):
    """The input classes that every lane of an exhaustive sweep must meet (indices into
    ``s, m, e``): each rounding case, and each output bit (result and flags) at each value
    it takes. An exhaustive sweep meets a rare class in fewer lanes than it has: only two
    inputs of the 12-bit configuration round from above a tie, and in the 1-bit one only
    +-2**-15 sets the fraction's top bit, so that a fault in that bit of the other lanes
    would pass."""
    if signed:
        s = np.where(m == 0, 0, s)
    r, f = golden.round_fp16(s, m.astype(np.uint64), e)
    cases = np.array(funcov.rounding_case(m, e, r, f))
    groups = [np.nonzero(cases == c)[0] for c in funcov.ROUNDING_CASES if np.any(cases == c)]
    word = r.astype(np.int64) | (f.astype(np.int64) << FP16.BITS)
    for b in range(FP16.BITS + FLAGS_SHAPE.width):
        bit = (word >> b) & 1
        if bit.min() != bit.max():                # a constant bit shows in every lane
            groups += [np.nonzero(bit == 0)[0], np.nonzero(bit == 1)[0]]
    return groups


def lane_corners(s, m, e, signed, lanes):
    """For an exhaustive sweep, one more step per class of :func:`_lane_groups`, with one
    input of that class in every lane."""
    pick = np.concatenate([np.resize(g, lanes) for g in _lane_groups(s, m, e, signed)])
    return s[pick], m[pick], e[pick]


def _pack(values, bits, lanes):
    """(steps * lanes,) values -> one integer per step, lane 0 lowest."""
    return Packer(data.ArrayLayout(bits, lanes)).pack(payload=np.reshape(values, (-1, lanes)))


def _unpack(ints, bits, lanes):
    return Packer(data.ArrayLayout(bits, lanes)).unpack(ints)["payload"].ravel()


@cocotb.test()
@cocotb.parametrize(k=range(len(CONFIGS)))
async def config(dut, k):
    """Configuration ``k`` of the bank (exhaustive or random + corners); a pipelined one
    clocked."""
    p = params()
    lanes = p["lanes"]
    w, ew, signed, stages = p["configs"][k]
    name = f"rounder_{'s' if signed else 'm'}{w}_e{ew}" + (f"_p{stages}" if stages else "")
    full = exhaustive(w, ew, signed)
    if full:
        s, m, e = all_vectors(w, ew, signed)
    else:
        gen = rng(dut._log, salt=10 + k)
        rs, rm, re = random_vectors(gen, random_count(light_run()), w, ew, signed)
        cs, cm, ce = corners(w, ew, signed)
        s, m, e = np.concatenate([rs, cs]), np.concatenate([rm, cm]), np.concatenate([re, ce])
    n = len(m)
    if signed:
        s = np.where(m == 0, 0, s)                 # two's complement has one zero: +0
    if not stages:
        # A combinational rounder's outputs depend on its inputs alone, so the order of the
        # vectors is free: sorted by exponent, sign and magnitude, consecutive steps toggle
        # few input bits, which saves Icarus most of its event traffic.
        order = np.lexsort((m, s, e))
        # ... and step j's group rotated by j's base-``lanes`` digit sum, so that every lane
        # sees every magnitude residue and every position in a binade (in plain order, lane
        # k would only get m = k mod lanes: the zeros and the ties all in the same lanes).
        whole = n - n % lanes
        order = np.concatenate([rotate_lanes(order[:whole].reshape(-1, lanes)).ravel(),
                                order[whole:]])
        s, m, e = s[order], m[order], e[order]
        if full and lanes > 1:
            s, m, e = (np.concatenate(p) for p in zip((s, m, e),
                                                      lane_corners(s, m, e, signed, lanes)))
            n = len(m)
    want_r, want_f = golden.round_fp16(s, m.astype(np.uint64), e)
    pad = -n % lanes
    sp, mp, ep = (np.pad(x, (0, pad)) for x in (s, m, e))
    mask = (1 << w) - 1
    if signed:
        value = np.where(sp == 1, -mp, mp) & mask
        drive = {f"c{k}_value": _pack(value, w, lanes)}
    else:
        drive = {f"c{k}_sign": _pack(sp, 1, lanes), f"c{k}_mag": _pack(mp, w, lanes)}
    drive[f"c{k}_exp"] = _pack(ep & ((1 << ew) - 1), ew, lanes)
    handles = {name_: getattr(dut, name_) for name_ in drive}
    res_h, flg_h = getattr(dut, f"c{k}_result"), getattr(dut, f"c{k}_flags")
    if stages:
        start_clock(dut)
        dut.rst.value = 0
        got_r, got_f, first_r, first_f = await _drive_pipelined(dut, k, stages, drive, handles)
    else:
        got_r, got_f = [], []
        last = {}
        for step in range(len(drive[f"c{k}_exp"])):
            for name_, h in handles.items():
                if last.get(name_) != drive[name_][step]:       # unchanged: no write
                    h.value = last[name_] = drive[name_][step]
            await Timer(1, "ns")
            got_r.append(res_h.value.to_unsigned())
            got_f.append(flg_h.value.to_unsigned())
    got_r = _unpack(got_r, FP16.BITS, lanes)[:n]
    got_f = _unpack(got_f, FLAGS_SHAPE.width, lanes)[:n]
    sb = Scoreboard(name, dut._log)
    want = want_r.astype(np.int64) | (want_f.astype(np.int64) << 16)
    sb.compare(got_r | (got_f << 16), want, sign=s, mag=m, exp=e)
    if stages:
        first_r = _unpack(first_r, FP16.BITS, lanes)[:n]
        first_f = _unpack(first_f, FLAGS_SHAPE.width, lanes)[:n]
        sb.compare(first_r | (first_f << 16), want, sign=s, mag=m, exp=e)
    sb.finish(expected_vectors=vector_count(w, ew, signed, stages, lanes, light_run()),
              exhaustive=full)
    cov = rounder_coverage(name, w, ew, signed, lanes)
    cov.sample(case=funcov.rounding_case(m, e, want_r, want_f), sign=s,
               lane=np.arange(n) % lanes)
    cov.finish(dut._log)


def rounder_coverage(name, w, ew, signed, lanes):
    """A rounder configuration's bins: every rounding case (:data:`funcov.ROUNDING_CASES`) x
    sign that its inputs can produce (all inputs of an exhaustive configuration through the
    golden rounder; every case and sign otherwise, but a signed zero), every lane x case."""
    if exhaustive(w, ew, signed):
        s, m, e = all_vectors(w, ew, signed)
        if signed:
            s = np.where(m == 0, 0, s)
        r, f = golden.round_fp16(s, m.astype(np.uint64), e)
        ok = set(zip(funcov.rounding_case(m, e, r, f).tolist(), s.tolist()))
    else:
        ok = {(c, sg) for c in funcov.ROUNDING_CASES for sg in (0, 1)
              if not (signed and c == "zero" and sg)}
    cases = sorted({c for c, _ in ok}, key=funcov.ROUNDING_CASES.index)
    return funcov.Coverage(
        name, {"case": funcov.ROUNDING_CASES, "sign": (0, 1), "lane": range(lanes)},
        {"case_sign": ("case", "sign"), "lane_case": ("lane", "case")},
        reachable={"case_sign": ok,
                   "lane_case": {(k, c) for k in range(lanes) for c in cases}})


async def _drive_pipelined(dut, k, stages, drive, handles):
    """Clocked drive of configuration ``k``: a new group on each edge with ``en`` high.

    Returns the packed results and flags of every group on the last and on the first cycle
    they were on the outputs."""
    steps = len(drive[f"c{k}_exp"])
    gen = rng(None, salt=100 + k)
    en_h = getattr(dut, f"c{k}_en")
    res_h, flg_h = getattr(dut, f"c{k}_result"), getattr(dut, f"c{k}_flags")
    last, first = {}, {}
    i = 0                                   # groups taken so far (enabled edges)
    while i - stages < steps:
        await FallingEdge(dut.clk)
        en = int(gen.random() < 0.7)
        en_h.value = en
        for name_, h in handles.items():
            h.value = drive[name_][min(i, steps - 1)]
        await ReadOnly()
        j = i - stages                      # the group on the outputs now
        if 0 <= j < steps:
            v = (res_h.value.to_unsigned(), flg_h.value.to_unsigned())
            last[j] = v
            first.setdefault(j, v)
        await RisingEdge(dut.clk)
        i += en
    en_h.value = 0
    rows = [[last[j][0] for j in range(steps)], [last[j][1] for j in range(steps)],
            [first[j][0] for j in range(steps)], [first[j][1] for j in range(steps)]]
    return rows
