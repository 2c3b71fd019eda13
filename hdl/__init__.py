"""Amaranth 0.5 hardware for the 4-bit training datapath. Every unit is a ``wiring.Component``
with a datasheet docstring, a ``latency`` and a ``module_name`` carrying its parameters."""

from .lanes import FP4ShiftLane, Int4MulLane

__all__ = ["Int4MulLane", "FP4ShiftLane"]
