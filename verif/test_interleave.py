"""The interleaved dot-product unit (``DotProduct`` with ``slots > 1``) on Icarus and
Verilator against golden.dot; the pipelined fp16 cores it is built from (Amaranth
simulator, TestFloat cases, random clock enable); its parameter rules."""

import numpy as np
import pytest
from amaranth.sim import Simulator

import golden
from golden.testfloat import load as load_testfloat
from hdl.baselines import FP16DotProduct, FusedFP16DotProduct
from hdl.dot import DotProduct
from hdl.fp16 import FP16AddCore, FP16MulCore
from hdl.gen import verilog
from hdl.units import FAST_EXACT, FAST_FP16, FAST_FP16_FUSED

from harness import run_bench, simulators

# (lanes, accumulator, slots, acc_stages, lane_stages, out_depth): the two fast units of
# hdl.units (FAST_FP16, FAST_EXACT: ranks that never stall, a 32-result output FIFO), and a
# narrow interleaved exact unit with an output FIFO of 4 results.
CONFIGS = [(8, "fp16", 19, 17, 2, 32), (8, "exact", 1, 1, 2, 32), (2, "exact", 4, 0, 0, 4)]


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("lanes,accumulator,slots,acc_stages,lane_stages,out_depth", CONFIGS)
def test_interleave(sim, lanes, accumulator, slots, acc_stages, lane_stages, out_depth):
    p = {"lanes": lanes, "accumulator": accumulator, "slots": slots, "acc_stages": acc_stages,
         "lane_stages": lane_stages, "out_depth": out_depth}
    unit = DotProduct(lanes, accumulator, slots=slots, acc_stages=acc_stages,
                      lane_stages=lane_stages, out_depth=out_depth)
    # full rate: 2 rows x 4 * S; traffic: 2 x 6 * S + 3 * S random and bursts, 72 directed,
    # 3 * S round robin; reset: 24 * S dot products, S = max(slots, 4)
    run_bench(unit, "tb_interleave", sim, p)


# The FP16 baselines with the same treatment (pipelined multipliers, adders and rounder,
# interleaved accumulator, results FIFO), against golden.baselines: the cascaded unit (a
# rank inside its cores) and the fused one at its fast settings (hdl.units.FAST_FP16_FUSED)
# on 4 lanes.
FP16_CONFIGS = [
    ("fp16", {"lanes": 4, "slots": 19, "acc_stages": 17, "mul_stages": 1, "add_stages": 2,
              "out_depth": 32}),
    ("fused", {"lanes": 4, **FAST_FP16_FUSED}),
]


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("kind,kw", FP16_CONFIGS, ids=[k for k, _ in FP16_CONFIGS])
def test_interleave_fp16_baseline(sim, kind, kw):
    cls = FP16DotProduct if kind == "fp16" else FusedFP16DotProduct
    run_bench(cls(**kw), "tb_interleave", sim, {"kind": kind, **kw})


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"slots": 0}, ValueError, "slots must be a positive integer, not 0"),
    ({"slots": 4, "acc_stages": 4}, ValueError,
     "slots must be at least the accumulator loop's 6 cycles .* not 4; raise slots"),
    ({"acc_stages": 3}, ValueError, "slots must be at least the accumulator loop's 5 cycles"),
    ({"slots": 32, "acc_stages": 18}, ValueError, "acc_stages must be from 0 to 17, not 18"),
    ({"slots": 18, "acc_stages": 17}, ValueError,
     "slots must be at least the accumulator loop's 19 cycles"),
    ({"accumulator": "exact", "slots": 4, "acc_stages": 2}, ValueError,
     "acc_stages must be 0 or 1 with accumulator='exact'"),
    ({"lane_stages": 3}, ValueError, "lane_stages must be 0, 1 or 2, not 3"),
    ({"out_depth": -1}, ValueError, "out_depth must be at least 0, not -1"),
    ({"slots": 2.0}, TypeError, "slots must be a positive integer"),
    ({"slots": 4, "paced": 0}, TypeError, "paced must be a bool, not 0"),
    ({"slots": 4, "paced": True}, ValueError, "paced=True needs out_depth > 0"),
])
def test_interleave_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        DotProduct(**kwargs)


def test_interleave_read_rank_rules():
    """acc_stages = 17 reads the accumulator store two ranks before the adder: a unit whose
    beat sum comes out of rank 1 has no such rank, and says so when it is elaborated."""
    with pytest.raises(ValueError, match="comes out of rank 1; add ranks before it"):
        verilog(FP16DotProduct(2, slots=19, acc_stages=17))
    with pytest.raises(ValueError, match="add_stages must be from 0 to 16, not 17"):
        FP16DotProduct(4, slots=19, acc_stages=17, add_stages=17)   # the read rank is the loop's


