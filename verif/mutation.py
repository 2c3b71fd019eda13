"""Mutation score of the benches: how many injected faults does a unit's own bench catch?

    make mutate                     # every unit of UNITS, MUTANTS each
    PYTHONPATH=.:verif .venv/bin/python -m mutation [--units log_converter] [--mutants 200]

For each unit of :data:`UNITS`:

1. Its Verilog (:func:`hdl.gen.verilog`, what the benches simulate) goes through Yosys
   ``prep -flatten`` (every lane and every instance its own cells) and ``mutate -list N -seed
   S`` picks ``N`` faults spread over the netlist: an input or output bit of one cell
   inverted, tied to 0 or 1, or replaced by a neighbouring bit.
2. All of them go into **one** design, each enabled by its own value of a ``mutsel`` input
   (``mutate -ctrl``; 0 is the original). A wrapper with the unit's own module name and
   ports sets ``mutsel`` from the ``+MUTSEL=`` plusarg and ends the simulation after
   ``+MUTCAP=`` clock cycles (a mutant that stalls a stream would otherwise hang its bench).
   The design is built once per worker (Verilator; :data:`WORKERS` in parallel).
3. Mutant 0 runs first: the bench must pass on it with the unit's expected vector count, and
   its cycle count sets the cap (``CAP_FACTOR`` times it). Then every mutant runs under the
   unit's bench, configured exactly as ``make test`` runs it (the same cocotb tests,
   parameters and vector count), failing at its first mismatch (``FOURBIT_FAIL_FAST``).

A mutant is

- ``killed``: the bench ran at least one cocotb test and failed: a mismatch, a failed test,
  a vector count other than the expected one, or the cycle cap;
- ``equivalent``: its netlist is the original's (``unchanged``: the mutation ties a bit to
  the constant it already is, such as a register's reset value 0 to 0; not simulated), or
  the bench passed and Yosys shows it equal to the original (:func:`equivalent`): two
  copies of the design, ``mutsel = 0`` and ``mutsel = k``, the same inputs, every output
  equal -- for
  every input of a combinational unit (``proved``); for a clocked one from reset in the
  first cycle for ``depth`` cycles (by default the unit's latency + 3: two beats through;
  ``bounded`` in the report), a stream's payload only while its ``valid`` is high, since a
  receiver ignores it otherwise. A mutation
  inside a submodule instance that is a feed-forward pipeline (no loop through its
  registers, no memory: a rounder, an fp16 adder core) is checked on that instance alone
  first, with free inputs, every output in every cycle, for its latency + 3 cycles
  (``local``): equal there means equal in the unit, and the check is far smaller (every
  such instance the mutation lies in, the innermost first: :func:`local_paths`); and
  before the bounded check, a proof by induction on the whole unit (``induction``: every
  signal paired by name agrees in every reachable state; :func:`_equal_everywhere`), and
  ABC's sequential equivalence prover on the whole unit (``abc``: every output equal in
  every cycle of every legal run; :func:`_abc`), whose BMC runs the bounded check first. The
  whole-unit checks assume what a legal source does: it holds an offered beat until it
  is taken (rule 2 of ``amaranth.lib.stream``), and a valid payload keeps to its declared
  ranges (:func:`_input_contract`: the interleaved dot unit's ``slot``, declared
  ``range(19)`` in 5 bits, never carries 19 .. 31);
- ``missed``: the bench passed and the check found inputs on which an output differs (a
  hole in the bench), or could not decide within its time limit (``undecided`` in the
  report; counted against the bench, never for it);
- ``error``: the flow could not build or run it. Never counted as a kill: a unit with errors
  fails ``make mutate``.

The score is ``killed / (mutants - equivalent - errors)``. Reports:
``build/reports/mutation.{json,md}``: ``{"seed", "units": [{"unit", "mutants", "killed",
"equivalent", "unchanged", "bounded", "local", "induction", "abc", "missed", "undecided",
"errors", "score", "target", "check_seconds", "seconds", "missed_list"}]}``. The verdicts
are kept in the unit's work directory (``outcomes.json``, keyed by the design, the bench's
sources and its configuration; ``proofs.json``, keyed by the design, an undecided verdict
with its time limit: :func:`kept_proofs`): an interrupted run resumes where it stopped.
"""

import argparse
import hashlib
import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import Fragment
from amaranth.lib import data

from hdl import (
    DotProduct,
    FP4Decoder,
    FP4ShiftLane,
    FP16Adder,
    FP16Multiplier,
    Int4MulLane,
    LogConverter,
    RangeRescale,
    RangeTracker,
    toolchain,
)
from hdl.gen import verilog
from hdl.toolchain import BUILD, REPORTS

from harness import bench

SEED = 1
MUTANTS = 200
WORKERS = 2                    # simulations at once (this machine has two cores)
SEL_BITS = 16                  # width of mutsel: up to 65535 mutants
CAP_FACTOR = 4                 # cycle cap: this many times the original's cycles, plus CAP_SLACK
CAP_SLACK = 2000
EQUIV_SECONDS = 150            # time limit of one equivalence check (wall clock)
INDUCT_STEPS = 2               # cycles of the induction (:func:`_equal_everywhere`)
INDUCT_ROUNDS = 8              # rounds of dropping unproven pairs (:func:`_equal_everywhere`)
INDUCT_FACTOR = 3              # the induction's time limit, in equivalence checks' limits
# Verilator flags of the mutant design: lint is the unit's own business (its clean build is
# linted in make test), and a mutant that feeds a bit back into its own cone is not a loop
# while it is disabled.
BUILD_ARGS = ("-Wno-lint", "-Wno-UNOPTFLAT")


@dataclass
class Target:
    """A unit under mutation and its bench as ``make test`` configures it (the pytest test
    that runs the same configuration is named in ``test``)."""
    make: object                       # () -> component
    tb: str                            # cocotb test module
    test: str                          # the pytest test with this configuration
    params: dict = field(default_factory=dict)
    cocotb_filter: str | None = None
    expect_vectors: int | None = None  # None: the bench's scoreboards assert their counts
    target: float = 1.0                # the score target
    depth: int | None = None           # cycles of the bounded equivalence check (None:
                                       # the unit's latency + 3)


