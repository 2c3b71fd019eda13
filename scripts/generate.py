"""The generator: Verilog and a JSON datasheet for any registered unit class with any valid
parameters (``make verilog UNIT=... PARAMS=...``).

    python -m scripts.generate DotProduct lanes=32 accumulator=exact [--out build/verilog]
    python -m scripts.generate --list

Writes ``<module>.v`` (:func:`hdl.gen.verilog`, the text both simulators run), ``<module>.json``
(the datasheet: parameters, ports with widths and payload fields, clock and reset, latency,
throughput, the golden function that is its reference) and, beside them, the Verilator
waivers the generated text needs (``verilator_waivers.vlt``, for every ``.v`` in the
folder). Parameter values are Python literals (``lanes=32``, ``signed=True``); anything
else is a string (``accumulator=exact``). An unknown unit or parameter, or parameters the
constructor refuses, print the error and exit with status 2.
"""

import argparse
import ast
import inspect
import json
import re
import sys
from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import data, stream

from hdl.toolchain import BUILD, ROOT, TIMESCALE, VERILATOR_WAIVERS

__all__ = ["CLASSES", "GOLDEN", "datasheet", "generate", "waivers", "main"]

_PORT = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+);", re.M)


def _classes():
    from hdl import baselines, dot, engine, fp4, fp16, lanes, rescale, rounder, tracker
    return {cls.__name__: cls for cls in (
        lanes.Int4MulLane, lanes.FP4ShiftLane, rounder.FP16Rounder, fp16.FP16AddCore,
        fp16.FP16MulCore, fp16.FP16Adder, fp16.FP16Multiplier, dot.DotProduct,
        rescale.RangeRescale, fp4.LogConverter, fp4.FP4Decoder, tracker.RangeTracker,
        baselines.FP16DotProduct, baselines.FusedFP16DotProduct, baselines.Int8DotProduct,
        engine.TrainingEngine)}


#: The golden function each unit class is bit-exact with.
GOLDEN = {
    "Int4MulLane": "golden.fp4.int4_mul",
    "FP4ShiftLane": "golden.fp4.fp4_mul",
    "FP16Rounder": "golden.fp16.round_fp16",
    "FP16AddCore": "golden.fp16_add", "FP16Adder": "golden.fp16_add",
    "FP16MulCore": "golden.fp16_mul", "FP16Multiplier": "golden.fp16_mul",
    "DotProduct": "golden.dot",
    "RangeRescale": "golden.rescale",
    "LogConverter": "golden.to_fp4",
    "FP4Decoder": "golden.from_fp4",
    "RangeTracker": "golden.gradscale (on the tensor's max|x|)",
    "FP16DotProduct": "golden.baselines.fp16_dot",
    "FusedFP16DotProduct": "golden.baselines.fused_fp16_dot",
    "Int8DotProduct": "golden.baselines.int8_dot",
    "TrainingEngine": "golden.gemm (and golden.rescale, to_fp4, from_fp4, gradscale)",
}

CLASSES = None          # filled on first use (importing hdl is not free)


def classes():
    global CLASSES
    if CLASSES is None:
        CLASSES = _classes()
    return CLASSES


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(items):
    """``["lanes=32", "accumulator=exact"]`` -> ``{"lanes": 32, "accumulator": "exact"}``."""
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.isidentifier():
            raise ValueError(f"parameters are name=value, not {item!r}")
        out[name] = _value(value)
    return out


def _fields(layout, prefix="", offset=0):
    """Flatten a payload layout into ``[{"name", "lsb", "width", "signed"}]``."""
    if isinstance(layout, data.StructLayout):
        out = []
        for name, field in layout:
            out += _fields(field.shape, f"{prefix}{name}", offset + field.offset)
        return out
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        out = []
        for k in range(layout.length):
            out += _fields(layout.elem_shape, f"{prefix}[{k}]", offset + k * width)
        return out
    s = Shape.cast(layout)
    return [{"name": prefix, "lsb": offset, "width": s.width, "signed": s.signed}]


def _ports(unit, text):
    """Ports of the top module (from the Verilog) with the payload fields of stream ports."""
    start = re.search(rf"^module {re.escape(unit.module_name)}\(", text, re.M)
    body = text[start.end():text.index("endmodule", start.end())]
    members = dict(unit.signature.members.items())
    out = []
    for kind, hi, lo, name in _PORT.findall(body):
        port = {"name": name, "direction": kind, "width": int(hi) - int(lo) + 1 if hi else 1}
        base, _, leaf = name.partition("__")
        member = members.get(base)
        if member is not None and member.is_signature and leaf == "payload":
            sig = member.signature
            if isinstance(sig, stream.Signature):
                port["fields"] = _fields(sig.members["payload"].shape)
        elif member is not None and member.is_port and not leaf:
            shape = member.shape
            if isinstance(shape, data.Layout):
                port["fields"] = _fields(shape)
        if name == "clk":
            port["meaning"] = "clock, rising edge"
        elif name == "rst":
            port["meaning"] = "reset, synchronous, active high"
        out.append(port)
    return out


