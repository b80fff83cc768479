"""Torch global state: queries are guarded by their answer, setters run in Python on every call, autocast and
inference mode, deterministic algorithms are part of every entry's GLOBAL_STATE guard.  Differential against eager, with the
state changed between calls (the hooks run before both the eager and the optimized call)."""
import contextlib

import pytest
import torch

import partialdyn
from partialdyn.backends import aot_eager
from helpers import CountingBackend, check, r, same


def setup_function():
    partialdyn.reset()


@contextlib.contextmanager
def restored_state():
    """Whatever a test changes, the next test starts from torch's state as it was."""
    saved = (torch.get_num_threads(), torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.is_autocast_enabled("cpu"),
             torch.get_autocast_dtype("cpu"), torch.backends.mkldnn.enabled)
    try:
        yield
    finally:
        threads, dtype, deterministic, warn_only, autocast, autocast_dtype, mkldnn = saved
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_autocast_enabled("cpu", autocast)
        torch.set_autocast_dtype("cpu", autocast_dtype)
        torch.backends.mkldnn.enabled = mkldnn


def state(**changes):
    """A `before` hook that sets global state."""
    setters = {"deterministic": torch.use_deterministic_algorithms, "threads": torch.set_num_threads,
               "autocast": lambda on: torch.set_autocast_enabled("cpu", on),
               "autocast_dtype": lambda dtype: torch.set_autocast_dtype("cpu", dtype),
               "mkldnn": lambda on: setattr(torch.backends.mkldnn, "enabled", on)}

    def hook(_target):
        for name, value in changes.items():
            setters[name](value)
    return hook


def deterministic_branch(x):
    return x * 2 if torch.are_deterministic_algorithms_enabled() else x - 1


def test_deterministic_algorithms_query_is_guarded_and_unchanged_state_hits_the_cache():
    with restored_state():
        x = r(3)
        stats = check(deterministic_branch, [(x,), (x,), (x,), (x,), (x,)], recompiles=1,
                      before={1: state(deterministic=True), 3: state(deterministic=False)})
    assert stats["compiles"] == 2 and stats["cache_hits"] == 3, stats


def matmul_then_cast(x, w):
    return x @ w * 2


def test_deterministic_algorithms_flag_is_part_of_every_entry_guard():
    with restored_state():
        x, w = r(2, 3), r(3, 4)
        stats = check(matmul_then_cast, [(x, w), (x, w), (x, w)], recompiles=1,
                      before={1: state(deterministic=True)})
    assert stats["cache_hits"] == 1, stats


def autocast_query(x):
    return x * 2 if torch.is_autocast_enabled("cpu") else x - 1


def test_autocast_query_on_the_first_call_under_autocast_is_answered_and_guarded():
    with restored_state():
        x = r(3)
        stats = check(autocast_query, [(x,), (x,), (x,)], recompiles=1,
                      before={0: state(autocast=True, autocast_dtype=torch.bfloat16), 2: state(autocast=False)})
    assert stats["cache_hits"] == 1, stats


def matmul_dtype_branch(x, w):
    y = x @ w
    return y.float() * 100 if y.dtype == torch.bfloat16 else y


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_trace_made_without_autocast_is_not_reused_under_it_and_back(backend):
    with restored_state():
        x, w = r(2, 3), r(3, 4)
        calls = [(x, w)] * 5
        stats = check(matmul_dtype_branch, calls, recompiles=2, backend=backend,
                      before={1: state(autocast=True, autocast_dtype=torch.bfloat16),
                              3: state(autocast_dtype=torch.float16), 4: state(autocast=False)})
    assert stats["compiles"] == 3 and stats["cache_hits"] == 2, stats


def test_trace_made_under_autocast_computes_what_eager_computes_and_is_not_reused_outside_it():
    with restored_state():
        x, w = r(4, 8), r(8, 8)
        stats = check(lambda x, w: torch.relu(x @ w) + x.sum(), [(x, w), (x, w), (x, w)], recompiles=1,
                      before={0: state(autocast=True, autocast_dtype=torch.bfloat16), 1: state(autocast=False),
                              2: state(autocast=True)})
    assert stats["cache_hits"] == 1, stats


def scaled_by_threads(x):
    return x * torch.get_num_threads()