def _targets():
    """:data:`UNITS`, built lazily: the test modules hold the configurations."""
    import test_converters as tc
    import test_engine as te
    import test_fp16 as tf
    import test_interleave as ti
    import test_rounder as tr
    from engine_driver import engine_of

    fp16 = {"lanes": tf.LANES, "n_random": tf.N_RANDOM, "n_stream": tf.N_STREAM}
    fp16_vectors = tf.expected_vectors()
    L = tc.LANES
    fast = dict(zip(("lanes", "accumulator", "slots", "acc_stages", "lane_stages",
                     "out_depth"), ti.CONFIGS[0]))
    return {
        "int4_mul_lane": Target(Int4MulLane, "tb_lanes", "test_lanes.py::test_int4_mul_lane",
                                cocotb_filter="int4_mul_lane_exhaustive", expect_vectors=1024,
                                depth=1),
        "fp4_shift_lane": Target(FP4ShiftLane, "tb_lanes",
                                 "test_lanes.py::test_fp4_shift_lane",
                                 cocotb_filter="fp4_shift_lane_exhaustive", expect_vectors=512,
                                 depth=1),
        "fp16_rounder": Target(tr.RounderBank, "tb_rounder", "test_rounder.py::test_rounder",
                               {"configs": tr.CONFIGS, "lanes": tr.LANES},
                               expect_vectors=tr.expected_vectors(tr.CONFIGS, tr.LANES),
                               depth=8),
        "fp16_add": Target(lambda: FP16Adder(lanes=tf.LANES), "tb_fp16",
                           "test_fp16.py::test_fp16_unit[add]", {"op": "add", **fp16},
                           expect_vectors=fp16_vectors),
        "fp16_mul": Target(lambda: FP16Multiplier(lanes=tf.LANES), "tb_fp16",
                           "test_fp16.py::test_fp16_unit[mul]", {"op": "mul", **fp16},
                           expect_vectors=fp16_vectors),
        "log_converter": Target(lambda: LogConverter(lanes=L, g_bits=6), "tb_converters",
                                "test_converters.py::test_log_converter",
                                {"lanes": L, "g_bits": 6},
                                cocotb_filter="log_converter_exhaustive",
                                expect_vectors=tc.vectors(len(tc.log_gs(6)) * 2
                                                          * tc.sweep_beats(L), L)),
        "rescale_int4_sym": Target(lambda: RangeRescale(lanes=L, fmt="int4_sym"),
                                   "tb_converters", "test_converters.py::test_rescale_rne",
                                   {"lanes": L, "fmt": "int4_sym", "rounding": "rne",
                                    "r_bits": 0},
                                   cocotb_filter="rescale_exhaustive",
                                   expect_vectors=tc.vectors(tc.rescale_beats(L), L)),
        "fp4_decoder": Target(lambda: FP4Decoder(lanes=16, g_bits=6), "tb_converters",
                              "test_converters.py::test_fp4_decoder",
                              {"lanes": 16, "g_bits": 6}, cocotb_filter="decoder_exhaustive",
                              expect_vectors=tc.vectors((1 << 6) * 2, 16)),
        "range_tracker": Target(lambda: RangeTracker(lanes=16, g_bits=6), "tb_converters",
                                "test_converters.py::test_range_tracker",
                                {"lanes": 16, "g_bits": 6},
                                cocotb_filter="tracker_tensors_test",
                                expect_vectors=tc.vectors(tc.tracker_tensor_count(16))),
        "dot8_fp16": Target(lambda: DotProduct(8, "fp16"), "tb_dot",
                            "test_dot.py::test_dot[8-fp16]",
                            {"lanes": 8, "accumulator": "fp16"}, target=0.99),
        "dot8_exact": Target(lambda: DotProduct(8, "exact"), "tb_dot",
                             "test_dot.py::test_dot[8-exact]",
                             {"lanes": 8, "accumulator": "exact"}, target=0.99),
        "dot8_fp16_interleaved": Target(
            lambda: DotProduct(**fast), "tb_interleave",
            f"test_interleave.py::test_interleave[{'-'.join(map(str, ti.CONFIGS[0]))}]", fast,
            target=0.99,
            depth=48),
        "engine": Target(lambda: engine_of(te.SMALL), "tb_engine",
                         "test_engine.py::test_engine[fp16-verilator]", te.SMALL,
                         target=0.99, depth=32),
    }


UNITS = ("int4_mul_lane", "fp4_shift_lane", "fp16_rounder", "fp16_add", "fp16_mul",
         "log_converter", "rescale_int4_sym", "fp4_decoder", "range_tracker",
         "dot8_fp16", "dot8_exact", "dot8_fp16_interleaved", "engine")


def target(name):
    t = _targets()
    if name not in t:
        raise SystemExit(f"unknown unit {name!r}; choose from {', '.join(UNITS)}")
    return t[name]


def _yosys(work, *args):
    """:func:`hdl.toolchain.yosys`, raising on failure."""
    r = toolchain.yosys(work, *args)
    if r.returncode:
        raise RuntimeError(f"yosys in {work}: {(r.stderr or r.stdout).strip()[-800:]}")
    return r


@dataclass
class MutantDesign:
    """One unit's mutants in one design (:func:`build_design`)."""
    unit: object
    work: Path
    descriptions: list                 # descriptions[k - 1]: mutant k
    ports: dict                        # name -> (direction, width), from Yosys
    text: str                          # the wrapper and the mutated design, Verilog
    lines: list = field(default_factory=list)   # lines[k - 1]: mutant k's mutate command
    unchanged: frozenset = frozenset()  # mutants that tie a bit to the constant it already is

    @property
    def top(self):
        return self.unit.module_name

    def __len__(self):
        return len(self.descriptions)


