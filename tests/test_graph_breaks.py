"""Graph breaks with resume functions: the graph before a break is compiled, the
offending step runs in Python, a resume function (itself optimized) continues.

Every test compares with eager PyTorch through `helpers.check` (outputs, exception
types, mutated inputs) and asserts how many graphs ran and how many breaks happened.
"""
from __future__ import annotations

import dis
import operator
import os
import sys
import traceback

import numpy as np
import pytest
import torch

import partialdyn
from helpers import CountingBackend, check, outcome, r

B = (2, 3, 5)
HERE = os.path.abspath(__file__)


@pytest.fixture(autouse=True)
def _reset():
    partialdyn.reset()
    yield
    partialdyn.reset()


def line_of(marker: str) -> int:
    """The line number in this file of the line ending with `# <marker>`."""
    with open(HERE) as fh:
        hits = [i for i, text in enumerate(fh, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, marker
    return hits[0]


def runs_per_call(fn, calls, **opts):
    """Optimize fn with a CountingBackend; return the number of graph runs of each call and the stats."""
    backend = CountingBackend()
    opt = partialdyn.optimize(fn, backend=backend, **opts)
    runs = []
    for args in calls:
        before = backend.runs
        opt(*args)
        runs.append(backend.runs - before)
    return runs, partialdyn.stats(opt), backend


# ====================================================================== straight-line code
def print_between(x):
    y = x.sin() * 2
    print("between", y.shape[1])
    return y.cos() + 1


def eager_and_optimized_output(capsys, fn, calls):
    """What fn prints over `calls`, eagerly and optimized (a fresh CountingBackend)."""
    for args in calls:
        fn(*args)
    eager_out = capsys.readouterr().out
    runs, stats, _ = runs_per_call(fn, calls)
    return eager_out, capsys.readouterr().out, runs, stats


def test_print_between_tensor_ops(capsys):
    calls = [(r(b, 4),) for b in B]
    eager_out, opt_out, runs, _ = eager_and_optimized_output(capsys, print_between, calls)
    assert opt_out == eager_out == "between 4\n" * 3
    assert runs == [2, 2, 2], "both the graph before and the graph after the break run"
    partialdyn.reset()
    s = check(print_between, calls, breaks=1)
    assert s["graphs"] == 2 and s["compiles"] == 2


def test_print_of_tensor_and_size(capsys):
    def f(x):
        y = x + 1
        print("value", y[0, 0].item() > -100, tuple(y.shape), y.dtype)
        return y * 2

    calls = [(r(b, 3),) for b in B]
    eager_out, opt_out, runs, stats = eager_and_optimized_output(capsys, f, calls)
    assert opt_out == eager_out
    assert stats["graph_breaks"] >= 1 and stats["recompiles"] == 0 and stats["eager_fallbacks"] == 0
    partialdyn.reset()
    check(f, calls, breaks=None)


def test_opaque_call_between_tensor_ops():
    def f(x):
        y = x * 3
        pid = os.getpid()
        return y - 1 + (pid > 0)

    runs, s, _ = runs_per_call(f, [(r(b),) for b in B])
    assert runs == [2, 2, 2]
    assert s["graph_breaks"] == 1 and s["recompiles"] == 0 and s["eager_fallbacks"] == 0
    check(f, [(r(b),) for b in B], breaks=1)


def test_break_with_values_on_the_stack():
    def noisy(t):
        print("noisy")
        return t * 0.5

    def f(x):
        return x * 2 + noisy(x.relu()) - x.sum()

    check(f, [(r(b, 3),) for b in B], breaks=None)


def test_live_locals_of_every_kind_cross_a_break():
    def f(x, k, xs):
        n = x.size(0)
        d = {"a": x * 2, "n": 4}
        lst = [x, x + 1]
        t = (k, "s", None)
        first, *rest = xs
        print("break")
        return d["a"] + lst[1] * n + t[0], torch.zeros(d["n"]), first + sum(rest), t[1]

    calls = [(r(b, 2), k, [r(b, 2, seed=s) for s in range(3)]) for b, k in ((2, 3), (3, 3), (5, 3))]
    s = check(f, calls, breaks=1)
    assert s["graphs"] == 2


def test_size_in_container_crossing_break_is_not_specialized():
    def f(x, k):
        d = {"n": x.size(0)}
        lst = [x.size(0) + 1]
        t = (k, "s")
        print("break")
        return torch.zeros(d["n"]) + x, torch.ones(lst[0]) * t[0]

    check(f, [(r(b), b + 1) for b in B], breaks=1)


# ====================================================================== loops
def test_break_inside_for_range_loop():
    def f(x):
        for i in range(3):
            x = x * 2
            print("iteration", i)
            x = x + i
        return x

    check(f, [(r(b),) for b in B], breaks=None)
    runs, s, _ = runs_per_call(f, [(r(b),) for b in B])
    assert s["recompiles"] == 0 and s["eager_fallbacks"] == 0 and s["graph_breaks"] >= 1
    assert runs[0] >= 3 and runs[0] == runs[1] == runs[2], "each iteration runs compiled graphs"


def test_break_inside_for_list_loop():
    def f(x, ws):
        for w in ws:
            x = x @ w
            os.getpid()
            x = x.relu()
        return x

    calls = [(r(b, 4), [r(4, 4, seed=s) for s in range(3)]) for b in B]
    s = check(f, calls, breaks=None, recompiles=None)
    assert s["graph_breaks"] >= 1
    assert s["graph_runs"] >= 3 * len(calls)


@pytest.mark.xfail(reason="break inside `for w in ws`: the resume cannot iterate the list_iterator (a second "
                          "break per iteration) and guards `w is ws[0]`, so each iteration recompiles",
                   strict=True)
def test_break_inside_for_list_loop_does_not_recompile():
    def f(x, ws):
        for w in ws:
            x = x @ w
            os.getpid()
            x = x.relu()
        return x

    calls = [(r(b, 4), [r(4, 4, seed=s) for s in range(3)]) for b in B]
    check(f, calls, breaks=1)


# ====================================================================== inlined helper
def helper_with_print(t):
    u = t.sin()
    print("inside helper")
    return u.cos()


def test_break_inside_inlined_helper(capsys):
    def f(x):
        a = x + 1
        b = helper_with_print(a)
        return b * 2

    s = check(f, [(r(b, 3),) for b in B], breaks=None)
    # eager and optimized print once per call, and the last call made again (a cache hit) prints once more
    assert capsys.readouterr().out == "inside helper\n" * (2 * len(B) + 1)
    assert s["graphs"] >= 2 and s["graph_breaks"] >= 1
    ops = {str(t) for t in s["backend"].ops()}
    for name in ("add", "sin", "cos", "mul"):
        assert any(name in o for o in ops), f"{name} ran outside any compiled graph: {ops}"


def test_two_breaks_in_one_function(capsys):
    def f(x):
        a = x.exp()
        print("one")
        b = a * 2
        print("two")
        return b - 1

    calls = [(r(b),) for b in B]
    s = check(f, calls, breaks=2)
    assert s["graphs"] == 3 and s["compiles"] == 3
    assert s["graph_runs"] == 3 * len(calls)
    # the last call made again hits the cache of f and of both resume functions: three graphs run, and it
    # prints once, between them, as eager does
    assert s["backend"].runs == 3 * len(calls) + 3
    assert capsys.readouterr().out == "one\ntwo\n" * (2 * len(calls) + 1)


# ====================================================================== resume recompiles
def test_resume_function_recompiles_on_dtype_change():
    def f(x, y):
        a = x * 2
        print("break")
        return a + y

    calls = [(r(2), r(2, seed=1)), (r(3), r(3, seed=1)), (r(3), r(3, seed=1, dtype=torch.float64)),
             (r(5), r(5, seed=1, dtype=torch.float64))]
    s = check(f, calls, breaks=None, recompiles=None)
    compiles = partialdyn.events("compile")
    resume = [e for e in compiles if e["code"] != compiles[0]["code"]]
    assert len(resume) == 2 and resume[-1]["recompile"], "the resume function recompiles for float64"
    assert "float64" in resume[-1]["reason"]
    assert 1 <= s["recompiles"] <= 2 and s["eager_fallbacks"] == 0


def test_resume_values_are_not_specialized():
    def f(x):
        n = x.size(0) * 2
        print("break")
        return torch.ones(n) * x.sum()

    check(f, [(r(b, 2),) for b in (2, 3, 5, 7)], breaks=1)


def test_local_lambda_across_break_does_not_recompile():
    def f(x):
        g = lambda t: t * 2  # noqa: E731
        print("break")
        return g(x)

    check(f, [(r(b),) for b in B], breaks=1)


def test_object_made_by_break_step_does_not_recompile():
    def f(x, xs):
        get = operator.itemgetter(1)
        return x + get(xs)

    check(f, [(r(b), [r(b, seed=s) for s in range(3)]) for b in B], breaks=None)


# ====================================================================== container mutation across breaks
def test_list_appended_after_break():
    def f(x):
        lst = [x]
        print("break")
        lst.append(x * 2)
        return lst

    check(f, [(r(b),) for b in B], breaks=None)


def _append_with_break(lst, t):
    print("helper breaks")
    lst.append(t)


def test_helper_with_break_mutates_callers_list():
    def f(x):
        lst = []
        _append_with_break(lst, x * 2)
        return x + len(lst), lst

    check(f, [(r(b),) for b in B], breaks=None)


def test_input_list_mutated_after_break():
    def f(x, ys):
        y = x * 2
        print("break")
        ys.append(y)
        return y + ys[0]

    check(f, [(r(b), [r(b, seed=1)]) for b in B], breaks=None)


def test_aliasing_preserved_across_break():
    def f(x):
        a = [x]
        b = a
        print("break")
        return a is b, len(a), b

    # no tensor op at all: the resume function returns the list it was given, with no graph to run
    check(f, [(r(b),) for b in B], breaks=None, graph_every_call=False)


# ====================================================================== exceptions
def raise_after_break(x):
    y = x * 2
    print("before raising")
    if y.size(0) > 4:
        raise ValueError("too big")  # RAISE-LINE
    return y


def test_user_exception_after_break_keeps_type():
    calls = [(r(b),) for b in (2, 3, 6, 3)]
    check(raise_after_break, calls, breaks=None, fallbacks=None)


def test_user_exception_after_break_keeps_location():
    opt = partialdyn.optimize(raise_after_break, backend=CountingBackend())
    opt(r(2))
    with pytest.raises(ValueError, match="too big") as info:
        opt(r(6))
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (os.path.abspath(last.filename), last.lineno) == (HERE, line_of("RAISE-LINE"))
    assert partialdyn.stats(opt)["graph_breaks"] >= 1
    assert outcome(opt, r(2))[1] == "hit"      # the first call's entries still serve it


def test_raising_after_a_break_again_and_again_compiles_once_per_path_not_once_per_exception():
    # the exception object is made fresh by each raising call; the part that raises it must not be keyed on it
    stats = check(raise_after_break, [(r(b),) for b in (2, 6, 7, 8, 9, 6)], breaks=None, fallbacks=None)
    assert stats["compiles"] <= 4, stats


def shape_error_after_break(x, w):
    y = x.relu()
    print("before the error")
    return y @ w  # MATMUL-LINE


def test_torch_error_after_break_points_at_user_line():
    check(shape_error_after_break, [(r(3, 4), r(4, 2)), (r(3, 4), r(5, 2)), (r(5, 4), r(4, 2))],
          breaks=None, fallbacks=None)
    partialdyn.reset()
    opt = partialdyn.optimize(shape_error_after_break, backend=CountingBackend())
    opt(r(3, 4), r(4, 2))
    with pytest.raises(RuntimeError) as info:
        opt(r(3, 4), r(5, 2))
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (os.path.abspath(last.filename), last.lineno) == (HERE, line_of("MATMUL-LINE"))


def test_try_except_in_function():
    def f(x, w):
        try:
            y = x @ w
        except RuntimeError:
            y = x.sum(1, keepdim=True)
        return y * 2

    calls = [(r(3, 4), r(4, 2)), (r(3, 4), r(5, 2)), (r(5, 4), r(4, 2)), (r(2, 4), r(3, 3))]
    check(f, calls, breaks=None, fallbacks=None, recompiles=None, graph_every_call=False)


def test_try_finally_without_exception():
    def f(x):
        out = []
        try:
            y = x * 2
        finally:
            out.append(1)
        return y, out

    check(f, [(r(b),) for b in B], breaks=None, fallbacks=None, graph_every_call=False)


# ====================================================================== data-dependent values
def test_branch_on_tensor_value():
    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y + 1
        return y - 1

    calls = [(r(b, seed=s),) for b in B for s in range(3)] + [(-torch.ones(4),), (torch.ones(4),)]
    s = check(f, calls, breaks=None, recompiles=0)
    assert s["graph_breaks"] >= 1


def test_item_in_branch():
    def f(x):
        s = x.sum().item()
        if s > 0:
            return x * s
        return x - s

    calls = [(r(b, seed=s),) for b in B for s in range(2)] + [(torch.ones(3),), (-torch.ones(3),)]
    s = check(f, calls, breaks=None, recompiles=0)
    assert s["graph_breaks"] >= 1


def test_item_value_not_specialized_in_resume():
    def f(x):
        s = x.sum().item()
        if s > 0:
            return x * s
        return x - s

    s = check(f, [(r(4, seed=s),) for s in range(8)] + [(-torch.ones(4),)], breaks=None, recompiles=0)
    assert s["compiles"] <= 3, "the root and (at most) one resume per branch"


def test_nonzero_size_consumed_by_python():
    def f(x):
        idx = (x > 0).nonzero()
        n = idx.shape[0]
        if n > 2:
            return x[idx[:, 0]] * 2, n
        return x - 1, n

    calls = [(r(8, seed=s),) for s in range(4)] + [(torch.ones(9),), (-torch.ones(8),)]
    s = check(f, calls, breaks=None, recompiles=None)
    assert s["graph_breaks"] >= 1
    assert s["recompiles"] <= 1, "only the empty result (size 0 specializes, as for an input) may recompile"


@torch.library.custom_op("partialdyn_tests::triple", mutates_args=())
def triple(x: torch.Tensor) -> torch.Tensor:
    return x * 3


def test_custom_op_without_fake_kernel():
    def f(x):
        y = x + 1
        z = triple(y)
        return z.relu() - 1

    s = check(f, [(r(b, 2),) for b in B], breaks=None)
    assert s["graph_breaks"] >= 1 and s["graph_runs"] >= 2 * 3


def test_numpy_round_trip():
    def f(x):
        y = x * 2
        a = y.numpy()
        b = torch.from_numpy(np.abs(a) + 1)
        return b * y

    s = check(f, [(r(b),) for b in B], breaks=None)
    assert s["graph_breaks"] >= 1


# ====================================================================== grad mode
def test_break_inside_no_grad_keeps_grad_mode():
    def f(x, w):
        y = x @ w
        with torch.no_grad():
            z = y * 3
            print("inside no_grad")
            u = z + y
            inside = torch.is_grad_enabled()
        v = u * y
        return y, z, u, v, inside, torch.is_grad_enabled()

    calls = [(r(b, 3, requires_grad=True), r(3, 3, seed=1, requires_grad=True)) for b in B]
    s = check(f, calls, breaks=1)
    assert s["graph_runs"] == 2 * len(calls)
    assert torch.is_grad_enabled()


def test_break_inside_enable_grad_under_caller_no_grad():
    def f(x):
        a = x * 2
        with torch.enable_grad():
            b = x * 3
            print("inside enable_grad")
            c = b * x
        return a, b, c

    calls = [(r(b, requires_grad=True),) for b in B]
    opt = partialdyn.optimize(f, backend=CountingBackend())
    for (x,) in calls:
        with torch.no_grad():
            ref = f(x)
            out = opt(x)
        assert [t.requires_grad for t in out] == [t.requires_grad for t in ref] == [False, True, True]
        for a, b in zip(out, ref):
            torch.testing.assert_close(a, b)
    assert partialdyn.stats(opt)["graph_breaks"] == 1


# ====================================================================== fullgraph, stats, events
def fullgraph_victim(x):
    y = x + 1
    print("cannot stay in one graph")  # FULLGRAPH-LINE
    return y * 2


def test_fullgraph_raises_with_location(capsys):
    opt = partialdyn.optimize(fullgraph_victim, backend=CountingBackend(), fullgraph=True)
    with pytest.raises(Exception) as info:
        opt(r(3))
    message = str(info.value)
    assert "test_graph_breaks.py" in message and str(line_of("FULLGRAPH-LINE")) in message, message
    assert "cannot stay in one graph" not in capsys.readouterr().out, "fullgraph must not run the code eagerly"


def test_fullgraph_without_break_compiles():
    def f(x):
        return x.relu() + 1

    check(f, [(r(b),) for b in B], fullgraph=True)


def test_stats_count_breaks_once_per_compile():
    def f(x):
        a = x + 1
        print("one")
        a = a * 2
        print("two")
        return a

    runs, s, _ = runs_per_call(f, [(r(b),) for b in (2, 3, 5, 7, 11)])
    assert runs == [3] * 5
    assert s == {"calls": 5, "cache_hits": 12, "compiles": 3, "recompiles": 0, "graphs": 3,
                 "graph_breaks": 2, "eager_fallbacks": 0, "internal_errors": 0}


def events_victim(x):
    y = x.cos()
    os.getpid()  # EVENT-LINE
    return y + 1


def test_graph_break_event_fields():
    check(events_victim, [(r(b),) for b in B], breaks=1)
    [event] = partialdyn.events("graph_break")
    assert os.path.abspath(event["file"]) == HERE
    assert event["line"] == line_of("EVENT-LINE")
    assert "getpid" in event["reason"]
    assert event["fn"].endswith("events_victim")


def test_module_forward_with_break():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 2)

        def forward(self, x):
            h = self.a(x).relu()
            print("hidden", h.shape[-1])
            return self.b(h)

    s = check(M(), [(r(b, 4),) for b in B], breaks=1)
    assert s["graph_runs"] == 2 * 3


class _Scaled(torch.nn.Module):
    def forward(self, x):
        return x * 3


class _ScaledAfterABreak(_Scaled):
    def forward(self, x):
        y = x + _noisy_product(x.relu())      # the break leaves x on the stack of the resumed frame
        return super().forward(y) - 1


def test_zero_argument_super_after_a_break_in_the_same_method_finds_the_methods_self(capsys):
    s = check(_ScaledAfterABreak(), [(r(b, 4),) for b in B], breaks=None)
    assert s["graph_breaks"] >= 1


# ====================================================================== the step at the break, per kind of instruction
def _noisy_product(a, b=1):
    print("noisy")
    return a * b


def _and_of_tensor_truth(x):
    y = x * 2
    return x + ((y.sum() > 0) and y.sum())


def _while_on_tensor_truth(x):
    y = x.abs() + 1
    steps = 0
    while y.sum() > 2 and steps < 3:
        y = y / 2
        steps += 1
    return y, steps


def _star_call_breaking_inside(x):
    args = (x, 2)
    return x + _noisy_product(*args)


def _star_star_call_breaking_inside(x):
    kwargs = {"a": x, "b": 3}
    return x - _noisy_product(**kwargs)


def _not_of_tensor_truth(x):
    y = x.sum()
    return x * 2 if not (y > 0) else x * 3


@pytest.mark.parametrize("fn", [_and_of_tensor_truth, _while_on_tensor_truth,
                                _star_call_breaking_inside, _star_star_call_breaking_inside, _not_of_tensor_truth],
                         ids=lambda fn: fn.__name__.strip("_"))
def test_a_break_at_each_kind_of_instruction_resumes_with_the_values_python_leaves(fn, capsys):
    calls = [(r(b, seed=s),) for b in B for s in range(2)] + [(-torch.ones(4),), (torch.ones(4),)]
    s = check(fn, calls, breaks=None, recompiles=None)
    assert s["graph_breaks"] >= 1


# ====================================================================== 3.13 pair instructions past local 15
# 3.13's LOAD_FAST_LOAD_FAST, STORE_FAST_STORE_FAST and STORE_FAST_LOAD_FAST hold two local numbers in 4 bits each.
# A resume function takes the locals bound at the break as its first arguments (here x, a0..a15 and y: 18, then
# the loop's i), so p, q and s, which the original numbers from 1 (assigned first in the branch that never runs),
# get numbers past 15 in it.
PAIRS = {"LOAD_FAST_LOAD_FAST", "STORE_FAST_STORE_FAST", "STORE_FAST_LOAD_FAST"}


def pair_instructions(fn) -> set[tuple[str, str]]:
    """(instruction, its locals) of fn's pair instructions (none before 3.13)."""
    return {(i.opname, i.argrepr) for i in dis.get_instructions(fn) if i.opname in PAIRS}


def _pair_of_locals_read_after_a_break(x):
    if x is None:                      # never runs: p and q get the low local numbers 1 and 2
        p = q = None
    a0, a1, a2, a3, a4, a5, a6, a7 = x + 0, x + 1, x + 2, x + 3, x + 4, x + 5, x + 6, x + 7
    a8, a9, a10, a11, a12, a13, a14, a15 = x + 8, x + 9, x + 10, x + 11, x + 12, x + 13, x + 14, x + 15
    y = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15) * 0
    print("break")
    p = x * 100
    q = x * 1000
    return y + (p + q)


