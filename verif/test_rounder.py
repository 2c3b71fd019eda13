"""FP16Rounder against golden.round_fp16 on Icarus and Verilator: one bench build holding the
rounder in three configurations (see tb_rounder), ``LANES`` copies of each."""

import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.formats import FP16
from hdl import FP16Rounder
from hdl.rounder import FLAGS_SHAPE

from harness import run_bench, simulators

LANES = 16
# (width, exp_width, signed): an exhaustive 12-bit one, the dot-product normalizer's shape,
# and the fp4 decoder's (a power of two: mag = 1).
CONFIGS = [(12, 6, False), (41, 10, True), (1, 10, False)]


class RounderBank(wiring.Component):
    """Bench wrapper: ``lanes`` FP16Rounders per configuration, inputs and outputs packed
    lane 0 lowest: ``c<k>_sign`` / ``c<k>_mag`` (or ``c<k>_value``), ``c<k>_exp``,
    ``c<k>_result``, ``c<k>_flags``."""

    latency = 0
    module_name = "fp16_rounder_bank"

    def __init__(self, configs=CONFIGS, lanes=LANES):
        self.configs, self.lanes = list(configs), lanes
        ports = {}
        for k, (w, ew, signed) in enumerate(self.configs):
            if signed:
                ports[f"c{k}_value"] = In(w * lanes)
            else:
                ports[f"c{k}_sign"] = In(lanes)
                ports[f"c{k}_mag"] = In(w * lanes)
            ports[f"c{k}_exp"] = In(ew * lanes)
            ports[f"c{k}_result"] = Out(FP16.BITS * lanes)
            ports[f"c{k}_flags"] = Out(FLAGS_SHAPE.width * lanes)
        super().__init__(ports)

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        for k, (w, ew, signed) in enumerate(self.configs):
            for j in range(self.lanes):
                r = FP16Rounder(w, ew, signed=signed)
                m.submodules[f"c{k}_l{j}"] = r
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


@pytest.mark.parametrize("sim", simulators())
def test_rounder(sim):
    from tb_rounder import expected_vectors
    run_bench(RounderBank(), "tb_rounder", sim,
              params={"configs": CONFIGS, "lanes": LANES},
              expect_vectors=expected_vectors(CONFIGS, LANES))
