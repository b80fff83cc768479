"""Aliasing between tensor inputs: a graph that writes an input's memory computed as if its tensor inputs
shared memory exactly as in the traced call (aot_autograd functionalizes it that way), so that sharing is
guarded (ALIASING over the tensor inputs' storages); a graph that writes no input is not guarded by it."""
import pytest

import partialdyn
from partialdyn.backends import aot_eager
from helpers import CountingBackend, check, outcome, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def add_one_then_double(a, b):
    a.add_(1)
    return b * 2


def check_functionalized(fn, calls, **expected):
    return check(fn, calls, backend=CountingBackend(aot_eager), **expected)


def test_the_same_tensor_passed_twice_to_an_entry_traced_for_two_tensors_sees_its_own_write():
    t = r(4)
    check_functionalized(add_one_then_double, [(r(4), r(4, seed=1)), (t, t), (t, t)], recompiles=1)


def test_a_view_of_the_first_argument_passed_as_the_second_sees_the_write():
    t = r(6)
    check_functionalized(add_one_then_double, [(r(6), r(6, seed=1)), (t, t[:3]), (t, t[:3])], recompiles=None)


def test_overlapping_views_passed_as_two_arguments_see_each_others_writes():
    t = r(6)
    check_functionalized(add_one_then_double, [(r(5), r(5, seed=1)), (t[:5], t[1:]), (t[:5], t[1:])],
                         recompiles=None)


def test_an_entry_traced_for_aliased_arguments_is_not_reused_for_distinct_ones():
    t = r(6)
    check_functionalized(add_one_then_double, [(t, t[:3]), (r(6), r(3, seed=1)), (r(6), r(3, seed=2))],
                         recompiles=None)


def test_aliased_arguments_of_a_graph_that_writes_no_input_hit_the_cache():
    t = r(4)
    stats = check_functionalized(lambda a, b: a * 2 + b, [(r(4), r(4, seed=1)), (t, t), (t, t[:4])])
    assert stats["cache_hits"] == 2


def test_the_recompile_reason_says_which_arguments_share_memory():
    opt = partialdyn.optimize(add_one_then_double, backend=CountingBackend(aot_eager))
    opt(r(4), r(4, seed=1))
    t = r(4)
    opt(t, t)
    reasons = [e["reason"] for e in partialdyn.events("compile") if e["recompile"]]
    assert len(reasons) == 1 and reasons[0].startswith("a, b share no memory failed: got (0, 0)"), reasons
    # each entry still accepts the calls it was made for
    assert outcome(opt, r(4), r(4, seed=2))[1] == "hit" and outcome(opt, t, t)[1] == "hit"
