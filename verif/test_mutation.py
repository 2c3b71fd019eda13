"""Smoke test of the mutation flow (:mod:`mutation`, ``make mutate``): a few mutants of the
forward lane in one selectable build under its own bench, the equivalence checks both ways,
and a design that cannot be built counted as an error, never as a kill."""

import dataclasses

import mutation

LIMIT = 4


def test_mutants_of_the_forward_lane_are_killed():
    r = mutation.score_unit("int4_mul_lane", limit=LIMIT, workers=1,
                            work=mutation.BUILD / "mutate" / "smoke-score")
    assert r["mutants"] == LIMIT and r["errors"] == 0 and r["missed"] == 0
    assert r["killed"] + r["equivalent"] == LIMIT and r["killed"] >= LIMIT - 1
    assert r["score"] == 1.0
    assert r["outcomes"][0] == "killed"          # seed 1's first mutant: an inverted bit


def test_equivalence_checks_and_errors():
    design = mutation.build_design(mutation.target("int4_mul_lane").make(), 2,
                                   work=mutation.BUILD / "mutate" / "smoke")
    assert design.descriptions[0].split()[0] in ("inv", "const0", "const1", "cnot0", "cnot1")
    assert mutation._equal_everywhere(design, 0)            # the original equals itself
    assert mutation.equivalent("int4_mul_lane", design, 0) == "proved"
    assert mutation.classify("int4_mul_lane", design, 1) == "killed"
    assert mutation.equivalent("int4_mul_lane", design, 1) is None   # the killed one differs
    broken = dataclasses.replace(design, text="module int4_mul_lane(; endmodule\n")
    assert mutation.classify("int4_mul_lane", broken, 1, worker=9) == "error"
