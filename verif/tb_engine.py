"""cocotb benches for the training engine (:class:`hdl.engine.TrainingEngine`), driven
through the same driver the RTL training run uses (:mod:`engine_driver`), against
:func:`golden.gemm` (codes and flags) and the golden converters.

- ``engine_gemm_traffic``: random GEMMs of every mode and signedness, ``g`` over its range,
  ragged shapes (K not a multiple of ``lanes``, M not of ``slots``, N not of ``rows``) and
  tiles split over the memories, back-to-back commands, random gaps on ``cmd`` and ``din``
  and backpressure on ``o``.
- ``engine_full_rate``: a GEMM whose sizes are multiples of rows, lanes and slots, at full
  rate: it takes one beat per cycle (the cycles from command to last result are exactly
  ``gemm_cycles``; checked when the result FIFOs are deeper than the pipeline, else the
  credit throttles on purpose and it takes longer) and is correct.
- ``engine_ragged_stalls``: GEMMs whose last row group is ragged, under heavy backpressure
  on ``o`` (the result credit stops the issue inside a round; each slot's beats must still
  keep the dot units' loop apart: the paced units would read a stale accumulator; a spacing
  bug hung the engine here before).
- ``engine_limits``: the GEMM size check across both memory limits and over the command
  fields' whole 16-bit range (each field a power of two, all ones, every bit length, random
  triples): every refused GEMM gives ``too_large`` alone; every accepted one computes, from
  the memories as loaded, what :func:`golden.gemm` computes.
- ``engine_extremes``: the dot bench's directed extremes (``tb_dot``: range, zero and
  sticky dot products; the longest K of the largest and most negative operands) as GEMMs.
- ``engine_convert``: every converter on random and special fp16 codes (NaN, Inf,
  subnormals, zeros), both TPR phases, ``g`` over its range, fixed (a subnormal one too)
  and random scales; the tracker on random tensors; with gaps and backpressure.
- ``engine_tracker``: the range tracker on tensors whose largest magnitude takes every
  exponent (Inf and NaN included), at ``g`` at either end of its range and random.
- ``engine_layer``: one layer of the study's MLP (its last: 64 -> 10, batch 32) as a
  training step runs it: the gradient ``dY`` to fp4 in both TPR phases, then the forward GEMM
  (uint4 x int4_sym), ``dX = dY_odd x W^T`` and ``dW^T = dY_even^T x X``; every fp4 code and
  every GEMM output code and flag against the golden model.
- ``engine_errors``: every refused command (unknown op and converter, an empty size, a load
  longer than its memory, a GEMM larger than the tiles) gives its status beat and nothing
  else, reads no ``din`` word and leaves the memories as they were (a GEMM after it gives
  the results of the tiles loaded before).
- ``engine_reset``: resets in the middle of a GEMM (:data:`RESETS`: at consecutive cycles
  and later, one cycle of ``rst`` and three); after each nothing comes out, and the GEMM
  again gives its results from the tiles loaded before it; then the next commands run
  correctly (loads and a GEMM).

Coverage (:func:`coverage`, sampled on every command the driver runs and every GEMM
checked): every op x status the command set defines (each refusal reason of each op); every
built converter x TPR phase it takes; every GEMM context of :data:`MODES`; forward and
backward x ``g`` at either end of its range or inside; whole and ragged M x K x N; one tile
and many.

Parameters (``FOURBIT_PARAMS``): the engine's (``engine_driver.engine_of``).
"""

import itertools

import cocotb
import funcov
import numpy as np
from cocotb.task import bridge
from engine_driver import (
    CONV_NAMES,
    OP_NAMES,
    EngineError,
    EnginePorts,
    RTLBackend,
    command,
    engine_of,
    gemm_commands,
    gemm_fields,
    gemm_results,
    gemm_tiles,
    unpack_gemm,
)
from tb_dot import corner_dots, g_class

import golden
from golden.formats import FP16, GRADSCALE_HI_LOG2, GRADSCALE_LO_LOG2
from golden.fp16 import is_nan
from hdl.engine import OPS, STATUS

from scoreboard import Scoreboard, light, params, rng

MODES = (  # (mode, a_signed, b_signed, phase): the three GEMMs of a layer and the rest
    ("forward", False, True, "even"), ("forward", True, True, "even"),
    ("forward", False, False, "even"), ("forward", True, False, "even"),
    ("backward", False, True, "odd"), ("backward", False, False, "even"),
    ("backward", False, True, "even"), ("backward", False, False, "odd"),
)
CONVERT_VALUES = 96          # values per converter call in engine_convert
LONG_CONVERT_BEATS = 1100    # din beats of engine_convert's long conversion (> 2**10)
TRACK_TENSORS = 4
RANDOM_SCALES = 12           # random scales per rescale format
LONG_GEMMS = 16              # long random GEMMs in engine_extremes
# engine_reset's resets: (cycle after the loads, cycles of rst high)
RESETS = ((30, 3), (31, 1), (32, 1), (33, 1), (45, 3), (45, 1))