def test_interleave_configs_are_the_fast_units():
    keys = ("slots", "acc_stages", "lane_stages", "out_depth")
    assert dict(zip(keys, CONFIGS[0][2:])) == FAST_FP16
    assert {k: v for k, v in zip(keys, CONFIGS[1][2:]) if k != "slots"} == FAST_EXACT


def test_interleave_properties():
    d = DotProduct(8, "fp16", slots=16, acc_stages=10)
    assert (d.slots, d.acc_stages, d.module_name) == (16, 10, "dot8_fp16_s16_a10")
    # + the adder's 10 ranks + the context's rank (read synchronously when loop_cycles > 1)
    assert d.latency == DotProduct(8, "fp16").latency + 10 + 1 and d.loop_cycles == 12
    assert "slot" in d.i.payload.shape().members and "slot" in d.o.payload.shape().members
    # acc_stages = 17: the 16 adder ranks and the read rank, which overlaps the ranks before
    # the adder: one cycle more in the loop, none in the latency
    d = DotProduct(8, "fp16", slots=19, acc_stages=17)
    assert d.loop_cycles == 19 and d.module_name == "dot8_fp16_s19_a17"
    assert d.latency == DotProduct(8, "fp16", slots=18, acc_stages=16).latency
    d = DotProduct(8, "exact", acc_stages=1, lane_stages=1, out_depth=4)
    assert d.module_name == "dot8_exact_a1_l1_q4" and d.loop_cycles == 1
    assert d.latency == DotProduct(8, "exact").latency + 1 + 1 + 2
    assert "slot" not in DotProduct(8).i.payload.shape().members
    # paced (the engine's units: its sequencer spaces each slot's beats and counts the
    # results): neither the interlock's busy bits nor the credit count
    d = DotProduct(8, "fp16", slots=4, acc_stages=2, out_depth=8, paced=True)
    assert d.module_name == "dot8_fp16_s4_a2_q8_p" and d.loop_cycles == 4 and d.paced
    assert d.latency == DotProduct(8, "fp16", slots=4, acc_stages=2, out_depth=8).latency
    text = verilog(d)
    assert "busy" not in text and "stage_owed" not in text
    text = verilog(DotProduct(8, "fp16", slots=4, acc_stages=2, out_depth=8))
    assert "busy" in text and "stage_owed" in text


@pytest.mark.parametrize("core,op", [(FP16AddCore, "add"), (FP16MulCore, "mul")])
def test_pipelined_cores(core, op):
    """Every stage count of the add and multiply cores, 300 TestFloat cases each, with a
    random clock enable: the result of input k appears ``latency`` enabled cycles later."""
    fn = golden.fp16_add if op == "add" else golden.fp16_mul
    a_all, b_all, _, _ = load_testfloat(op)
    checked = 0
    for stages in range(len(core.points()) + 1):
        dut = core(stages=stages)
        assert dut.latency == stages and len(dut.register_points) == stages
        gen = np.random.default_rng(stages)
        pick = gen.choice(len(a_all), 300, replace=False)
        a, b = a_all[pick], b_all[pick]
        wr, wf = fn(a.astype(np.uint16), b.astype(np.uint16), flags=True)
        want = (wr.astype(np.int64) | wf.astype(np.int64) << 16).tolist()
        got = []

        async def bench(ctx, dut=dut, a=a, b=b, gen=gen, stages=stages, got=got):
            i = 0
            while i < len(a) + stages:
                en = int(gen.random() < 0.7) if stages else 1
                if stages:
                    ctx.set(dut.en, en)
                if i < len(a):
                    ctx.set(dut.a, int(a[i]))
                    ctx.set(dut.b, int(b[i]))
                got.append((i - stages, ctx.get(dut.result) | ctx.get(dut.flags) << 16))
                if stages:
                    await ctx.tick()
                else:
                    await ctx.delay(1e-9)
                i += en

        got.clear()
        sim = Simulator(dut)
        if stages:
            sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        seen = {k: v for k, v in got if 0 <= k < len(a)}
        assert len(seen) == len(a)
        bad = [(k, hex(v), hex(want[k])) for k, v in seen.items() if v != want[k]]
        assert not bad, (stages, bad[:5])
        checked += len(seen)
    assert checked == 300 * (len(core.points()) + 1)
