"""The meta-test: the default suite, run against deliberately broken engines, must fail every engine test.

For each broken engine of tests/broken_engines.py (identity, fallback, nocache) the default suite runs in a
subprocess with BROKEN_PARTIALDYN_ENGINE set; the tests that passed must all be in ALLOWED, the short list of
tests that do not depend on the engine compiling (logs, viewer, packaging, API argument checks ...).  A test
that passes under a broken engine and is not allowed is a test that cannot fail: the meta-test names it.
Under nocache every call recompiles until the cache is full; PARTIALDYN_CACHE_SIZE_LIMIT=2 keeps that run
within CI's time (a test that passes there would pass with the default limit too: the broken cache accepts nothing
either way).  Marked slow (three runs of the suite): `python -m pytest -m slow tests/test_meta_broken_engines.py -s`
prints the counts.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests that may pass under every broken engine: they do not depend on the engine compiling.
NOT_ENGINE_TESTS = [
    "tests/test_logs.py::*",             # the event log, its sinks and topics
    "tests/test_viewer.py::*",           # the log viewer on hand-written event streams
    "tests/test_packaging.py::*",        # README, CI script, pyproject, CLI, config, demo
    "tests/test_benchmarks.py::*",       # the benchmark harness
    "tests/test_architecture.py::*",     # import layering of the source tree
    # the filter that keeps torch from logging the policy's break as a failure, on torch's own loggers
    "tests/test_policy.py::test_the_break_before_an_operation_is_not_logged_as_a_failure_of_torch*",
    # the C++ tensor check's build and its answers, beside any guard
    "tests/test_native_tensor_check.py::test_a_first_guard_builds_the_library_in_the_background_and_later_guards_load_it",
    "tests/test_native_tensor_check.py::test_the_cpp_check_answers_as_the_python_terms_for_any_tensor_or_value",
    "tests/test_controls.py::test_every_public_name_has_a_docstring*",
    "tests/test_controls.py::test_help_of_optimize_explains_its_options",
    # arguments rejected before anything is traced
    "tests/test_backends.py::test_unknown_backend_name_fails_at_decoration_listing_valid_names",
    "tests/test_backends.py::test_bad_options_fail_at_decoration*",
    "tests/test_backends.py::test_non_callable_targets_fail_clearly",
    "tests/test_guards_arguments.py::test_a_wrong_call_raises_the_type_error_python_raises_naming_the_function*",
    "tests/test_controls.py::test_set_stance_rejects_an_unknown_stance_with_the_valid_ones",
    "tests/test_policy.py::test_mark_static_and_mark_dynamic_validate_their_arguments",
    "tests/test_escape_hatches.py::test_reoptimizing_with_different_options_warns_and_keeps_the_first",
    "tests/test_internal_errors.py::test_suppress_errors_has_an_environment_override",
    "tests/test_fake_reuse.py::test_fake_reuse_rejects_unknown_modes",
    # the resume-bytecode checker on hand-made code objects
    "tests/test_internal_errors.py::test_code_check_rejects_a_wrong_handler_depth_and_a_short_stack",
    # a child interpreter, which the broken engine (installed by conftest) does not reach
    "tests/test_internal_errors.py::test_logging_call_in_traced_code_does_not_kill_the_interpreter",
    "tests/test_internal_errors.py::test_exception_handler_of_a_try_resumed_inside_a_with_block_runs",
    "tests/test_user_messages.py::test_partialdyn_logs_summary_prints_compiles_recompiles_by_reason_and_compile_time_at_exit",
]
# what runs eagerly by design (the engine never compiles it) passes when compiling is broken
EAGER_BY_DESIGN = [
    "tests/test_escape_hatches.py::test_optimize_of_a_disabled_function_runs_it_eagerly",
]
# frames that never make a cache entry by design (nothing to hit), so a cache that never accepts cannot break them
NEVER_CACHED = [
    # an internal error (here a failing backend) makes the frame run eagerly for good: no compile, no entry
    "tests/test_internal_errors.py::test_internal_error_runs_the_frame_eagerly_and_warns_once_naming_the_error",
    "tests/test_internal_errors.py::test_suppress_errors_false_raises_the_internal_error",
    "tests/test_backends.py::test_backend_error_does_not_reach_the_user",
    # a break after a callee mutated a container falls back for the whole frame on every call (compiles stays 0)
    "tests/test_python_copies.py::test_a_copy_changed_by_a_call_that_graph_breaks_is_not_changed_twice",
    "tests/test_library_structures.py::test_break_in_a_method_after_it_changed_an_object_made_in_the_trace_runs_correctly",
    "tests/test_graph_break_state.py::test_a_callee_that_changed_global_containers_before_breaking_changes_them_once",
    "tests/test_graph_break_state.py::test_a_recursive_local_function_alive_at_a_break_runs_the_frame_eagerly_with_a_reason",
    "tests/test_graph_break_state.py::test_a_forward_hook_that_changed_a_global_list_before_breaking_changes_it_once",
    # past the restart cap (0 here) such a frame still runs eagerly; with fullgraph=True the same break raises
    "tests/test_graph_break_state.py::test_a_frame_whose_break_before_a_mutating_call_cannot_be_placed_still_runs_eagerly",
    "tests/test_graph_break_state.py::test_fullgraph_raises_at_a_call_that_mutated_the_caller_and_broke",
    # a break after the frame made a closure over its variables: the whole frame runs eagerly on every call
    "tests/test_graph_break_state.py::test_closures_made_before_a_break_share_their_cells",
    "tests/test_graph_break_state.py::test_a_list_mutated_through_a_view_or_iterator_before_a_break_is_changed_once*",
    # the traced code raises, or leaves a generator suspended at a break: the frame falls back on every call
    "tests/test_python_context_managers.py::test_contextmanager_that_never_yields_raises_runtime_error",
    "tests/test_python_context_managers.py::test_with_over_an_object_without_the_protocol_raises_type_error",
    "tests/test_python_dicts_and_sets.py::test_values_view_set_operation_raises_type_error",
    "tests/test_python_generators.py::test_generator_alive_at_a_graph_break_runs_eagerly_with_the_eager_result",
    "tests/test_python_generators.py::test_throw_into_a_generator_that_catches_it_gives_the_eager_result",
    "tests/test_python_generators.py::test_throw_through_yield_from_into_a_sub_generator_that_catches_it_runs_eagerly",
    # the call raises at a break, where eager raises (an assignment eager refuses, tuple + object): one call, no hit
    "tests/test_python_objects.py::test_assignments_eager_refuses_on_a_dataclass_made_in_the_trace_raise_as_in_eager",
    "tests/test_python_objects.py::test_assigning_or_deleting_a_field_of_a_frozen_dataclass_built_by_its_own_init_raises_as_in_eager",
    "tests/test_python_objects.py::test_a_tuple_subclass_concatenating_an_object_made_in_the_trace_breaks_rather_than_asking_its_radd",
    # explain() traces once beside the cache and never consults it
    "tests/test_python_exceptions.py::test_explain_says_an_entry_runs_eagerly_because_its_trace_raises",
    "tests/test_policy.py::test_explain_names_a_predicate_dim_with_its_line_and_op",
    "tests/test_policy.py::test_explain_names_a_value_specialized_dim_with_its_line_and_op",
    "tests/test_torch_global_state.py::test_explain_lists_autocast_and_deterministic_guards",
    "tests/test_controls.py::test_the_repr_of_an_explanation_is_the_readable_report",
    # an error a fake kernel finds makes no entry: the next call traces again
    "tests/test_python_exceptions.py::test_an_error_a_fake_kernel_finds_is_traced_again_on_the_next_call",
    "tests/test_python_exceptions.py::test_an_integer_too_big_for_a_torch_op_raises_overflow_error_as_eager_without_an_internal_error",
    # the call raises a PartialdynError while compiling (fullgraph's break, a marked dim specialized): no entry
    "tests/test_controls.py::test_fullgraph_raises_the_exported_partialdynerror",
    "tests/test_graph_breaks.py::test_fullgraph_raises_with_location",
    "tests/test_controls.py::test_mark_dynamic_raises_partialdynerror_naming_the_line_and_a_fix_when_the_code_specializes_the_dim",
]
# and, per engine, the tests whose subject the engine does not break
ALLOWED = {
    "identity": NOT_ENGINE_TESTS,
    "fallback": NOT_ENGINE_TESTS + EAGER_BY_DESIGN,
    "nocache": NOT_ENGINE_TESTS + EAGER_BY_DESIGN + NEVER_CACHED,
}


ENVIRONMENT = {"nocache": {"PARTIALDYN_CACHE_SIZE_LIMIT": "2"}}
RUN_TIMEOUT = 900      # seconds per run: a hang fails the meta-test instead of the CI job


def passed_tests(engine: str, report: Path) -> tuple[set[str], int, str]:
    """Run the default suite under `engine`; the ids of the tests that passed, how many ran, the summary."""
    env = {**os.environ, "BROKEN_PARTIALDYN_ENGINE": engine, **ENVIRONMENT.get(engine, {})}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               f"--junitxml={report}"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    lines = run.stdout.strip().splitlines()
    summary = lines[-1] if lines else run.stderr[-2000:]
    if not report.exists():
        return set(), 0, summary
    passed, total = set(), 0
    for case in ET.parse(report).iter("testcase"):
        total += 1
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            passed.add(f"{case.get('classname').replace('.', '/')}.py::{case.get('name')}")
    return passed, total, summary


def allows(pattern: str, test: str) -> bool:
    """A list entry is a test id, or a prefix of ids when it ends with '*' (ids hold brackets: no globbing)."""
    return test.startswith(pattern[:-1]) if pattern.endswith("*") else test == pattern


@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(ALLOWED))
def test_every_engine_test_fails_under_a_broken_engine(engine, tmp_path):
    passed, total, summary = passed_tests(engine, tmp_path / "report.xml")
    assert total > 100, f"the suite did not run under {engine}: {summary}"
    wrong = sorted(t for t in passed if not any(allows(pattern, t) for pattern in ALLOWED[engine]))
    print(f"\nbroken engine {engine}: {total} tests, {total - len(passed)} failed, {len(passed)} passed "
          f"({len(passed) - len(wrong)} allowed, {len(wrong)} not allowed)  [{summary}]")
    assert not wrong, "tests that pass without a working engine:\n" + "\n".join(wrong)
