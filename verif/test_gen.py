"""The Verilog the simulators run (``hdl.gen.verilog``: Amaranth's RTLIL through Yosys's
``proc``, ``opt_*``, ``opt_clean -purge`` and ``splitnets -driver``) is equivalent to Amaranth's
own ``verilog.convert`` text: Yosys's ``equiv_make`` / ``equiv_simple`` / ``equiv_induct``
prove it for units that cover every construct the project uses (lane views, pipeline ranks
with enables and reset, the rounder's split wires, a credit-mode FIFO's memory, a
multiplier's partial-product rows). Both texts are read back with ``read_verilog``, so what
is proved is the text on disk, not Yosys's internal form.
"""

import re

import pytest
from amaranth.hdl import Value
from amaranth.lib.wiring import Out

from hdl import DotProduct, FP16Adder, FP16Multiplier, FP16Rounder, RangeRescale, toolchain
from hdl.gen import verilog
from hdl.toolchain import BUILD

UNITS = {
    "fp16_mul_x2": lambda: FP16Multiplier(lanes=2),
    "fp16_add": lambda: FP16Adder(),
    "fp16_rounder_s41_e10": lambda: FP16Rounder(41, 10, signed=True),
    "rescale2_int4_rne": lambda: RangeRescale(2, "int4"),
    "dot2_exact_s4_q4": lambda: DotProduct(2, accumulator="exact", slots=4, out_depth=4),
}

SCRIPT = """\
read_verilog {side}.v
hierarchy -top {top}
proc; flatten; memory -nomap; memory_map; opt_clean
rename {top} {side}
design -stash {side}
"""


def _prove(name, component, mutate=None):
    """Run the proof under ``build/gen_equiv/<name>/``; returns ``(proved, cells, log)``:
    whether Yosys proved every ``$equiv`` cell, how many it found, and its log."""
    work = BUILD / "gen_equiv" / name
    work.mkdir(parents=True, exist_ok=True)
    top = component.module_name
    gate = verilog(component)
    (work / "gold.v").write_text(verilog(component, raw=True))
    (work / "gate.v").write_text(mutate(gate) if mutate else gate)
    script = (SCRIPT.format(side="gold", top=top) + SCRIPT.format(side="gate", top=top)
              + "design -copy-from gold -as gold gold\n"
              + "design -copy-from gate -as gate gate\n"
              + "equiv_make gold gate equiv\nhierarchy -top equiv\n"
              + "equiv_simple -seq 2\nequiv_induct -seq 2\nequiv_status -assert\n")
    (work / "equiv.ys").write_text(script)
    run = toolchain.yosys(work, "-l", "equiv.log", "-s", "equiv.ys")
    log = (work / "equiv.log").read_text() if (work / "equiv.log").exists() else run.stderr
    found = re.search(r"Found (\d+) \$equiv cells", log)
    proved = run.returncode == 0 and "Equivalence successfully proven!" in log
    return proved, int(found.group(1)) if found else 0, log


@pytest.mark.parametrize("name", sorted(UNITS))
def test_equivalent(name):
    component = UNITS[name]()
    assert component.module_name == name
    proved, cells, log = _prove(name, component)
    assert proved, f"{name}: not proved equivalent (build/gen_equiv/{name}/equiv.log):\n" \
        + log[-1500:]
    # One $equiv cell per matched bit, the output ports' bits among them.
    outputs = sum(len(Value.cast(value)) for _, member, value
                  in component.signature.flatten(component) if member.flow == Out)
    assert cells >= outputs > 0


def test_broken_copy_is_refuted():
    """One operator changed in the cleaned text (an AND made an OR): the proof must fail,
    which shows that it compares the two texts' logic and not only their names."""
    def mutate(text):
        line = next(ln for ln in text.splitlines() if ln.lstrip().startswith("assign")
                    and " & " in ln)
        return text.replace(line, line.replace(" & ", " | ", 1), 1)
    proved, cells, _ = _prove("fp16_mul_x2_broken", FP16Multiplier(lanes=2), mutate)
    assert cells > 0 and not proved
