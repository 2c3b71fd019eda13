"""Amaranth 0.5 hardware for the 4-bit training datapath. Every unit is a ``wiring.Component``
with a datasheet docstring, a ``latency`` and a ``module_name`` carrying its parameters."""

from .dot import DotProduct
from .engine import TrainingEngine
from .fp4 import FP4Decoder, LogConverter
from .fp16 import FP16AddCore, FP16Adder, FP16MulCore, FP16Multiplier
from .lanes import FP4ShiftLane, Int4MulLane
from .rescale import RangeRescale
from .rounder import FP16Rounder
from .tracker import RangeTracker

__all__ = ["Int4MulLane", "FP4ShiftLane",
           "FP16Rounder", "FP16AddCore", "FP16MulCore", "FP16Adder", "FP16Multiplier",
           "DotProduct", "RangeRescale", "LogConverter", "FP4Decoder", "RangeTracker",
           "TrainingEngine"]
