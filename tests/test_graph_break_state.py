"""Python state around a graph break: containers, iterators, closures and values the trace read or wrote
before it stay what eager has after it (regressions found in review: each gave a wrong result silently)."""
import pytest
import torch

import partialdyn
from helpers import BROKE_BEFORE, assert_broke, assert_compiled, assert_fell_back, check, compile_events, outcome, r


def setup_function():
    partialdyn.reset()


def comprehension_with_break(x):
    return [print() or x + i for i in range(3)]


def test_comprehension_whose_body_breaks_keeps_every_item(capsys):
    opt = partialdyn.optimize(comprehension_with_break)
    for n in (2, 3):
        x = torch.randn(n)
        got, want = opt(x), comprehension_with_break(x)
        assert len(got) == len(want) == 3
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
    assert_compiled(opt, hits=0, fallbacks=None)
    # the function's own entry served the second call (the comprehension, a closure made anew on every call,
    # compiles on every call: docs/limitations.md)
    assert len(compile_events(comprehension_with_break)) == 1


def mutate_inputs_around_break(x, xs, d):
    xs.append(x * 3)
    print()
    xs.append(x * 2)
    d["k"] = x
    xs[0] = x
    return len(xs)


def test_caller_containers_mutated_in_the_trace_are_the_same_objects_afterwards(capsys):
    opt = partialdyn.optimize(mutate_inputs_around_break)
    for n in (2, 3, 4):
        x = torch.randn(n)
        xs, d = [torch.zeros(n)], {"a": 1}
        ys, e = [torch.zeros(n)], {"a": 1}
        got, what = outcome(opt, x, xs, d)
        assert got == mutate_inputs_around_break(x, ys, e)
        assert len(xs) == len(ys) == 3 and xs[0] is x and d.keys() == e.keys() and d["k"] is x
        for a, b in zip(xs, ys):
            torch.testing.assert_close(a, b)
    assert_compiled(opt, hits=0, fallbacks=None)
    assert what == "hit", partialdyn.stats(opt)


def helper_advancing_iterator(it, x):
    first = next(it)
    print()
    return x + first


def caller_sharing_iterator(x):
    it = iter([1, 2, 3])
    y = helper_advancing_iterator(it, x)
    return y + next(it)


def test_iterator_advanced_by_a_callee_that_breaks_is_rolled_back(capsys):
    opt = partialdyn.optimize(caller_sharing_iterator)
    x = torch.randn(3)
    torch.testing.assert_close(opt(x), caller_sharing_iterator(x))
    got, what = outcome(opt, x)
    assert what == "hit"
    torch.testing.assert_close(got, caller_sharing_iterator(x))
    assert_compiled(opt, hits=0, fallbacks=None)


def read_then_overwrite(xs, x):
    y = xs[0]
    xs[0] = x
    return y


def pop_then_break(xs):
    t = xs.pop()
    print()
    return t


class Holder:
    def __init__(self):
        self.lst = [1, 2]
        self.name = "a"


def take_and_reset(m, x):
    y = m.lst
    m.lst = []
    old = m.name
    m.name = "b"
    return y, old, x + 1


def test_values_are_read_before_the_trace_s_writes_are_replayed(capsys):
    opt = partialdyn.optimize(read_then_overwrite)
    xs = [1, 2]
    assert opt(xs, 5) == 1 and xs == [5, 2]
    opt2 = partialdyn.optimize(pop_then_break)
    xs = [0, 1, 2]
    assert opt2(xs) == 2 and xs == [0, 1]
    opt3 = partialdyn.optimize(take_and_reset)
    m = Holder()
    original = m.lst
    y, old, _ = opt3(m, torch.ones(2))
    assert y is original and y == [1, 2] and old == "a" and m.lst == [] and m.name == "b"
    for compiled in (opt, opt2, opt3):
        assert_compiled(compiled, hits=0, fallbacks=None)
    # made again on fresh arguments, each hits and does the same
    xs, ys, m = [1, 2], [0, 1, 2], Holder()
    original = m.lst
    assert outcome(opt, xs, 5) == (1, "hit") and xs == [5, 2]
    assert outcome(opt2, ys) == (2, "hit") and ys == [0, 1]
    (y, old, _), what = outcome(opt3, m, torch.ones(2))
    assert what == "hit" and y is original and old == "a" and m.lst == [] and m.name == "b"


def remove_one(xs):
    xs.remove(1)
    return len(xs)


def identity_list(xs):
    return xs


