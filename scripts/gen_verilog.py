#!/usr/bin/env python3
"""Generate Verilog for every unit in ``hdl.units.UNITS`` into ``build/verilog/``.

Prints one line per module: name, latency, input/output port bits, and what the unit is.
"""

import functools
import inspect
import json
import re

from hdl.gen import verilog
from hdl.toolchain import BUILD, ROOT
from hdl.units import UNITS
from scripts.generate import datasheet, waivers

PORT = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+);", re.M)


def port_bits(text, module):
    """Input and output bits of ``module`` (the top module of ``text``, not its submodules)."""
    start = re.search(rf"^module {re.escape(module)}\(", text, re.M)
    body = text[start.end():text.index("endmodule", start.end())]
    bits = {"input": 0, "output": 0}
    for kind, hi, lo, _ in PORT.findall(body):
        bits[kind] += (int(hi) - int(lo) + 1) if hi else 1
    return bits


def _given(factory):
    """The constructor arguments a registry entry passes (a class, or a ``partial``)."""
    if isinstance(factory, functools.partial):
        sig = inspect.signature(factory.func.__init__)
        return dict(sig.bind_partial(None, *factory.args, **factory.keywords).arguments,
                    self=None)
    return {}


def main(out=BUILD / "verilog"):
    out.mkdir(parents=True, exist_ok=True)
    for factory in UNITS:
        unit = factory()
        text = verilog(unit)
        path = out / f"{unit.module_name}.v"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        given = {k: v for k, v in _given(factory).items() if k != "self"}
        sheet = datasheet(unit, type(unit), given, text)
        path.with_suffix(".json").write_text(json.dumps(sheet, indent=1) + "\n")
        bits = port_bits(text, unit.module_name)
        what = (type(unit).__doc__ or "").strip().splitlines()[0]
        print(f"{unit.module_name:<28} latency {unit.latency:>2}  in {bits['input']:>4} b  "
              f"out {bits['output']:>4} b  {what}")
    waivers(out)
    print(f"{len(UNITS)} modules in {out.relative_to(ROOT)}/ (Verilog, a JSON datasheet each, "
          f"verilator_waivers.vlt)")


if __name__ == "__main__":
    main()
