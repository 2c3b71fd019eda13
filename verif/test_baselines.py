"""The density baselines (cascaded and fused FP16, and INT8 dot products) on Icarus and
Verilator, their parameter checks, and quick checks of their golden models against exact
references."""

from fractions import Fraction

import numpy as np
import pytest

import golden
from hdl.baselines import FP16DotProduct, FusedFP16DotProduct, Int8DotProduct
from hdl.units import FAST_FP16_FUSED

from harness import run_bench, simulators

UNITS = {"fp16": FP16DotProduct, "fused": FusedFP16DotProduct, "int8": Int8DotProduct}


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("kind,lanes", [("fp16", 8), ("fp16", 1), ("fused", 8),
                                        ("fused", 1), ("int8", 8)])
def test_baseline(sim, kind, lanes):
    run_bench(UNITS[kind](lanes), "tb_baselines", sim, {"kind": kind, "lanes": lanes})


@pytest.mark.parametrize("sim", simulators())
def test_baseline_int8_tree_stages(sim):
    """The fast INT8 baseline: a register rank after every tree level."""
    run_bench(Int8DotProduct(8, tree_stages=True), "tb_baselines", sim,
              {"kind": "int8", "lanes": 8, "tree_stages": True})


@pytest.mark.parametrize("cls", [FP16DotProduct, FusedFP16DotProduct, Int8DotProduct])
@pytest.mark.parametrize("lanes,exc,msg", [
    (0, ValueError, "lanes must be a power of two from 1 to 64, not 0"),
    (6, ValueError, "lanes must be a power of two from 1 to 64, not 6"),
    (128, ValueError, "not 128"),
    (2.5, TypeError, "lanes must be an integer"),
])
def test_bad_parameters(cls, lanes, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(lanes)


def test_properties():
    f = FP16DotProduct()
    assert (f.lanes, f.levels, f.latency, f.module_name) == (8, 3, 5, "fp16_dot8")
    assert FP16DotProduct(1).latency == 2
    u = FusedFP16DotProduct()
    assert (u.lanes, u.levels, u.sum_width, u.rounder_stages, u.latency, u.module_name) == \
        (8, 3, 84, 1, 8, "fused_fp16_dot8")
    assert (FusedFP16DotProduct(1).latency, FusedFP16DotProduct(1).sum_width) == (5, 81)
    # the fast fused unit: + 2 multiplier ranks, an alignment rank, 14 more rounder ranks,
    # the accumulator's 16 adder ranks (its read rank overlaps), the FIFO's 2 cycles
    f = FusedFP16DotProduct(8, **FAST_FP16_FUSED)
    assert (f.code_rank, f.depth, f.latency, f.loop_cycles, f.module_name) == \
        (23, 41, 43, 19, "fused_fp16_dot8_s19_a17_m2_g1_r15_q32")
    assert "slot" in f.i.payload.shape().members and "slot" in f.o.payload.shape().members
    i = Int8DotProduct(16)
    assert (i.lanes, i.sum_width, i.acc_width, i.latency, i.module_name) == \
        (16, 20, 36, 3, "int8_dot16")


@pytest.mark.parametrize("kwargs,msg", [
    ({"mul_stages": 3}, "mul_stages must be from 0 to 2, not 3"),
    ({"align_stages": -1}, "align_stages must be from 0 to 1, not -1"),
    ({"rounder_stages": 17}, "rounder_stages must be from 0 to 15, not 17"),
    ({"slots": 4, "acc_stages": 3}, "slots must be at least the accumulator loop's 5 cycles"),
])
def test_fused_bad_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        FusedFP16DotProduct(8, **kwargs)


@pytest.mark.parametrize("mul_stages,align_stages,rounder_stages",
                         [(ms, g, r) for ms in (0, 1, 2) for g in (0, 1) for r in (0, 2)])
def test_fused_ranks(mul_stages, align_stages, rounder_stages):
    """Every placement of the fused unit's optional ranks (2 lanes, Amaranth simulator): 40
    random dot products of 1 to 3 beats (codes of every exponent, specials among them) at
    full rate, each result ``latency`` cycles after its last beat, bit-exact with
    golden.fused_fp16_dot."""
    from amaranth.sim import Simulator

    dut = FusedFP16DotProduct(2, mul_stages=mul_stages, align_stages=align_stages,
                              rounder_stages=rounder_stages)
    assert dut.latency == 5 + mul_stages + align_stages + rounder_stages
    r = np.random.default_rng(100 + 10 * mul_stages + 2 * align_stages + rounder_stages)
    specials = np.array([0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7D00, 0x0001, 0x7BFF])
    dots = []
    for nb in r.integers(1, 4, 40):
        codes = r.integers(0, 1 << 15, (2, nb, 2)) | (r.integers(0, 2, (2, nb, 2)) << 15)
        pick = r.random(codes.shape) < 0.1
        dots.append(np.where(pick, specials[r.integers(0, len(specials), codes.shape)], codes))
    want = []
    for d in dots:
        code, fl = golden.fused_fp16_dot(d[0].ravel(), d[1].ravel(), lanes=2, flags=True)
        want.append(int(code) | int(fl) << 16)
    beats = [(d[:, j], j == 0, j == d.shape[1] - 1) for d in dots for j in range(d.shape[1])]
    got, ends = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(beats) + dut.latency + 2):
            if cycle < len(beats):
                (a, b), first, last = beats[cycle]
                ctx.set(dut.i.payload, {"a": a.tolist(), "b": b.tolist(), "first": first,
                                        "last": last})
                ctx.set(dut.i.valid, 1)
                if last:
                    ends.append(cycle)
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                out = ctx.get(dut.o.payload)
                got.append((cycle, out.result | out.flags << 16))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(dots) == 40
    assert [c for c, _ in got] == [e + dut.latency - 1 for e in ends]
    bad = [(k, hex(g), hex(w)) for k, ((_, g), w) in enumerate(zip(got, want)) if g != w]
    assert not bad, bad[:5]