def build_design(unit, n, seed=SEED, work=None):
    """Pick ``n`` mutations of ``unit`` (fewer when the netlist has fewer candidates; the
    same fault once) and write them into one selectable design under ``work``."""
    top = unit.module_name
    work = Path(work or BUILD / "mutate" / top)
    # Kept between runs: the simulators' builds there are reused when the design is the same
    # (harness.bench keys them by the Verilog text).
    work.mkdir(parents=True, exist_ok=True)
    (work / "unit.v").write_text(verilog(unit))
    _yosys(work, "-p", f"read_verilog unit.v; prep -flatten -top {top}; write_json ports.json; "
                       f"mutate -list {n} -seed {seed} -o list.ys")
    lines = list(dict.fromkeys(ln for ln in (work / "list.ys").read_text().splitlines()
                               if ln.startswith("mutate ")))
    script = ["read_verilog unit.v", f"prep -flatten -top {top}",
              *(f"{ln} -ctrl mutsel {SEL_BITS} {k}" for k, ln in enumerate(lines, 1)),
              "opt_clean", "splitnets -driver", f"rename {top} {top}__mut",
              "write_verilog -noattr mut.v"]
    (work / "apply.ys").write_text("\n".join(script) + "\n")
    _yosys(work, "-s", "apply.ys")
    netlist = json.loads((work / "ports.json").read_text())["modules"][top]
    ports = {name: (p["direction"], len(p["bits"])) for name, p in netlist["ports"].items()}
    same = frozenset(k for k, ln in enumerate(lines, 1) if _ties_a_constant(netlist["cells"], ln))
    mutated = (work / "mut.v").read_text()
    # The selector and its decoders, left unpaired by the induction (_equal_everywhere).
    (work / "selector.txt").write_text("".join(f"u.{n}\n" for n in _selector_names(mutated)))
    text = mutated + "\n" + _wrapper(top, ports)
    (work / "mutants.v").write_text(text)
    return MutantDesign(unit, work, [_describe(ln) for ln in lines], ports, text, lines, same)


def _options(line):
    words = line.split()
    return {words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("-")}


def _ties_a_constant(cells, line):
    """Whether the ``mutate`` command ``line`` ties a cell's input bit to the constant that
    bit already is (``const0`` on a ``0``: the reset value of ``rst ? 0 : d``, the zero fill
    of a shift): the mutant is the original, netlist for netlist. ``cells``: the flattened
    unit's cells, as Yosys's ``write_json`` lists them."""
    opt = _options(line)
    mode = opt.get("-mode")
    if mode not in ("const0", "const1"):
        return False
    cell = cells.get(opt.get("-cell"), {})
    bits = cell.get("connections", {}).get(opt.get("-port"), [])
    bit = int(opt.get("-portbit", -1))
    return 0 <= bit < len(bits) and bits[bit] == mode[-1]


def _decl(ports, prefix="", kind="wire"):
    return [f"  {d} {kind} {_range(w)}{prefix}{name}" for name, (d, w) in ports.items()]


def _range(width):
    return f"[{width - 1}:0] " if width > 1 else ""


def _wrapper(top, ports):
    """The module ``top`` with the unit's ports: the mutated design, ``mutsel`` from
    ``+MUTSEL=``, the cycle cap from ``+MUTCAP=`` and the cycle count at the end."""
    conn = [f"    .{name}({name})" for name in ports] + ["    .mutsel(mutsel)"]
    out = [f"module {top}(", ",\n".join(_decl(ports)), ");",
           f"  reg [{SEL_BITS - 1}:0] mutsel;",
           '  initial if (!$value$plusargs("MUTSEL=%d", mutsel)) mutsel = 0;',
           f"  {top}__mut mutant (", ",\n".join(conn), "  );"]
    if "clk" in ports:
        out += ["  reg [31:0] cycles = 0;",
                "  reg [31:0] cap = 0;",
                '  initial if (!$value$plusargs("MUTCAP=%d", cap)) cap = 0;',
                "  always @(posedge clk) begin",
                "    cycles <= cycles + 1;",
                "    if (cap != 0 && cycles == cap) begin",
                '      $display("MUTCAP reached after %0d cycles", cycles);',
                "      $finish;",
                "    end",
                "  end",
                '  final $display("MUTCYCLES %0d", cycles);']
    return "\n".join(out + ["endmodule", ""])


def _describe(line):
    """A short name of a ``mutate`` line: mode, cell, port bit, wire."""
    opt = _options(line)
    return (f"{opt.get('-mode')} {opt.get('-cell', '?')} {opt.get('-port', '')}"
            f"[{opt.get('-portbit', '')}] wire {opt.get('-wire', '?')}"
            f"[{opt.get('-wirebit', '')}]")


def run_mutant(name, design, k, worker=0, cap=0, fail_fast=True):
    """Run the unit's bench on mutant ``k`` (0: the original) in worker ``worker``'s build:
    the record of :func:`harness.bench` (``passed``, ``cocotb_tests``, ...) plus ``cycles``
    (``None`` when the simulation left no count)."""
    t = target(name)
    env = {**({"COCOTB_TEST_FILTER": t.cocotb_filter} if t.cocotb_filter else {}),
           # the first mismatch ends its test, and the first failed test the run
           **({"FOURBIT_FAIL_FAST": "1", "COCOTB_MAX_FAILURES": "1"} if fail_fast else {})}
    build_dir = design.work / f"sim{worker}"
    rec = bench(design.unit, t.tb, "verilator", t.params, verilog=design.text,
                build_dir=build_dir, extra_env=env, expect_vectors=t.expect_vectors,
                plusargs=[f"+MUTSEL={k}", f"+MUTCAP={cap}"], build_args=BUILD_ARGS)
    log = (build_dir / "sim.log").read_text(errors="replace")
    m = re.findall(r"MUTCYCLES (\d+)", log)
    rec["cycles"] = int(m[-1]) if m else None
    rec["capped"] = "MUTCAP reached" in log
    return rec


def classify(name, design, k, worker=0, cap=0):
    """``"killed"``, ``"survived"`` or ``"error"`` for mutant ``k``."""
    try:
        rec = run_mutant(name, design, k, worker, cap)
    except Exception:                                    # noqa: BLE001 - build or run error
        return "error"
    if rec["cocotb_tests"] == 0:
        return "error"
    return "survived" if rec["passed"] else "killed"


def _held_offers(ports, ready="{}__ready"):
    """Verilog assumptions that the sources of the unit's input streams follow rule 2 of
    ``amaranth.lib.stream``: once ``valid`` is asserted, it stays asserted and ``payload``
    unchanged until the transfer (``valid & ready``). A check without them would count a
    mutant that reads an offered, not yet taken payload (the same beat, under the rule) as
    a difference no legal source can show. ``ready``: the name of stream ``{}``'s ready
    signal where the assumptions are placed."""
    if "clk" not in ports:
        return []
    lines = []
    for name, (d, _) in ports.items():
        p = name[:-len("__valid")] if name.endswith("__valid") else None
        if (p is None or d != "input" or ports.get(f"{p}__ready", ("",))[0] != "output"
                or f"{p}__payload" not in ports):
            continue
        width = ports[f"{p}__payload"][1]
        lines += [f"  reg {p}__waits = 1'b0;", f"  reg {_range(width)}{p}__held;",
                  f"  always @(posedge clk) begin {p}__waits <= {p}__valid && "
                  f"!{ready.format(p)}; "
                  f"{p}__held <= {p}__payload; end",
                  f"  always @* if ({p}__waits) assume({p}__valid && "
                  f"{p}__payload == {p}__held);"]
    return lines


