"""Shape policies: what each way of consuming a size costs (guards, recompiles, breaks).

Every result is checked against eager.  Functions under test live at module
level so specialization events can be matched to their file and line.
"""
import collections
import inspect
import logging
import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import partialdyn
from helpers import entries, guards, outcome
from partialdyn.errors import GraphBreak

THIS_FILE = __file__


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


# ---------------------------------------------------------------- helpers
def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def check_stream(opt, fn, calls, rehit=False):
    """Run each call through the optimized fn and eager; results must match.  `rehit`: the last call made
    again (a copy of its arguments) must hit the cache.  Returns what each call did (helpers.outcome)."""
    done = []
    for args in calls:
        out, what = outcome(opt, *args)
        torch.testing.assert_close(out, fn(*args))
        done.append(what)
    assert partialdyn.stats(opt)["compiles"] >= 1, partialdyn.stats(opt)
    if rehit:
        again = [a.clone() if isinstance(a, torch.Tensor) else a for a in calls[-1]]
        out, what = outcome(opt, *again)
        assert what == "hit", partialdyn.stats(opt)
        torch.testing.assert_close(out, fn(*again))
    return done


def counters(opt):
    s = partialdyn.stats(opt)
    return s["compiles"], s["recompiles"], s["graph_breaks"], s["eager_fallbacks"]


def shape_guards(fn, entry=0):
    return guards(fn, entry, kinds=("SHAPE", "TENSOR_MATCH_STATIC"))


def static_dims(fn, entry=0):
    """The dims an entry specialized (TENSOR_MATCH_STATIC on one dim)."""
    return {d for g in guards(fn, entry, kinds=("TENSOR_MATCH_STATIC",)) for d in g["dims"]}


def line_of(fn, marker):
    """Absolute line number of the line of `fn` containing `marker`."""
    lines, first = inspect.getsourcelines(fn)
    hits = [first + i for i, text in enumerate(lines) if marker in text]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


# ================================================================ partial: bool uses
def branch_gt(x):
    if x.size(0) > 16:  # consume
        return x * 2
    return x - 1


def assert_eq(x):
    assert x.shape[1] == 8, "expected 8 features"  # consume
    return x.sum(1)


def and_or(x):
    if x.size(0) > 4 and x.size(1) < 10:  # consume
        return x * 2
    return x - 1


def or_cond(x):
    if x.size(0) < 3 or x.size(0) > 20:  # consume
        return x * 2
    return x - 1


def ternary_cmp(x):
    y = x * 2 if x.size(0) <= 10 else x * 3  # consume
    return y + 1


def min_size(x):
    n = min(x.size(0), 8)  # consume
    return x[:n] * 2


# (fn, sizes of x on the first side, sizes on the other side, dim consumed, predicate snippet)
BOOL_USES = [
    (branch_gt, [(4, 3), (8, 3), (12, 3)], [(32, 3), (64, 3)], "x.size(0)", "x.size(0) > 16"),
    (and_or, [(5, 3), (6, 4), (9, 2)], [(2, 3), (3, 4)], "x.size(0)", "x.size(0) > 4"),
    (or_cond, [(4, 3), (7, 3), (19, 3)], [(25, 3), (30, 3)], "x.size(0)", "x.size(0)"),
    (ternary_cmp, [(3, 2), (7, 2), (10, 2)], [(11, 2), (15, 2)], "x.size(0)", "x.size(0) <= 10"),
    (min_size, [(3, 2), (5, 2), (8, 2)], [(10, 2), (20, 2)], "x.size(0)", "x.size(0) > 8"),
]


@pytest.mark.parametrize("fn,side_a,side_b,dim,snippet", BOOL_USES, ids=[c[0].__name__ for c in BOOL_USES])
def test_bool_use_guards_the_predicate_only(fn, side_a, side_b, dim, snippet):
    opt = partialdyn.optimize(fn, backend="eager")
    check_stream(opt, fn, [(rand(*s),) for s in side_a])
    assert counters(opt) == (1, 0, 0, 0), "sizes on the same side of the predicate must not recompile"
    # the guard is a SHAPE relation on the consumed dim, not a pinned value
    assert dim not in static_dims(fn)
    assert any(g["kind"] == "SHAPE" and dim in g["text"] for g in guards(fn))
    check_stream(opt, fn, [(rand(*s),) for s in side_b])
    assert counters(opt) == (2, 1, 0, 0), "flipping the predicate costs exactly one recompile"
    assert dim not in static_dims(fn, 1)
    # going back to the first side hits the first entry
    check_stream(opt, fn, [(rand(*side_a[0]),)])
    assert counters(opt) == (2, 1, 0, 0)
    specs = [e for e in partialdyn.events("specialization") if e["source"] == dim]
    assert specs and all(e["use"] == "predicate" for e in specs)
    assert any(snippet in e["predicate"] for e in specs)


