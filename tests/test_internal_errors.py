"""Internal errors never crash the interpreter or reach the user's program.

Code partialdyn generates is checked before it runs; a failure while compiling a frame makes that frame run
eagerly, with one warning per code object, counted as `internal_errors` (or raised, when asked for).  Programs
that used to kill the interpreter run in a child process.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import bytecode
import pytest
import torch

import partialdyn
from partialdyn.frontend.codecheck import BadCode, check_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_function():
    partialdyn.reset()


def run_child(program: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


def test_logging_call_in_traced_code_does_not_kill_the_interpreter():
    child = run_child("""
        import logging, torch, partialdyn
        log = logging.getLogger("user")
        @partialdyn.optimize
        def f(x):
            log.info("step")
            return x + 1
        print(f(torch.ones(2)).tolist(), f(torch.ones(3)).tolist())
        s = partialdyn.stats(f)
        print(s["internal_errors"], s["graphs"] >= 1)
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split("\n")[:2] == ["[2.0, 2.0] [2.0, 2.0, 2.0]", "0 True"]


def test_exception_handler_of_a_try_resumed_inside_a_with_block_runs():
    # the break (a KeyError at trace time) is inside a try inside `with no_grad()`: the plain resume function
    # must unwind to the handler's depth, which keeps the with block's exit function on the stack
    child = run_child("""
        import torch, partialdyn
        TABLE = {}
        def f(x):
            with torch.no_grad():
                try:
                    y = x * TABLE["missing"]
                except KeyError:
                    y = x * 2
            return y + 1, torch.is_grad_enabled()
        opt = partialdyn.optimize(f)
        x = torch.ones(3, requires_grad=True)
        got, want = opt(x), f(x)
        print(got[0].tolist() == want[0].tolist(), got[0].requires_grad == want[0].requires_grad,
              got[1] == want[1], partialdyn.stats(opt)["internal_errors"])
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "True True True 0"


def failing_backend(gm, example_inputs):
    raise ValueError("backend exploded")


def scaled(x):
    return x * 2 + 1


def test_internal_error_runs_the_frame_eagerly_and_warns_once_naming_the_error():
    opt = partialdyn.optimize(scaled, backend=failing_backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [opt(torch.full((n,), 3.0)) for n in (2, 3, 4)]
    for n, out in zip((2, 3, 4), results):
        torch.testing.assert_close(out, scaled(torch.full((n,), 3.0)))
    ours = [w for w in caught if "partialdyn" in str(w.message)]
    assert len(ours) == 1
    assert "ValueError: backend exploded" in str(ours[0].message)
    assert ours[0].filename == __file__ and ours[0].lineno == scaled.__code__.co_firstlineno
    s = partialdyn.stats(opt)
    assert s["internal_errors"] == 1 and s["eager_fallbacks"] == 3 and s["graph_breaks"] == 0


def test_suppress_errors_false_raises_the_internal_error():
    opt = partialdyn.optimize(scaled, backend=failing_backend)
    partialdyn.config.suppress_errors = False
    try:
        with pytest.raises(RuntimeError, match="backend exploded") as raised:
            opt(torch.ones(2))
    finally:
        partialdyn.config.suppress_errors = True
    assert isinstance(raised.value.__cause__, ValueError)
    assert partialdyn.stats(opt)["internal_errors"] == 1


def test_suppress_errors_has_an_environment_override():
    from partialdyn.config import from_environment
    assert from_environment({"PARTIALDYN_SUPPRESS_ERRORS": "0"}).suppress_errors is False
    assert from_environment({}).suppress_errors is True
    with pytest.raises(ValueError, match="PARTIALDYN_SUPPRESS_ERRORS"):
        from_environment({"PARTIALDYN_SUPPRESS_ERRORS": "maybe"})


def lookup_or_default(table, key):
    try:
        return table[key]
    except KeyError:
        return None


def test_code_check_rejects_a_wrong_handler_depth_and_a_short_stack():
    check_code(lookup_or_default.__code__)          # what CPython compiled is accepted
    bad_depth = bytecode.Bytecode.from_code(lookup_or_default.__code__)
    for item in bad_depth:
        if isinstance(item, bytecode.TryBegin):
            item.stack_depth = 40
    with pytest.raises(BadCode, match="handler"):
        check_code(bad_depth.to_code(stacksize=8, compute_exception_stack_depths=False))
    with pytest.raises(BadCode, match="stack size 1"):
        check_code(lookup_or_default.__code__.replace(co_stacksize=1))