def _parameters(cls, params):
    """Every constructor parameter: the given value, else its default."""
    sig = inspect.signature(cls.__init__)
    out = {}
    for name, p in list(sig.parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = params.get(name, p.default)
        out[name] = None if value is inspect.Parameter.empty else value
    return out


def datasheet(unit, cls, params, text):
    doc = inspect.getdoc(cls) or ""
    ports = _ports(unit, text)
    names = {p["name"] for p in ports}
    streams = sorted({p["name"].split("__")[0] for p in ports if "__valid" in p["name"]})
    latency = getattr(unit, "latency", None)
    if streams:
        throughput = ("one beat per cycle on every stream (amaranth.lib.stream valid/ready: "
                      "a beat moves when both are high at a rising edge)")
    else:
        throughput = "combinational: a result for every input, no clock"
    return {
        "module": unit.module_name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "summary": doc.split("\n\n")[0].replace("\n", " "),
        "parameters": _parameters(cls, params),
        "clock": "clk, rising edge" if "clk" in names else None,
        "reset": "rst, synchronous, active high" if "rst" in names else None,
        "latency": latency,
        "latency_meaning": ("cycles from the transfer of the beat that completes a result "
                            "to the transfer of that result" if streams and latency else
                            "register ranks" if latency else "combinational"),
        "throughput": throughput,
        "streams": streams,
        "ports": ports,
        "golden": GOLDEN.get(cls.__name__),
        "timescale": "/".join(TIMESCALE),
        "payload_bit_order": "fields from the LSB in declaration order; array element 0 lowest",
    }


def waivers(out):
    """``verilator_waivers.vlt`` in ``out`` for every generated ``.v`` there: the project's
    waivers (``verif/verilator_waivers.vlt``), applied to those files by name."""
    text = Path(VERILATOR_WAIVERS).read_text()
    rules = [line for line in text.splitlines() if line.startswith("lint_off")]
    lines = ["`verilator_config",
             "// Waivers for the Verilog that fourbit-train generates (scripts/generate.py):",
             "// the project's own (verif/verilator_waivers.vlt, reasons there), by file name.",
             "// Pass this file first on the verilator command line."]
    for v in sorted(Path(out).glob("*.v")):
        for rule in rules:
            lines.append(rule.replace('"*build/*"', f'"*/{v.name}"'))
    path = Path(out) / "verilator_waivers.vlt"
    path.write_text("\n".join(lines) + "\n")
    return path


def generate(name, params, out=BUILD / "verilog"):
    """Elaborate ``name(**params)``; write its Verilog, datasheet and the folder's waivers.
    Returns ``(verilog path, datasheet dict)``; raises ``KeyError`` for an unknown class and
    whatever the constructor raises for bad parameters."""
    from hdl.gen import verilog
    cls = classes().get(name)
    if cls is None:
        raise KeyError(f"unknown unit {name!r}; units are: {', '.join(sorted(classes()))}")
    unit = cls(**params)
    text = verilog(unit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vpath = out / f"{unit.module_name}.v"
    vpath.write_text(text)
    sheet = datasheet(unit, cls, params, text)
    (out / f"{unit.module_name}.json").write_text(json.dumps(sheet, indent=1) + "\n")
    waivers(out)
    return vpath, sheet


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("unit", nargs="?", help="unit class, e.g. DotProduct (see --list)")
    ap.add_argument("params", nargs="*", help="constructor parameters, name=value")
    ap.add_argument("--out", type=Path, default=BUILD / "verilog")
    ap.add_argument("--list", action="store_true", help="list the unit classes")
    args = ap.parse_args(argv)
    if args.list or not args.unit:
        for name, cls in sorted(classes().items()):
            print(f"{name:<22} {str(inspect.signature(cls.__init__)).replace('self, ', '')}")
        return 0 if args.list else 2
    try:
        params = parse_params(args.params)
        vpath, sheet = generate(args.unit, params, args.out)
    except (KeyError, TypeError, ValueError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2
    rel = vpath.relative_to(ROOT) if vpath.is_relative_to(ROOT) else vpath
    print(f"{rel} ({sheet['module']}, latency {sheet['latency']}) and "
          f"{rel.with_suffix('.json').name}; golden reference: {sheet['golden']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