def test_num_threads_query_is_guarded_by_its_answer():
    with restored_state():
        n = torch.get_num_threads()
        x = r(3)
        stats = check(scaled_by_threads, [(x,), (x,), (x,), (x,)], recompiles=1,
                      before={1: state(threads=n + 1), 3: state(threads=n)})
    assert stats["cache_hits"] == 2, stats


def default_dtype_changed_inside(x):
    torch.set_default_dtype(torch.float64)
    y = torch.zeros(2) + x
    torch.set_default_dtype(torch.float32)
    return y, torch.ones(1)


def test_set_default_dtype_inside_the_function_runs_on_every_call():
    with restored_state():
        x = r(2)
        stats = check(default_dtype_changed_inside, [(x,), (x,), (x,)], breaks=2)
    assert stats["cache_hits"] >= 2, stats


def set_threads_inside(x, n):
    torch.set_num_threads(n)
    return x * torch.get_num_threads()


def test_setter_builtin_inside_the_function_is_a_graph_break():
    with restored_state():
        n = torch.get_num_threads()
        x = r(3)
        check(set_threads_inside, [(x, n + 1), (x, n)], breaks=1, recompiles=1)
        assert torch.get_num_threads() == n


def logs_usage(x):
    torch._C._log_api_usage_once("partialdyn.test")     # a torch builtin nobody classified
    return x + 1


def test_unclassified_torch_builtin_without_tensor_arguments_is_a_graph_break_not_folded():
    stats = check(logs_usage, [(r(3),), (r(3),)], breaks=1)
    assert stats["compiles"] == 2, stats          # the function and its resume function, once each


def mkldnn_query(x):
    return x * 2 if torch._C._get_mkldnn_enabled() else x - 1


def test_unclassified_torch_getter_is_guarded_by_its_answer():
    with restored_state():
        x = r(3)
        check(mkldnn_query, [(x,), (x,), (x,)], recompiles=1, before={1: state(mkldnn=False)})


def mkldnn_flag(x):
    return x * 2 if torch.backends.mkldnn.enabled else x - 1


def test_torch_backends_flag_read_by_the_trace_is_guarded():
    with restored_state():
        x = r(3)
        stats = check(mkldnn_flag, [(x,), (x,), (x,), (x,)], recompiles=1,
                      before={1: state(mkldnn=False), 3: state(mkldnn=True)})
    assert stats["cache_hits"] == 2, stats


def test_explain_lists_autocast_and_deterministic_guards():
    report = str(partialdyn.explain(lambda x: x + 1, r(2)))
    assert "autocast is off" in report and "deterministic algorithms are off" in report
    with restored_state():
        torch.set_autocast_enabled("cpu", True)
        torch.set_autocast_dtype("cpu", torch.bfloat16)
        report = str(partialdyn.explain(lambda x: x + 1, r(2)))
    assert "autocast is on for cpu with torch.bfloat16" in report


def doubled(x):
    return x * 2


@pytest.mark.parametrize("traced_inside", [False, True])
def test_an_entry_traced_on_one_side_of_inference_mode_is_not_reused_on_the_other(traced_inside):
    # grad mode is on on both sides (enable_grad inside inference mode): only inference mode differs
    backend = CountingBackend(aot_eager)
    opt = partialdyn.optimize(doubled, backend=backend)
    x = r(3, requires_grad=True)
    sides = [True, False] if traced_inside else [False, True]
    for inside in sides + sides:
        with torch.inference_mode(inside), torch.enable_grad():
            got, expected = opt(x), doubled(x)
            assert got.is_inference() is expected.is_inference() is inside
        same(expected, got)
    stats = partialdyn.stats(opt)
    assert backend.runs == 4 and stats["compiles"] == 2 and stats["cache_hits"] == 2, stats


def test_inference_mode_query_in_the_function_is_answered_on_each_side():
    def branch(x):
        return x + 1 if torch.is_inference_mode_enabled() else x - 1
    backend = CountingBackend()
    opt = partialdyn.optimize(branch, backend=backend)
    for inside in (False, True, False):
        with torch.inference_mode(inside):
            same(branch(r(3)), opt(r(3)))
    assert backend.runs == 3 and partialdyn.stats(opt)["compiles"] == 2
