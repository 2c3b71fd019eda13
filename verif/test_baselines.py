"""The density baselines (cascaded and fused FP16, and INT8 dot products) on Icarus and
Verilator, their parameter checks, and quick checks of their golden models against exact
references."""

from fractions import Fraction

import numpy as np
import pytest

import golden
from hdl.baselines import FP16DotProduct, FusedFP16DotProduct, Int8DotProduct

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
    i = Int8DotProduct(16)
    assert (i.lanes, i.sum_width, i.acc_width, i.latency, i.module_name) == \
        (16, 20, 36, 3, "int8_dot16")


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
