"""The state fuzzer (tests/fuzz/) in the default suite, bounded.

Generated functions read globals, closure cells, attributes, modules, defaults, containers and torch global
state, which are mutated between calls; each program must agree with eager under every policy and
recompile_limit 1 and 2 (outputs or exception types, inputs, the world and the torch state after each call, no
internal-error fallback).  A failure's message is a standalone repro of the (hypothesis-shrunk) program.
Only the features main handles soundly are generated (`fuzz.programs.ENABLED`); the longer run is
`python -m tests.fuzz.state --programs 2000 --seed 1` (docs/testing.md), or the slow test here with
FUZZ_STATE_EXAMPLES set.
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from fuzz.programs import BREAKS, ENABLED, hypothesis_programs
from fuzz.state import Coverage, repro, run_program

import partialdyn

# non-tensor objects read from outside f (instances, classes, descriptors, dataclasses, enums, partials, other
# modules' globals, submodules, torch flags) with graph breaks placed before, between and after the reads
OBJECTS_AND_BREAKS = tuple(name for name in ENABLED if name.startswith("objects.") or name in BREAKS)
OTHERS = tuple(name for name in ENABLED if name not in OBJECTS_AND_BREAKS)


def run_fuzzer(examples, derandomize, features=OTHERS):
    coverage = Coverage()

    @settings(max_examples=examples, derandomize=derandomize, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(hypothesis_programs(features))
    def check(program):
        found = run_program(program, coverage=coverage)
        assert found is None, "\n" + repro(program, found)

    try:
        check()
    finally:
        partialdyn.reset()
    return coverage


def assert_ran_compiled(coverage):
    assert coverage.compiles >= coverage.configs, coverage      # every run compiled (a program need not recompile)
    assert coverage.graph_runs >= coverage.calls // 2, coverage
    # many programs change what f reads before every call, but the simplest program, which Hypothesis always
    # tries first, calls f twice alike: its second call hits
    assert coverage.cache_hits >= 1, coverage


def test_generated_programs_with_state_mutated_between_calls_match_eager_under_every_policy():
    assert_ran_compiled(run_fuzzer(examples=10, derandomize=True))


def test_a_few_randomly_seeded_programs_match_eager_under_every_policy():
    assert_ran_compiled(run_fuzzer(examples=2, derandomize=False))


def test_generated_programs_reading_objects_across_graph_breaks_match_eager_under_every_policy():
    coverage = run_fuzzer(examples=5, derandomize=True, features=OBJECTS_AND_BREAKS)
    assert_ran_compiled(coverage)
    assert coverage.graph_breaks >= 1, coverage


@pytest.mark.slow
def test_a_long_campaign_over_objects_and_graph_breaks_matches_eager():
    """FUZZ_STATE_EXAMPLES=3000 python -m pytest -m slow -k long_campaign: several thousand programs (about
    0.6 s each, every policy x recompile_limit 1/2); hypothesis shrinks the first mismatch to the repro it prints."""
    coverage = run_fuzzer(examples=int(os.environ.get("FUZZ_STATE_EXAMPLES", "200")), derandomize=False,
                          features=OBJECTS_AND_BREAKS)
    assert_ran_compiled(coverage)
    assert coverage.graph_breaks >= 1, coverage