def test_list_remove_and_returned_containers_keep_python_semantics():
    xs = [1, 2, 1]
    removing, returning = partialdyn.optimize(remove_one), partialdyn.optimize(identity_list)
    assert removing(xs) == 2 and xs == [2, 1]
    ys = [torch.ones(2)]
    assert returning(ys) is ys
    for compiled in (removing, returning):
        assert_compiled(compiled, hits=0)
    # made again on fresh arguments, each hits and does the same
    xs, ys = [1, 2, 1], [torch.ones(2)]
    assert outcome(removing, xs) == (2, "hit") and xs == [2, 1]
    got, what = outcome(returning, ys)
    assert what == "hit" and got is ys


def nonlocal_counter(x):
    n = 0

    def inc():
        nonlocal n
        n += 1
    inc()
    print("b")
    inc()
    return x * n


def late_binding(x):
    n = 1
    g = lambda: n  # noqa: E731
    print("b")
    n = 2
    return x * g()


def rebound_in_a_loop(x):
    fs = []
    for i in range(3):
        n = i                    # assigned before the break in the loop body, but again after it (next iteration)
        fs.append(lambda: n)
        print("b")
    return x * (fs[0]() + fs[1]())


def rebound_in_a_handler(x):
    n = 1
    g = lambda: n  # noqa: E731
    try:
        print("b")
        raise ValueError
    except ValueError:
        n = 2
    return x * g()


def test_closures_made_before_a_break_share_their_cells(capsys):
    for fn in (nonlocal_counter, late_binding, rebound_in_a_loop, rebound_in_a_handler):
        partialdyn.reset()
        x = torch.ones(2)
        opt = partialdyn.optimize(fn)
        torch.testing.assert_close(opt(x), fn(x))
        assert_fell_back("after creating a closure over this funct")     # the engine chose to run it eagerly


def comprehension_reading_a_local(x):
    shape = (x.size(0), 4)
    states = [torch.zeros(*shape) + i for i in range(3)]     # 3.11: a closure over the cell `shape`
    y = x * 2 + states[1].sum()
    print("b")
    return y + 1


def assigned_before_the_closure_and_the_break(x):
    n = 1
    g = lambda: n  # noqa: E731
    n = 2                        # a write after the closure, but before the break: both sides see 2
    print("b")
    return x * g()


def test_a_closure_whose_variables_are_not_rebound_after_the_break_splits_the_frame(capsys):
    for fn in (comprehension_reading_a_local, assigned_before_the_closure_and_the_break):
        stats = check(fn, [(r(2, 4),), (r(3, 4),), (r(2, 4),)], breaks=1, fallbacks=0)
        assert stats["backend_graphs"] <= 4 and stats["cache_hits"] >= 2


def recursive_local_function_alive_at_a_break(x):
    def doubled(n, y):
        return y if n == 0 else doubled(n - 1, y * 2)     # its closure cell holds the function itself
    z = doubled(2, x)
    print("b")
    return doubled(1, z)


def test_a_recursive_local_function_alive_at_a_break_runs_the_frame_eagerly_with_a_reason(capsys):
    """It cannot be rebuilt after the graph (rebuilding its cell rebuilt the function again, forever: an
    internal RecursionError); the frame runs eagerly, by design, with no internal error."""
    opt = partialdyn.optimize(recursive_local_function_alive_at_a_break)
    for n in (3, 4):
        x = r(n)
        torch.testing.assert_close(opt(x), recursive_local_function_alive_at_a_break(x))
    assert partialdyn.stats(opt)["internal_errors"] == 0
    assert_fell_back("a function whose closure holds itself")


# ====================================================================== a callee's mutations of the caller's world
LOG: list = []
COUNTS: dict = {"n": 0}


def logs_then_breaks(x):
    LOG.append(x.size(0))
    COUNTS["n"] += 5
    print(end="")                   # a graph break inside the callee, after it changed two globals
    return x * 2


def calls_a_callee_that_logs_then_breaks(x):
    return logs_then_breaks(x) + 1


def test_a_callee_that_changed_global_containers_before_breaking_changes_them_once():
    """The call that broke runs again in Python after the graph: the mutations it made while traced must
    not also be synced into the globals (they were applied twice: LOG == [3, 3]).  The caller is traced again
    and breaks before that call (it ran eagerly until then); the callee, optimized on its own, changes them."""
    opt = partialdyn.optimize(calls_a_callee_that_logs_then_breaks)
    for n in (3, 4, 5):
        del LOG[:]
        COUNTS["n"] = 0
        want = calls_a_callee_that_logs_then_breaks(r(n))
        want_state = (list(LOG), dict(COUNTS))
        del LOG[:]
        COUNTS["n"] = 0
        torch.testing.assert_close(opt(r(n)), want)
        assert (LOG, COUNTS) == want_state
    assert_compiled(opt, hits=1, fallbacks=0)
    assert_broke(BROKE_BEFORE)


