"""cocotb benches for the interleaved dot-product unit (``DotProduct`` with ``slots > 1``)
on the stream bench of :mod:`streams`, against :func:`golden.dot`.

Dot products are spread over the unit's slots by :func:`schedule`: round robin (a GEMM's
order), random slot order, or bursts to one slot (which make the accumulator interlock
wait). Every result carries its slot and is checked against the golden dot product of its
own beats, in completion order (the order of the ``last`` beats: the unit is in order).

- ``interleave_full_rate``: ``4 * slots`` dot products of one length, round robin, at full
  rate: one beat per cycle (no interlock wait with ``slots >= loop_cycles``, and few enough
  results owed for any output FIFO) and every result ``latency`` cycles after its ``last``
  beat.
- ``interleave_traffic``: ragged lengths (1 .. 40 beats), random slot order and bursts,
  ``g`` over -32 .. 31, random gaps and backpressure; the bursts must make the interlock wait
  (counted in a run at full rate). The random run has the dot unit bench's directed set too
  (:func:`tb_dot.directed_dots`: every mode x signedness x length x end of ``g``) and its
  corner dot products (:func:`tb_dot.corner_dots`: zero sums, sticky-bit sums, accumulator
  ranges, subnormal beats, the tininess boundary, single-bit sums); a round robin run gives
  every slot a one-beat, a 5-beat and a 24-beat dot product.
- ``interleave_credit`` (``out_depth > 0``): the output FIFO filled again and again by one-beat
  dot products under a slow sink; ``i.ready`` follows the count of results owed
  (:meth:`streams.StreamBench.credit_check`).
- ``interleave_reset``: the stream bench's reset check on an interleaved stream: the stream
  resumes at the first beat with no dot product open across it.

Coverage (:func:`coverage`): every slot x slot order (round robin, random, bursts), every
slot x length (one beat, 2-8, more); for the 4-bit units also the dot unit's bins
(:data:`tb_dot.CONTEXT_CROSSES`).

Parameters: ``lanes``, ``accumulator``, ``slots``, ``acc_stages``, ``lane_stages``,
``out_depth`` (a one-slot unit runs the same tests, its beats without a slot field).
"""

import cocotb
import funcov
import numpy as np
from tb_dot import (
    CONTEXT_CROSSES,
    CONTEXT_DIMS,
    LENGTHS,
    context_columns,
    corner_dots,
    directed_dots,
    length_class,
)

import golden
from golden.formats import MODES
from hdl.dot import DotProduct

from scoreboard import Scoreboard, params, rng
from streams import Stimulus, StreamBench
from tb_baselines import GOLDEN, UNITS, fp16_operands, fp16_style

PHASES = ("even", "odd")
CONTEXT = ("mode", "a_signed", "b_signed", "phase")


def unit_of(p):
    if p.get("kind") in GOLDEN:             # an FP16 baseline, interleaved: its arguments
        return UNITS[p["kind"]](**{k: v for k, v in p.items() if k != "kind"})
    return DotProduct(p["lanes"], p["accumulator"], slots=p["slots"],
                      acc_stages=p["acc_stages"], lane_stages=p.get("lane_stages", 0),
                      out_depth=p.get("out_depth", 0))


def baseline_kind(unit):
    """The FP16 baseline kind of ``unit`` (a key of ``tb_baselines.GOLDEN``), else None."""
    return next((k for k in GOLDEN if type(unit) is UNITS[k]), None)


def is_fp16(unit):
    """An FP16 baseline (fp16 operand codes, no context)."""
    return baseline_kind(unit) is not None


def key(u):
    return u["result"] | u["flags"] << 16 | (u["slot"] << 24 if "slot" in u else 0)


def streams_of(unit):
    """Dot products per schedule unit: one per slot, and at least 4 (a one-slot unit)."""
    return max(unit.slots, 4)


def make_dots(r, lanes, lengths, g_range=(-8, 8), fp16=None):
    """Random dot products: dicts with operand arrays (beats, lanes) and a context (4-bit),
    or fp16 operand codes for the FP16 baseline ``fp16`` (a kind of ``tb_baselines``: its
    operand styles, :func:`tb_baselines.fp16_style`)."""
    dots = []
    for nb in lengths:
        if fp16:
            style = fp16_style(r, fp16)
            dots.append({"a": fp16_operands(r, (nb, lanes), style),
                         "b": fp16_operands(r, (nb, lanes), style)})
            continue
        d = {k: int(r.integers(0, 2)) for k in CONTEXT}
        d["g"] = int(r.integers(g_range[0], g_range[1] + 1))
        d["a"], d["b"] = r.integers(0, 16, (2, nb, lanes))
        dots.append(d)
    return dots


