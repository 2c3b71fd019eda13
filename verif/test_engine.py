"""The training engine (``hdl.engine.TrainingEngine``) on Icarus and Verilator against the
golden model (``tb_engine``), through the driver the RTL training run uses; its parameter
rules and the driver's host-side packing."""

import numpy as np
import pytest
from engine_driver import engine_of, gemm_tiles, pack_a, pack_b, unpack_gemm

from hdl.dot import DotProduct
from hdl.engine import TrainingEngine
from hdl.units import ENGINE, FAST_FP16

from harness import run_bench, simulators

# A small engine (2 rows x 4 lanes, 4 slots, small tiles: the benches reach tiling, ragged
# groups and the memories' limits in few cycles; the exact one with 8-result FIFOs, shorter
# than its pipeline, so that the sequencer's credit throttles it); DEFAULT: the engine of
# hdl.units.
SMALL = {"rows": 2, "lanes": 4, "slots": 4, "acc_stages": 2, "lane_stages": 1,
         "out_depth": 32, "a_depth": 64, "b_depth": 32}
DEFAULT = ENGINE


EXACT = {**SMALL, "accumulator": "exact", "acc_stages": 1, "out_depth": 8}


# The fp16 engine on both simulators; the exact one (the same sequencer and converters, the
# exact dot unit that test_dot runs on both) on Icarus, to keep make test's time.
@pytest.mark.parametrize("sim,p", [pytest.param(s, SMALL, id=f"fp16-{s}")
                                   for s in simulators()]
                         + [pytest.param(s, EXACT, id=f"exact-{s}")
                            for s in simulators() if s == "icarus"])
def test_engine(sim, p):
    run_bench(engine_of(p), "tb_engine", sim, p)


@pytest.mark.parametrize("sim", [s for s in simulators() if s == "verilator"])
def test_engine_default(sim):
    """The instance make synth measures and make train-rtl trains with (hdl.units.ENGINE),
    on Verilator (on Icarus its bench runs for minutes)."""
    run_bench(engine_of(DEFAULT), "tb_engine", sim, DEFAULT)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"lanes": 2}, ValueError, "lanes must be at least 4"),
    ({"lanes": 12}, ValueError, "lanes must be a power of two"),
    ({"rows": 3}, ValueError, "rows must be a power of two from 2 to 64, not 3"),
    ({"rows": 1}, ValueError, "rows must be a power of two from 2 to 64, not 1"),
    ({"rows": 2, "lanes": 16}, ValueError, "rows must be at least lanes // 4 = 4"),
    ({"accumulator": "fp32"}, ValueError, "accumulator must be one of"),
    ({"slots": 1, "acc_stages": 0}, ValueError, "slots must be at least 2"),
    ({"slots": 4, "acc_stages": 14}, ValueError, "slots must be at least the accumulator "
                                                 "loop's 16 cycles"),
    ({"a_depth": 0}, ValueError, "a_depth must be from 1 to"),
    ({"out_depth": 4}, ValueError, "out_depth must be at least 8 in the engine"),
    ({"g_bits": 9}, ValueError, "g_bits must be at most 8 in the engine"),
    ({"rows": 2.0}, TypeError, "rows must be a positive integer"),
    ({"converters": ("to_fp4", "fft")}, ValueError, "converters must be names from"),
    ({"converters": "to_fp4"}, ValueError, "converters must be names from"),
])
def test_engine_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        TrainingEngine(**kwargs)


def test_engine_properties():
    e = TrainingEngine(**DEFAULT)
    assert e.module_name == "engine4x8_fp16_s16_q32_a512_b256"
    assert (e.macs_per_cycle, e.conv_lanes, e.g_range) == (32, 2, (-32, 31))
    assert e.memory_bits == {"a": 512 * 32, "b": 4 * 256 * 32}
    # the fast dot unit (42 cycles at acc_stages 17) with two adder ranks fewer
    assert e.dot_latency == DotProduct(8, "fp16", **FAST_FP16).latency - 2 == 40
    assert e.converters == ("rescale_int4_sym", "rescale_uint4", "to_fp4", "from_fp4", "track")
    assert TrainingEngine(converters=["track", "to_fp4"]).module_name.endswith("_c14")


def test_driver_packing():
    """The host side: pack_a/pack_b lay out the words the engine's sequencer reads (checked
    against a plain model of its read order), unpack_gemm inverts the result order, and
    gemm_tiles covers every output once with whole K."""
    r = np.random.default_rng(0)
    lanes, rows, m, k, n = 4, 2, 5, 9, 5
    a = r.integers(0, 16, (m, k)).astype(np.uint8)
    b = r.integers(0, 16, (k, n)).astype(np.uint8)
    kb, ng = 3, 3
    wa, wb = pack_a(a, lanes), pack_b(b, lanes, rows)
    assert len(wa) == m * kb and len(wb) == ng * kb * rows

    def nib(word, lane):
        return (word >> 4 * lane) & 0xF
    for i in range(m):
        for kk in range(k):
            assert nib(wa[i * kb + kk // lanes], kk % lanes) == a[i, kk]
    for j in range(n):
        g, rr = divmod(j, rows)
        for kk in range(k):
            # load_b writes word w to bank w % rows, address w // rows = g * kb + beat
            w = (g * kb + kk // lanes) * rows + rr
            assert nib(wb[w], kk % lanes) == b[kk, j]
    # result beat g * m + i holds row i, columns g * rows .. g * rows + rows - 1
    c = np.arange(m * ng * rows).reshape(m, ng * rows)
    beats = np.stack([c[i, g * rows:(g + 1) * rows] for g in range(ng) for i in range(m)])
    got, _ = unpack_gemm(beats, beats, m, n, rows)
    assert (got == c[:, :n]).all()
    tiles = gemm_tiles(70, 20, 33, 8, 4, 64, 16)       # kb 3: 21 rows, 5 groups per tile
    cover = np.zeros((70, 33), int)
    for m0, m1, n0, n1 in tiles:
        assert m1 - m0 <= 21 and n1 - n0 <= 20
        cover[m0:m1, n0:n1] += 1
    assert (cover == 1).all() and len(tiles) == 4 * 2
    with pytest.raises(Exception, match="K = 600 needs 75 words per row"):
        gemm_tiles(1, 600, 1, 8, 4, 64, 16)
