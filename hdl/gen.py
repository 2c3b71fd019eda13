"""Verilog generation: one place that turns a component into clean, diffable Verilog."""

from amaranth.back import verilog as _verilog

__all__ = ["verilog"]


def verilog(component, name=None):
    """Verilog text for ``component``; the module is named ``name`` or ``component.module_name``.

    Emitted with ``emit_src=False`` so that the text does not change when Python line numbers
    do, and the simulators' build caches stay valid.
    """
    name = name or component.module_name
    return _verilog.convert(component, name=name, emit_src=False)
