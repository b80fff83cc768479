"""numpy values and functions, logging and warnings in traced code: eager's results and eager's semantics."""
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import partialdyn
from conftest import BROKEN_ENGINE
from helpers import CountingBackend, check, r

B = (2, 3, 5)


def setup_function():
    partialdyn.reset()


def check_with_arrays(f, calls):
    """check() for calls with numpy array arguments (check compares inputs with ==, ambiguous for arrays)."""
    backend = CountingBackend()
    opt = partialdyn.optimize(f, backend=backend)
    for x, a in calls:
        runs = backend.runs
        torch.testing.assert_close(opt(x.clone(), a.copy()), f(x.clone(), a.copy()))
        assert backend.runs > runs
    s = partialdyn.stats(opt)
    assert s["eager_fallbacks"] == 0 and s["internal_errors"] == 0, s


def test_numpy_array_argument_gives_eager_results():
    def f(x, a):
        return x * a.sum()
    check_with_arrays(f, [(r(b), np.arange(float(b))) for b in B])


def test_numpy_functions_of_constants_are_evaluated_while_tracing():
    def f(x):
        return x * np.sqrt(4.0) + np.float32(0.5) * np.prod((2, 3)) + np.maximum(1, 3)
    check(f, [(r(b),) for b in B], breaks=0)


def test_numpy_scalar_argument_is_a_guarded_constant():
    def f(x, s):
        return x * s
    check(f, [(r(2), np.float32(2.0)), (r(3), np.float32(2.0)), (r(3), np.float32(-0.5))], breaks=0,
          recompiles=1)


def test_numpy_function_of_an_array_breaks_cleanly():
    def f(x, a):
        return x * np.sqrt(a).sum() + 1
    check_with_arrays(f, [(r(b), np.arange(float(b))) for b in B])


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.seen = []

    def emit(self, record):
        self.seen.append((record.pathname, record.lineno, record.funcName, record.getMessage()))


def test_logging_call_logs_what_eager_logs_naming_the_users_line():
    log = logging.getLogger("partialdyn.tests.user")
    log.setLevel(logging.INFO)
    records = Records()
    log.addHandler(records)

    def f(x):
        y = x * 2
        log.info("rows %d", 7)
        return y + 1
    try:
        check(f, [(r(b),) for b in B], breaks=1)  # eager and optimized call in turn, then the cache re-hit
    finally:
        log.removeHandler(records)
    calls, rehit = records.seen[:-1], records.seen[-1]
    eager, optimized = calls[0::2], calls[1::2]
    assert len(eager) == len(optimized) == len(B)
    assert optimized == eager
    assert rehit == eager[-1], "the call that hits the cache logs once, as eager does"
    assert eager[0][0] == __file__ and eager[0][2] == "f"


def careful(x):
    warnings.warn("caller's problem", UserWarning, stacklevel=2)
    return x


def test_warnings_are_attributed_to_the_users_lines():
    def f(x):
        warnings.warn("in f", RuntimeWarning)
        return careful(x * 2) + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(f, [(r(b),) for b in B], breaks=None)  # eager and optimized call in turn, then the cache re-hit
    seen = [(w.filename, w.lineno, str(w.message)) for w in caught if "partialdyn" not in str(w.message)]
    # each eager call warns twice, in f and (stacklevel=2) at f's call of careful; then the optimized call;
    # the last call made again (it must hit the cache) warns twice more
    assert len(seen) == 4 * len(B) + 2
    for i in range(len(B)):
        assert seen[4 * i + 2:4 * i + 4] == seen[4 * i:4 * i + 2]
    assert seen[-2:] == seen[-6:-4], "the call that hits the cache warns as eager does"
    assert all(filename == __file__ for filename, _, _ in seen), seen


def test_transformers_warning_once_warns_once_with_no_graph_break():
    """transformers' `logger.warning_once` is an lru_cache method: called at trace time like eager calls it,
    so the message is logged once (as eager logs it once) and the call is not a break on every call."""
    from transformers.utils import logging as hf_logging
    logger = hf_logging.get_logger("partialdyn.tests.warning_once")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    logger.addHandler(Keep())

    def f(x):
        if x.shape[0] > 1:
            logger.warning_once("a batch of more than one")
        return x * 2
    opt = partialdyn.optimize(f, backend="eager")
    for n in B:
        torch.testing.assert_close(opt(r(n)), r(n) * 2)
    assert records == ["a batch of more than one"]
    stats = partialdyn.stats(opt)
    assert stats["graph_breaks"] == 0 and stats["compiles"] == 1 and stats["cache_hits"] == 2, stats


MAIN_MODULE = """
import os
import warnings

import torch

import partialdyn

if os.environ.get("BROKEN_PARTIALDYN_ENGINE"):      # the meta-test's broken engine, as in the test process
    import broken_engines
    broken_engines.install(os.environ["BROKEN_PARTIALDYN_ENGINE"])


def f(x):
    x = x + 1
    warnings.warn("careful")
    return x * 2


opt = partialdyn.optimize(f)
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    results = [opt(torch.ones(2)).tolist() for _ in range(2)]
stats = partialdyn.stats(opt)
print(results, [(str(w.message), os.path.basename(w.filename), w.lineno) for w in seen], stats["graph_breaks"],
      stats["cache_hits"] >= 2)
"""


def test_a_warning_at_a_graph_break_in_a_module_run_with_python_m_warns_instead_of_raising_import_error(tmp_path):
    # found by the state fuzzer (its runner is `python -m tests.fuzz.state`): the warning was issued with the
    # user module's globals, whose loader (named for the module, not __main__) raised ImportError for its source
    (tmp_path / "usermain.py").write_text(MAIN_MODULE)
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (tests.parent, tests, tmp_path))),
           "BROKEN_PARTIALDYN_ENGINE": BROKEN_ENGINE}
    done = subprocess.run([sys.executable, "-m", "usermain"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    line = MAIN_MODULE.splitlines().index('    warnings.warn("careful")') + 1
    assert done.stdout.strip() == f"[[4.0, 4.0], [4.0, 4.0]] {[('careful', 'usermain.py', line)] * 2} 1 True"
