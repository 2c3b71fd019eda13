"""Smoke test of the mutation flow (:mod:`mutation`, ``make mutate``): a few mutants of the
forward lane in one selectable build under its own bench, the equivalence checks both ways,
and a design that cannot be built counted as an error, never as a kill. One test (one
design, one Verilator build)."""

import dataclasses

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
    assert mutation._equal_everywhere(design, 0)            # the original equals itself
    assert mutation.equivalent("int4_mul_lane", design, 0) == "proved"
    assert mutation.classify("int4_mul_lane", design, 1) == "killed"
    assert mutation.equivalent("int4_mul_lane", design, 1) == "differs"   # the killed one
    # a check cut by its wall-clock limit is undecided (missed), never equivalent
    assert mutation.equivalent("int4_mul_lane", design, 1, timeout=0.01) == "undecided"
    broken = dataclasses.replace(design, text="module int4_mul_lane(; endmodule\n")
    assert mutation.classify("int4_mul_lane", broken, 1, worker=9) == "error"
