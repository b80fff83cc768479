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

import fnmatch
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
    "tests/test_controls.py::test_every_public_name_has_a_docstring*",
    "tests/test_controls.py::test_help_of_optimize_explains_its_options",
    # arguments rejected before anything is traced
    "tests/test_backends.py::test_unknown_backend_name_fails_at_decoration_listing_valid_names",
    "tests/test_backends.py::test_bad_options_fail_at_decoration*",
    "tests/test_backends.py::test_non_callable_targets_fail_clearly",
    "tests/test_controls.py::test_set_stance_rejects_an_unknown_stance_with_the_valid_ones",
    "tests/test_policy.py::test_mark_static_and_mark_dynamic_validate_their_arguments",
    "tests/test_escape_hatches.py::test_reoptimizing_with_different_options_warns_and_keeps_the_first",
    "tests/test_internal_errors.py::test_suppress_errors_has_an_environment_override",
    # the resume-bytecode checker on hand-made code objects
    "tests/test_internal_errors.py::test_code_check_rejects_a_wrong_handler_depth_and_a_short_stack",
    # a child interpreter, which the broken engine (installed by conftest) does not reach
    "tests/test_internal_errors.py::test_logging_call_in_traced_code_does_not_kill_the_interpreter",
    "tests/test_internal_errors.py::test_exception_handler_of_a_try_resumed_inside_a_with_block_runs",
]
# what runs eagerly by design (the engine never compiles it) passes when compiling is broken
EAGER_BY_DESIGN = [
    "tests/test_escape_hatches.py::test_optimize_of_a_disabled_function_runs_it_eagerly",
]
# and, per engine, the tests whose subject the engine does not break
ALLOWED = {
    "identity": NOT_ENGINE_TESTS,
    "fallback": NOT_ENGINE_TESTS + EAGER_BY_DESIGN,
    "nocache": NOT_ENGINE_TESTS + EAGER_BY_DESIGN,
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


@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(ALLOWED))
def test_every_engine_test_fails_under_a_broken_engine(engine, tmp_path):
    passed, total, summary = passed_tests(engine, tmp_path / "report.xml")
    assert total > 100, f"the suite did not run under {engine}: {summary}"
    wrong = sorted(t for t in passed if not any(fnmatch.fnmatchcase(t, p) for p in ALLOWED[engine]))
    print(f"\nbroken engine {engine}: {total} tests, {total - len(passed)} failed, {len(passed)} passed "
          f"({len(passed) - len(wrong)} allowed, {len(wrong)} not allowed)  [{summary}]")
    assert not wrong, "tests that pass without a working engine:\n" + "\n".join(wrong)
