"""FP16 adder and multiplier: TestFloat vectors, 10**6 random pairs and stream discipline on
Icarus and Verilator; parameter checks and a quick Amaranth-simulator test without them."""

import os
import re

import numpy as np
import pytest
from amaranth.sim import Simulator
from tb_fp16 import CORNER_PAIRS

from golden.formats import FP16
from golden.testfloat import CASES as TESTFLOAT_CASES
from golden.testfloat import load as load_testfloat
from hdl import FP16AddCore, FP16Adder, FP16MulCore, FP16Multiplier, FP16Rounder

from harness import light, run_bench, simulators

UNITS = {"add": FP16Adder, "mul": FP16Multiplier}
LANES = int(os.environ.get("FP16_LANES", 16))   # operations per beat in the benches
N_RANDOM = int(os.environ.get("FP16_RANDOM", 1_000_000))
LIGHT_SHARE = 10                     # Icarus's light profile: a tenth of the random pairs
N_STREAM = 2000                      # beats of the reset check


def _full_rate_vectors(n):
    """Every lane of every beat (the last one zero-padded), and each beat's latency."""
    beats = -(-n // LANES)
    return beats * LANES + beats


@pytest.mark.parametrize("sim", simulators(slow=("verilator",)))
@pytest.mark.parametrize("op", sorted(UNITS))
def test_fp16_unit(sim, op):
    unit = UNITS[op](lanes=LANES)
    n_random = random_pairs(sim)
    run_bench(unit, "tb_fp16", sim,
              params={"op": op, "lanes": LANES, "n_random": n_random, "n_stream": N_STREAM},
              expect_vectors=expected_vectors(n_random))


def random_pairs(sim):
    """Random pairs of a bench run: ``N_RANDOM``, a multiple of ``LANES`` under
    ``LIGHT_SHARE`` of it in the light profile (:func:`harness.light`)."""
    n = N_RANDOM // LIGHT_SHARE if light(sim) else N_RANDOM
    return n - n % LANES


def expected_vectors(n_random=N_RANDOM):
    """Vectors of one bench run (also ``make mutate``'s count)."""
    return (_full_rate_vectors(TESTFLOAT_CASES)
            + _full_rate_vectors(n_random + CORNER_PAIRS * LANES) + N_STREAM * LANES)


# --- without a simulator: parameters, properties, Amaranth-simulator quick checks ----------

@pytest.mark.parametrize("args, kwargs, exc, msg", [
    ((0, 8), {}, ValueError, "width must be a positive integer, not 0"),
    ((-3, 8), {}, ValueError, "width must be a positive integer, not -3"),
    ((1.5, 8), {}, TypeError, "width must be a positive integer, not 1.5"),
    ((8, 0), {}, ValueError, "exp_width must be a positive integer, not 0"),
    ((8, "6"), {}, TypeError, "exp_width must be a positive integer, not '6'"),
    ((8, 6), {"signed": 1}, TypeError, "signed must be a bool, not 1"),
])
def test_rounder_bad_parameters(args, kwargs, exc, msg):
    with pytest.raises(exc, match=f"^{re.escape(msg)}$"):
        FP16Rounder(*args, **kwargs)


@pytest.mark.parametrize("op", sorted(UNITS))
@pytest.mark.parametrize("lanes, exc, msg", [
    (0, ValueError, "lanes must be a positive integer, not 0"),
    (-1, ValueError, "lanes must be a positive integer, not -1"),
    (2.0, TypeError, "lanes must be a positive integer, not 2.0"),
])
def test_fp16_unit_bad_lanes(op, lanes, exc, msg):
    with pytest.raises(exc, match=f"^{re.escape(msg)}$"):
        UNITS[op](lanes=lanes)


def test_properties():
    r = FP16Rounder(41, 10, signed=True)
    assert (r.width, r.exp_width, r.signed, r.latency) == (41, 10, True, 0)
    assert r.module_name == "fp16_rounder_s41_e10"
    assert FP16Rounder(np.int64(12), 6).module_name == "fp16_rounder_m12_e6"
    assert (FP16AddCore().latency, FP16MulCore().latency) == (0, 0)
    for op, cls in UNITS.items():
        assert cls().latency == 2 and cls().lanes == 1
        assert cls().module_name == f"fp16_{op}"
        assert cls(lanes=4).module_name == f"fp16_{op}_x4"


def _testfloat_sample(op, n, seed=0):
    a, b, r, fl = load_testfloat(op)
    pick = np.random.default_rng(seed).choice(len(a), n, replace=False)
    return a[pick], b[pick], r[pick], fl[pick]


@pytest.mark.parametrize("op, core", [("add", FP16AddCore), ("mul", FP16MulCore)])
def test_core_amaranth_sim(op, core):
    """The combinational cores (not in the cocotb benches) on 2000 TestFloat cases."""
    import golden.fp16
    a, b, r, fl = _testfloat_sample(op, 2000)
    want = np.where(golden.fp16.is_nan(r), FP16.QNAN, r) | (fl << 16)
    dut = core()
    got = []

    async def bench(ctx):
        for x, y in zip(a, b, strict=True):
            ctx.set(dut.a, int(x))
            ctx.set(dut.b, int(y))
            got.append(ctx.get(dut.result) | (ctx.get(dut.flags) << 16))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    bad = np.nonzero(np.array(got) != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]


@pytest.mark.parametrize("op", sorted(UNITS))
def test_stream_amaranth_sim(op):
    """The default one-lane stream unit: random gaps and backpressure, then the latency."""
    import golden
    model = {"add": golden.fp16_add, "mul": golden.fp16_mul}[op]
    n = 400
    a, b, _, _ = _testfloat_sample(op, n, seed=1)
    er, ef = model(a, b, flags=True)
    dut = UNITS[op]()
    gen = np.random.default_rng(2)
    got = []
    first = {}

    async def bench(ctx):
        k = cycle = 0
        while len(got) < n:
            assert cycle < 20 * n, "stalled"
            valid = k < n and gen.random() < 0.7
            ready = gen.random() < 0.6
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload.a, int(a[min(k, n - 1)]))
            ctx.set(dut.i.payload.b, int(b[min(k, n - 1)]))
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                got.append((ctx.get(dut.o.payload.result), ctx.get(dut.o.payload.flags)))
            if valid and ctx.get(dut.i.ready):
                k += 1
            await ctx.tick()
            cycle += 1
        # Latency: one beat into the empty pipeline with o.ready high.
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(4):
            await ctx.tick()
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for t in range(1, 6):
            if ctx.get(dut.o.valid):
                first["latency"] = t
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [g[0] for g in got] == list(er) and [g[1] for g in got] == list(ef)
    assert first["latency"] == dut.latency
