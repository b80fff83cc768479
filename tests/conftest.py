"""Suite-wide rules.

- A skipped test is a failed test: a missing package, a missing ../shared or a missing browser must
  not make tests vanish with the run green.  The one exception is a test that needs hardware this
  kind of machine does not have: it skips with a reason starting "needs hardware:".
- Guards check tensors with the C++ check (partialdyn/guards/native.py) from the first test: the session
  builds it first if this machine has no copy for this Python and torch, so no test depends on when a
  background build finishes (tests/test_native_tensor_check.py also runs the Python terms).
- BROKEN_PARTIALDYN_ENGINE=identity|fallback|nocache runs the suite against a deliberately broken
  engine (tests/broken_engines.py; only this file reads the variable, not a PARTIALDYN_* name: the engine
  rejects unknown ones); tests/test_meta_broken_engines.py
  uses it to prove that every engine test fails when the engine does not compile.
"""
import os

import pytest

HARDWARE_REASON = "needs hardware:"



BROKEN_ENGINE = os.environ.get("BROKEN_PARTIALDYN_ENGINE", "")


@pytest.fixture
def fresh_partialdyn():
    """No cache, policy memory or counter left from an earlier test, before and after (files opt in with
    `pytestmark = pytest.mark.usefixtures("fresh_partialdyn")`)."""
    import partialdyn
    partialdyn.reset()
    yield
    partialdyn.reset()


def pytest_configure(config):
    import partialdyn
    from partialdyn.guards import native
    if partialdyn.config.native_guards:
        native.ensure_built()
    if BROKEN_ENGINE:
        import broken_engines
        broken_engines.install(BROKEN_ENGINE)


def pytest_report_header(config):
    return f"partialdyn: BROKEN ENGINE {BROKEN_ENGINE!r} (meta-test run)" if BROKEN_ENGINE else None


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _fail_skip(report, what):
    reason = _skip_reason(report)
    if reason.startswith(HARDWARE_REASON):
        return
    report.outcome = "failed"
    report.longrepr = (f"{what} was skipped ({reason}); skips fail in this suite: install what it needs "
                       f"(.ci/run shows how) or, for missing hardware only, skip with a reason starting "
                       f"{HARDWARE_REASON!r}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        _fail_skip(report, f"module {collector.nodeid}")
