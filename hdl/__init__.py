"""Amaranth 0.5 hardware for the 4-bit training datapath. Every unit is a ``wiring.Component``
with a datasheet docstring, a ``latency`` and a ``module_name`` carrying its parameters."""

from .converters import FP4Decoder, LogConverter, RangeRescale, RangeTracker
from .dot import DotProduct
from .fp16 import FP16AddCore, FP16Adder, FP16MulCore, FP16Multiplier
from .lanes import FP4ShiftLane, Int4MulLane
from .rounder import FP16Rounder

__all__ = ["Int4MulLane", "FP4ShiftLane",
           "FP16Rounder", "FP16AddCore", "FP16MulCore", "FP16Adder", "FP16Multiplier",
           "DotProduct", "RangeRescale", "LogConverter", "FP4Decoder", "RangeTracker"]
