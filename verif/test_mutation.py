"""Smoke test of the mutation flow (:mod:`mutation`, ``make mutate``): a few mutants of the
forward lane in one selectable build under its own bench, the equivalence checks both ways,
and a design that cannot be built counted as an error, never as a kill (one Verilator
build); the check of a mutant on the submodule instances it lies in (a pipeline, one inside
another, a loop); the induction's dropped pairs; the input contract (a payload field's
declared range) that the checks assume; the mutants that leave the netlist unchanged; and
ABC's checks on a hand-written design with known answers."""

import dataclasses
import re
import types

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

import mutation

LIMIT = 4


def test_mutation_flow_on_the_forward_lane():
    work = mutation.BUILD / "mutate" / "smoke"
    r = mutation.score_unit("int4_mul_lane", limit=LIMIT, workers=1, work=work)
    assert r["mutants"] == LIMIT and r["errors"] == 0 and r["missed"] == 0
    assert r["killed"] + r["equivalent"] == LIMIT and r["killed"] >= LIMIT - 1
    assert r["score"] == 1.0
    assert r["outcomes"][0] == "killed"          # seed 1's first mutant: an inverted bit

    # the same design again (the build is reused): the checks one by one
    design = mutation.build_design(mutation.target("int4_mul_lane").make(), mutation.MUTANTS,
                                   work=work)
    assert design.descriptions[0].split()[0] in ("inv", "const0", "const1", "cnot0", "cnot1")
    # the induction: the original equals itself, the killed mutant is not proved equal
    assert mutation._equal_everywhere(design, 0, 60) is True
    assert mutation._equal_everywhere(design, 1, 60) is False
    assert mutation._selector_names("assign _07_ = mutsel == 16'h0001;\n") == ["mutsel", "_07_"]
    assert mutation.equivalent("int4_mul_lane", design, 0) == "proved"
    assert mutation.classify("int4_mul_lane", design, 1) == "killed"
    assert mutation.equivalent("int4_mul_lane", design, 1) == "differs"   # the killed one
    # a check cut by its wall-clock limit is undecided (missed), never equivalent
    assert mutation.equivalent("int4_mul_lane", design, 1, timeout=0.01) == "undecided"
    # verdicts kept for a rerun: the decided ones, the undecided ones under a shorter limit
    saved = {"1": "local", "2": "undecided 150", "3": "undecided", "4": "undecided 60"}
    assert mutation.kept_proofs(saved, 90) == {1: "local", 2: "undecided 150"}
    assert mutation.kept_proofs(saved, 200) == {1: "local"}
    broken = dataclasses.replace(design, text="module int4_mul_lane(; endmodule\n")
    assert mutation.classify("int4_mul_lane", broken, 1, worker=9) == "error"


class _Pipe(wiring.Component):
    """A one-rank feed-forward submodule: ``y = f(a, b)``, registered (by default ``a ^
    b``)."""
    a: In(4)
    b: In(4)
    y: Out(4)
    latency = 1

    def __init__(self, f=lambda a, b: a ^ b):
        self._f = f
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self._f(self.a, self.b))
        return m


class _Acc(wiring.Component):
    """A submodule with a loop through its register: ``y += a``."""
    a: In(4)
    y: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.y + self.a)
        return m


class _Top(wiring.Component):
    a: In(4)
    b: In(4)
    y: Out(4)
    z: Out(4)
    module_name = "local_smoke"
    latency = 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.pipe = pipe = _Pipe()
        m.submodules.acc = acc = _Acc()
        m.d.comb += [pipe.a.eq(self.a), pipe.b.eq(self.b), acc.a.eq(self.a),
                     self.y.eq(pipe.y), self.z.eq(acc.y)]
        return m


def test_local_check_of_a_submodule():
    """A mutant inside a feed-forward instance is checked on that instance alone (here the
    original against itself: equal; the mutant: a difference); one inside an instance with a
    register loop is not (the window would not reach its states)."""
    design = mutation.build_design(_Top(), 40, work=mutation.BUILD / "mutate" / "local_smoke")
    inside = {}
    for k, line in enumerate(design.lines, 1):
        for inst in ("pipe", "acc"):
            if f"-cell $flatten\\{inst}." in line:
                inside.setdefault(inst, k)
    assert set(inside) == {"pipe", "acc"}, design.lines
    assert mutation._local_design(design, inside["acc"]) is None
    work, sub = mutation._local_design(design, inside["pipe"])
    assert sub.latency == 1 and set(sub.ports) >= {"a", "b", "y", "clk"}
    seq = mutation._seq(sub.ports, sub.latency + 3)
    (work / "same.v").write_text(mutation._miter(sub, 0, streams=False))
    assert mutation._sat(work, "same.v", seq, 60) is True
    (work / "mutant.v").write_text(mutation._miter(sub, inside["pipe"], streams=False))
    assert mutation._sat(work, "mutant.v", seq, 60) is False


