"""The registry of units: what ``make`` generates Verilog for and ``make synth`` measures.

Each entry is a factory returning a fresh component with its default parameters.
"""

from .lanes import FP4ShiftLane, Int4MulLane

__all__ = ["UNITS"]

UNITS = [
    Int4MulLane,
    FP4ShiftLane,
]