def test_golden_fp16_dot_exact_cases():
    """Small integers: every product, tree sum and accumulation is exact in fp16, so the
    result is the exact dot product (checked with Fractions), and no flag is raised."""
    r = np.random.default_rng(5)
    for n in (1, 3, 8, 17, 40):
        x = r.integers(-8, 9, n)
        y = r.integers(-8, 9, n)
        code, fl = golden.fp16_dot(golden.fp16_from_float(x), golden.fp16_from_float(y),
                                   flags=True)
        assert Fraction(float(golden.fp16_to_float(code))) == sum(Fraction(int(a * b))
                                                                  for a, b in zip(x, y))
        assert fl == 0


def test_golden_fp16_dot_order():
    """The tree rounds pairs level by level: 2048 + 1 + 1 + ... differs from a sequential sum
    and from the exact one in the way the tree predicts."""
    one, big = 0x3C00, 0x6800                   # 1.0 and 2048.0 (fp16 spacing 2 there)
    a = np.array([big] + [one] * 7, dtype=np.uint16)
    b = np.full(8, one, dtype=np.uint16)
    # level 1: 2049 -> 2048 (tie to even), 2, 2, 2; level 2: 2050, 4; level 3: 2054.
    assert golden.fp16_to_float(golden.fp16_dot(a, b)) == 2054.0
    assert golden.fp16_to_float(golden.fp16_dot(a, b, lanes=1)) == 2048.0


def test_golden_int8_dot():
    assert golden.int8_dot(np.full(5, -128), np.full(5, -128)) == 5 * 16384
    with pytest.raises(ValueError, match="must lie in -128 .. 127"):
        golden.int8_dot([128], [1])
    with pytest.raises(ValueError, match="same length"):
        golden.int8_dot([1, 2], [1])
    with pytest.raises(ValueError, match="must not be empty"):
        golden.fp16_dot(np.array([], np.uint16), np.array([], np.uint16))


def test_sig_product():
    """The fused unit's radix-4 significand multiplier against Python's product: every
    multiplier digit pattern against corner multiplicands, and random pairs."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from hdl.baselines import sig_product

    m = Module()
    x, y, p = Signal(11), Signal(11), Signal(22)
    m.d.comb += p.eq(sig_product(m, x, y, "t"))
    r = np.random.default_rng(7)
    corners = [0, 1, 2, 3, 0x3FF, 0x400, 0x555, 0x2AA, 0x7FF]
    pairs = [(a, b) for a in range(0, 2048, 5) for b in corners] + \
        [(int(a), int(b)) for a, b in r.integers(0, 2048, (2000, 2))]
    bad = []

    async def bench(ctx):
        for a, b in pairs:
            ctx.set(x, a)
            ctx.set(y, b)
            if ctx.get(p) != a * b:
                bad.append((a, b))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:5]