def test_assert_on_a_size_guards_it_without_recompiling_other_dims():
    opt = partialdyn.optimize(assert_eq, backend="eager")
    check_stream(opt, assert_eq, [(rand(b, 8),) for b in (2, 3, 9, 17, 4)])
    assert counters(opt) == (1, 0, 0, 0)
    texts = [g["text"] for g in shape_guards(assert_eq)]
    assert any("x.size(1) == 8" in t for t in texts), texts
    assert "x.size(0)" not in static_dims(assert_eq)
    # the other side of the assert: raises like eager, never silently runs the entry
    with pytest.raises(AssertionError):
        assert_eq(rand(3, 9))
    with pytest.raises(AssertionError):
        opt(rand(3, 9))


def test_assert_on_a_size_logs_a_predicate_event():
    opt = partialdyn.optimize(assert_eq, backend="eager")
    check_stream(opt, assert_eq, [(rand(3, 8),)], rehit=True)
    specs = [e for e in partialdyn.events("specialization") if e["source"] == "x.size(1)"]
    assert specs and specs[0]["use"] == "predicate" and "x.size(1) == 8" in specs[0]["predicate"]


# ================================================================ partial: value uses
WEIGHTS = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]


def int_as_index(x):
    n = int(x.size(1))
    return x * WEIGHTS[n]  # consume


def factorial(x):
    return x / math.factorial(x.size(1))  # consume


def range_bound(x):
    acc = x[:, 0]
    for i in range(1, x.size(1)):  # consume
        acc = acc + x[:, i] * i
    return acc


def str_of_size(x):
    s = str(x.size(1))  # consume
    return x * len(s) + x.size(0)


def list_index(x):
    return x * WEIGHTS[x.size(1)]  # consume


def opaque_call(x):
    s = "{:d}".format(x.size(1))  # consume
    return x * len(s)


VALUE_USES = [int_as_index, factorial, range_bound, str_of_size, list_index, opaque_call]


@pytest.mark.parametrize("fn", VALUE_USES, ids=[f.__name__ for f in VALUE_USES])
def test_value_use_specializes_exactly_that_dim(fn):
    opt = partialdyn.optimize(fn, backend="eager")
    # dim 0 changes freely: it is not consumed
    check_stream(opt, fn, [(rand(b, 4),) for b in (2, 3, 5, 7)])
    assert counters(opt) == (1, 0, 0, 0)
    statics = guards(fn, kinds=("TENSOR_MATCH_STATIC",))
    assert [tuple(g["dims"]) for g in statics] == [("x.size(1)",)]
    assert statics[0]["text"] == "x.size(1) == 4"
    # changing the consumed dim recompiles, and the new entry pins the new value
    check_stream(opt, fn, [(rand(3, 5),), (rand(6, 5),)])
    assert counters(opt) == (2, 1, 0, 0)
    assert static_dims(fn, 1) == {"x.size(1)"}


@pytest.mark.parametrize("fn", VALUE_USES, ids=[f.__name__ for f in VALUE_USES])
def test_value_use_logs_the_specialization_with_file_and_line(fn):
    opt = partialdyn.optimize(fn, backend="eager")
    check_stream(opt, fn, [(rand(2, 4),)], rehit=True)
    specs = [e for e in partialdyn.events("specialization") if e["source"] == "x.size(1)"]
    assert specs, "a value use must log a specialization event"
    spec = specs[0]
    assert spec["use"] == "value" and spec["value"] == 4
    assert spec["file"] == THIS_FILE
    assert spec["line"] == line_of(fn, "# consume")
    assert spec["op"]


# ================================================================ sizes into torch ops
def view_batch(x):
    b = x.size(0)
    return x.view(b, -1) * 2


