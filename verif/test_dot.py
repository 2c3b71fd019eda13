"""The dot-product unit on Icarus and Verilator: every mode x accumulator x lanes in {1, 8, 16}
(mode is drawn per dot product inside each run)."""

import pytest

from hdl.dot import DotProduct

from harness import run_bench, simulators


@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("accumulator", ["fp16", "exact"])
@pytest.mark.parametrize("lanes", [1, 8, 16])
def test_dot(sim, lanes, accumulator):
    run_bench(DotProduct(lanes, accumulator), "tb_dot", sim,
              {"lanes": lanes, "accumulator": accumulator})


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"lanes": 0}, ValueError, "lanes must be a power of two from 1 to 64, not 0"),
    ({"lanes": 12}, ValueError, "lanes must be a power of two from 1 to 64, not 12"),
    ({"lanes": 128}, ValueError, "not 128"),
    ({"lanes": 2.5}, TypeError, "lanes must be an integer"),
    ({"accumulator": "fp32"}, ValueError, "accumulator must be one of"),
])
def test_bad_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        DotProduct(**kwargs)


def test_properties():
    d = DotProduct(16, "exact")
    assert (d.lanes, d.accumulator, d.module_name) == (16, "exact", "dot16_exact")
    assert d.sum_width == 21 and d.acc_width == 37
    # ranks: input, products, 4 tree levels (the negative lanes' +1s are the adders'
    # carry-ins), acc, the final rounder's, the output register
    assert d.rounder_stages == 15 and d.latency == 2 + 4 + 1 + 15 + 1
    # ranks: input, products, 3 tree levels, the chunk rounder's, chunk code, output (the
    # accumulator's adder feeds the output rank and the accumulator itself)
    d = DotProduct(8, "fp16")
    assert d.rounder_stages == 14 and d.latency == 2 + 3 + 14 + 2


def test_stored_flags():
    """The accumulator loop's flag store (``hdl.params.pack_flags``) keeps exactly the flags
    an fp16 operation raises: every flag byte comes back as itself masked by them."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from golden.formats import FLAG_INEXACT, FLAG_INVALID, FLAG_OVERFLOW, FLAG_UNDERFLOW
    from hdl.params import FP16_FLAGS, pack_flags, unpack_flags

    assert FP16_FLAGS == FLAG_INEXACT | FLAG_UNDERFLOW | FLAG_OVERFLOW | FLAG_INVALID
    m = Module()
    byte, packed, back = Signal(8), Signal(4), Signal(8)
    m.d.comb += [packed.eq(pack_flags(byte)), back.eq(unpack_flags(packed))]
    seen = []

    async def bench(ctx):
        for v in range(256):
            ctx.set(byte, v)
            seen.append((v, ctx.get(back)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 256
    assert [b for _, b in seen] == [v & FP16_FLAGS for v, _ in seen]
