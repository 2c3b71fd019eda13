"""Formal proofs (``verif/formal/*.py``: converters, MAC datapath) with
SymbiYosys, on the yowasp builds of sby / yosys / yosys-smtbmc in the venv and z3.

The harnesses are the ``HARNESSES`` tables of the modules in ``verif/formal``. Each one is
converted to RTLIL by Amaranth (its ``Assert``/``Assume`` become ``$check``
cells, which yosys lowers to formal cells), an ``.sby`` file is written next to it under
``build/formal/<name>/`` and sby runs there; the test asserts that sby reported PASS.
Override the tools with ``SBY``, ``YOSYS``, ``SMTBMC`` (command names or paths). ``make
formal`` runs every proof; ``make test`` all but the ``LONG`` ones.
"""

import importlib
import shutil
import subprocess

import pytest
from amaranth.back import rtlil

from hdl import toolchain
from hdl.toolchain import BUILD, ROOT

FORMAL_SRC = ROOT / "verif" / "formal"


def _harnesses(kind="HARNESSES"):
    """Every ``HARNESSES`` (or ``MUTANTS``) table of the modules in ``verif/formal``."""
    table = {}
    for path in sorted(FORMAL_SRC.glob("*.py")):
        module = importlib.import_module(f"formal.{path.stem}")   # verif/ is on sys.path
        for name, entry in getattr(module, kind, {}).items():
            if name in table:
                raise ValueError(f"formal harness {name!r} is defined twice ({path.name})")
            table[name] = entry
    return table


HARNESSES = _harnesses()
# Deliberately broken variants of some harnesses: the prover must refute each, which shows
# that the assumptions of the real harnesses do not make their properties vacuous.
MUTANTS = _harnesses("MUTANTS")

FORMAL = BUILD / "formal"

SBY_TEMPLATE = """\
[options]
mode {mode}
depth {depth}

[engines]
smtbmc z3

[script]
read_rtlil {name}.il
prep -flatten -top top

[files]
{name}.il
"""


def _run_sby(name, factory, mode, depth):
    """Write the harness and its .sby under build/formal/<name>/, run sby, return stdout."""
    env = toolchain.tool_env()
    if toolchain.z3(env) is None:
        pytest.fail("z3 not found: apt-get install z3, or pip install z3-solver")
    work = FORMAL / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / f"{name}.il").write_text(rtlil.convert(factory(), name="top", emit_src=False))
    (work / f"{name}.sby").write_text(SBY_TEMPLATE.format(mode=mode, depth=depth, name=name))
    cmd = [toolchain.tool("sby"), "-f", f"{name}.sby", "--yosys", toolchain.tool("yosys"),
           "--smtbmc", toolchain.tool("smtbmc")]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    (work / "sby.log").write_text(run.stdout + run.stderr)
    return run


# Proofs that take minutes: ``make formal`` runs them, ``make test`` leaves them out
# (``-m "not long"``). The monotonicity of the whole int4 rescale, multiplier included
# (the rounding step alone is proved monotone for every format in ``make test``).
LONG = {"rescale_int4_rne_monotone"}
# The proofs of make test that take half a minute: scheduled first (conftest.py), so that
# none of them is the last test of a run with the other worker idle.
SLOW = {"rescale_round_int4_sr8_monotone"}


def _param(name):
    marks = [pytest.mark.long] if name in LONG else []
    marks += [pytest.mark.slow] if name in SLOW else []
    return pytest.param(name, marks=marks)


@pytest.mark.parametrize("name", [_param(n) for n in sorted(HARNESSES)])
def test_formal(name):
    run = _run_sby(name, *HARNESSES[name])
    summary = [line for line in run.stdout.splitlines() if "summary" in line or "DONE" in line]
    assert run.returncode == 0 and "DONE (PASS" in run.stdout, \
        f"{name}: sby did not pass (log: build/formal/{name}/sby.log):\n" \
        + "\n".join(summary[-12:])


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_formal_mutant_fails(name):
    run = _run_sby(name, *MUTANTS[name])
    assert "DONE (FAIL" in run.stdout, \
        f"{name}: the broken harness was not refuted (log: build/formal/{name}/sby.log)"