def _payload_ranges(layout, offset=0):
    """``(offset, width, range)`` of every field of ``layout`` (nested layouts included)
    declared as a ``range`` (a slot number: ``range(slots)``)."""
    if not isinstance(layout, data.Layout):
        return
    for _, fld in layout:
        if isinstance(fld.shape, range):
            yield offset + fld.offset, fld.width, fld.shape
        elif isinstance(fld.shape, data.Layout):
            yield from _payload_ranges(fld.shape, offset + fld.offset)


def _input_contract(design):
    """Verilog assumptions that an input stream's payload keeps to its declared ranges
    while its ``valid`` is high: a field declared ``range(19)`` (a slot number) carries 0
    .. 18, never the 5-bit codes 19 .. 31, which the unit's datasheet leaves undefined and
    no bench sends. A mutant that differs only on such codes is equal on every legal input
    stream; without the assumptions the checks would count it as a miss."""
    lines = []
    for name, (d, _) in design.ports.items():
        p = name[:-len("__payload")] if name.endswith("__payload") else None
        if p is None or d != "input" or f"{p}__valid" not in design.ports:
            continue
        port = design.unit
        for part in p.split("__"):
            port = getattr(port, part, None)
        payload = getattr(port, "payload", None)
        if payload is None:
            continue
        for off, w, rng in _payload_ranges(payload.shape()):
            if rng.step != 1 or (rng.start <= 0 and rng.stop >= 1 << w):
                continue
            bits = f"{name}[{off + w - 1}:{off}]"
            cond = [f"{bits} < {w}'d{rng.stop}"] + ([f"{bits} >= {w}'d{rng.start}"]
                                                     if rng.start > 0 else [])
            lines.append(f"  always @* if ({p}__valid) assume({' && '.join(cond)});")
    return lines


def _miter(design, k, streams=True, reset_first=False):
    """Verilog of the equivalence miter of mutant ``k``: the original and the mutant side
    by side; ``ok`` is low when an output differs (with ``streams``, a stream's payload
    only while its valid is high). ``reset_first``: ``rst`` high in the first cycle is an
    assumption of the miter itself (for :func:`_abc`, which has no ``-set-at``)."""
    top = design.top
    ins = {n: w for n, (d, w) in design.ports.items() if d == "input"}
    outs = {n: w for n, (d, w) in design.ports.items() if d == "output"}
    lines = [f"module miter({', '.join(ins)});",
             *(f"  input wire {_range(w)}{n};" for n, w in ins.items())]
    for side, sel in (("gold", 0), ("gate", k)):
        lines += [f"  wire {_range(w)}{side}_{n};" for n, w in outs.items()]
        conn = [f".{n}({n})" for n in ins] + [f".{n}({side}_{n})" for n in outs]
        lines.append(f"  {top}__mut {side} ({', '.join(conn)}, "
                     f".mutsel({SEL_BITS}'d{sel}));")
    terms = []
    for n in outs:
        same = f"(gold_{n} == gate_{n})"
        stream = n[:-len("__payload")] if n.endswith("__payload") else None
        if streams and stream is not None and f"{stream}__valid" in outs:
            same = f"(!gold_{stream}__valid || {same})"
        terms.append(same)
    if streams:
        lines += _held_offers(design.ports, ready="gold_{}__ready")
        lines += _input_contract(design)
    lines.append(f"  wire same = {' && '.join(terms) or '1'};")
    if "clk" in ins:
        # Checked from the cycle after the first one, in which rst is held high.
        lines += ["  reg armed = 0;", "  always @(posedge clk) armed <= 1;",
                  "  always @* if (armed) assert(same);"]
        if reset_first and "rst" in ins:
            lines.append("  always @* if (!armed) assume(rst);")
    else:
        lines.append("  always @* assert(same);")
    return "\n".join(lines + ["endmodule", ""])


@dataclass
class _Local:
    """A submodule on its own, as :func:`_miter` sees a design."""
    top: str
    ports: dict
    latency: object               # its ``latency`` property, when it has one
    pipeline: bool = True         # feed-forward: no loop through its registers, no memory


def _latency(unit, inst):
    """``latency`` of the Amaranth object elaborated as ``unit``'s submodule ``inst`` (a
    dotted path for a nested one: ``dot1.accumulator``)."""
    frag = Fragment.get(unit, None)
    for name in inst.split("."):
        frag = next((f for f, sub_name, *_ in frag.subfragments if sub_name == name), None)
        if frag is None:
            return None
    return getattr(frag.origins[0], "latency", None) if frag.origins else None


def local_paths(line):
    """The instances a ``mutate`` command's cell lies in, outermost first, as dotted paths:
    ``$flatten\\dot1.\\accumulator.$c`` lies in ``dot1`` and ``dot1.accumulator``."""
    cell = re.search(r"-cell (\S+)", line)
    found = re.match(r"\$flatten((?:\\[^.$\\]+\.)+)", cell.group(1)) if cell else None
    if found is None:
        return []
    names = [n[:-1] for n in found.group(1).split("\\") if n]
    return [".".join(names[:i]) for i in range(1, len(names) + 1)]


def local_command(line, top, sub, inst):
    """The ``mutate`` command ``line`` of the flattened unit ``top``, for the module ``sub`` of
    its instance ``inst`` (a dotted path for a nested one) flattened alone: the cell and wire
    names lose the instance's prefix, and a cell of a deeper instance keeps that instance's
    flatten prefix (``$flatten\\A.\\B.$c`` in the unit is ``$flatten\\B.$c`` in ``A`` alone)."""
    prefix = "$flatten\\" + inst.replace(".", ".\\") + "."
    return (line.replace(f"-module {top} ", f"-module {sub} ")
            .replace(prefix + "\\", "$flatten\\")
            .replace(prefix, "").replace(f"-wire {inst}.", "-wire "))


_HIERARCHY_LOCK = threading.Lock()


