"""Regression tests for wrong results found in review: each failed (silently) before its fix."""
import math

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


def remove_one(xs):
    xs.remove(1)
    return len(xs)


def identity_list(xs):
    return xs


def test_list_remove_and_returned_containers_keep_python_semantics():
    xs = [1, 2, 1]
    assert partialdyn.optimize(remove_one)(xs) == 2 and xs == [2, 1]
    ys = [torch.ones(2)]
    assert partialdyn.optimize(identity_list)(ys) is ys


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


def test_closures_made_before_a_break_share_their_cells(capsys):
    for fn in (nonlocal_counter, late_binding):
        x = torch.ones(2)
        torch.testing.assert_close(partialdyn.optimize(fn)(x), fn(x))


def offset_branch(x):
    return x * 2 if x.storage_offset() == 0 else x * 3


def leaf_branch(x):
    return x * 2 if x.is_leaf else x * 3


def channels_last_query(x):
    return x.is_contiguous(memory_format=torch.channels_last)


def test_tensor_properties_the_trace_reads_are_guarded():
    opt = partialdyn.optimize(offset_branch)
    base = torch.ones(10)
    for s in (1, 0, 2):
        torch.testing.assert_close(opt(base[s:s + 3]), offset_branch(base[s:s + 3]))
    opt = partialdyn.optimize(leaf_branch)
    a = torch.ones(3, requires_grad=True)
    for t in (a, a * 2):
        torch.testing.assert_close(opt(t), leaf_branch(t))
    opt = partialdyn.optimize(channels_last_query)
    x = torch.randn(2, 3, 4, 5)
    for t in (x, x.to(memory_format=torch.channels_last)):
        assert opt(t) == channels_last_query(t)


def strides_of(x):
    return x.stride(), x.contiguous().stride()


def test_strides_of_size_one_dims_are_guarded_when_read():
    for policy in ("partial", "dynamic", "static", "automatic"):
        partialdyn.reset()
        opt = partialdyn.optimize(strides_of, policy=policy)
        for t in (torch.randn(3, 1), torch.randn(1, 3).t(), torch.randn(1, 4), torch.randn(4, 1).t()):
            assert opt(t) == strides_of(t), policy


def resize_input(x):
    x.resize_(6)
    x[2:].fill_(0)
    return x[:2] * 1


def test_resize_of_an_input_runs_in_python_on_every_backend():
    for policy in ("static", "automatic", "partial"):
        partialdyn.reset()
        opt = partialdyn.optimize(resize_input, backend="aot_eager", policy=policy)
        for n in (2, 3, 6):
            a = torch.arange(float(n))
            b = a.clone()
            torch.testing.assert_close(opt(a), resize_input(b))
            assert a.shape == b.shape


def sign_text(f):
    return str(f), math.copysign(1.0, f)


def self_equal(t, f):
    return t + 1 if f == f else t - 1


def scalars_out(x, k, s):
    return x.sin().sum(0) * x.shape[0], k * 2, s / 2


def test_special_floats_are_constants_matched_bit_exactly():
    opt = partialdyn.optimize(sign_text)
    for v in (1.5, -0.0, 0.0, -0.0, 2.5, float("inf")):
        assert opt(v) == sign_text(v)
    opt = partialdyn.optimize(self_equal)
    for v in (1.5, float("nan"), 2.0, float("nan"), -0.0):
        torch.testing.assert_close(opt(torch.zeros(2), v), self_equal(torch.zeros(2), v))


def test_backend_restart_request_for_float_inputs_is_honoured():
    opt = partialdyn.optimize(scalars_out, backend="aot_eager")
    for i in range(1, 5):
        x, k, s = torch.randn(2 + i, 3), i - 2, i * 0.25
        got, want = opt(x, k, s), scalars_out(x, k, s)
        torch.testing.assert_close(got[0], want[0])
        assert got[1:] == want[1:] and type(got[1]) is int and type(got[2]) is float
    assert partialdyn.stats(opt)["graphs"] >= 1