def schedule(r, dots, slots, order):
    """Interleave the beats of ``dots`` over ``slots``: ``(dot, beat, slot)`` per beat. A
    slot takes its next dot product when the previous one ended; ``order`` picks each beat's
    slot: ``"round_robin"``, ``"random"`` or ``"burst"`` (mostly the previous beat's)."""
    queue = list(range(len(dots)))
    active = {s: [queue.pop(0), 0] for s in range(min(slots, len(queue)))}
    seq, cur = [], 0
    while active:
        live = sorted(active)
        if order == "round_robin":
            s = next((x for x in live if x >= cur), live[0])
            cur = s + 1
        elif order == "burst" and cur in active and r.random() < 0.8:
            s = cur
        else:
            s = cur = int(r.choice(live))
        d, b = active[s]
        seq.append((d, b, s))
        if b + 1 < len(dots[d]["a"]):
            active[s][1] = b + 1
        elif queue:
            active[s] = [queue.pop(0), 0]
        else:
            del active[s]
    return seq


def stimulus(r, dots, slots, order, accumulator, lanes):
    """The interleaved beats (context fields random on non-first beats: they must be
    ignored) and the golden results in completion order. ``accumulator``: the 4-bit unit's
    (``"fp16"``, ``"exact"``), or an FP16 baseline's golden function (no context)."""
    seq = schedule(r, dots, slots, order)
    n = len(seq)
    fp16 = callable(accumulator)
    ctx = () if fp16 else CONTEXT + ("g",)
    f = {k: np.zeros(n, np.int64) for k in ctx + ("first", "last", "slot")}
    f["a"] = np.zeros((n, lanes), np.int64)
    f["b"] = np.zeros((n, lanes), np.int64)
    done = []
    for j, (d, b, s) in enumerate(seq):
        dot = dots[d]
        first, last = b == 0, b + 1 == len(dot["a"])
        for k in ctx:
            if k == "g":
                f[k][j] = dot["g"] if first else r.integers(-32, 32)
            else:
                f[k][j] = dot[k] if first else r.integers(0, 2)
        f["first"][j], f["last"][j], f["slot"][j] = first, last, s
        f["a"][j], f["b"][j] = dot["a"][b], dot["b"][b]
        if last:
            done.append((d, s))
    if slots == 1:
        del f["slot"]                         # a one-slot unit has no slot field
    expected = []
    for d, s in done:
        dot = dots[d]
        if fp16:
            code, fl = accumulator(dot["a"].ravel(), dot["b"].ravel(), lanes=lanes,
                                   flags=True)
            expected.append(int(code) | int(fl) << 16 | s << 24)
            continue
        code, fl = golden.dot(dot["a"].ravel(), dot["b"].ravel(), mode=MODES[dot["mode"]],
                              x_signed=dot["a_signed"], w_signed=dot["b_signed"],
                              phase=PHASES[dot["phase"]], g=dot["g"],
                              accumulator=accumulator, lanes=lanes, flags=True)
        expected.append(int(code) | int(fl) << 16 | s << 24)
    stim = Stimulus(f, expected, ends=f["last"], starts=f["first"])
    stim.slot_of = {d: s for d, s in done}
    return stim


ORDERS = ("round_robin", "random", "burst")
_COVERAGE = {}


def coverage(unit):
    """The unit's bins (module docstring), one set per simulation."""
    if unit.module_name not in _COVERAGE:
        dims = {"slot": range(unit.slots), "order": ORDERS, "length": tuple(LENGTHS)}
        crosses = {"slot_order": ("slot", "order"), "slot_length": ("slot", "length")}
        if not is_fp16(unit):
            dims.update(CONTEXT_DIMS)
            crosses.update(CONTEXT_CROSSES)
        _COVERAGE[unit.module_name] = funcov.Coverage(f"interleave_{unit.module_name}",
                                                      dims, crosses)
    return _COVERAGE[unit.module_name]


def sample(unit, dots, stim, order):
    """Samples the bins of ``dots``, checked as ``stim`` in slot order ``order``."""
    cov = coverage(unit)
    slots = np.array([stim.slot_of[d] for d in range(len(dots))])
    length = length_class([len(d["a"]) for d in dots])
    cov.sample(slot=slots, order=order, length=length)
    if not is_fp16(unit):
        cov.sample(**context_columns(dots))