def gemm_shapes(e, r):
    """Every combination of whole and ragged M, K and N (M not a multiple of ``slots``, K
    not of ``lanes``, N not of ``rows``), sizes drawn at random; a 1 x 1 x 1 GEMM; and one
    over two tiles along M and along N."""
    def size(unit, ragged, whole_max):            # a multiple of unit, or not
        if ragged:
            return unit * int(r.integers(0, whole_max)) + int(r.integers(1, unit))
        return unit * int(r.integers(1, whole_max + 1))

    shapes = [(size(e.slots, rm, 2), size(e.lanes, rk, 3), size(e.rows, rn, 2))
              for rm, rk, rn in itertools.product((0, 1), repeat=3)]
    kb = 2
    return shapes + [(1, 1, 1), (e.a_depth // kb + 3, kb * e.lanes,
                                 (e.b_depth // kb) * e.rows + 2)]


def random_gemm(r, m, k, n, g_lo=-8, g_hi=8, ctx=None, g=None):
    """Random operands and context (``ctx``: an entry of :data:`MODES`, ``g``: fixed)."""
    mode, a_signed, b_signed, phase = MODES[int(r.integers(len(MODES)))] if ctx is None else ctx
    ctx = {"mode": mode, "a_signed": a_signed, "b_signed": b_signed, "phase": phase,
           "g": int(r.integers(g_lo, g_hi + 1)) if g is None else g}
    a = r.integers(0, 16, (m, k)).astype(np.uint8)
    b = r.integers(0, 16, (k, n)).astype(np.uint8)
    return a, b, ctx


_COVERAGE = {}
# Each op's refusals (hdl.engine's datasheet).
REFUSALS = {"load_a": ("empty", "too_large"), "load_b": ("empty", "too_large"),
            "gemm": ("empty", "too_large"), "convert": ("empty", "bad_conv"),
            "unknown": ("bad_op",)}
EDGES = ("whole", "ragged")


def coverage(e):
    """The engine's bins (module docstring)."""
    if e.module_name not in _COVERAGE:
        ops = (*OPS, "unknown")
        status = {(op, "ok") for op in OPS} | {(op, s) for op, ss in REFUSALS.items()
                                               for s in ss}
        phases = {(c, ph) for c in e.converters
                  for ph in ((0, 1) if c in ("to_fp4", "from_fp4") else (0,))}
        _COVERAGE[e.module_name] = funcov.Coverage(
            f"engine_{e.module_name}",
            {"op": ops, "status": tuple(STATUS), "conv": e.converters, "phase": (0, 1),
             "context": range(len(MODES)), "mode": ("forward", "backward"),
             "g": ("min", "inside", "max"), "m": EDGES, "k": EDGES, "n": EDGES,
             "tiles": ("one", "many")},
            {"command": ("op", "status"), "convert": ("conv", "phase"),
             "gemm_context": ("context",), "gemm_g": ("mode", "g"),
             "gemm_shape": ("m", "k", "n"), "gemm_tiles": ("tiles",)},
            reachable={"command": status, "convert": phases})
    return _COVERAGE[e.module_name]


class CoveredPorts(EnginePorts):
    """:class:`EnginePorts` that samples the command bins of every command it runs (the
    driver's included)."""

    async def run(self, commands, **kw):
        done = await super().run(commands, **kw)
        cov, e = coverage(self.engine), self.engine
        for (fields, _), res in zip(commands, done):
            op = OP_NAMES.get(fields["op"], "unknown")
            cov.sample(op=op, status=res["status"])
            if res["status"] != "ok":
                continue
            if op == "convert":
                cov.sample(conv=CONV_NAMES[fields["conv"]], phase=fields.get("phase", 0))
            elif op == "gemm":
                ctx = (("forward", "backward")[fields.get("mode", 0)],
                       bool(fields.get("a_signed", 0)), bool(fields.get("b_signed", 0)),
                       ("even", "odd")[fields.get("phase", 0)])
                cov.sample(mode=ctx[0], g=g_class(fields.get("g", 0), e.g_range))
                if ctx in MODES:
                    cov.sample(context=MODES.index(ctx))
        return done


def sample_gemm(e, m, k, n):
    """The shape bins of a checked (M, K) x (K, N) GEMM."""
    tiles = gemm_tiles(m, k, n, e.lanes, e.rows, e.a_depth, e.b_depth)
    coverage(e).sample(m=EDGES[m % e.slots > 0], k=EDGES[k % e.lanes > 0],
                       n=EDGES[n % e.rows > 0], tiles="many" if len(tiles) > 1 else "one")


def check_gemm(sb, e, done, tiles, a, b, ctx):
    m, n = a.shape[0], b.shape[1]
    got_c, got_f = gemm_results(e, done, tiles, m, n)
    want_c, want_f = golden.gemm(a, b, accumulator=e.accumulator, lanes=e.lanes, flags=True,
                                 **ctx)
    sb.compare(got_c | got_f << 16, want_c.astype(np.int64) | want_f.astype(np.int64) << 16)
    for res in done:
        assert res["status"] == "ok", res["status"]
    sample_gemm(e, m, a.shape[1], n)
    return m * n


async def _ports(dut, valid_prob=1.0, ready_prob=1.0, salt=0):
    e = engine_of(params())
    ports = await CoveredPorts(dut, e, rng(dut._log, salt), valid_prob, ready_prob,
                               noise=True).start()
    return e, ports


async def run_gemms(e, ports, sb, gemms, **kw):
    """Run GEMMs ``(a, b, ctx)`` back to back (every tile's commands) and check each: the
    outputs checked."""
    jobs, cmds = [], []
    for a, b, ctx in gemms:
        c, tiles = gemm_commands(e, a, b, ctx)
        jobs.append((len(cmds), len(c), tiles, a, b, ctx))
        cmds += c
    done = await ports.run(cmds, **kw)
    return sum(check_gemm(sb, e, done[start:start + count], tiles, a, b, ctx)
               for start, count, tiles, a, b, ctx in jobs)


@cocotb.test()
async def engine_gemm_traffic(dut):
    e, ports = await _ports(dut, 0.8, 0.7, salt=1)
    r = rng(salt=11)
    sb = Scoreboard("engine gemm (traffic, ragged, tiled)", dut._log)
    # every context of MODES, and forward and backward each at either end of g and inside
    gemms = [random_gemm(r, m, k, n, *e.g_range, ctx=MODES[i % len(MODES)],
                         g=(e.g_range[0], e.g_range[1], None)[i % 3])
             for i, (m, k, n) in enumerate(gemm_shapes(e, r))]
    sb.finish(await run_gemms(e, ports, sb, gemms), exhaustive=False)


@cocotb.test()
async def engine_full_rate(dut):
    e, ports = await _ports(dut)
    r = rng(salt=12)
    sb = Scoreboard("engine gemm (full rate)", dut._log)
    m, k, n = 2 * e.slots, 2 * e.lanes, 2 * e.rows
    a, b, ctx = random_gemm(r, m, k, n)
    cmds, tiles = gemm_commands(e, a, b, ctx)
    assert len(tiles) == 1
    done = await ports.run(cmds)
    check_gemm(sb, e, done, tiles, a, b, ctx)
    beats = (n // e.rows) * m * (k // e.lanes)
    cycles = done[2]["cycles"]
    want = e.gemm_cycles(m, k // e.lanes, n // e.rows)
    dut._log.info("full rate: %d beats in %d cycles (gemm_cycles: %d)", beats, cycles, want)
    # Results owed at full rate: about one per kb beats over the pipeline; the credit keeps
    # 4 of the FIFO's entries in reserve. Where they fit it runs at full rate, exactly;
    # else the credit throttles it on purpose and it takes longer.
    kb = k // e.lanes
    full = (e.out_depth - 4) * kb > e.dot_latency + 8
    if full:
        sb.compare(np.array([cycles]), np.array([want]))
    else:
        assert cycles > want, f"throttled, yet {cycles} <= {want} cycles"
    sb.finish(m * n + int(full), exhaustive=False)


@cocotb.test()
async def engine_ragged_stalls(dut):
    """GEMMs whose last row group is ragged (fewer rows than ``slots``) under heavy
    backpressure on ``o``: the result credit stops the issue inside a round, and the rounds
    after it must still keep each slot's beats ``loop_cycles`` apart (else a paced dot unit
    reads a stale accumulator: wrong results)."""
    e, ports = await _ports(dut, 1.0, 0.3, salt=9)
    r = rng(salt=20)
    sb = Scoreboard("engine gemm (ragged groups, result credit stalls)", dut._log)
    gemms = [random_gemm(r, e.slots + rest, kb * e.lanes, min(e.b_depth // kb, 8) * e.rows,
                         *e.g_range) for rest in range(1, min(e.slots, 4)) for kb in (1, 2)]
    sb.finish(await run_gemms(e, ports, sb, gemms, limit=200000), exhaustive=False)


def _nibbles(words, lanes):
    """Words of ``lanes`` 4-bit codes -> (len(words), lanes) codes (inverse of pack_a)."""
    return np.array([[(w >> 4 * i) & 0xF for i in range(lanes)] for w in words], np.uint8)


def memory_gemm(e, na, nb, m, kb, ng):
    """The (A, B) operands a GEMM command ``(m, kb, ng)`` reads from memories loaded with the
    words whose codes are ``na`` (``load_a``) and ``nb`` (``load_b``; :func:`_nibbles`): the
    inverse of pack_a and pack_b."""
    a = na[:m * kb].reshape(m, kb * e.lanes)
    w = nb[:ng * kb * e.rows].reshape(ng, kb, e.rows, e.lanes)
    return a, w.transpose(1, 3, 0, 2).reshape(kb * e.lanes, ng * e.rows)


def limit_shapes(e, r, budget):
    """GEMM sizes ``(m, kb, ng)`` for the size check (``m * kb <= a_depth`` and ``ng * kb <=
    b_depth``): either side of both limits for several ``kb``; each field a power of two, all
    ones and a random value of every bit length (the shift-and-add multiply sees each bit of
    each field); ``m`` and ``ng`` times ``kb`` for every pair of powers of two (each bit of
    each shifted addend); random triples. The accepted ones that run at most ``budget`` beats are
    kept, the refused ones all."""
    A, B, top = e.a_depth, e.b_depth, (1 << 16) - 1
    kbs = sorted({1, 2, 3, 5, 7, B // 2, B, B + 1, A + 1, A // 3 + 1})
    out = []
    for kb in kbs:
        for d in (0, 1, 2, 3):
            out += [(max(1, A // kb + d), kb, 1), (1, kb, max(1, B // kb + d)),
                    (max(1, A // kb + d), kb, max(1, B // kb + 1 - d))]
    for i in range(16):
        out += [(1 << i, 1, 1), (1, 1 << i, 1), (1, 1, 1 << i), (top >> i, 1, 1),
                (1, top >> i, 1), (1, 1, top >> i)]
        v = int(r.integers(1 << i, 1 << (i + 1)))
        out += [(v, 1, 1), (1, v, 1), (1, 1, v), (v, v, v)]
    out += [(top, top, top)]
    for i, j in itertools.product(range(16), repeat=2):        # every shift of each adder
        out += [(1 << i, 1 << j, 1), (1, 1 << j, 1 << i)]
    for _ in range(50 if light() else 200):
        out.append(tuple(int(r.integers(1, 1 << int(r.integers(1, 17)))) for _ in range(3)))
    accepted = [(m, kb, ng) for m, kb, ng in out if m * kb <= A and ng * kb <= B]
    return ([s for s in out if s not in accepted]
            + [s for s in dict.fromkeys(accepted) if issue_cycles(e, *s) <= budget])


def issue_cycles(e, m, kb, ng):
    """At most the cycles a GEMM issues beats for (a group of fewer rows than ``slots``
    waits on the interlock: it takes at most ``slots`` cycles per round)."""
    return ng * kb * -(-m // e.slots) * e.slots


@cocotb.test()
async def engine_limits(dut):
    """The GEMM size check at and across its limits, over the command fields' whole range:
    a refused GEMM gives ``too_large`` and nothing else; an accepted one computes, from the
    memories as loaded, what the golden model computes. (Light profile, on Icarus: 50
    random triples instead of 200, accepted GEMMs of at most ``a_depth / 2`` cycles.)"""
    e, ports = await _ports(dut, 1.0, 0.9, salt=6)
    r = rng(salt=17)
    sb = Scoreboard("engine size check", dut._log)
    wa = [int(w) for w in r.integers(0, 1 << 62, e.a_depth, dtype=np.int64)]
    wb = [int(w) for w in r.integers(0, 1 << 62, e.b_depth * e.rows, dtype=np.int64)]
    mask = (1 << 4 * e.lanes) - 1
    wa, wb = [w & mask for w in wa], [w & mask for w in wb]
    shapes = limit_shapes(e, r, budget=e.a_depth // 2 if light() else 2 * e.a_depth)
    ctxs = [random_gemm(r, 1, 1, 1, *e.g_range, ctx=MODES[i % len(MODES)])[2]
            for i in range(len(shapes))]
    fields = [gemm_fields(c) for c in ctxs]
    cmds = [(command("load_a", count=len(wa)), wa), (command("load_b", count=len(wb)), wb)]
    cmds += [(command("gemm", m=m, kb=kb, ng=ng, **f), []) for (m, kb, ng), f in
             zip(shapes, fields, strict=True)]
    work = sum(issue_cycles(e, *x) + e.dot_latency + 50 for x in shapes)
    done = await ports.run(cmds, limit=2 * work + 50 * (len(wa) + len(wb)) + 100000)
    refused = accepted = 0
    na, nb = _nibbles(wa, e.lanes), _nibbles(wb, e.lanes)
    for (m, kb, ng), ctx, res in zip(shapes, ctxs, done[2:], strict=True):
        if m * kb > e.a_depth or ng * kb > e.b_depth:
            ok = res["status"] == "too_large" and res["beats"] is None
            sb.compare(np.array([int(ok)]), np.array([1]))
            refused += 1
            continue
        assert res["status"] == "ok", f"({m}, {kb}, {ng}) refused: {res['status']}"
        a, b = memory_gemm(e, na, nb, m, kb, ng)
        got_c, got_f = unpack_gemm(res["beats"]["data"], res["beats"]["flags"], m, ng * e.rows,
                                   e.rows)
        want_c, want_f = golden.gemm(a, b, accumulator=e.accumulator, lanes=e.lanes,
                                     flags=True, **ctx)
        sb.compare(got_c | got_f << 16,
                   want_c.astype(np.int64) | want_f.astype(np.int64) << 16)
        accepted += m * ng * e.rows
    dut._log.info("size check: %d refused GEMMs, %d outputs of accepted ones", refused,
                  accepted)
    assert refused >= 150 and accepted > 0, (refused, accepted)
    sb.finish(refused + accepted, exhaustive=False)


def extreme_gemms(e, r):
    """The dot bench's directed extremes as GEMMs ``(a, b, ctx)``: its corner dot products
    (``tb_dot.corner_dots``, those no longer than the memories hold; those of one context
    and length are the rows of A and the columns of B, each column repeated ``rows`` times
    so that every dot unit meets every one of them, and every pair is a checked dot product
    too), and the longest K the memories hold of all -8 x -8 (forward, signed) and of the
    largest fp4 code x 15 (backward), and three beats of the largest negative fp4 code x -8
    (backward, signed ``b``), at either end of ``g``, at 0 and inside; long random dot
    products (``slots`` rows of A, as many beats as the memories hold) in every context; and
    a small GEMM at every ``g`` (backward: large fp4 codes), so that the rounders meet every
    exponent threshold. (Light profile, on Icarus: a quarter of the long ones, every third
    ``g``.)"""
    groups = {}
    # (the subnormal ones whose accumulator climbs longer than the memories hold are left out)
    most = min(e.a_depth // 2, e.b_depth)
    for d in (d for d in corner_dots(r, e.lanes) if len(d["a"]) <= most):
        ctx = {"mode": ("forward", "backward")[d["mode"]], "a_signed": bool(d["a_signed"]),
               "b_signed": bool(d["b_signed"]), "phase": ("even", "odd")[d["phase"]],
               "g": int(np.clip(d["g"], *e.g_range))}
        groups.setdefault((tuple(ctx.values()), len(d["a"])), (ctx, []))[1].append(d)
    out = []
    for ctx, dots in groups.values():
        a = np.stack([np.asarray(d["a"]).ravel() for d in dots]).astype(np.uint8)
        b = np.stack([np.asarray(d["b"]).ravel() for d in dots], axis=1).astype(np.uint8)
        # each column ``rows`` times over: every dot unit computes every directed pair
        out.append((a & 15, np.repeat(b, e.rows, axis=1) & 15, ctx))
    k = min(e.a_depth // 2, e.b_depth) * e.lanes
    for g in (e.g_range[0], 0, 16, e.g_range[1]):
        for ca, cb, ctx in ((8, 8, ("forward", True, True, "even")),
                            (7, 15, ("backward", False, False, "odd")),
                            (15, 8, ("backward", False, True, "even"))):
            ctx = dict(zip(("mode", "a_signed", "b_signed", "phase"), ctx), g=g)
            kk = k if ca != 15 else 3 * e.lanes
            out.append((np.full((2, kk), ca, np.uint8), np.full((kk, e.rows), cb, np.uint8),
                        ctx))
    kb = min(e.a_depth // e.slots, e.b_depth)
    for i in range(LONG_GEMMS // 4 if light() else LONG_GEMMS):    # long, every context
        out.append(random_gemm(r, e.slots, kb * e.lanes, e.rows, *e.g_range,
                               ctx=MODES[i % len(MODES)]))
    for i, g in enumerate(range(e.g_range[0], e.g_range[1] + 1, 3 if light() else 1)):
        a, b, ctx = random_gemm(r, 2, 2 * e.lanes, e.rows, ctx=MODES[i % len(MODES)], g=g)
        if ctx["mode"] == "backward":                     # large products: every overflow
            a = (a & 8) | r.integers(5, 8, a.shape).astype(np.uint8)
        out.append((a, b, ctx))
    return out


@cocotb.test()
async def engine_extremes(dut):
    e, ports = await _ports(dut, 0.9, 0.8, salt=7)
    r = rng(salt=18)
    sb = Scoreboard("engine gemm (the dot bench's extremes)", dut._log)
    gemms = extreme_gemms(e, r)
    expected = await run_gemms(e, ports, sb, gemms)
    dut._log.info("extremes: %d GEMMs, %d outputs", len(gemms), expected)
    sb.finish(expected, exhaustive=False)


def special_fp16(r, n):
    """fp16 codes: mostly finite normals of moderate size, plus every class of special."""
    x = r.integers(0, 1 << 16, n).astype(np.uint16)
    tame = golden.fp16_from_float(r.standard_normal(n) * 4.0)
    pick = r.random(n)
    x = np.where(pick < 0.6, tame, x)
    specials = np.array([0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0001, 0x83FF,
                         0x3C00, 0xBC00, 0x4400, 0x3A00, 0x7BFF], np.uint16)
    x[:len(specials)] = specials
    return x.astype(np.uint16)


@cocotb.test()
async def engine_convert(dut):
    e, ports = await _ports(dut, 0.8, 0.7, salt=2)
    back = RTLBackend(ports)
    r = rng(salt=13)
    sb = Scoreboard("engine converters", dut._log)
    n = CONVERT_VALUES
    expected = 0
    calls = []
    for fmt in ("int4_sym", "uint4"):
        # fixed scales (a subnormal one among them: its exponent field reads as 1), then
        # random normal ones
        scales = [int(golden.fp16_from_float(v)) for v in (1.0, 0.37, 7.0 / 3.1, 60000.0)]
        scales += [0x0155]
        scales += [int(r.integers(1, 31)) << 10 | int(r.integers(0, 1024))
                   for _ in range(RANDOM_SCALES)]
        for i, s in enumerate(scales):
            calls.append((f"rescale {fmt} s={s:#06x}", special_fp16(r, n if i < 5 else n // 3),
                          lambda x, fmt=fmt, s=s: back.rescale(x, s, fmt, flags=True),
                          lambda x, fmt=fmt, s=s: golden.rescale(x, s, fmt, flags=True)))
    for phase in ("even", "odd"):
        for g in (e.g_range[0], -3, 0, 6, e.g_range[1]):
            calls.append((f"to_fp4 {phase} g={g}", special_fp16(r, n),
                          lambda x, g=g, p=phase: back.to_fp4(x, g, p, flags=True),
                          lambda x, g=g, p=phase: golden.to_fp4(x, g, p, flags=True)))
            codes = np.arange(16, dtype=np.uint8)
            calls.append((f"from_fp4 {phase} g={g}", codes,
                          lambda c, g=g, p=phase: back.from_fp4(c, g, p, flags=True),
                          lambda c, g=g, p=phase: golden.from_fp4(c, g, p, flags=True)))
    # one long conversion: LONG_CONVERT_BEATS din beats, the count's high bits set while
    # the gaps hold it
    calls.append(("to_fp4 long", special_fp16(r, LONG_CONVERT_BEATS * e.conv_lanes),
                  lambda x: back.to_fp4(x, 0, "even", flags=True),
                  lambda x: golden.to_fp4(x, 0, "even", flags=True)))
    expected += await check_calls(sb, calls)
    # the tracker: max|x| and both GradScale rules
    for t in range(TRACK_TENSORS):
        x = special_fp16(r, 37 + 5 * t)
        if t == 0:
            x = x[13:]                           # no NaN, no Inf
        g = int(r.integers(e.g_range[0], e.g_range[1] + 1))
        expected += await check_track(e, back, sb, x, g)
    sb.finish(expected, exhaustive=False)


async def check_calls(sb, calls):
    """Run converter calls ``(name, x, rtl, golden)`` and compare codes and flags: the values
    checked."""
    expected = 0
    for _name, x, rtl, gold in calls:
        got, gf = await _bridged(rtl, x)
        want, wf = gold(x)
        sb.compare(got.astype(np.int64) | gf.astype(np.int64) << 16,
                   want.astype(np.int64) | wf.astype(np.int64) << 16, x=x)
        expected += x.size
    return expected


def sweep_fp16(r):
    """fp16 codes of every exponent and sign, each with the significands 0, 1, all ones,
    the top bit, all but the top bit, both alternating patterns, each single bit and two
    random ones (the normalizers' leading-zero counts and the rounders' sticky bits)."""
    sig = [0, 1, 0x3FF, 0x200, 0x1FF, 0x155, 0x2AA] + [1 << i for i in range(10)]
    codes = [sign << 15 | exp << 10 | m for sign in (0, 1) for exp in range(32)
             for m in sig + [int(v) for v in r.integers(0, 1024, 2)]]
    return np.array(codes, np.uint16)


@cocotb.test()
async def engine_convert_sweep(dut):
    """The converters on :func:`sweep_fp16` (every exponent, sign and significand class):
    to fp4 in both phases at ``g = 0`` and a random ``g``, rescale to both formats at two
    scales; the fp4 decoder on every code at every ``g`` in both phases; the tracker at every
    ``g``. (Light profile, on Icarus: ``g = 0`` and one scale, every fourth ``g``.)"""
    e, ports = await _ports(dut, salt=10)
    back = RTLBackend(ports)
    r = rng(salt=21)
    sb = Scoreboard("engine converters (sweep)", dut._log)
    x = sweep_fp16(r)
    calls = []
    gs = (0,) if light() else (0, int(r.integers(*e.g_range)))
    every_g = range(e.g_range[0], e.g_range[1] + 1, 4 if light() else 1)
    for phase, g in itertools.product(("even", "odd"), gs):
        calls.append((f"to_fp4 {phase} g={g}", x,
                      lambda x, g=g, p=phase: back.to_fp4(x, g, p, flags=True),
                      lambda x, g=g, p=phase: golden.to_fp4(x, g, p, flags=True)))
    for fmt in ("int4_sym", "uint4"):
        for s in (0x3C00, int(r.integers(0x0400, 0x7800)))[:len(gs)]:
            calls.append((f"rescale {fmt} s={s:#06x}", x,
                          lambda x, fmt=fmt, s=s: back.rescale(x, s, fmt, flags=True),
                          lambda x, fmt=fmt, s=s: golden.rescale(x, s, fmt, flags=True)))
    codes = np.arange(16, dtype=np.uint8)
    for phase, g in itertools.product(("even", "odd"), every_g):
        calls.append((f"from_fp4 {phase} g={g}", codes,
                      lambda c, g=g, p=phase: back.from_fp4(c, g, p, flags=True),
                      lambda c, g=g, p=phase: golden.from_fp4(c, g, p, flags=True)))
    expected = await check_calls(sb, calls)
    for g in every_g:
        expected += await check_track(e, back, sb, tracker_tensor(r, int(r.integers(0, 32))), g)
    sb.finish(expected, exhaustive=False)


def tracker_tensor(r, exp, frac=None):
    """A few fp16 codes whose largest magnitude has exponent field ``exp`` (31: Inf, or NaN
    beside a finite largest value) and fraction ``frac`` (default random), at a random
    position, with random signs."""
    size = int(r.integers(1, 9))
    if frac is None:
        frac = int(r.integers(0, 1024))
    top = exp << 10 | frac if exp < 31 else 0x7C00
    x = r.integers(0, top + 1, size)
    x[int(r.integers(0, size))] = top
    if exp == 31 and r.random() < 0.5:
        x = np.append(x & 0x7BFF, 0x7C00 | int(r.integers(1, 1024)))       # a NaN
    return (x | r.integers(0, 2, x.size) << 15).astype(np.uint16)


@cocotb.test()
async def engine_tracker(dut):
    """The range tracker on tensors whose largest magnitude takes every exponent, twice,
    at ``g`` at either end of its range and random; then at the GradScale rules' edges:
    ``max|x| * 2**g`` exactly ``2**5`` or ``2**6`` (the rules treat a power of two apart)
    and that value with its lowest or a middle fraction bit set, at ``g`` from the one that
    needs the largest normal to the one that needs the smallest subnormal; and tensors of
    zeros. ``max|x|``, the NaN flag and both GradScale rules against the golden model."""
    e, ports = await _ports(dut, 0.8, 0.7, salt=8)
    back = RTLBackend(ports)
    r = rng(salt=19)
    sb = Scoreboard("engine range tracker", dut._log)
    lo, hi = e.g_range
    expected = edges = 0
    for i, exp in enumerate(list(range(32)) * 2):
        x = tracker_tensor(r, exp)
        g = (lo, hi, int(r.integers(lo, hi + 1)))[i % 3]
        expected += await check_track(e, back, sb, x, g)
    for target in (GRADSCALE_LO_LOG2, GRADSCALE_HI_LOG2):
        # the g whose 2**(target - g) is a finite non-zero fp16 value: either end of them
        # (the smallest subnormal at one), 0, and the largest subnormal power of two
        lo_e, hi_e = FP16.LSB_EXP, FP16.EMAX
        gs = {max(lo, target - hi_e), 0, min(hi, target - lo_e), target - (FP16.EMIN - 1)}
        for g in sorted(x for x in gs if lo <= x <= hi):
            e2 = target - g                           # 2**e2: its code, then one bit more
            code = (e2 + FP16.BIAS) << 10 if e2 >= FP16.EMIN else 1 << (e2 - FP16.LSB_EXP)
            for top in {code, code | 1, code | 1 << 5} - {1 << 5 | 1}:
                x = tracker_tensor(r, top >> 10, top & 0x3FF)
                expected += await check_track(e, back, sb, x, g)
                edges += 1
    # tensors of zeros (+0, -0, both), whose maximum is 0 (GradScale's zero rule)
    for g, zeros in zip((lo, 0, hi), (0x0000, 0x8000, (0x0000, 0x8000))):
        x = np.resize(np.array(zeros, np.uint16), 5)
        expected += await check_track(e, back, sb, x, g)
        edges += 1
    assert edges >= 20, edges
    sb.finish(expected, exhaustive=False)


async def check_track(e, back, sb, x, g):
    """The tracker on ``x`` at ``g``: max|x|, the NaN flag, both GradScale rules."""
    got = await _bridged(lambda: back._track(x, g))
    mx = golden_tracker_max(x)
    lo, hi = e.g_range
    want = (mx, int(np.any(is_nan(x))),
            int(golden.gradscale(mx, g, "paper", g_min=lo, g_max=hi)),
            int(golden.gradscale(mx, g, "direct", g_min=lo, g_max=hi)))
    sb.compare(np.array(got), np.array(want))
    return len(want)


def golden_tracker_max(x):
    mag = np.asarray(x, np.uint16) & np.uint16(0x7FFF)
    return int(np.max(np.where(is_nan(mag), 0, mag), initial=0))


async def _bridged(fn, *args):
    return await bridge(fn)(*args)


LAYER = (32, 64, 10)         # batch, fan-in, fan-out: the MLP's last layer


@cocotb.test()
async def engine_layer(dut):
    e, ports = await _ports(dut, 0.9, 0.9, salt=5)
    back = RTLBackend(ports)
    r = rng(salt=16)
    sb = Scoreboard("engine: one layer's conversions and three GEMMs", dut._log)
    batch, k_in, k_out = LAYER
    if light():                 # (Icarus: a quarter of the batch)
        batch //= 4
    x = r.integers(0, 16, (batch, k_in)).astype(np.uint8)                   # uint4
    w = (r.integers(-7, 8, (k_in, k_out)) & 0xF).astype(np.uint8)           # int4_sym
    dy = golden.fp16_from_float(r.standard_normal((batch, k_out)) * 0.01)
    g = 8
    gemms = [  # (a, b, golden.gemm keywords): forward, dX, dW^T
        lambda ev, od: (x, w, {"mode": "forward", "a_signed": False, "b_signed": True}),
        lambda ev, od: (od, np.ascontiguousarray(w.T),
                        {"mode": "backward", "b_signed": True, "phase": "odd", "g": g}),
        lambda ev, od: (np.ascontiguousarray(ev.T), x,
                        {"mode": "backward", "b_signed": False, "phase": "even", "g": g}),
    ]

    def step():
        ev, ev_f = back.to_fp4(dy, g, "even", flags=True)
        od, od_f = back.to_fp4(dy, g, "odd", flags=True)
        return (ev, ev_f, od, od_f), [back.gemm(*make(ev, od)[:2], **make(ev, od)[2],
                                                accumulator=e.accumulator, lanes=e.lanes,
                                                flags=True) for make in gemms]

    (ev, ev_f, od, od_f), outs = await bridge(step)()
    expected = 0
    for got, got_f, phase in ((ev, ev_f, "even"), (od, od_f, "odd")):
        want, want_f = golden.to_fp4(dy, g, phase, flags=True)
        sb.compare(got.astype(np.int64) | got_f.astype(np.int64) << 8,
                   want.astype(np.int64) | want_f.astype(np.int64) << 8)
        expected += dy.size
    wev, wod = golden.to_fp4(dy, g, "even"), golden.to_fp4(dy, g, "odd")
    for make, (c, f) in zip(gemms, outs, strict=True):
        a, b, kw = make(wev, wod)
        want, want_f = golden.gemm(a, b, accumulator=e.accumulator, lanes=e.lanes, flags=True,
                                   **kw)
        sb.compare(c.astype(np.int64) | f.astype(np.int64) << 16,
                   want.astype(np.int64) | want_f.astype(np.int64) << 16)
        expected += want.size
        sample_gemm(e, *a.shape, b.shape[1])
    sb.finish(expected, exhaustive=False)


@cocotb.test()
async def engine_errors(dut):
    e, ports = await _ports(dut, salt=3)
    r = rng(salt=14)
    sb = Scoreboard("engine refused commands", dut._log)
    m, k, n = e.slots + 1, e.lanes + 1, e.rows + 1
    a, b, ctx = random_gemm(r, m, k, n)
    cmds, tiles = gemm_commands(e, a, b, ctx)
    kb = -(-k // e.lanes)
    bad = [
        (command(7), "bad_op"),
        (command("convert", conv=7, count=1), "bad_conv"),
        (command("convert", conv="to_fp4", count=0), "empty"),
        (command("load_a", count=0), "empty"),
        (command("load_a", count=e.a_depth + 1), "too_large"),
        (command("load_b", count=0), "empty"),
        (command("load_b", count=e.b_depth * e.rows + 1), "too_large"),
        (command("gemm", m=0, kb=1, ng=1), "empty"),
        (command("gemm", m=e.a_depth // kb + 1, kb=kb, ng=1), "too_large"),
        (command("gemm", m=1, kb=kb, ng=e.b_depth // kb + 1), "too_large"),
    ]
    # the loads, the refused commands (no din words), the GEMM on the loaded tiles
    run = cmds[:2] + [(c, []) for c, _ in bad] + cmds[2:]
    done = await ports.run(run)
    got = [d["status"] for d in done[2:2 + len(bad)]]
    sb.compare(np.array([STATUS[s] for s in got]), np.array([STATUS[s] for _, s in bad]))
    for d in done[2:2 + len(bad)]:
        assert d["beats"] is None, "a refused command produced results"
    n_checked = check_gemm(sb, e, done[:2] + done[2 + len(bad):], tiles, a, b, ctx)
    assert await ports.idle(50) == 0, "output beats after the last status"
    # The driver refuses what the engine cannot do, with the reason, before any command.
    back = RTLBackend(ports)
    calls = [
        (lambda: back.gemm(a, b, lanes=2 * e.lanes), "the engine computes lanes="),
        (lambda: back.gemm(a, b, accumulator="exact" if e.accumulator == "fp16" else "fp16",
                           lanes=e.lanes), "accumulator="),
        (lambda: back.gemm(np.zeros((1, 64 * e.lanes * e.a_depth), np.uint8),
                           np.zeros((64 * e.lanes * e.a_depth, 1), np.uint8), lanes=e.lanes,
                           accumulator=e.accumulator),
         "build the engine with deeper memories"),
        (lambda: back.to_fp4(np.zeros(4, np.uint16), e.g_range[1] + 1),
         "command field g must be in"),
        (lambda: back.rescale(np.zeros(4, np.uint16), 0x3C00, "int4"), "rescales to int4_sym"),
        (lambda: back.gradscale(0, 0, "paper", g_min=-8, g_max=7), "clamps g to"),
    ]
    raised, c0 = [], ports.cycle
    for call, msg in calls:
        try:
            await bridge(call)()
            raised.append(0)
        except EngineError as err:
            raised.append(int(msg in str(err)))
            dut._log.info("driver refused: %s", err)
    sb.compare(np.array(raised), np.ones(len(calls)))
    assert ports.cycle == c0, "the driver ran a command it refused"
    sb.finish(len(bad) + n_checked + len(calls), exhaustive=False)


@cocotb.test()
async def engine_reset(dut):
    e, ports = await _ports(dut, 1.0, 0.8, salt=4)
    r = rng(salt=15)
    sb = Scoreboard("engine reset mid-GEMM", dut._log)
    m, k, n = 2 * e.slots + 1, 2 * e.lanes + 1, 2 * e.rows
    a, b, ctx = random_gemm(r, m, k, n)
    cmds, tiles = gemm_commands(e, a, b, ctx)
    loads = len(cmds[0][1]) + len(cmds[1][1])
    n1 = 0
    # reset while the GEMM runs (after the loads), at three cycles in a row (so that each
    # beat of a dot product, its last one too, is in every pipeline rank at one of them)
    # and later, for one cycle and for three (a reset clears the ranks' valid bits; what
    # their payload registers hold then must never come out)
    for at, cycles in RESETS:
        done = await ports.run(cmds, reset_at=loads + at, reset_cycles=cycles)
        assert len(done) == 2, f"{len(done)} commands finished before the reset at {at}"
        assert await ports.idle(e.dot_latency + 20) == 0, "output beats after the reset"
        # the memories kept their contents: the GEMM alone
        n1 += check_gemm(sb, e, done + await ports.run(cmds[2:]), tiles, a, b, ctx)
    # then a whole sequence again
    a2, b2, ctx2 = random_gemm(r, m, k, n)
    cmds2, tiles2 = gemm_commands(e, a2, b2, ctx2)
    n2 = check_gemm(sb, e, await ports.run(cmds2), tiles2, a2, b2, ctx2)
    sb.finish(n1 + n2, exhaustive=False)
    coverage(e).finish(dut._log)           # the last test: the bins of all of them
