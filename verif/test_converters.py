"""The converters (``hdl.rescale``, ``hdl.fp4``, ``hdl.tracker``) on Icarus and Verilator:
exhaustive sweeps against the golden model with random gaps and backpressure, the reset check
and the full-rate check (``tb_converters``); parameter checks."""

import pytest
from tb_converters import (
    log_gs,
    rescale_beats,
    sweep_beats,
    tracker_tensor_count,
    vectors,
)

from golden.formats import FP4
from hdl import FP4Decoder, LogConverter, RangeRescale, RangeTracker

from harness import light, run_bench, simulators

LANES = 32                       # values per beat in the bench instances
STOCHASTIC_R_BITS = 8


def _filter(test):
    return {"COCOTB_TEST_FILTER": test}


@pytest.mark.parametrize("sim", simulators())
def test_log_converter(sim):
    unit = LogConverter(lanes=LANES, g_bits=6)
    beats = len(log_gs(6, light(sim))) * 2 * sweep_beats(LANES)
    run_bench(unit, "tb_converters", sim, {"lanes": LANES, "g_bits": 6},
              expect_vectors=vectors(beats, LANES),
              extra_env=_filter("log_converter_exhaustive"))


@pytest.mark.parametrize("fmt", ["int4", "int4_sym", "uint4"])
@pytest.mark.parametrize("sim", simulators())
def test_rescale_rne(sim, fmt):
    unit = RangeRescale(lanes=LANES, fmt=fmt)
    beats = rescale_beats(LANES, light=light(sim))
    run_bench(unit, "tb_converters", sim,
              {"lanes": LANES, "fmt": fmt, "rounding": "rne", "r_bits": 0},
              expect_vectors=vectors(beats, LANES),
              extra_env=_filter("rescale_exhaustive"))


@pytest.mark.parametrize("sim", simulators())
def test_rescale_stochastic(sim):
    unit = RangeRescale(lanes=LANES, fmt="int4", rounding="stochastic",
                        r_bits=STOCHASTIC_R_BITS)
    beats = rescale_beats(LANES, STOCHASTIC_R_BITS, light(sim))
    run_bench(unit, "tb_converters", sim,
              {"lanes": LANES, "fmt": "int4", "rounding": "stochastic",
               "r_bits": STOCHASTIC_R_BITS},
              expect_vectors=vectors(beats, LANES),
              extra_env=_filter("rescale_exhaustive"))


@pytest.mark.parametrize("sim", simulators())
def test_fp4_decoder(sim):
    lanes = 1 << FP4.BITS
    unit = FP4Decoder(lanes=lanes, g_bits=6)
    beats = (1 << 6) * 2                       # every g of 6 bits x both phases
    run_bench(unit, "tb_converters", sim, {"lanes": lanes, "g_bits": 6},
              expect_vectors=vectors(beats, lanes),
              extra_env=_filter("decoder_exhaustive"))


@pytest.mark.parametrize("sim", simulators())
def test_range_tracker(sim):
    lanes = 16
    unit = RangeTracker(lanes=lanes, g_bits=6)
    tensors = tracker_tensor_count(lanes)
    run_bench(unit, "tb_converters", sim, {"lanes": lanes, "g_bits": 6},
              expect_vectors=vectors(tensors),
              extra_env=_filter("tracker_tensors_test"))


@pytest.mark.parametrize("make, error, match", [
    (lambda: RangeRescale(lanes=0), ValueError, "lanes must be a positive integer, not 0"),
    (lambda: RangeRescale(lanes=1.5), TypeError, "lanes must be a positive integer"),
    (lambda: RangeRescale(fmt="int8"), ValueError,
     r"fmt must be one of \['int4', 'int4_sym', 'uint4'\], not 'int8'"),
    (lambda: RangeRescale(rounding="rtz"), ValueError,
     r"rounding must be one of \('rne', 'stochastic'\), not 'rtz'"),
    (lambda: RangeRescale(rounding="rne", r_bits=4), ValueError,
     "r_bits must be 0 with rounding='rne'.*use rounding='stochastic'"),
    (lambda: RangeRescale(rounding="stochastic"), ValueError,
     r"r_bits must be in 1 \.\. 32 with rounding='stochastic', not 0"),
    (lambda: RangeRescale(rounding="stochastic", r_bits=33), ValueError,
     r"r_bits must be in 1 \.\. 32 with rounding='stochastic', not 33"),
    (lambda: LogConverter(lanes=0), ValueError, "lanes must be a positive integer, not 0"),
    (lambda: LogConverter(g_bits=5), ValueError, r"g_bits must be in 6 \.\. 9 .*not 5"),
    (lambda: FP4Decoder(g_bits=10), ValueError, r"g_bits must be in 6 \.\. 9 .*not 10"),
    (lambda: FP4Decoder(g_bits="6"), TypeError, "g_bits must be an integer"),
    (lambda: RangeTracker(lanes=-1), ValueError, "lanes must be a positive integer, not -1"),
])
def test_bad_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_module_names_and_latency():
    assert RangeRescale(4).module_name == "rescale4_int4_rne"
    assert RangeRescale(4, "uint4", "stochastic", 8).module_name == "rescale4_uint4_sr8"
    assert LogConverter(8).module_name == "fp16_to_fp4_x8_g6"
    assert FP4Decoder(16, 7).module_name == "fp4_to_fp16_x16_g7"
    assert RangeTracker(2).module_name == "range_tracker_x2_g6"
    assert [u.latency for u in (RangeRescale(), LogConverter(), FP4Decoder(),
                                RangeTracker())] == [11, 5, 8, 8]
    # The tracker's lane tree adds a rank per level.
    assert [RangeTracker(n).latency for n in (2, 3, 16)] == [9, 10, 12]