def appends_then_breaks_on_the_last_step(cache, x, i):
    cache.append(x + i)
    if i == 2:
        print(end="")               # a graph break, only in the last call
    return x * 2


def three_steps(x):
    cache = []
    for i in range(3):
        x = appends_then_breaks_on_the_last_step(cache, x, i)
    return x, cache


def test_the_break_before_a_mutating_call_is_at_the_run_of_the_call_that_broke():
    """The frame is traced again with a break before the third run of the call instruction, the one that broke:
    the first two calls stay in the graph (a break at the first run would optimize the callee for i=0, 1 and 2).
    The list gets its three items once each, in order."""
    opt = partialdyn.optimize(three_steps)
    for n in (2, 3, 4):
        x = r(n)
        got, want = opt(x), three_steps(x)
        torch.testing.assert_close(got[0], want[0])
        assert len(got[1]) == 3
        for a, b in zip(got[1], want[1]):
            torch.testing.assert_close(a, b)
    assert_compiled(opt, hits=2, fallbacks=0)
    assert_broke(BROKE_BEFORE)
    assert len(compile_events(appends_then_breaks_on_the_last_step)) == 1     # for i == 2 only


def test_a_frame_whose_break_before_a_mutating_call_cannot_be_placed_still_runs_eagerly(monkeypatch):
    """Past tracer.MAX_BREAKS_BEFORE restarts of one compile (none here) the frame runs eagerly, as every such
    frame did before the restart existed."""
    from partialdyn.frontend import tracer
    monkeypatch.setattr(tracer, "MAX_BREAKS_BEFORE", 0)
    opt = partialdyn.optimize(calls_a_callee_that_logs_then_breaks)
    del LOG[:]
    torch.testing.assert_close(opt(r(3)), r(3) * 2 + 1)
    assert LOG == [3]
    assert_fell_back("a call that graph-broke had already mutated the caller's containers")


def test_fullgraph_raises_at_a_call_that_mutated_the_caller_and_broke():
    with pytest.raises(partialdyn.PartialdynError, match="fullgraph=True: graph break"):
        partialdyn.optimize(calls_a_callee_that_logs_then_breaks, fullgraph=True)(r(2))


def appends_through_a_view_then_breaks(view, x):
    for _, values in view:
        values.append(1)
    print(end="")                   # a graph break inside the callee, after it changed a list the view holds
    return x + 1


def passes_a_dict_view_to_a_callee_that_breaks(x):
    view = {"a": []}.items()
    y = appends_through_a_view_then_breaks(view, x)
    return y, [list(values) for _, values in view]


def passes_an_enumerate_to_a_callee_that_breaks(x):
    rows = [[]]
    y = appends_through_a_view_then_breaks(enumerate(rows), x)
    return y, rows


@pytest.mark.parametrize("fn", [passes_a_dict_view_to_a_callee_that_breaks, passes_an_enumerate_to_a_callee_that_breaks],
                         ids=["a dict view", "an enumerate"])
def test_a_list_mutated_through_a_view_or_iterator_before_a_break_is_changed_once(fn):
    """A dict view and a lazy iterator hold their dict or sources: a callee that mutates a list through them and
    then breaks runs again in Python, so the traced mutation must not be replayed too (it was: [[1, 1]]).  The
    caller breaks before that call instead (it ran eagerly until then)."""
    opt = partialdyn.optimize(fn)
    for n in (2, 3, 4):
        want = fn(r(n))
        got = opt(r(n))
        torch.testing.assert_close(got[0], want[0])
        assert got[1] == want[1]
    assert_compiled(opt, hits=1, fallbacks=0)
    assert_broke(BROKE_BEFORE)


class Logged(torch.nn.Module):
    def forward(self, x):
        return x + 1


def test_a_forward_hook_that_changed_a_global_list_before_breaking_changes_it_once():
    model = Logged()

    def hook(module, args, output):
        LOG.append("hook")
        print(end="")               # a graph break inside the hook
        return output * 2
    model.register_forward_hook(hook)

    def f(x):
        return model(x) - 1
    opt = partialdyn.optimize(f)
    for n in (2, 3, 4):
        del LOG[:]
        want = f(r(n))
        assert LOG == ["hook"]
        del LOG[:]
        torch.testing.assert_close(opt(r(n)), want)
        assert LOG == ["hook"]
    assert_compiled(opt, hits=1, fallbacks=0)     # `- 1` in a graph; the hooked call (hook included) in Python
    assert_broke(BROKE_BEFORE)