class _Around(wiring.Component):
    """The instance ``inst`` of ``sub`` fed ``a``, and ``a + 1`` as its ``b`` when it has
    one: ``a`` and ``b`` are then never equal (the inner ``_Pipe``'s constant never shows)."""
    a: In(4)
    y: Out(4)
    latency = 1

    def __init__(self, module_name, inst, sub):
        self.module_name, self._inst, self._sub = module_name, inst, sub
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules[self._inst] = sub = self._sub
        m.d.comb += [sub.a.eq(self.a), self.y.eq(sub.y)]
        if hasattr(sub, "b"):
            m.d.comb += sub.b.eq(self.a + 1)
        return m


def test_local_check_of_a_nested_instance():
    """A mutation two instances deep is checked on the inner instance alone first, then on
    the one around it: the inner one's constant differs there for free inputs, and is
    equal inside the outer one, which never feeds the inner one equal operands."""
    inner = _Pipe(lambda a, b: Mux(a == b, 0b0101, a))    # the constant shows if a == b
    nest = _Around("nest_smoke", "outer", _Around("nested_smoke", "inner", inner))
    design = mutation.build_design(nest, 200, work=mutation.BUILD / "mutate" / "nest_smoke")
    k = next(k for k, ln in enumerate(design.lines, 1)
             if "-cell $flatten\\outer.\\inner.$ternary" in ln and "-port B" in ln
             and "-mode const" in ln and k not in design.unchanged)
    assert mutation.local_paths(design.lines[k - 1]) == ["outer", "outer.inner"]
    work, sub = mutation._local_design(design, k, "outer.inner")
    assert sub.latency == 1
    (work / "alone.v").write_text(mutation._miter(sub, k, streams=False))
    assert mutation._sat(work, "alone.v", mutation._seq(sub.ports, 4), 60) is False
    assert mutation.equivalent("int4_mul_lane", design, k) == "local"


class _Even(wiring.Component):
    """A loop that counts by 2 while ``a[0]`` is high: ``n`` is always even, so the constant
    of ``y = n == 5 ? 0b1001 : n`` never shows."""
    a: In(4)
    y: Out(4)

    def elaborate(self, platform):
        m = Module()
        n = Signal(4)
        with m.If(self.a[0]):
            m.d.sync += n.eq(n + 2)
        m.d.comb += self.y.eq(Mux(n == 5, 0b1001, n))
        return m


def test_local_check_of_a_loop():
    """A mutation in an instance that is not a pipeline (a register loop) gets ABC's
    unbounded check on that instance alone: a fault that only an unreachable state of the
    instance sets off is equal there (``local``), one in its loop is not."""
    design = mutation.build_design(_Around("loop_smoke", "even", _Even()), 200,
                                   work=mutation.BUILD / "mutate" / "loop_smoke")

    def first(*words):
        return next(k for k, ln in enumerate(design.lines, 1)
                    if all(w in ln for w in ("-cell $flatten\\even.", *words)))

    hidden = first("$eq", "-port A", "-mode const0")   # n == 5 tests an odd n: unreachable
    shown = first("$add", "-port Y", "-mode inv")      # n counts by 2 no longer
    assert mutation._local_design(design, hidden, "even") is None     # not a pipeline
    for k, same in ((hidden, True), (shown, False)):
        work, sub = mutation._local_design(design, k, "even", pipelines_only=False)
        assert sub.pipeline is False
        (work / "alone.v").write_text(mutation._miter(sub, k, streams=False, reset_first=True))
        assert mutation._abc(work, "alone.v", 60) is same
    assert mutation.equivalent("int4_mul_lane", design, hidden) == "local"


def test_local_command_names():
    """A mutation's names in its instance's module alone: one level and two levels deep."""
    one = ("mutate -mode const0 -module top -cell $flatten\\round3.$ternary$unit.v:9$5 -port Y "
           "-portbit 1 -wire round3.shift8 -wirebit 1")
    assert mutation.local_command(one, "top", "top.round3", "round3") == (
        "mutate -mode const0 -module top.round3 -cell $ternary$unit.v:9$5 -port Y -portbit 1 "
        "-wire shift8 -wirebit 1")
    two = ("mutate -mode const0 -module top -cell $flatten\\acc.\\rounder.$reduce_or$unit.v:7$9 "
           "-port Y -portbit 0 -wire acc.rounder.$31 -wirebit 0")
    assert mutation.local_command(two, "top", "top.acc", "acc") == (
        "mutate -mode const0 -module top.acc -cell $flatten\\rounder.$reduce_or$unit.v:7$9 "
        "-port Y -portbit 0 -wire rounder.$31 -wirebit 0")
    assert mutation.local_command(two, "top", "top.acc.rounder", "acc.rounder") == (
        "mutate -mode const0 -module top.acc.rounder -cell $reduce_or$unit.v:7$9 "
        "-port Y -portbit 0 -wire $31 -wirebit 0")
    assert mutation.local_paths(two) == ["acc", "acc.rounder"]
    assert mutation.local_paths(one) == ["round3"]


