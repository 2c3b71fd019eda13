"""FP16Rounder against golden.round_fp16 on Icarus and Verilator: one bench build holding the
rounder in the five configurations of ``tb_rounder.CONFIGS``, ``LANES`` copies of each: three
combinational ones and two pipelined ones (``stages > 0``, ranks enabled by ``en``)."""

import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from tb_rounder import CONFIGS, expected_vectors

from golden.formats import FP16
from hdl import FP16Rounder
from hdl.rounder import FLAGS_SHAPE

from harness import light, run_bench, simulators

LANES = 16


class RounderBank(wiring.Component):
    """Bench wrapper: ``lanes`` FP16Rounders per configuration, inputs and outputs packed
    lane 0 lowest: ``c<k>_sign`` / ``c<k>_mag`` (or ``c<k>_value``), ``c<k>_exp``,
    ``c<k>_result``, ``c<k>_flags``; pipelined configurations share one ``c<k>_en``."""

    latency = 0
    module_name = "fp16_rounder_bank"

    def __init__(self, configs=CONFIGS, lanes=LANES):
        self.configs, self.lanes = list(configs), lanes
        ports = {}
        for k, (w, ew, signed, stages) in enumerate(self.configs):
            if signed:
                ports[f"c{k}_value"] = In(w * lanes)
            else:
                ports[f"c{k}_sign"] = In(lanes)
                ports[f"c{k}_mag"] = In(w * lanes)
            ports[f"c{k}_exp"] = In(ew * lanes)
            if stages:
                ports[f"c{k}_en"] = In(1)
            ports[f"c{k}_result"] = Out(FP16.BITS * lanes)
            ports[f"c{k}_flags"] = Out(FLAGS_SHAPE.width * lanes)
        super().__init__(ports)

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        for k, (w, ew, signed, stages) in enumerate(self.configs):
            for j in range(self.lanes):
                r = FP16Rounder(w, ew, signed=signed, stages=stages)
                m.submodules[f"c{k}_l{j}"] = r
                if stages:
                    m.d.comb += r.en.eq(getattr(self, f"c{k}_en"))
                if signed:
                    m.d.comb += r.value.eq(getattr(self, f"c{k}_value")[j * w:(j + 1) * w])
                else:
                    m.d.comb += [r.sign.eq(getattr(self, f"c{k}_sign")[j]),
                                 r.mag.eq(getattr(self, f"c{k}_mag")[j * w:(j + 1) * w])]
                m.d.comb += [
                    r.exp.eq(getattr(self, f"c{k}_exp")[j * ew:(j + 1) * ew]),
                    getattr(self, f"c{k}_result")[j * 16:(j + 1) * 16].eq(r.result),
                    getattr(self, f"c{k}_flags")[j * 8:(j + 1) * 8].eq(r.flags),
                ]
        return m


@pytest.mark.parametrize("sim", simulators(slow=("verilator",)))
def test_rounder(sim):
    run_bench(RounderBank(), "tb_rounder", sim,
              params={"configs": CONFIGS, "lanes": LANES},
              expect_vectors=expected_vectors(CONFIGS, LANES, light(sim)))


@pytest.mark.parametrize("stages", [0, 1, 2, 5, 15])
def test_rounder_stages(stages):
    """Amaranth simulator, quick: the pipelined rounder equals the combinational one's golden
    results ``latency`` enabled cycles later, and holds while ``en`` is low."""
    import numpy as np
    from amaranth.sim import Simulator

    import golden

    dut = FP16Rounder(41, 10, signed=True, stages=stages)
    assert dut.latency == stages and len(dut.register_points) == stages
    gen = np.random.default_rng(stages)
    n = 300
    vals = gen.integers(-(1 << 40), 1 << 40, n) >> gen.integers(0, 40, n)
    exps = gen.integers(-40, 20, n)
    want_r, want_f = golden.round_fp16((vals < 0).astype(np.int64), np.abs(vals), exps)
    want = [int(r) | int(f) << 16 for r, f in zip(want_r, want_f)]
    got = []

    async def bench(ctx):
        i = 0
        for _ in range(3 * n):
            en = int(gen.random() < 0.7) if stages else 1
            if stages:
                ctx.set(dut.en, en)
            if i < n:
                ctx.set(dut.value, int(vals[i]))
                ctx.set(dut.exp, int(exps[i]))
            shown = ctx.get(dut.result) | ctx.get(dut.flags) << 16
            got.append((i - stages, shown))     # result on the outputs before this edge
            await ctx.tick()
            if en:
                i += 1

    async def comb(ctx):
        for k in range(n):
            ctx.set(dut.value, int(vals[k]))
            ctx.set(dut.exp, int(exps[k]))
            got.append((k, ctx.get(dut.result) | ctx.get(dut.flags) << 16))

    sim = Simulator(dut)
    if stages:
        sim.add_clock(1e-6)
    sim.add_testbench(bench if stages else comb)
    sim.run()
    checked = [(k, v) for k, v in got if 0 <= k < n]
    assert len({k for k, _ in checked}) == n
    bad = [(k, hex(v), hex(want[k])) for k, v in checked if v != want[k]]
    assert not bad, bad[:5]


def test_rounder_parameters():
    with pytest.raises(ValueError, match="stages must be from 0 to 15, not 16"):
        FP16Rounder(41, 10, signed=True, stages=16)
    with pytest.raises(TypeError, match="stages must be an integer"):
        FP16Rounder(41, 10, stages=1.5)
    r = FP16Rounder(36, 7, signed=True, stages=3)
    assert r.module_name == "fp16_rounder_s36_e7_p3" and r.stages == 3
    assert FP16Rounder(12, 6).latency == 0 and FP16Rounder(12, 6).register_points == ()