def _pairs_of_locals_written_after_a_break(x):
    if x is None:
        p = q = s = None
    a0, a1, a2, a3, a4, a5, a6, a7 = x + 0, x + 1, x + 2, x + 3, x + 4, x + 5, x + 6, x + 7
    a8, a9, a10, a11, a12, a13, a14, a15 = x + 8, x + 9, x + 10, x + 11, x + 12, x + 13, x + 14, x + 15
    y = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15) * 0
    print("break")
    p, q = x * 100, x * 1000
    s = p - 1; t = s * q
    return y + t


def _pairs_of_locals_in_a_loop_with_a_break(x):
    if x is None:
        p = q = None
    a0, a1, a2, a3, a4, a5, a6, a7 = x + 0, x + 1, x + 2, x + 3, x + 4, x + 5, x + 6, x + 7
    a8, a9, a10, a11, a12, a13, a14, a15 = x + 8, x + 9, x + 10, x + 11, x + 12, x + 13, x + 14, x + 15
    y = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15) * 0
    for i in range(3):
        p, q = x * i, x + i
        print("break", i)
        y = y * 2 + (p + q)
    return y


def _pairs_of_locals_between_two_breaks(x):
    if x is None:
        p = q = None
    a0, a1, a2, a3, a4, a5, a6, a7 = x + 0, x + 1, x + 2, x + 3, x + 4, x + 5, x + 6, x + 7
    a8, a9, a10, a11, a12, a13, a14, a15 = x + 8, x + 9, x + 10, x + 11, x + 12, x + 13, x + 14, x + 15
    y = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15) * 0
    print("first break")
    p, q = x * 100, x * 1000
    y = y + (p + q)
    print("second break")
    p, q = q, p
    return y - (p - q)