class _Slotted(wiring.Component):
    """A stream unit whose payload has a slot field declared ``range(3)``: its output is
    ``x`` registered with its beat, inverted for the undeclared code ``slot == 3``
    (behaviour outside the contract, which a mutant may change)."""
    module_name = "contract_smoke"
    latency = 1

    def __init__(self):
        layout = data.StructLayout({"x": 4, "slot": range(3)})
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(4))})

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += self.o.valid.eq(self.i.valid)
        with m.If(self.i.valid):
            m.d.sync += self.o.payload.eq(Mux(p.slot == 3, ~p.x, p.x))
        return m


def test_input_contract():
    """The checks assume what an input payload's layout declares: a field declared
    ``range(n)`` carries 0 .. n - 1 while ``valid`` is high. A mutant that changes only the
    undeclared code is equal under that assumption, and the check without it finds the
    difference; a power-of-two range declares nothing."""
    from hdl.dot import DotProduct

    design = mutation.build_design(_Slotted(), 200, work=mutation.BUILD / "mutate" / "contract")
    assert mutation._input_contract(design) == [
        "  always @* if (i__valid) assume(i__payload[5:4] < 2'd3);"]
    # the compare with 3 stuck at 0: the output never inverts
    k = next(k for k, ln in enumerate(design.lines, 1) if "$eq" in ln and "const0" in ln)
    assert mutation._equal_everywhere(design, k, 120) is True
    seq = mutation._seq(design.ports, 4)
    (design.work / "contract.v").write_text(mutation._miter(design, k))
    assert mutation._sat(design.work, "contract.v", seq, 60) is True
    # a stand-in unit without the stream's layout: no contract
    free = dataclasses.replace(design, unit=types.SimpleNamespace(module_name=design.top))
    assert mutation._input_contract(free) == []
    (design.work / "free.v").write_text(mutation._miter(free, k))
    assert mutation._sat(design.work, "free.v", seq, 60) is False
    assert mutation._equal_everywhere(free, k, 120) is False

    unit = DotProduct(8, "fp16", slots=19, acc_stages=17, lane_stages=1, out_depth=32)
    ports = {"i__payload": ("input", unit.i.payload.shape().size), "i__valid": ("input", 1)}
    fake = dataclasses.replace(design, unit=unit, ports=ports)
    off = unit.i.payload.shape()["slot"].offset
    assert mutation._input_contract(fake) == [
        f"  always @* if (i__valid) assume(i__payload[{off + 4}:{off}] < 5'd19);"]
    pow2 = DotProduct(8, "fp16", slots=32, acc_stages=17, lane_stages=1, out_depth=32)
    assert mutation._input_contract(dataclasses.replace(fake, unit=pow2)) == []


class _Masked(wiring.Component):
    """Two ranks: ``w = r == 0 ? 0b1010 : r`` and ``z = r == 0``, then ``y = z ? 0 : w``: a
    fault in the constant changes ``w`` only where ``y`` ignores it."""
    a: In(4)
    y: Out(4)
    module_name = "drop_smoke"
    latency = 3

    def elaborate(self, platform):
        m = Module()
        r = Signal(4)
        w = Signal(4)
        z = Signal()
        m.d.sync += [r.eq(self.a), w.eq(Mux(r == 0, 0b1010, r)), z.eq(r == 0),
                     self.y.eq(Mux(z, 0, w))]
        return m


def test_induction_drops_the_pairs_past_a_masked_fault():
    """The induction (``_equal_everywhere``) proves a mutant equal whose fault reaches named
    wires but never an output: it drops those wires' pairs, which differ, and closes on the
    rest; a mutant that reaches the output is not proved."""
    design = mutation.build_design(_Masked(), 200,
                                   work=mutation.BUILD / "mutate" / "drop_smoke")
    # the constant's multiplexer, named after its line in the unit's Verilog
    source = (design.work / "unit.v").read_text().splitlines()
    line = next(j for j, ln in enumerate(source, 1) if re.search(r"\? 4'ha : ", ln))
    mux = f"$ternary$unit.v:{line}$"
    masked = next(k for k, ln in enumerate(design.lines, 1)
                  if f"-cell {mux}" in ln and "-mode inv" in ln and "-port B" in ln)
    assert mutation._equal_everywhere(design, masked, 120) is True
    base = set((design.work / "selector.txt").read_text().split())
    dropped = set((design.work / f"unpaired{masked}.txt").read_text().split()) - base
    assert any(not n.split(".")[-1].startswith("_") for n in dropped), dropped  # named wires
    shown = next(k for k, ln in enumerate(design.lines, 1)
                 if f"-cell {mux}" in ln and "-mode inv" in ln and "-port Y" in ln)
    assert mutation._equal_everywhere(design, shown, 120) is False



