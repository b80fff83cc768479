"""Regression tests for wrong results found in review: each failed (silently) before its fix."""
import torch

import partialdyn


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
        assert opt(x, xs, d) == mutate_inputs_around_break(x, ys, e)
        assert len(xs) == len(ys) == 3 and xs[0] is x and d.keys() == e.keys() and d["k"] is x
        for a, b in zip(xs, ys):
            torch.testing.assert_close(a, b)


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