PAIRS_AFTER_A_BREAK = {
    _pair_of_locals_read_after_a_break: ({("LOAD_FAST_LOAD_FAST", "p, q")}, 1),
    _pairs_of_locals_written_after_a_break: (
        {("STORE_FAST_STORE_FAST", "q, p"), ("STORE_FAST_LOAD_FAST", "s, s")}, 1),
    _pairs_of_locals_in_a_loop_with_a_break: (
        {("STORE_FAST_STORE_FAST", "q, p"), ("LOAD_FAST_LOAD_FAST", "p, q")}, 3),
    _pairs_of_locals_between_two_breaks: (
        {("STORE_FAST_STORE_FAST", "q, p"), ("LOAD_FAST_LOAD_FAST", "p, q"),
         ("LOAD_FAST_LOAD_FAST", "q, p")}, 2),
}


@pytest.mark.parametrize("fn", list(PAIRS_AFTER_A_BREAK), ids=lambda fn: fn.__name__.strip("_"))
def test_pair_instructions_on_locals_a_resume_function_numbers_past_15_compile_and_give_eager_results(fn):
    """Re-encoded as is, such an instruction would read or write two other locals (a wrong result; in
    LongformerEncoder.forward a 'stack depths 1 and 2' internal error): the resume function does it with two
    single-local instructions.  Those shift its instruction indexes, which a resume function of a resume function
    (the loop's next iteration, the second break) must map back to the original's."""
    pairs, breaks = PAIRS_AFTER_A_BREAK[fn]
    assert pair_instructions(fn) >= pairs if sys.version_info >= (3, 13) else not pair_instructions(fn)
    s = check(fn, [(r(2),), (r(3),), (r(4),)], breaks=breaks)
    assert s["internal_errors"] == 0 and s["eager_fallbacks"] == 0