def test_unchanged_mutants():
    """A mutation that ties a bit to the constant it already is (``const0`` on a register's
    reset value 0) leaves the netlist as it was: ``unchanged``, with no check run, and the
    formal check agrees on each; a tie of a bit that is not that constant is not listed."""
    design = mutation.build_design(_Masked(), 200,
                                   work=mutation.BUILD / "mutate" / "drop_smoke")
    assert design.unchanged, design.lines
    seq = mutation._seq(design.ports, 6)
    for k in sorted(design.unchanged):
        assert mutation.equivalent("int4_mul_lane", design, k) == "unchanged"
        (design.work / f"same{k}.v").write_text(mutation._miter(design, k))
        assert mutation._sat(design.work, f"same{k}.v", seq, 60) is True
    cells = {"c": {"connections": {"B": ["0", 7]}}}
    tie = "mutate -mode {} -module m -cell c -port B -portbit {}"
    assert mutation._ties_a_constant(cells, tie.format("const0", 0))
    assert not mutation._ties_a_constant(cells, tie.format("const1", 0))
    assert not mutation._ties_a_constant(cells, tie.format("const0", 1))   # a wire's bit
    assert not mutation._ties_a_constant(cells, tie.format("inv", 0))

# A hand-written selectable design for the ABC checks: ``n`` counts by 2 from reset (so it
# is always even), ``y`` is high at ``n == 12``. Mutant 1 inverts ``y`` at ``n == 12``, which
# shows 7 cycles after reset; mutant 2 inverts it at ``n == 5``, a state no run reaches;
# mutant 3 inverts it once ``a == 3`` has been seen, which the test's assumption rules out.
_DEEP = """module deep__mut(input clk, input rst, input [1:0] a, input [15:0] mutsel, output y);
  reg [3:0] n;
  reg seen;
  always @(posedge clk) begin
    n <= rst ? 4'd0 : n + 4'd2;
    seen <= rst ? 1'b0 : seen | (a == 2'd3);
  end
  assign y = (n == 4'd12) ^ (mutsel == 16'd1 && n == 4'd12) ^ (mutsel == 16'd2 && n == 4'd5)
             ^ (mutsel == 16'd3 && seen);
endmodule
"""


def test_abc_checks():
    """ABC's checks (``mutation._abc``): a difference past the bounded window is found by
    the unbounded check and not by the bounded one; a fault only an unreachable state sets
    off is proved equal (the induction cannot: it assumes any state); an assumption holds in
    every cycle so far, not only the current one (a fault set off by an input the
    assumption rules out, and shown later, is equal); a check cut by its limit decides
    nothing."""
    work = mutation.BUILD / "mutate" / "abc_smoke"
    work.mkdir(parents=True, exist_ok=True)
    (work / "mut.v").write_text(_DEEP)
    ports = {"clk": ("input", 1), "rst": ("input", 1), "a": ("input", 2), "y": ("output", 1)}
    deep = mutation._Local("deep", ports, None)

    def check(k, bound=None, extra="", timeout=120):
        text = mutation._miter(deep, k, streams=False, reset_first=True)
        (work / f"m{k}.v").write_text(text.replace("endmodule", extra + "endmodule"))
        return mutation._abc(work, f"m{k}.v", timeout, bound=bound)

    assert "always @* if (!armed) assume(rst);" in mutation._miter(deep, 1, reset_first=True)
    assert check(0) is True
    assert check(1) is False                          # shown in cycle 8
    assert check(1, bound=5) is True                  # not within 5 cycles
    assert check(1, bound=9) is False
    # the same windows through Yosys's sat (the bounded check's other engine) agree
    (work / "sat1.v").write_text(mutation._miter(deep, 1, streams=False))
    assert mutation._sat(work, "sat1.v", mutation._seq(ports, 5), 60) is True
    assert mutation._sat(work, "sat1.v", mutation._seq(ports, 9), 60) is False
    assert check(2) is True                           # n is never odd
    assert check(3) is False
    assert check(3, extra="  always @* assume(a != 2'd3);\n") is True
    assert check(3, timeout=0.01) is None