def zeros_n(x):
    n = x.size(0)
    return torch.zeros(n, 3) + x.sum()


def heads_div(x):
    heads = 2
    n = x.size(1) // heads
    return x.reshape(x.size(0), heads, n).sum(-1)


def size_times_two(x):
    return x.new_ones(x.size(0) * 2) * x.sum()


def sqrt_scale(x):
    return x / math.sqrt(x.size(-1))


TORCH_USES = [view_batch, zeros_n, heads_div, size_times_two, sqrt_scale]


@pytest.mark.parametrize("fn", TORCH_USES, ids=[f.__name__ for f in TORCH_USES])
def test_sizes_into_torch_ops_never_specialize(fn):
    opt = partialdyn.optimize(fn, backend="eager")
    check_stream(opt, fn, [(rand(b, d),) for b, d in ((2, 4), (3, 6), (5, 8), (7, 10), (9, 12))])
    assert counters(opt) == (1, 0, 0, 0)
    assert static_dims(fn) == set()
    assert partialdyn.events("specialization") == []


# ================================================================ the other policies
def test_dynamic_policy_breaks_instead_of_specializing():
    opt = partialdyn.optimize(branch_gt, backend="eager", policy="dynamic")
    check_stream(opt, branch_gt, [(rand(b, 3),) for b in (4, 8, 32, 64, 12)])
    compiles, recompiles, breaks, fallbacks = counters(opt)
    assert recompiles == 0 and breaks >= 1 and fallbacks == 0
    assert partialdyn.events("specialization") == []
    assert all(static_dims(branch_gt, i) == set() for i in range(len(entries(branch_gt))))


def test_dynamic_policy_value_use_is_a_break_not_a_specialization():
    opt = partialdyn.optimize(factorial, backend="eager", policy="dynamic")
    check_stream(opt, factorial, [(rand(2, d),) for d in (3, 4, 5, 6, 7)])
    compiles, recompiles, breaks, fallbacks = counters(opt)
    assert recompiles == 0 and breaks >= 1 and fallbacks == 0
    assert "dynamic" in partialdyn.events("graph_break")[0]["reason"]


def test_static_policy_recompiles_per_size_until_the_cache_limit_then_runs_eagerly():
    opt = partialdyn.optimize(view_batch, backend="eager", policy="static", cache_size_limit=3)
    with pytest.warns(UserWarning, match="cache_size_limit=3"):
        check_stream(opt, view_batch, [(rand(b, 4),) for b in (2, 3, 4, 5, 6)])
    assert counters(opt) == (3, 2, 0, 2)
    assert static_dims(view_batch, 0) == {"x.size(0)", "x.size(1)"}
    assert len(partialdyn.events("cache_limit")) == 1
    # sizes already compiled still hit their entries; new ones keep running eagerly, without a new warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_stream(opt, view_batch, [(rand(3, 4),), (rand(9, 4),)])
    assert counters(opt) == (3, 2, 0, 3)


def test_automatic_policy_makes_a_changing_dim_dynamic_after_one_recompile():
    opt = partialdyn.optimize(view_batch, backend="eager", policy="automatic")
    check_stream(opt, view_batch, [(rand(b, 4),) for b in (2, 3, 5, 8)])
    assert counters(opt) == (2, 1, 0, 0)
    assert static_dims(view_batch, 0) == {"x.size(0)", "x.size(1)"}
    assert static_dims(view_batch, 1) == {"x.size(1)"}
    # the other dim was never seen changing: it is still static
    check_stream(opt, view_batch, [(rand(4, 6),)])
    assert counters(opt)[1] == 2


def test_automatic_policy_makes_a_changing_stride_symbolic_after_one_recompile():
    # a column of a growing sequence: its size stays (2, 4), its first stride is 4 * length
    calls = [(rand(2, n, 4, seed=n)[:, 0],) for n in (6, 9, 12, 15, 18)]
    opt = partialdyn.optimize(view_batch, backend="eager", policy="automatic")
    assert check_stream(opt, view_batch, calls) == ["compile", "recompile", "hit", "hit", "hit"]
    reason = [e["reason"] for e in partialdyn.events("compile")][1]
    assert reason.startswith("x.stride(0) == 24 failed: got 36"), reason


