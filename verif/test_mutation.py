"""Smoke test of the mutation flow (:mod:`mutation`, ``make mutate``): a few mutants of the
forward lane under its own bench, the equivalence check both ways, and a mutant that cannot
be built counted as an error, never as a kill."""

import shutil

from hdl import Int4MulLane

import mutation


def test_mutants_of_the_forward_lane_are_killed():
    r = mutation.score_unit("int4_mul_lane", n=mutation.MUTANTS, limit=4)
    assert r["mutants"] == 4 and r["errors"] == 0
    assert r["killed"] + r["equivalent"] == 4 and r["killed"] >= 3 and r["missed"] == 0
    assert r["score"] == 1.0


def test_equivalence_check_and_errors():
    unit = Int4MulLane()
    ms = mutation.mutants(unit, 2, work=mutation.BUILD / "mutate" / "smoke")
    (desc, path) = ms[0]
    assert desc.split()[0] in ("inv", "const0", "const1", "cnot0", "cnot1")
    original = path.with_name("same.v")
    shutil.copy(path.parent / "unit.v", original)
    assert mutation.equivalent(unit, original)                 # the unit equals itself
    assert mutation.classify("int4_mul_lane", unit, path, 0) == "killed"
    assert not mutation.equivalent(unit, path)                 # the killed one differs
    broken = path.with_name("broken.v")
    broken.write_text("module int4_mul_lane(; endmodule\n")
    assert mutation.classify("int4_mul_lane", unit, broken, 9) == "error"