async def bench(dut, salt):
    unit = unit_of(params())
    r = rng(dut._log, salt=salt)
    return unit, r, await StreamBench(dut, unit, key, r).setup()


def dots_for(r, unit, lengths, **kw):
    return make_dots(r, unit.lanes, lengths, fp16=baseline_kind(unit), **kw)


def accumulator_of(unit):
    """The 4-bit unit's accumulator, or the golden function of an FP16 baseline."""
    return GOLDEN[baseline_kind(unit)] if is_fp16(unit) else unit.accumulator


@cocotb.test()
async def interleave_full_rate(dut):
    unit, r, sb_ = await bench(dut, 11)
    dots = dots_for(r, unit, [24] * (4 * streams_of(unit)))
    stim = stimulus(r, dots, unit.slots, "round_robin", accumulator_of(unit), unit.lanes)
    sb = Scoreboard(f"interleave_full_rate_{unit.module_name}", dut._log)
    await sb_.full_rate(sb, stim)
    sb.finish(expected_vectors=2 * len(stim), exhaustive=False)
    sample(unit, dots, stim, "round_robin")


@cocotb.test()
async def interleave_traffic(dut):
    unit, r, sb_ = await bench(dut, 12)
    sb = Scoreboard(f"interleave_traffic_{unit.module_name}", dut._log)
    total = 0
    n = streams_of(unit)
    for order in ("random", "burst", "round_robin"):
        lengths = ([1] * n + [5] * n + [24] * n if order == "round_robin"
                   else [int(x) for x in r.integers(1, 41, 6 * n)])
        dots = dots_for(r, unit, lengths, g_range=(-32, 31))
        if order == "random" and not is_fp16(unit):
            dots += directed_dots(r, unit.lanes) + corner_dots(r, unit.lanes)
        stim = stimulus(r, dots, unit.slots, order, accumulator_of(unit), unit.lanes)
        await sb_.traffic(sb, stim)
        total += len(stim)
        sample(unit, dots, stim, order)
    # Bursts at full rate: the results as always, and the interlock must have held beats.
    dots = dots_for(r, unit, [int(x) for x in r.integers(2, 12, 3 * streams_of(unit))])
    stim = stimulus(r, dots, unit.slots, "burst", accumulator_of(unit), unit.lanes)
    waits = await sb_.traffic(sb, stim, valid_prob=1.0, ready_prob=1.0)
    total += len(stim)
    sample(unit, dots, stim, "burst")
    sb.finish(expected_vectors=total, exhaustive=False)
    if unit.loop_cycles > 1:
        assert waits > 0, "bursts to one slot never made the accumulator interlock wait"


@cocotb.test(skip=not params().get("out_depth"))
async def interleave_credit(dut):
    """Credit mode only (``out_depth > 0``): ``6 * out_depth`` one-beat dot products round
    robin, the source never idle, the sink ready 30 % of the time, so the output FIFO fills
    again and again; ``i.ready`` must follow the count of results owed exactly (with
    ``slots >= loop_cycles``, where round robin never meets the interlock; otherwise only
    that no result beat goes in at the limit)."""
    unit, r, sb_ = await bench(dut, 14)
    dots = dots_for(r, unit, [1] * (6 * unit.out_depth), g_range=(-32, 31))
    stim = stimulus(r, dots, unit.slots, "round_robin", accumulator_of(unit), unit.lanes)
    sb = Scoreboard(f"interleave_credit_{unit.module_name}", dut._log)
    offers, full = await sb_.credit_check(sb, stim, unit.out_depth,
                                          free=unit.slots >= unit.loop_cycles)
    dut._log.info("credit check: %d offers checked, %d at the limit", offers, full)
    sb.finish(expected_vectors=len(stim) + offers, exhaustive=False)
    sample(unit, dots, stim, "round_robin")


@cocotb.test()
async def interleave_reset(dut):
    unit, r, sb_ = await bench(dut, 13)
    dots = dots_for(r, unit, [int(x) for x in r.integers(1, 20, 24 * streams_of(unit))])
    stim = stimulus(r, dots, unit.slots, "random", accumulator_of(unit), unit.lanes)
    sb = Scoreboard(f"interleave_reset_{unit.module_name}", dut._log)
    await sb_.reset_check(sb, stim, pre_results=2 * streams_of(unit))
    sb.finish(expected_vectors=len(stim), exhaustive=False)
    sample(unit, dots, stim, "random")
    coverage(unit).finish(dut._log)      # the last test: the bins of all of them