def test_mark_static_pins_one_dim_under_partial():
    opt = partialdyn.optimize(view_batch, backend="eager")
    calls = []
    for b in (2, 3, 5):
        x = rand(b, 4)
        partialdyn.mark_static(x, 0)
        calls.append((x,))
    check_stream(opt, view_batch, calls)
    assert static_dims(view_batch, 0) == {"x.size(0)"}
    assert counters(opt)[:2] == (3, 2)


def test_mark_dynamic_frees_one_dim_under_static():
    opt = partialdyn.optimize(view_batch, backend="eager", policy="static")
    calls = []
    for b in (2, 3, 5, 7):
        x = rand(b, 4)
        partialdyn.mark_dynamic(x, 0)
        calls.append((x,))
    check_stream(opt, view_batch, calls)
    assert counters(opt) == (1, 0, 0, 0)
    assert static_dims(view_batch, 0) == {"x.size(1)"}


def test_mark_static_and_mark_dynamic_validate_their_arguments():
    with pytest.raises(IndexError):
        partialdyn.mark_static(torch.ones(2, 3), 2)
    with pytest.raises(TypeError):
        partialdyn.mark_dynamic([1, 2], 0)


# ================================================================ int arguments
def int_in_math(x, k):
    return x * k + torch.ones(k).sum()


def int_in_predicate(x, k):
    if k > 3:
        return x * 2
    return x - 1


def int_vs_size(x, k):
    if k < x.size(1):
        return x[:, :k]
    return x


def test_int_argument_in_tensor_math_stays_symbolic():
    opt = partialdyn.optimize(int_in_math, backend="eager")
    check_stream(opt, int_in_math, [(rand(3), k) for k in (2, 3, 5, 8, 13)])
    assert counters(opt) == (1, 0, 0, 0)
    assert not any(g["kind"] == "CONSTANT_MATCH" and g["source"] == "k" for g in guards(int_in_math))


def test_int_argument_compared_with_a_size_guards_the_relation():
    opt = partialdyn.optimize(int_vs_size, backend="eager")
    check_stream(opt, int_vs_size, [(rand(3, 10), k) for k in (2, 3, 4)])
    assert counters(opt) == (1, 0, 0, 0)
    check_stream(opt, int_vs_size, [(rand(3, 10), k) for k in (12, 15, 5)])
    assert counters(opt) == (2, 1, 0, 0)


@pytest.mark.parametrize("policy,compiles,recompiles", [("automatic", 2, 1), ("static", 5, 4), ("dynamic", 1, 0)])
def test_int_argument_under_the_other_policies(policy, compiles, recompiles):
    opt = partialdyn.optimize(int_in_math, backend="eager", policy=policy)
    check_stream(opt, int_in_math, [(rand(3), k) for k in (2, 3, 5, 8, 13)])
    assert counters(opt) == (compiles, recompiles, 0, 0)


def test_int_argument_in_a_predicate_under_dynamic_is_a_break():
    opt = partialdyn.optimize(int_in_predicate, backend="eager", policy="dynamic")
    check_stream(opt, int_in_predicate, [(rand(3), k) for k in (2, 3, 5, 8, 13)])
    compiles, recompiles, breaks, fallbacks = counters(opt)
    assert recompiles == 0 and breaks >= 1 and fallbacks == 0


def test_int_argument_in_a_predicate_guards_the_predicate():
    opt = partialdyn.optimize(int_in_predicate, backend="eager")
    check_stream(opt, int_in_predicate, [(rand(3), k) for k in (4, 5, 9)])
    assert counters(opt) == (1, 0, 0, 0)
    check_stream(opt, int_in_predicate, [(rand(3), k) for k in (1, 2, -7, 3)])
    assert counters(opt) == (2, 1, 0, 0)
    assert not any(g["kind"] == "CONSTANT_MATCH" and g["source"] == "k"
                   for entry in entries(int_in_predicate) for g in entry)