def _hierarchy(design):
    """The unit's modules before flattening (Yosys ``write_json`` after ``proc``), read once
    per design: ``build/mutate/<module>/hier.json``, written again when ``unit.v`` is
    newer."""
    path, unit_v = design.work / "hier.json", design.work / "unit.v"
    with _HIERARCHY_LOCK:
        if not path.exists() or path.stat().st_mtime_ns < unit_v.stat().st_mtime_ns:
            _yosys(design.work, "-p", f"read_verilog unit.v; hierarchy -top {design.top}; "
                                      "proc; write_json hier.json")
        return json.loads(path.read_text())["modules"]


def _local_design(design, k, inst=None, pipelines_only=True):
    """Mutant ``k`` applied to a submodule instance it lies in, alone (``inst``, a dotted
    path; by default the outermost, a submodule of the unit): ``(directory, _Local)``, or
    ``None`` when the mutation is not inside that instance (a cell of the top module), the
    command does not apply to it (a name the submodule's own netlist does not have), or,
    with ``pipelines_only``, the instance is not a feed-forward pipeline (a loop through its
    registers, or a memory: a window of cycles would not reach all of its states;
    ``_Local.pipeline`` says which it is)."""
    line = design.lines[k - 1] if design.lines else ""
    paths = local_paths(line)
    inst = paths[0] if inst is None and paths else inst
    if inst not in paths:
        return None
    work = design.work / (f"local{k}" if inst == paths[0] else f"local{k}_{inst}")
    work.mkdir(exist_ok=True)
    (work / "unit.v").write_text((design.work / "unit.v").read_text())
    top = design.top
    # The names of mutate -list come from the whole unit's read_verilog and proc: the same
    # passes first, then the instance's module alone, flattened and optimized as prep does.
    modules = _hierarchy(design)
    sub = top
    for name in inst.split("."):
        cells = modules.get(sub, {}).get("cells", {})
        if name not in cells:
            return None
        sub = cells[name]["type"].lstrip("\\")
    cmd = local_command(line, top, sub, inst)
    (work / "mut.v").unlink(missing_ok=True)
    script = [f"read_verilog unit.v; hierarchy -top {top}; proc; hierarchy -top {sub}",
              "flatten; opt_expr; opt_clean; opt -noff -keepdc; wreduce; opt_clean",
              "design -save base", "write_json ports.json",
              f"{cmd} -ctrl mutsel {SEL_BITS} {k}", "opt_clean", "splitnets -driver",
              f"rename {sub} local__mut", "write_verilog -noattr mut.v",
              # then the feed-forward test on the original (opt_dff rewires the flip-flops'
              # inputs): the run fails there when the instance is not a pipeline
              "design -load base", "select -assert-none t:$mem t:$mem_v2",
              "opt_dff; scc -all_cell_types -expect 0"]
    pipeline = toolchain.yosys(work, "-p", "; ".join(script)).returncode == 0
    if not (work / "mut.v").exists() or (pipelines_only and not pipeline):
        return None
    ports = {n: (p["direction"], len(p["bits"])) for n, p in
             json.loads((work / "ports.json").read_text())["modules"][sub]["ports"].items()}
    return work, _Local("local", ports, _latency(design.unit, inst), pipeline)


def _load(miter):
    """The Yosys commands that read the miter ``miter`` and the mutant design, flattened, the
    formal statements as cells, the memories' read ports without their registers."""
    return (f"read_verilog mut.v; read_verilog -formal {miter}; hierarchy -top miter; proc; "
            "chformal -lower; flatten; memory -nordff")


