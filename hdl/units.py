"""The registry of units: what ``make`` generates Verilog for and ``make synth`` measures.

Each entry is a factory returning a fresh component with its default parameters.
"""

from functools import partial

from .baselines import FP16DotProduct, FusedFP16DotProduct, Int8DotProduct
from .dot import DotProduct
from .engine import TrainingEngine
from .fp4 import FP4Decoder, LogConverter
from .fp16 import FP16AddCore, FP16Adder, FP16MulCore, FP16Multiplier
from .lanes import FP4ShiftLane, Int4MulLane
from .rescale import RangeRescale
from .rounder import FP16Rounder
from .tracker import RangeTracker

__all__ = ["UNITS", "FAST_FP16", "FAST_EXACT", "FAST_FP16_CASCADED", "FAST_FP16_FUSED",
           "ENGINE"]

# The fast 4-bit settings (``DotProduct`` keyword arguments), the ones the lanes sweep of
# ``make synth`` measures at every width. fp16: the merged lanes with two ranks inside
# (after their operands and after their partial products), the accumulator's
# adder cut 16 times plus a rank on the accumulator store's read (block RAM on iCE40), 19
# dot products interleaved; exact: the accumulator added in two
# halves. Both: ranks that never stall (no enable fanning out to every register), results
# queued in a 32-entry output FIFO (the credit mode of hdl.pipeline).
FAST_FP16 = {"slots": 19, "acc_stages": 17, "lane_stages": 2, "out_depth": 32}
FAST_EXACT = {"acc_stages": 1, "lane_stages": 2, "out_depth": 32}
# The cascaded FP16 baseline with the same treatment: every multiplier and tree adder cut at
# each of its 16 register points, the accumulator as the fp16 unit's (17 ranks, 19 slots), a
# FIFO.
FAST_FP16_CASCADED = {"slots": 19, "acc_stages": 17, "mul_stages": 16, "add_stages": 16,
                      "out_depth": 32}
# The fused FP16 baseline with the same treatment: a rank inside every significand
# multiplier and every alignment shift, the beat rounder cut 3 times, the accumulator as the
# fp16 unit's (17 ranks, 19 slots), a FIFO.
FAST_FP16_FUSED = {"slots": 19, "acc_stages": 17, "mul_stages": 2, "align_stages": 1,
                   "rounder_stages": 15, "out_depth": 32}

# The training engine ``make train-rtl`` runs and ``make synth`` measures: 4 dot units of 8
# lanes (32 MACs per cycle) with the fast fp16 pipeline at 16 slots (a 14-rank accumulator
# adder: a batch of 32 fills two row groups exactly), 512-word A and 256-word B banks (every
# layer of the study's MLP in one tile), and 32-result FIFOs (LUT RAM on ECP5: a 64-deep one
# went to block RAM, whose 5.6 ns read set the clock at 110 MHz; measured with make synth's
# flow); one-beat dot products (K <= lanes) then run at about 28 / 40 of full rate.
ENGINE = {"rows": 4, "lanes": 8, "slots": 16, "acc_stages": 14, "lane_stages": 2,
          "out_depth": 32, "a_depth": 512, "b_depth": 256}

UNITS = [
    Int4MulLane,
    FP4ShiftLane,
    # The rounder alone, sized like a dot-product normalizer (41-bit signed sum, 10-bit exp).
    partial(FP16Rounder, 41, 10, signed=True),
    FP16AddCore,
    FP16MulCore,
    FP16Adder,
    FP16Multiplier,
    DotProduct,                           # dot8_fp16: the paper's datapath
    partial(DotProduct, 8, "exact"),
    partial(DotProduct, 8, "fp16", **FAST_FP16),     # dot8_fp16_s19_a17_l2_q32
    partial(DotProduct, 8, "exact", **FAST_EXACT),   # dot8_exact_a1_l2_q32
    FP16DotProduct,                       # fp16_dot8: the FP16 baseline of the density ratio
    partial(FP16DotProduct, 8, **FAST_FP16_CASCADED),   # fp16_dot8_s19_a17_m16_t16_q32
    FusedFP16DotProduct,                  # fused_fp16_dot8
    partial(FusedFP16DotProduct, 8, **FAST_FP16_FUSED),  # fused_fp16_dot8_s19_a17_m2_g1_r15_q32
    Int8DotProduct,                       # int8_dot8: the INT8 baseline
    partial(Int8DotProduct, 8, tree_stages=True),       # int8_dot8_t: a rank per tree level
    RangeRescale,                         # rescale1_int4_rne
    partial(RangeRescale, rounding="stochastic", r_bits=8),
    LogConverter,                         # fp16_to_fp4_x1_g6
    FP4Decoder,                           # fp4_to_fp16_x1_g6
    RangeTracker,                         # range_tracker_x1_g6
    partial(TrainingEngine, **ENGINE),    # engine4x8_fp16_s16_q32_a512_b256
]