# ================================================================ backoff arithmetic
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_backoff_after_n_recompiles(limit):
    opt = partialdyn.optimize(factorial, backend="eager", recompile_limit=limit)
    history = []
    for d in range(3, 10):
        x = rand(2, d)
        torch.testing.assert_close(opt(x), factorial(x))
        s = partialdyn.stats(opt)
        history.append((s["recompiles"], s["graph_breaks"], s["compiles"],
                        [e for e in partialdyn.events("backoff")]))
    recompiles, breaks, compiles, backoffs = history[-1]
    assert recompiles == limit
    assert breaks == 1
    # the break entry is the limit-th recompile; the resume function compiles once, then nothing more
    first_break = next(i for i, h in enumerate(history) if h[1] == 1)
    assert first_break == limit
    assert all(h[2] == compiles for h in history[first_break:]), [h[2] for h in history]
    # exactly one backoff event, emitted on the call where the dim's recompiles reached the limit
    assert len(backoffs) == 1
    event = backoffs[0]
    assert event["dim"] == "x.size(1)" and event["unstable"] is True
    assert event["recompiles"] == limit and event["limit"] == limit
    first_backoff = next(i for i, h in enumerate(history) if h[3])
    assert first_backoff == next(i for i, h in enumerate(history) if h[0] == limit)
    assert "unstable" in partialdyn.events("graph_break")[0]["reason"]


def two_factorials(x):
    return x / math.factorial(x.size(0)) + math.factorial(x.size(1))


def test_backoff_is_counted_per_dim():
    opt = partialdyn.optimize(two_factorials, backend="eager", recompile_limit=2)
    check_stream(opt, two_factorials, [(rand(*s),) for s in [(2, 3), (2, 4), (2, 5), (2, 6)]])
    assert [e["dim"] for e in partialdyn.events("backoff")] == ["x.size(1)"]
    assert partialdyn.stats(opt)["recompiles"] == 2
    # dim 0 has its own budget: two more recompiles, then it backs off too
    check_stream(opt, two_factorials, [(rand(*s),) for s in [(3, 6), (4, 6), (5, 6), (6, 6)]])
    assert [e["dim"] for e in partialdyn.events("backoff")] == ["x.size(1)", "x.size(0)"]
    assert partialdyn.stats(opt)["recompiles"] == 4


def pooled_by_length(x):
    return torch.nn.functional.max_pool1d(x.transpose(1, 2), kernel_size=4, stride=4) + 1