def _sat(work, miter, seq, timeout):
    """Run the miter's SAT check in ``work``: ``True`` (no difference), ``False`` (one
    found), ``None`` (not decided within ``timeout`` seconds)."""
    script = f"{_load(miter)}; opt; opt_clean; sat -verify -prove-asserts -set-assumes {seq}"
    try:
        r = toolchain.yosys(work, "-p", script, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode == 0:
        return True
    if "proof did fail" in (r.stdout or "") + (r.stderr or ""):
        return False
    if "wasm" in (r.stderr or "").lower():
        # Yosys (WebAssembly) ran out of its 4 GiB or trapped: the check did not decide.
        return None
    raise RuntimeError(f"the equivalence check in {work} failed: {r.stderr.strip()[-800:]}")


# The design ABC's commands run on from inside Yosys's abc pass (YoWASP has no yosys-abc):
# the pass maps it, then the script reads the miter's AIGER in its place.
ABC_HOST = "module abc_host(input a, input b, output y);\n  assign y = a & b;\nendmodule\n"


def _abc(work, miter, timeout, bound=None):
    """ABC on the miter ``miter`` in ``work`` (written with ``reset_first``): ``True``
    when no output differs in any cycle of any run (``fold; dprove``: the assumptions folded
    into the property as constraints that must have held in every cycle so far, then
    ABC's sequential equivalence prover: signal correspondence by induction, fraiging,
    BMC and PDR), or within ``bound`` cycles (``bmc3``); ``False`` when ABC found a
    difference; ``None`` when it did not decide within ``timeout`` seconds.

    The miter goes through the same passes as :func:`_sat` (flattened, memories as
    flip-flops), every flip-flop starting at 0 (``-set-init-zero`` there), then to AIGER
    (asserts as bad states, assumptions as constraints). ABC's own output does not reach the
    log under WASI: its verdict comes back through ``write_status``."""
    stem = Path(miter).stem
    aig, status = work / f"{stem}.aig", work / f"{stem}.status"
    status.unlink(missing_ok=True)
    (work / "abc_host.v").write_text(ABC_HOST)
    engine = "dprove" if bound is None else f"bmc3 -F {bound}"
    # The AIGER of this very miter, when an earlier call wrote it (dprove, then bmc3), is kept.
    # (setundef once more after the mapping: memory_map and techmap leave x constants, which
    # AIGER cannot hold; both sides get the same zeros)
    fresh = aig.exists() and aig.stat().st_mtime_ns > (work / miter).stat().st_mtime_ns
    convert = "" if fresh else (
        f"{_load(miter)}; memory_map; opt; setundef -zero -init; async2sync; techmap; "
        "opt -fast; setundef -zero; dffunmap; aigmap; opt_clean; "
        f"write_aiger -zinit {aig.name}; design -reset; ")
    script = (f"{convert}read_verilog abc_host.v; synth -top abc_host; abc -script "
              f"\"+read_aiger {aig.name}; fold; {engine}; write_status {status.name}\"")
    try:
        r = toolchain.yosys(work, "-p", script, timeout=timeout)
    except subprocess.TimeoutExpired:
        if not fresh:
            aig.unlink(missing_ok=True)     # perhaps cut while it was being written
        return None
    if not aig.exists() or not aig.stat().st_size:
        raise RuntimeError(f"the AIGER miter in {work} failed: {r.stderr.strip()[-800:]}")
    if not status.exists():
        return None                     # ABC trapped (WebAssembly) before it wrote a verdict
    words = status.read_text().split()
    if words[:1] == ["snl_SAT"]:
        return False
    if words[:1] == ["snl_UNSAT"]:
        return True
    # bmc3 reports "unknown" and the last frame it searched when it found no difference
    searched = int(words[1]) + 1 if len(words) > 1 and words[1].isdigit() else 0
    return True if bound is not None and words[:1] == ["snl_UNK"] and searched >= bound else None


def _seq(ports, depth):
    clocked = "clk" in ports
    return (f"-seq {depth} -set-init-zero -set-at 1 rst 1" if "rst" in ports
            else f"-seq {depth} -set-init-zero" if clocked else "")


def equivalent(name, design, k, timeout=EQUIV_SECONDS):
    """Whether mutant ``k`` equals the original, the cheapest complete proof first:
    ``"unchanged"`` when the mutation ties a bit to the constant it already is (the same
    netlist: :func:`_ties_a_constant`); ``"proved"`` for a combinational unit (the
    miter's SAT check covers every input);
    for a clocked one ``"local"`` when a submodule instance it lies in is equal on its own
    (:func:`_local_design`: a feed-forward pipeline over a window longer than its latency,
    any other instance by ABC in every cycle), ``"induction"`` when every
    signal of the two designs agrees in every reachable state (:func:`_equal_everywhere`),
    ``"abc"`` when ABC's sequential equivalence prover shows every output equal in every
    cycle of every legal run (:func:`_abc`), ``"bounded"`` when every output agrees for
    ``depth`` cycles from reset (ABC's BMC, else Yosys's sat on :func:`_miter`);
    ``"differs"`` when the check finds inputs on which an output differs (a bench hole),
    ``"undecided"`` when it does not decide within ``timeout`` seconds."""
    if k in design.unchanged:           # the netlist itself is the original's
        return "unchanged"
    clocked = "clk" in design.ports
    depth = check_depth(name, design.unit)
    # First the instance the mutation lies in, alone, with free inputs: equal outputs there
    # mean equal outputs in the unit, and the check is far smaller. A feed-forward pipeline's
    # state is a function of its last inputs, so that a window longer than its latency (the
    # unit's depth is) covers every state it can be in: "local" is a complete proof.
    # The innermost instance first (the smallest check), then each one around it: an
    # instance that differs alone may be equal inside the next, which feeds it fewer inputs
    # (an adder core's rounder never sees an exponent past the adder's range).
    # An instance that is not a pipeline (a FIFO, a dot unit with its memories) gets ABC's
    # unbounded check alone (from reset, its inputs free, reset included): equal there is
    # equal in the unit too, and the instance is smaller than the unit.
    for inst in reversed(local_paths(design.lines[k - 1] if design.lines else "")):
        local = _local_design(design, k, inst, pipelines_only=False)
        if local is None:
            continue
        work, sub = local
        # (every output compared in every cycle: the unit may read a payload without valid)
        same = None
        if sub.pipeline:
            (work / "miter.v").write_text(_miter(sub, k, streams=False))
            sub_depth = depth if sub.latency is None else sub.latency + 3
            same = _sat(work, "miter.v", _seq(sub.ports, sub_depth), timeout)
        if same is None:                # undecided: ABC, which proves it for every cycle
            (work / "miter_abc.v").write_text(_miter(sub, k, streams=False, reset_first=True))
            same = _abc(work, "miter_abc.v", timeout)
        if same:
            return "local"
    # Then the whole unit by induction: a complete proof where it closes (in seconds on a
    # fault that no reachable state sets off), where the bounded check below has to unroll
    # the whole unit over its depth.
    if clocked and _equal_everywhere(design, k, INDUCT_FACTOR * timeout):
        return "induction"
    # Then ABC's sequential equivalence on the whole unit: every cycle of every legal run.
    (design.work / f"abc{k}.v").write_text(_miter(design, k, reset_first=True))
    same = _abc(design.work, f"abc{k}.v", timeout)
    if same is not None:
        return ("abc" if clocked else "proved") if same else "differs"
    # The bounded check: ABC's BMC first (strashing merges the two copies' identical logic,
    # so that it unrolls little more than the mutant's cone: seconds where Yosys's sat ran
    # out of time on the rescale unit's multipliers), then Yosys's sat over the same window.
    same = _abc(design.work, f"abc{k}.v", timeout, bound=depth) if clocked else None
    if same is None:
        (design.work / f"miter{k}.v").write_text(_miter(design, k))
        same = _sat(design.work, f"miter{k}.v", _seq(design.ports, depth), timeout)
    if same is None:
        return "undecided"
    return ("bounded" if clocked else "proved") if same else "differs"


EQUAL = ("proved", "unchanged", "bounded", "local", "induction", "abc")


def check_depth(name, unit):
    """Cycles of the bounded check of a clocked unit: the target's, or latency + 3."""
    return target(name).depth or getattr(unit, "latency", 0) + 3


def _equal_everywhere(design, k, timeout):
    """Mutant ``k`` equal to the original in every reachable state, by induction: ``True``
    (proved), ``False`` (not proved: it differs, or the induction does not close) or ``None``
    (no answer within ``timeout`` seconds).

    Yosys's ``equiv_make`` pairs every signal of the two designs that reaches an output by
    name (the mutant's own selector logic excepted: :func:`_selector_names`),
    ``equiv_struct``, ``equiv_simple`` and ``equiv_induct``
    prove that once all pairs agree for ``INDUCT_STEPS`` cycles they agree in the next one,
    for any inputs (``rst`` among them), and a ``sat`` check from the initial state (the
    flip-flops' init values) proves that they agree in the first ``INDUCT_STEPS`` cycles.
    Together: every output equal in every cycle of every run, not only within a window.

    The signals at the fault, and any past it that carry its difference until it is masked
    (a bit shifted out, a value no select reads), differ by design: each round drops the
    pairs it could not prove from the pairing (they no longer count as equal in the step)
    and tries again, until every pair left is proven (then the base case decides) or an
    output's pair is among the unproven (not proved). Dropping pairs only weakens what the
    step assumes, so a proof with fewer pairs is as sound as one with all of them. It
    closes where the difference dies within a few cycles of every state (a fault no
    reachable value of its inputs sets off); a state the mutant keeps apart for longer (a
    payload register loaded while its stream is stalled) needs the bounded check."""
    deadline = time.monotonic() + timeout
    ports = ", ".join(design.ports)
    lines = []
    for side, sel in (("gold", 0), ("gate", k)):
        lines += [f"module {side}({ports});", *(d + ";" for d in _decl(design.ports)),
                  f"  {design.top}__mut u ({', '.join(f'.{n}({n})' for n in design.ports)}, "
                  f".mutsel({SEL_BITS}'d{sel}));", *_held_offers(design.ports),
                  *_input_contract(design), "endmodule"]
    (design.work / f"sides{k}.v").write_text("\n".join(lines) + "\n")
    # Each side keeps only what reaches an output or an assumption (bit by bit: a register
    # bit nothing reads, such as a stream flag kept with its beat, may differ harmlessly).
    trim = "select -set live o:* t:$assume %u %ci* i:* %u; delete @live %n"
    load = (f"read_verilog mut.v; read_verilog -formal sides{k}.v; hierarchy; proc; "
            f"chformal -lower; flatten; memory -nomap; memory_map; opt_clean; opt_expr; "
            f"opt_clean; splitcells; splitnets -driver; opt_clean; cd gold; {trim}; cd ..; "
            f"cd gate; {trim}; cd ..; opt_clean")
    steps = f"-seq {INDUCT_STEPS}"
    outputs = {p + n for n, (d, _) in design.ports.items() if d == "output" for p in ("", "u.")}
    dropped = list((design.work / "selector.txt").read_text().split())
    black, status, sides = f"unpaired{k}.txt", f"status{k}.txt", f"sides{k}.il"

    def run(script):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return toolchain.yosys(design.work, "-p", script, timeout=left).returncode == 0
        except subprocess.TimeoutExpired:
            return None

    # The two sides, loaded once (the rounds read them back).
    loaded = run(f"{load}; write_rtlil {sides}")
    if not loaded:
        return loaded
    load = f"read_rtlil {sides}"
    for _ in range(INDUCT_ROUNDS):
        (design.work / black).write_text("".join(f"{n}\n" for n in dropped))
        ok = run(f"{load}; equiv_make -blacklist {black} gold gate equiv; hierarchy -top "
                 f"equiv; equiv_struct; equiv_simple {steps}; equiv_induct -set-assumes "
                 f"{steps}; tee -q -o {status} equiv_status")
        if not ok:
            return ok
        text = (design.work / status).read_text()
        unproven = re.findall(r"Unproven \$equiv \S+: \\?(\S+)_gold", text)
        count = re.search(r"(\d+) are unproven", text)
        if count and int(count.group(1)) != len(unproven):
            return False                        # a line this parser does not read
        if not unproven:
            break
        # (a pair of a bit of a wire is named after the wire and its bit)
        if any(n.split("[")[0] in outputs for n in unproven):
            return False
        dropped += [n for n in unproven if n not in dropped]
    else:
        return False
    # The base case, with the same pairs.
    return run(f"{load}; equiv_make -make_assert -blacklist {black} gold gate base; "
               f"hierarchy -top base; sat -verify -prove-asserts -set-assumes {steps} "
               f"-set-init-zero")


def _selector_names(text):
    """The mutant selector ``mutsel`` of a ``mutate -ctrl`` design and the wires decoding it
    (``mutsel == k``): constants that differ between the original and a mutant by design."""
    return ["mutsel", *(n.lstrip("\\") for n in
                        re.findall(r"assign\s+(\\\S+|\w+)\s*=\s*mutsel\s*==", text))]


def score_unit(name, n=MUTANTS, seed=SEED, limit=None, workers=WORKERS, progress=None,
               work=None, seconds=EQUIV_SECONDS):
    """The mutation result of one unit (``limit``: only the first mutants, for the smoke
    test; ``work``: its directory, ``build/mutate/<module>`` by default; ``seconds``: the
    time limit of one equivalence check)."""
    t0 = time.perf_counter()
    t = target(name)
    design = build_design(t.make(), n, seed, work)
    ks = list(range(1, len(design) + 1))[:limit]
    clean = run_mutant(name, design, 0, 0, fail_fast=False)
    if not clean["passed"]:
        raise RuntimeError(f"{name}: the bench fails on the unmutated design "
                           f"({design.work / 'sim0' / 'sim.log'})")
    cap = CAP_FACTOR * clean["cycles"] + CAP_SLACK if clean["cycles"] else 0
    if workers > 1:                            # the second build, before the pool starts
        run_mutant(name, design, 0, 1, fail_fast=True)
    # Outcomes already simulated for this very design under this very bench (an interrupted
    # run) are kept: the key covers the Verilog, the bench's sources and its configuration.
    cache = design.work / "outcomes.json"
    h = hashlib.sha256(design.text.encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):
        if src.name not in (Path(__file__).name, "test_mutation.py"):   # the flow's own
            h.update(src.read_bytes())
    h.update(repr((t.params, t.cocotb_filter, t.expect_vectors, cap, BUILD_ARGS)).encode())
    key = h.hexdigest()
    saved = json.loads(cache.read_text()) if cache.exists() else {}
    outcomes = {int(k): v for k, v in saved.get(key, {}).items() if int(k) in ks}
    # an unchanged mutant is the original's netlist: it passes the bench without a run
    outcomes.update({k: "survived" for k in ks if k in design.unchanged})
    lock = threading.Lock()

    def one(k, worker):
        out = classify(name, design, k, worker, cap)
        with lock:
            outcomes[k] = out
            cache.write_text(json.dumps({key: outcomes}))
            if progress:
                progress(name, len(outcomes), len(ks))

    with ThreadPoolExecutor(workers) as pool:
        todo = [k for k in ks if k not in outcomes]
        for i, k in enumerate(todo):
            pool.submit(one, k, i % workers)
    survivors = [k for k in ks if outcomes[k] == "survived"]
    # The checks' verdicts depend on the design alone: kept too. An undecided one is kept
    # with its time limit ("undecided 150"), and checked again only under a longer one.
    proof_cache = design.work / "proofs.json"
    pkey = hashlib.sha256(repr((design.text, t.depth)).encode()).hexdigest()
    kept = json.loads(proof_cache.read_text()) if proof_cache.exists() else {}
    proofs = kept_proofs(kept.get(pkey, {}), seconds)

    def check(k):
        verdict = equivalent(name, design, k, seconds)
        with lock:
            proofs[k] = f"undecided {seconds}" if verdict == "undecided" else verdict
            proof_cache.write_text(json.dumps({pkey: proofs}))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(check, [k for k in survivors if k not in proofs]))
    counts = {"killed": 0, "equivalent": 0, "missed": 0, "errors": 0, "unchanged": 0,
              "bounded": 0, "local": 0, "induction": 0, "abc": 0, "undecided": 0}
    missed = []
    for k in ks:
        out = outcomes[k]
        if out == "survived":
            proof, *limit = proofs[k].split()
            limit = int(limit[0]) if limit else seconds       # a kept undecided: its own
            out = "equivalent" if proof in EQUAL else "missed"
            if proof in counts:                  # the kinds of equal, and undecided
                counts[proof] += 1
            if out == "missed":
                why = ("a difference found" if proof == "differs"
                       else f"undecided: {limit} s per check, "
                       f"{INDUCT_FACTOR * limit} s for the induction")
                missed.append(f"#{k} {design.descriptions[k - 1]} ({why})")
        counts["errors" if out == "error" else out] += 1
        outcomes[k] = out
    judged = len(ks) - counts["equivalent"] - counts["errors"]
    return {"unit": name, "module": design.top, "mutants": len(ks), **counts,
            "depth": check_depth(name, design.unit) if "clk" in design.ports else None,
            "score": counts["killed"] / judged if judged else None, "target": t.target,
            "check_seconds": seconds,
            "seconds": round(time.perf_counter() - t0, 1), "missed_list": missed,
            "outcomes": [outcomes[k] for k in ks]}


def kept_proofs(saved, seconds):
    """The verdicts of ``proofs.json`` (mutant -> verdict) that a run whose checks have
    ``seconds`` each keeps: every decided one, and an undecided one (``"undecided 150"``)
    that had as long at least (a shorter limit would not decide it; an older entry without
    its limit is checked again)."""
    def keep(v):
        words = v.split()
        return words[0] != "undecided" or (len(words) > 1 and int(words[1]) >= seconds)
    return {int(k): v for k, v in saved.items() if keep(v)}


def met(r):
    return r["errors"] == 0 and r["score"] is not None and r["score"] >= r["target"]


def write_reports(results, seed, out=REPORTS):
    """Write the reports; units of an earlier run with the same seed that this run did not
    score are kept (``--units`` reruns some), in the order of :data:`UNITS`."""
    out.mkdir(parents=True, exist_ok=True)
    old = out / "mutation.json"
    if old.exists():
        prev = json.loads(old.read_text())
        ran = {r["unit"] for r in results}
        if prev.get("seed") == seed:
            results = results + [r for r in prev["units"] if r["unit"] not in ran]
    order = {name: i for i, name in enumerate(UNITS)}
    results = sorted(results, key=lambda r: order.get(r["unit"], len(order)))
    (out / "mutation.json").write_text(json.dumps(
        {"seed": seed, "units": [{k: v for k, v in r.items() if k != "outcomes"}
                                 for r in results]}, indent=1) + "\n")
    lines = ["# Mutation score", "",
             f"Yosys `mutate -list N -seed {seed}` on each unit's simulated Verilog (flattened); "
             "all mutants in one Verilator build, each under the unit's own bench as `make "
             "test` runs it; a survivor is equivalent when its netlist is the original's "
             "(unchanged: a bit tied to the constant it already is) or a formal check shows "
             "every output equal: on the submodule instance it lies in (local), by induction "
             "on the whole "
             "unit, by ABC's sequential equivalence prover on the whole unit (abc), or for "
             "the check depth's cycles from reset (bounded).", "",
             "| unit | module | mutants | killed "
             "| equivalent (unchanged, bounded, local, induction, abc) "
             "| check depth | check limit "
             "| missed (undecided) | errors | score | target | seconds |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
        lines.append(f"| {r['unit']} | `{r['module']}` | {r['mutants']} | {r['killed']} "
                     f"| {r['equivalent']} ({r.get('unchanged', 0)}, {r.get('bounded', 0)}, "
                     f"{r.get('local', 0)}, "
                     f"{r.get('induction', 0)}, {r.get('abc', 0)}) "
                     f"| {r.get('depth') or '-'} | {r.get('check_seconds', EQUIV_SECONDS)} s "
                     f"| {r['missed']} ({r.get('undecided', 0)}) "
                     f"| {r['errors']} | {score} "
                     f"| {100 * r['target']:.0f}% {'met' if met(r) else '**not met**'} "
                     f"| {r['seconds']} |")
    for r in results:
        for d in r["missed_list"]:
            lines.append(f"- missed in {r['unit']}: {d}")
    (out / "mutation.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default=",".join(UNITS))
    ap.add_argument("--mutants", type=int, default=MUTANTS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--seconds", type=int, default=EQUIV_SECONDS,
                    help="time limit of one equivalence check (the induction's: "
                         f"{INDUCT_FACTOR} times it)")
    args = ap.parse_args(argv)
    names = args.units.split(",")
    for name in names:
        target(name)
    results = []

    def progress(name, done, total):
        if done % 20 == 0 or done == total:
            print(f"  {name}: {done}/{total} mutants run", flush=True)

    for name in names:
        try:
            r = score_unit(name, args.mutants, args.seed, workers=args.workers,
                           progress=progress, seconds=args.seconds)
        except Exception as e:                     # noqa: BLE001 - reported, and fails the run
            print(f"{name}: the flow failed: {e}", flush=True)
            r = {"unit": name, "module": "-", "mutants": 0, "killed": 0, "equivalent": 0,
                 "missed": 0, "errors": 1, "bounded": 0, "score": None,
                 "target": target(name).target, "seconds": 0,
                 "missed_list": [f"flow error: {e}"]}
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
        print(f"{name:22s} mutants {r['mutants']:4d}  killed {r['killed']:4d}  equivalent "
              f"{r['equivalent']:3d}  missed {r['missed']:3d}  errors {r['errors']:3d}  "
              f"score {score}  ({r['seconds']} s)", flush=True)
        results.append(r)
        write_reports(results, args.seed)        # a partial report survives an interruption
    print(f"reports: {REPORTS / 'mutation.md'}")
    if not all(met(r) for r in results):
        raise SystemExit("mutation: a unit misses its target (see the report)")


if __name__ == "__main__":
    main()