def test_a_size_an_operation_pins_backs_off_into_a_break_before_that_operation():
    # max_pool1d's shape rules read the length as an int: each length pinned it until cache_size_limit (canine)
    opt = partialdyn.optimize(pooled_by_length, backend="eager", recompile_limit=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no cache_size_limit warning, no ShapeEnv warning about the break
        check_stream(opt, pooled_by_length, [(rand(2, length, 3),) for length in range(8, 48, 4)])
    stats = partialdyn.stats(opt)
    assert stats["compiles"] == 4 and stats["graph_breaks"] == 1 and stats["eager_fallbacks"] == 0, stats
    assert [e["dim"] for e in partialdyn.events("backoff")] == ["x.size(1)"]
    reason = partialdyn.events("graph_break")[0]["reason"]
    assert "x.size(1) is unstable" in reason and "max_pool1d" in reason, reason


@pytest.mark.parametrize("logger, message", [
    ("torch._subclasses.fake_tensor", "failed while attempting to run meta for %s"),
    ("torch.fx.experimental.symbolic_shapes.partialdyn", "failed during evaluate_expr(%s)"),
])
def test_the_break_before_an_operation_is_not_logged_as_a_failure_of_torch(logger, message):
    # the backoff break rises through the fake kernel (or the ShapeEnv) that was about to pin the size: torch logs
    # any exception there, with its traceback, and the user saw an error for a break that is by design
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logging.getLogger(logger).addHandler(handler)       # torch's loggers do not propagate to "torch"
    try:
        import partialdyn.shapes.fake  # noqa: F401  (installs the filters, as any compile does)
        try:
            raise GraphBreak("x.size(2) is unstable; aten.mm needs its value, so the call runs in Python")
        except GraphBreak:
            logging.getLogger(logger).exception(message, "aten.mm.default")
        try:
            raise RuntimeError("a real failure")
        except RuntimeError:
            logging.getLogger(logger).exception(message, "aten.mm.default")
    finally:
        logging.getLogger(logger).removeHandler(handler)
    assert [record.exc_info[0] for record in seen] == [RuntimeError]


def test_an_operation_may_pin_a_size_that_is_not_unstable():
    opt = partialdyn.optimize(pooled_by_length, backend="eager", recompile_limit=2)
    check_stream(opt, pooled_by_length, [(rand(2, 8, 3),), (rand(3, 8, 5),)], rehit=True)
    assert partialdyn.stats(opt)["graph_breaks"] == 0
    assert "x.size(1) == 8" in [g["text"] for g in guards(pooled_by_length)]


def test_an_unaffordable_break_before_an_operation_lets_it_pin_the_unstable_size():
    # the third length makes the dim unstable, but a break and its resume function would be 4 compiles out of 3
    opt = partialdyn.optimize(pooled_by_length, backend="eager", recompile_limit=2, cache_size_limit=3)
    check_stream(opt, pooled_by_length, [(rand(2, length, 3),) for length in (8, 12, 16)], rehit=True)
    stats = partialdyn.stats(opt)
    assert stats["graph_breaks"] == 0 and stats["compiles"] == 3, stats
    assert "x.size(1) == 16" in [g["text"] for g in guards(pooled_by_length, entry=2)]


def follows_after_break(x):
    h = x[:, 1:] * 2
    y = h / math.factorial(x.size(1))
    return y + math.factorial(h.size(1))       # h.size(1) is x.size(1) - 1


def scaled_by_factorial(t):
    return t / math.factorial(t.size(1))


def calls_a_callee_that_consumes_a_follower(x):
    h = x[:, 1:] * 2
    y = x.sum() / math.factorial(x.size(1))
    return scaled_by_factorial(h) + y          # the callee breaks inside: it is optimized on its own, on `t`


@pytest.mark.parametrize("fn", [follows_after_break, calls_a_callee_that_consumes_a_follower])
def test_a_size_made_from_an_unstable_dim_starts_unstable_where_a_break_hands_it(fn):
    opt = partialdyn.optimize(fn, backend="eager", recompile_limit=2)
    check_stream(opt, fn, [(rand(2, length),) for length in (3, 4, 5)])
    after_backoff = partialdyn.stats(opt)["compiles"]
    check_stream(opt, fn, [(rand(2, length),) for length in (6, 7, 8, 9)])
    assert partialdyn.stats(opt)["compiles"] == after_backoff, partialdyn.stats(opt)
    assert [e["dim"] for e in partialdyn.events("backoff")] == ["x.size(1)"]
    follower = "h" if fn is follows_after_break else "t"
    assert any(f"{follower}.size(1) is unstable (it follows x.size(1), which recompiled too often)" in e["reason"]
               for e in partialdyn.events("graph_break")), [e["reason"] for e in partialdyn.events("graph_break")]


def test_unstable_dims_stay_unstable_in_resume_functions():
    opt = partialdyn.optimize(two_factorials, backend="eager", recompile_limit=2)
    stream = [(2, 3), (2, 4), (2, 5), (3, 5), (4, 5)]     # both dims are unstable after this
    check_stream(opt, two_factorials, [(rand(*s),) for s in stream])
    before = partialdyn.stats(opt)["compiles"]
    check_stream(opt, two_factorials, [(rand(*s),) for s in [(5, 6), (6, 7), (7, 8), (8, 9)]])
    assert partialdyn.stats(opt)["compiles"] == before
    assert partialdyn.stats(opt)["cache_hits"] >= 4
    assert all(e["dim"].startswith("x.") for e in partialdyn.events("backoff"))


def branch_then_factorial(x):
    if x.size(0) > 4:
        y = x * 2
    else:
        y = x - 1
    return y / math.factorial(x.size(1))


def test_recompile_is_attributed_to_the_dims_of_the_closest_entry():
    opt = partialdyn.optimize(branch_then_factorial, backend="eager", recompile_limit=2)
    check_stream(opt, branch_then_factorial, [(rand(*s),) for s in [(2, 3), (8, 3), (2, 4)]])
    reasons = [e["reason"] for e in partialdyn.events("compile")]
    assert "x.size(1) == 3" in reasons[2], reasons
    assert [e["dim"] for e in partialdyn.events("backoff")] == []
    assert partialdyn.stats(opt)["graph_breaks"] == 0


# ================================================================ data-dependent sizes
def nonzero_branch(x):
    idx = x.nonzero()
    if idx.size(0) > 2:
        return x * 2 + idx.size(0)
    return x - 1


def test_data_dependent_size_in_python_is_a_break_never_a_guess():
    opt = partialdyn.optimize(nonzero_branch, backend="eager")
    inputs = [torch.tensor([1., 0, 0, 0]), torch.tensor([1., 1, 1, 0]),
              torch.tensor([0., 0, 0, 1]), torch.tensor([1., 1, 1, 1])]
    check_stream(opt, nonzero_branch, [(x,) for x in inputs])
    compiles, recompiles, breaks, fallbacks = counters(opt)
    assert recompiles == 0 and breaks >= 1
    reasons = [e["reason"] for e in partialdyn.events("graph_break")]
    assert any("data-dependent" in r for r in reasons), reasons
    assert not any(e["use"] == "value" for e in partialdyn.events("specialization"))


# ================================================================ explain / logs
def test_predicate_event_names_the_user_line_and_op():
    opt = partialdyn.optimize(branch_gt, backend="eager")
    check_stream(opt, branch_gt, [(rand(4, 3),)], rehit=True)
    (spec,) = partialdyn.events("specialization")
    assert spec["source"] == "x.size(0)" and spec["use"] == "predicate"
    assert spec["file"] == THIS_FILE
    assert spec["line"] == line_of(branch_gt, "# consume")
    assert spec["op"] == "if"


def test_explain_names_a_predicate_dim_with_its_line_and_op():
    report = partialdyn.explain(branch_gt, rand(4, 3))
    (spec,) = report.specializations
    assert spec["source"] == "x.size(0)" and spec["use"] == "predicate" and spec["op"] == "if"
    assert f"{THIS_FILE}:{line_of(branch_gt, '# consume')}" in str(report)


def test_explain_names_a_value_specialized_dim_with_its_line_and_op():
    report = partialdyn.explain(factorial, rand(2, 4))
    specs = [s for s in report.specializations if s["source"] == "x.size(1)"]
    assert specs and specs[0]["use"] == "value" and specs[0]["value"] == 4
    assert "factorial" in specs[0]["op"]
    assert f"{THIS_FILE}:{line_of(factorial, '# consume')}" in str(report)


# ================================================================ property test
def p_branch(x):
    if x.size(0) > 6:
        return x * 2
    return x - 1


def p_parity(x):
    if x.size(0) % 2 == 0:
        return x.sum(0)
    return x.mean(0)


def p_min(x):
    return x[: min(x.size(0), 5)] * 3


def p_factorial(x):
    return x / math.factorial(x.size(1))


def p_int(x):
    return x * WEIGHTS[int(x.size(1))]


def p_view(x):
    b = x.size(0)
    return x.view(b, -1).sum(-1) + x.size(1)


PROPERTY_FNS = [p_branch, p_parity, p_min, p_factorial, p_int, p_view]
CACHE_LIMIT = 4


# Sizes include 1 (0/1 sizes are constants in the ShapeEnv and need their own guards).
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(fn_index=st.integers(0, len(PROPERTY_FNS) - 1),
       shapes=st.lists(st.tuples(st.integers(1, 10), st.integers(1, 10)), min_size=1, max_size=12),
       policy=st.sampled_from(["partial", "dynamic", "static", "automatic"]),
       recompile_limit=st.integers(0, 3))
def test_random_shape_streams_match_eager_and_respect_the_cache_limit(fn_index, shapes, policy, recompile_limit):
    partialdyn.reset()
    fn = PROPERTY_FNS[fn_index]
    opt = partialdyn.optimize(fn, backend="eager", policy=policy, cache_size_limit=CACHE_LIMIT,
                              recompile_limit=recompile_limit)
    calls = [(rand(b, d, seed=i),) for i, (b, d) in enumerate(shapes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = check_stream(opt, fn, calls)
    per_code = collections.Counter(e["code"] for e in partialdyn.events("compile"))
    assert all(n <= CACHE_LIMIT for n in per_code.values()), per_code
    assert len(entries(fn)) <= CACHE_LIMIT
    s = partialdyn.stats(opt)
    assert s["calls"] == len(shapes)
    assert s["compiles"] == sum(per_code.values())
    # the last call that did not run eagerly (past the cache limit), made again, hits
    last = max(i for i, what in enumerate(done) if what != "eager")
    assert outcome(opt, *calls[last])[1] == "hit", (shapes[last], done, partialdyn.stats(opt))
