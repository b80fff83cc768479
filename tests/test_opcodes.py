"""Differential tests, one opcode family at a time: eager vs partialdyn (counting eager backend).

Every test runs a stream of calls with varying sizes through `helpers.check`, which
compares outputs, exceptions and mutated inputs with eager PyTorch and asserts that a
compiled graph ran on every call, with no graph break and no eager fallback unless the
test says otherwise.
"""
from __future__ import annotations

import collections
import functools
import math
import operator
import sys
import types
from typing import NamedTuple

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import partialdyn
from helpers import CountingBackend, assert_compiled, check, outcome, r

B = (2, 3, 5)           # batch sizes of a stream; never 0 or 1 (those specialize)


@pytest.fixture(autouse=True)
def _reset():
    partialdyn.reset()
    yield
    partialdyn.reset()


def batches(*rest, n=1, dtype=torch.float32, sizes=B):
    """One call per batch size: n tensors of shape (b, *rest)."""
    return [tuple(r(b, *rest, seed=s, dtype=dtype) for s in range(n)) for b in sizes]


# ====================================================================== locals, globals, cells
def test_locals_and_constants():
    def f(x):
        a = x + 1
        b = a * 2.5
        c = -3
        d = None
        e = (1, "two", 3.0, True, None, b"x")
        return b + c, d, e, 7, 2.5, "s", False

    check(f, batches(4))


SCALE = 3
BIAS = torch.arange(4.0)


def test_global_number_and_tensor():
    def f(x):
        return x * SCALE + BIAS

    check(f, batches(4))


FACTOR = 2


def _global_factor(x):
    return x * FACTOR


def test_global_change_is_seen():
    def set_factor(value):
        def hook(_):
            global FACTOR
            FACTOR = value
        return hook

    try:
        s = check(_global_factor, batches(3, sizes=(2, 3, 5, 4)), recompiles=1,
                  before={0: set_factor(2), 2: set_factor(5)})
    finally:
        globals()["FACTOR"] = 2
    assert s["compiles"] == 2


def test_global_store():
    def f(x):
        global _LAST_SUM
        _LAST_SUM = 7
        return x + _LAST_SUM

    check(f, batches(3))
    assert _LAST_SUM == 7


_LAST_SUM = 0


def make_closure():
    w = r(4, seed=9)
    k = 3

    def f(x):
        return x * w + k
    return f


def test_closure_reads_cells():
    check(make_closure(), batches(4))


def test_nested_def_capturing_local():
    def f(x, y):
        k = 2

        def inner(t):
            return t * k + y
        return inner(x) + inner(y)

    check(f, batches(4, n=2))


def test_nested_def_sees_cell_update():
    def f(x):
        k = 2

        def inner(t):
            return t * k
        k = 3
        return inner(x)

    check(f, batches(4))


def test_nonlocal_write_in_nested_function():
    def f(x):
        count = 0

        def bump(t):
            nonlocal count
            count += 1
            return t + count
        y = bump(x)
        y = bump(y)
        return y, count

    check(f, batches(4))


def test_lambda_capturing_local():
    def f(x, y):
        scale = 0.5
        g = lambda t: t * scale + y  # noqa: E731
        return g(x), (lambda a, b: a * b)(x, 2)

    check(f, batches(4, n=2))


def test_nested_function_with_defaults():
    def f(x):
        g = lambda t, k=2: t * k  # noqa: E731

        def h(t, k=3, *, m=1):
            return t * k + m
        return g(x), g(x, 3), h(x), (lambda a, b=2: a * b)(x)

    check(f, batches(4))


def test_nested_function_with_keyword_only_defaults():
    def f(x):
        def h(t, *, m=1):
            return t + m
        return h(x), h(x, m=2)

    check(f, batches(4))


def test_delete_local():
    def f(x):
        y = x * 2
        z = y + 1
        del y
        return z

    check(f, batches(3))


# ====================================================================== operators
def test_tensor_arithmetic_operators():
    def f(x, y):
        return (x + y, x - y, x * y, x / (y.abs() + 1), x // (y.abs() + 1), x % (y.abs() + 1),
                x.abs() ** 2, x ** y.abs(), x @ y.T, -x, +x)

    check(f, batches(4, n=2))


def test_tensor_with_python_numbers_reflected():
    def f(x):
        return 2 + x, 2 - x, 2 * x, 2 / (x.abs() + 1), 2 ** x, x.abs() ** 0.5, 1.5 - x * 3, 2 // (x.abs() + 1)

    check(f, batches(4))


def test_integer_and_bool_tensor_operators():
    def f(a, b):
        m = a > 0
        n = b > 0
        return a & b, a | b, a ^ b, ~a, a << 1, a >> 1, m & n, m | n, m ^ n, ~m, a // 3, a % 3

    calls = [(torch.arange(b * 3).reshape(b, 3) - 4, torch.arange(b * 3).reshape(b, 3) % 5) for b in B]
    check(f, calls)


def test_tensor_comparisons():
    def f(x, y):
        return x < y, x <= y, x > y, x >= y, x == y, x != y, x > 0.5, 0.5 < x

    check(f, batches(4, n=2))



def test_a_shape_compared_with_a_range_argument_is_unequal_without_a_break():
    """The sequence's rule decides the pair before the opaque value's, which would break."""
    def f(x, steps):
        return x.shape == steps, steps != x.shape, x + 1

    check(f, [(r(3), range(2)), (r(4), range(2))])


def test_a_tuple_or_a_shape_never_equals_a_list():
    """A tuple and a list are never equal, whatever their items (torch.Size is a tuple); the sequence rule
    compared only the items."""
    def f(x):
        n = x.shape[0]
        return x + 1, (n,) == [n], x.shape == [n], [1, 2] == (1, 2), [n] != (n,), (n,) == x.shape

    check(f, [(r(3),), (r(4),)])


def test_concatenating_or_repeating_a_shape_makes_a_size_on_either_side():
    """torch.Size's __add__, __radd__, __mul__ and __rmul__ make a Size; the rule made a plain tuple for `(1,) +
    x.shape` and `x.shape * 2`.  A plain tuple with a tuple stays a tuple."""
    def f(x):
        n = x.shape[0]
        made = ((1,) + x.shape, x.shape + (n,), x.shape * 2, 2 * x.shape, (n,) * 2, 2 * (n,), (1,) + (n,))
        return x + 1, made, [type(m).__name__ for m in made]

    check(f, [(r(3),), (r(4),)])

def test_inplace_operators_on_tensors():
    def f(x, y):
        z = x.clone()
        z += y
        z *= 2
        z -= 1
        z /= 3
        z **= 2
        w = x > 0
        w &= y > 0
        w |= x > 1
        return z, w

    check(f, batches(4, n=2))


def test_inplace_operator_mutates_input():
    def f(x, y):
        x += y
        x *= 2
        return x.sum()

    check(f, batches(4, n=2))


def test_int_argument_arithmetic_stays_symbolic():
    def f(x, k):
        a = k * 2 + 1
        b = k // 2
        c = k % 3
        d = k ** 2
        e = -k
        g = 1.5 / k
        i = abs(-k)
        return x * a + b + c + d + e + g + i, torch.full((k + 1,), 2.0)

    check(f, [(r(3), k) for k in (2, 3, 5, 7)])


def test_python_number_arithmetic():
    def f(x, k, s):
        a = k * 2 + 1
        b = k // 2
        c = k % 3
        d = k ** 2
        e = -k
        g = s / k
        h = s * 1.5 - 0.25
        i = abs(-k)
        return x * a + b + c + d + e + g + h + i

    check(f, [(r(3), k, s) for k, s in ((2, 1.5), (3, 2.5), (5, 0.5))], recompiles=None)


def test_python_number_results_returned():
    def f(x, k):
        return x + k, k * 2, k + 0.5, k // 2, k > 1, -k

    check(f, [(r(3), k) for k in (2, 3, 5)])


def test_constant_folding_of_number_ops():
    def f(x):
        a = 7 // 2 + 7 % 3 - 2 ** 3 + abs(-4) + (5 & 3) + (5 | 8) + (5 ^ 1) + (1 << 3) + (16 >> 2) + ~5
        b = 1.5 * 4 / 3 - 0.5
        return x * a + b, a, b, 3 < 4, 4 <= 3, 3 == 3.0, "a" + "b", "ab" * 2, (1, 2) + (3,)

    check(f, batches(3))


def test_size_arithmetic_flows_into_ops():
    def f(x):
        n = x.size(0)
        m = x.shape[1]
        y = x.reshape(n * m)
        z = torch.zeros(n + 1, m - 1)
        w = torch.ones(n * 2, (m + 1) // 2)
        v = x.new_zeros(n, m * 3)
        return y, z, w, v, x.view(-1, n * m).sum()

    s = check(f, batches(4))
    assert s["backend_graphs"] == 1


def test_size_arithmetic_floor_and_mod():
    def f(x):
        n = x.size(0)
        return torch.arange(n // 2 + n % 2 + 1), x.expand(2, n, 4).reshape(n * 2, -1)

    check(f, batches(4, sizes=(4, 6, 8, 10)))


# ====================================================================== is / in / not / and / or
def test_is_none_and_is_not_none():
    def f(x, mask=None):
        if mask is None:
            return x * 2
        if mask is not None and x is not mask:
            return x.masked_fill(mask, 0.0)
        return x

    calls = [(r(b, 3),) for b in B] + [(r(b, 3), r(b, 3, seed=1) > 0) for b in B]
    check(f, calls, recompiles=1)


def test_in_and_not_in():
    def f(x, mode, d):
        out = x
        if mode in ("double", "triple"):
            out = out * 2
        if mode not in ["double"]:
            out = out + 1
        if "bias" in d:
            out = out + d["bias"]
        if 3 in {1, 2, 3}:
            out = out - 1
        if "z" not in d:
            out = out * 0.5
        return out, "b" in "abc", x in [x], 2 in (1, 2)

    calls = [(r(b, 3), m, {"bias": r(3)} if b != 3 else {}) for b, m in ((2, "double"), (3, "triple"), (5, "triple"))]
    check(f, calls, recompiles=2)


def test_boolean_operators_short_circuit():
    def f(x, a, b):
        c = a and b
        d = a or b
        e = not a
        g = (a and x) if b else (b or x)
        return x * (1 if c else 2) + (3 if d else 4) + (5 if e else 6), g

    check(f, [(r(3), a, b) for a, b in ((True, False), (False, True), (True, True), (False, False))],
          recompiles=3)


# ====================================================================== attributes
class Config:
    def __init__(self, scale, shift):
        self.scale = scale
        self.shift = shift
        self.inner = types.SimpleNamespace(power=2)


def test_attribute_access_on_objects():
    cfg = Config(1.5, 0.25)

    def f(x):
        return x * cfg.scale + cfg.shift, x ** cfg.inner.power, math.pi, torch.float32, x.dtype

    check(f, batches(4))


def test_attribute_store_on_object():
    def f(x, obj):
        obj.y = x * 2
        obj.count = obj.count + 1
        return obj.y + obj.count

    s = types.SimpleNamespace(count=0)
    e = types.SimpleNamespace(count=0)
    opt = partialdyn.optimize(f, backend=CountingBackend())
    for b in B:
        x = r(b, 3)
        torch.testing.assert_close(opt(x, s), f(x, e))
        torch.testing.assert_close(s.y, e.y)
        assert s.count == e.count
    assert_compiled(opt, hits=0)     # obj.count is read as a constant: each call recompiles


# ====================================================================== subscripts and slices
def test_tensor_indexing():
    def f(x):
        return (x[0], x[-1], x[1:], x[:-1], x[::2], x[:, 0], x[:, -1], x[..., 1], x[None], x[:, None, :],
                x[..., None], x[1:, 1:3], x[0, 1], x[:, 1::2], x[-2:, ...], x[-1:0], x[:100])

    check(f, batches(4))


def test_tensor_index_with_tensor():
    def f(x, idx):
        return x[idx], x[:, idx[:2]], x[x > 0].sum()

    check(f, [(r(b, 4), torch.tensor([0, 1, 1])) for b in B])


def test_symbolic_slice_by_size():
    def f(x, y):
        n = y.size(0)
        return x[:n] + y, x[n:].sum(0), x[: y.shape[0] - 1]

    check(f, [(r(b + 3, 4), r(b, 4, seed=1)) for b in B])


def test_tensor_setitem():
    def f(x):
        y = x.clone()
        y[0] = 0.0
        y[:, 1] += 1
        y[-1, -1] = y[0, 0] * 2
        y[y > 1] = 1.0
        return y

    check(f, batches(4))


def test_setitem_on_input_mutates_it():
    def f(x, v):
        x[:, 0] = v
        return x * 2

    check(f, [(r(b, 3), r(b, seed=1)) for b in B])


def test_container_subscripts():
    def f(xs, d):
        lst = list(xs)
        lst[0] = lst[0] * 2
        del lst[-1]
        d2 = dict(d)
        d2["c"] = d2["a"] + 1
        del d2["b"]
        return xs[0] + xs[-1], xs[1:], xs[::-1], lst, d2, d["a"], (1, 2, 3)[1], "abc"[-1], [1, 2, 3][1:]

    calls = [([r(b, seed=s) for s in range(3)], {"a": r(b, 2), "b": r(2)}) for b in B]
    check(f, calls)


# ====================================================================== building and unpacking
def test_build_containers():
    def f(x, y):
        t = (x, y)
        lst = [x, y, x + y]
        d = {"x": x, "y": y, 1: x * 2}
        s = {x.dim(), 4}
        empty = ([], {}, (), set())
        return t, lst, d, len(s), 2 in s, empty, sorted(s), {i % 2 for i in range(5)}

    check(f, batches(3, n=2))


def test_unpacking():
    def f(x, xs):
        a, b = x[0], x[1]
        (c, d), e = (x[0], x[1]), x[2]
        first, *rest = xs
        *init, last = xs
        head, *mid, tail = xs
        bb, tt, cc = x.shape
        return a + b, c + d + e, first, rest, init, last, head, mid, tail, x.view(bb * tt, cc)

    calls = [(r(3, b, 4), [r(b, seed=s) for s in range(4)]) for b in B]
    check(f, calls)


def test_star_and_double_star_building():
    def f(x, xs, d):
        lst = [*xs, x]
        tup = (*xs, *lst)
        merged = {**d, "z": x}
        merged2 = {"a": x, **d}
        return lst, tup, merged, merged2, [*range(3)], (*"ab",)

    calls = [(r(b), [r(b, seed=s) for s in range(2)], {"p": r(2), "q": r(b, 2)}) for b in B]
    check(f, calls)


def test_list_and_dict_methods():
    def f(x, y):
        lst = [x]
        lst.append(y)
        lst.extend([x * 2, y * 2])
        lst.insert(0, x + y)
        popped = lst.pop()
        lst.reverse()
        n = len(lst)
        d = {"a": x}
        d.update({"b": y})
        d.setdefault("c", x - y)
        got = d.get("missing", 3)
        keys = list(d.keys())
        vals = list(d.values())
        items = [(k, v * 2) for k, v in d.items()]
        removed = d.pop("a")
        lst2 = lst.copy()
        lst2.append(x)
        lst.clear()
        return lst, lst2, popped, n, keys, vals, items, removed, d, got, [1, 2, 3].index(2), (1, 1, 2).count(1)

    check(f, batches(3, n=2))


def test_set_literal_of_constants():
    def f(x):
        s = {1, 2, 3}
        return x * len(s), 2 in s, {*"ab"} == {"a", "b"}

    check(f, batches(3))


def test_dict_update_with_keywords():
    def f(x, y):
        d = {"a": x}
        d.update(b=y)
        return d

    check(f, batches(3, n=2))


def test_list_remove():
    def f(x):
        lst = [3, 1, 2, 1]
        lst.remove(1)
        return x + lst[0], lst

    check(f, batches(3))


def test_list_count():
    def f(x):
        return x * [3, 1, 2, 1].count(1)

    check(f, batches(3))


def test_list_sort_and_dict_popitem():
    def f(x):
        lst = [3, 1, 2]
        lst.sort()
        d = {"a": 1, "b": 2}
        d.popitem()
        return x + lst[0], lst, x * len(d), d

    check(f, batches(3), breaks=None)


# ====================================================================== strings
def test_fstrings_and_formatting_of_constants():
    def f(x):
        name = "layer"
        idx = 3
        key = f"{name}{idx}"
        d = {key: x, f"{name}_{idx + 1:02d}": x * 2, "{}-{}".format(name, idx): x * 3,
             f"{3.14159:.2f}": x * 5, f"{name!r}": x * 6, str(idx): x * 7}
        return d, key.upper(), "-".join(["a", "b"]), name.startswith("lay"), f"{idx}" * 2

    check(f, batches(3))


# ====================================================================== calls
def _helper(x, w, bias=None, *, act=True):
    y = x @ w
    if bias is not None:
        y = y + bias
    return y.relu() if act else y


def _varargs(*xs, **kw):
    out = sum(xs)
    for k in sorted(kw):
        out = out + kw[k]
    return out


def test_call_styles():
    def f(x, w, b):
        args = (x, w)
        kwargs = {"bias": b, "act": False}
        return (_helper(x, w), _helper(x, w, b), _helper(x, w, bias=b, act=False), _helper(*args),
                _helper(*args, **kwargs), _helper(x, *(w, b)), _varargs(x, x, x), _varargs(x, a=x, b=b.sum()),
                _varargs(*[x, x], **{"c": 1.0}))

    calls = [(r(b, 4), r(4, 4, seed=1), r(4, seed=2)) for b in B]
    s = check(f, calls)
    assert s["graphs"] == 1 and s["compiles"] == 1, "user functions should be inlined into one graph"


def test_defaults_and_keyword_only_at_top_level():
    def f(x, scale=2.0, *args, bias=None, **kw):
        y = x * scale
        if bias is not None:
            y = y + bias
        for a in args:
            y = y + a
        return y, sorted(kw)

    calls = [(r(b),) for b in B] + [(r(b), 3.0, r(b, seed=1)) for b in B]
    kwargs = [{}, {"bias": r(2, seed=3)[0]}, {"extra": 1}] + [{}] * 3
    check(f, calls, kwargs=kwargs, recompiles=3)


class Scaler:
    factor = 2.0

    def __init__(self, offset):
        self.offset = offset

    def apply(self, x):
        return self._inner(x) + self.offset

    def _inner(self, x):
        return x * self.factor

    @staticmethod
    def stat(x):
        return x - 1

    @classmethod
    def cls(cls, x):
        return x * cls.factor

    @property
    def double_offset(self):
        return self.offset * 2


def test_methods_of_user_objects():
    obj = Scaler(0.5)

    def f(x):
        m = obj.apply
        return obj.apply(x), m(x), Scaler.stat(x), obj.stat(x), obj.cls(x), x + obj.double_offset

    s = check(f, batches(3))
    assert s["graphs"] == 1


def test_user_object_created_in_trace():
    def f(x):
        return Scaler(1.5).apply(x)

    check(f, batches(3))


def test_percent_formatting_of_constants():
    def f(x):
        name, idx = "layer", 3
        return {"%s_%d" % (name, idx): x, "%.1f" % 2.25: x * 2}

    check(f, batches(3))


def _apply_all(fn, xs):
    return [fn(t) for t in xs]


def test_lambda_passed_to_user_function():
    def f(x, xs):
        k = 3
        g = lambda t: t * 2  # noqa: E731
        return g(x), _apply_all(g, xs), _apply_all(lambda t: t + k, xs), (lambda: x * k)()

    calls = [(r(b), [r(b, seed=s) for s in range(3)]) for b in B]
    s = check(f, calls)
    assert s["graphs"] == 1


def test_map_filter_partial():
    def f(x, xs):
        g = lambda t: t * 2  # noqa: E731
        mapped = list(map(g, xs))
        pairs = list(map(lambda a, b: a + b, xs, mapped))
        kept = list(filter(lambda t: t.dim() == 1, xs))
        part = functools.partial(_helper, act=False)
        return mapped, pairs, len(kept), part(x.view(-1, 1), torch.ones(1, 2))

    calls = [(r(b), [r(b, seed=s) for s in range(3)]) for b in B]
    check(f, calls)


def test_recursive_user_function():
    def tree_sum(t, depth):
        if depth == 0:
            return t
        return tree_sum(t * 0.5, depth - 1) + t

    def f(x):
        return tree_sum(x, 3)

    check(f, batches(3))


# ====================================================================== comprehensions and generators
def test_comprehensions():
    def f(xs, d):
        doubled = [t * 2 for t in xs]
        filtered = [t for i, t in enumerate(xs) if i % 2 == 0]
        nested = [a + b for a in xs[:2] for b in xs[:2]]
        dd = {k: v + 1 for k, v in d.items()}
        sq = {i * i for i in range(4)}
        return doubled, filtered, nested, dd, sorted(sq), tuple(t.sum() for t in xs)

    calls = [([r(b, seed=s) for s in range(3)], {"a": r(b, 2), "b": r(2)}) for b in B]
    check(f, calls)


def test_generator_expressions_in_builtins():
    def f(xs):
        total = sum(t for t in xs)
        total2 = sum((t * 2 for t in xs), torch.zeros(()))
        ok = all(t.dim() == 1 for t in xs)
        anyok = any(t.dim() == 3 for t in xs)
        biggest = max(t.dim() for t in xs)
        return total, total2, ok, anyok, biggest, list(t + 1 for t in xs)

    calls = [([r(b, seed=s) for s in range(3)],) for b in B]
    check(f, calls)


# ====================================================================== loops
def test_for_loops_over_iterables():
    def f(x, xs, d):
        out = x
        for i in range(3):
            out = out + i
        for i in range(1, 6, 2):
            out = out * 0.5 + i
        for t in xs:
            out = out + t
        for t in tuple(xs):
            out = out - t * 0.5
        for k in d:
            out = out + d[k]
        for k, v in d.items():
            out = out + v
        for i, t in enumerate(xs):
            out = out + t * i
        for a, b in zip(xs, xs[1:]):
            out = out + a * b
        for t in reversed(xs):
            out = out - t
        for i in reversed(range(3)):
            out = out * (i + 1)
        return out

    calls = [(r(b), [r(b, seed=s) for s in range(3)], {"a": r(b, seed=5), "b": r(1)}) for b in B]
    check(f, calls)


def test_loop_break_continue_else_and_while():
    def f(x):
        out = x
        for i in range(10):
            if i == 1:
                continue
            if i == 4:
                break
            out = out + i
        else:
            out = out * 100
        for i in range(2):
            out = out + 1
        else:
            out = out * 2
        n = 0
        while n < 3:
            out = out * 1.5
            n += 1
        return out, n

    check(f, batches(3))


def test_loop_over_tensor_and_size():
    def f(x):
        out = torch.zeros(x.shape[1])
        for row in x[:3]:
            out = out + row
        for i in range(x.size(1)):
            out = out + x[0, i]
        return out

    calls = [(r(3 + b, 4),) for b in B]
    check(f, calls)


# ====================================================================== conditions
def test_if_on_constants_and_flags():
    DEBUG = False

    def f(x, flag):
        if DEBUG:
            x = x * 100
        if True:
            x = x + 1
        if flag:
            x = x * 2
        else:
            x = x * 3
        return x if flag else -x

    check(f, [(r(b), fl) for b, fl in ((2, True), (3, True), (5, False), (4, False))], recompiles=1)


def test_if_on_tensor_metadata():
    def f(x):
        if x.dim() == 2 and x.dtype == torch.float32 and not x.requires_grad:
            x = x * 2
        if x.shape[1] > 2:
            x = x + 1
        if x.is_floating_point():
            x = x - 0.5
        if x.device.type == "cpu":
            x = x * 3
        return x

    check(f, batches(4))


def test_predicate_on_batch_size_keeps_it_symbolic():
    def f(x):
        if x.size(0) >= 2:
            return x * 2
        return x

    check(f, batches(3, sizes=(2, 3, 5, 7, 11)))


# ====================================================================== builtins
class Holder:
    name = "holder"

    def __init__(self):
        self.w = 2.0


def test_isinstance_len_getattr_hasattr():
    h = Holder()

    def f(x, xs, k):
        out = x
        if isinstance(x, torch.Tensor):
            out = out + 1
        if isinstance(k, int) and not isinstance(k, bool):
            out = out * k
        if isinstance(xs, (list, tuple)):
            out = out + len(xs)
        if hasattr(h, "w") and not hasattr(h, "missing"):
            out = out * getattr(h, "w")
        out = out + getattr(h, "nope", 5)
        return out, getattr(h, "name"), len("abc"), len({"a": 1}), callable(f), type(k) is int

    calls = [(r(b), [r(1)] * b, b) for b in B]
    check(f, calls, recompiles=2)


def test_len_of_tensor_into_op():
    def f(x):
        return torch.ones(len(x)) * x.sum(1)

    check(f, batches(3))


def test_min_max_sum_abs_round():
    def f(x, xs):
        a = min(3, 4, 2)
        b = max([1, 5, 3])
        c = sum([1, 2, 3])
        d = abs(-2.5)
        e = round(2.567, 2)
        g = divmod(7, 3)
        return x * a + b + c + d + e, g, sum(xs), abs(x), min(xs[0].dim(), 5), max(1.5, 2)

    calls = [(r(b), [r(b, seed=s) for s in range(3)]) for b in B]
    check(f, calls)


def test_min_max_of_sizes_into_ops():
    def f(x):
        n = max(x.size(0), 2)
        return torch.zeros(n, 2), x.new_ones(min(x.size(0), 100)) * 2

    check(f, batches(3))


def test_math_module():
    def f(x):
        return (x * math.sqrt(16) + math.log(2.0) - math.pi + math.e * math.cos(0.0),
                math.ceil(2.1), math.floor(2.9), math.isnan(1.0), math.exp(1.0), math.inf > 1e30,
                x / math.sqrt(x.size(-1)))

    check(f, batches(16))


def test_math_isfinite():
    def f(x):
        return x * math.isfinite(2.0)

    check(f, batches(3))


def test_operator_module():
    def f(x, y, xs):
        return (operator.add(x, y), operator.mul(x, 2), operator.sub(x, y), operator.truediv(x, 2),
                operator.neg(x), operator.getitem(xs, 1), operator.matmul(x, y.T), operator.lt(x, y),
                operator.iadd(x.clone(), 1), operator.not_(x is None), operator.is_(x, y))

    calls = [(r(b, 3), r(b, 3, seed=1), [r(b, seed=s) for s in range(3)]) for b in B]
    check(f, calls)


def test_operator_getters_and_reduce():
    def f(x, xs):
        return operator.itemgetter(0)(xs), operator.attrgetter("shape")(x)[0] * 0 + x, \
            functools.reduce(operator.add, xs)

    check(f, [(r(b), [r(b, seed=s) for s in range(3)]) for b in B])


# ====================================================================== torch functions, tensor methods
def test_torch_functions():
    def f(x, y):
        return (torch.cat([x, y], 0), torch.stack([x, y], 1), torch.where(x > 0, x, y),
                torch.matmul(x, y.T), torch.einsum("bi,ci->bc", x, y), torch.softmax(x, -1),
                torch.zeros_like(x), torch.ones(x.size(0), 3), torch.arange(x.size(0)), torch.full((2, 3), 1.5),
                torch.tensor([1.0, 2.0]) * 2, torch.split(x, 2, dim=1), torch.chunk(y, 2, dim=1),
                torch.sigmoid(x).mean(), torch.clamp(x, -0.5, 0.5), torch.max(x), torch.sum(x, dim=1),
                torch.maximum(x, y), torch.flip(x, [0]), torch.cumsum(x, 0), torch.tril(x),
                torch.is_tensor(x), x.new_tensor([3.0]))

    check(f, batches(4, n=2))


def test_tensor_methods_and_properties():
    def f(x):
        b, c = x.shape
        return (x.shape, x.size(), x.size(1), x.size(-1), x.dtype, x.ndim, x.dim(), x.T, x.mT,
                x.view(b, 2, c // 2), x.reshape(-1), x.permute(1, 0), x.transpose(0, 1).contiguous(),
                x.unsqueeze(0), x.unsqueeze(-1).squeeze(-1), x.flatten(), x.expand(2, b, c),
                x.repeat(2, 1), x.float(), x.double(), x.to(torch.float64), x.long(), x.type_as(x.double()),
                x.sum(dim=1, keepdim=True), x.mean(0), x.std(), x.clamp(min=0), x.masked_fill(x > 0, 0.0),
                x.numel() * 0 + 1, x.is_contiguous(), x.device, x.requires_grad, x.relu().exp().log1p(),
                x.argmax(1), x.norm(), x.softmax(-1), x.new_zeros(3), x.detach(), x.shape[-1])

    check(f, batches(4))


def test_tensor_shape_values_into_ops_do_not_recompile():
    def f(x):
        b, t, c = x.shape
        return x.view(b, t, 2, c // 2).transpose(1, 2).reshape(b * 2, t, -1), x.size()[0:2], x.new_empty(x.size()).shape

    check(f, [(r(b, t, 4),) for b, t in ((2, 3), (3, 5), (5, 2))])


def test_inplace_tensor_methods():
    def f(x, y):
        z = torch.zeros_like(x)
        z.add_(x)
        z.mul_(2).sub_(y)
        z.clamp_(-1, 1)
        x.add_(1)              # mutates the input
        y.zero_()
        return z

    check(f, batches(4, n=2))


def test_dtype_promotion():
    def f(x, i):
        return x + i, i * 2, i / 2, i // 2, (i > 1).sum(), x.to(i.dtype), i.float().mean(), x.half().float()

    calls = [(r(b), torch.arange(b)) for b in B]
    check(f, calls)


def test_functional():
    def f(x, w, b, target):
        return (F.relu(x), F.gelu(x), F.silu(x), F.softmax(x, dim=-1), F.log_softmax(x, -1),
                F.linear(x, w, b), F.dropout(x, p=0.5, training=False),
                F.cross_entropy(x, target), F.layer_norm(x, x.shape[-1:]), F.normalize(x, dim=1),
                F.one_hot(target, num_classes=4), F.mse_loss(x, x * 0.5), F.leaky_relu(x, 0.1),
                F.embedding(target, w))

    calls = [(r(b, 4), r(4, 4, seed=1), r(4, seed=2), torch.arange(b) % 4) for b in B]
    check(f, calls)


def test_pad_keeps_sizes_symbolic():
    def f(x):
        return F.pad(x, (1, 2)), F.pad(x, (0, 0, 1, 1), value=3.0)

    check(f, batches(4))


# ====================================================================== nn.Module
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.scale = 0.5
        self.register_buffer("shift", torch.full((d,), 0.1))

    def _residual(self, x, y):
        return x + y * self.scale

    def forward(self, x):
        return self._residual(x, self.norm(self.fc(x)).relu()) + self.shift


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.blocks = nn.ModuleList([Block(8) for _ in range(3)])
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 2), "b": nn.Linear(8, 3)})
        self.use_b = True

    def forward(self, x):
        h = self.inp(x)
        for i, block in enumerate(self.blocks):
            h = block(h) if i != 1 else self.blocks[i](h) * 1.0
        out = {"a": self.heads["a"](h)}
        if self.use_b:
            out["b"] = self.heads.b(h)
        return out, len(self.blocks), self.training


def test_module_tree():
    s = check(Net(), batches(6))
    assert s["graphs"] == 1


def test_sequential():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Dropout(0.0), nn.Linear(7, 2), nn.Softmax(-1))
    check(m, batches(5, sizes=(2, 3, 5, 9, 17)))


def test_optimized_module_shares_state():
    torch.manual_seed(0)
    m = nn.Linear(3, 2)
    opt = partialdyn.optimize(m, backend=CountingBackend())
    assert opt.weight is m.weight
    x = r(4, 3)
    torch.testing.assert_close(opt(x), m(x))
    with torch.no_grad():
        m.weight.mul_(2)
    torch.testing.assert_close(opt(x), x @ m.weight.T + m.bias)
    assert list(dict(opt.named_parameters())) == ["weight", "bias"]
    assert_compiled(opt)


def _update_weights(m):
    with torch.no_grad():
        m.fc.weight.add_(0.5)
        m.shift.fill_(3.0)


def test_parameters_read_at_call_time():
    torch.manual_seed(0)
    s = check(Block(4), batches(4, sizes=(2, 3, 5, 4)), before={2: _update_weights})
    assert s["compiles"] == 1


def test_parameter_replaced():
    def swap(m):
        m.fc.weight = nn.Parameter(torch.ones(4, 4))

    torch.manual_seed(0)
    check(Block(4), batches(4, sizes=(2, 3, 5, 4)), before={2: swap}, recompiles=None)


def _set_scale(value):
    def hook(m):
        m.scale = value
    return hook


def test_module_attribute_change_recompiles():
    torch.manual_seed(0)
    s = check(Block(4), batches(4, sizes=(2, 3, 5, 4)), before={2: _set_scale(2.0)}, recompiles=1)
    assert s["compiles"] == 2


def test_module_flag_change_recompiles():
    def no_b(m):
        m.use_b = False

    check(Net(), batches(6, sizes=(2, 3, 5, 4)), before={2: no_b}, recompiles=1)


def test_train_eval_toggle():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            if self.training:
                return self.lin(x) * 2
            return self.lin(x)

    torch.manual_seed(0)
    check(M(), batches(3, sizes=(2, 3, 5, 4)), before={2: lambda m: m.eval()}, recompiles=1)


def test_module_called_with_kwargs_and_grad():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x, *, scale=1.0, extra=None):
            y = self.lin(x) * scale
            return y if extra is None else y + extra

    torch.manual_seed(0)
    calls = [(r(b, 3, requires_grad=True),) for b in B]
    check(M(), calls, kwargs=[{"scale": 2.0}, {"scale": 2.0, "extra": 1.0}, {"scale": 2.0}], recompiles=1)


# ====================================================================== named tuples
Pair = collections.namedtuple("Pair", ["low", "high"])


class Stats(NamedTuple):
    mean: torch.Tensor
    n: int


def test_torch_namedtuple_results():
    def f(x):
        m = x.max(dim=1)
        v, i = x.min(1)
        s = torch.sort(x, dim=1, descending=True)
        return m, m.values * 2, m.indices, v, i, s.values, x.topk(2), torch.std_mean(x, dim=0)

    check(f, batches(4))


def test_user_namedtuple_in_and_out():
    def f(p, x):
        out = Pair(low=x.min(1).values, high=p.high + 1)
        st = Stats(x.mean(), 3)
        return out, st, out.low + out[1].sum(), st.n * 2, p.low, p[1], len(p)

    calls = [(Pair(r(b), r(b, seed=1)), r(b, 3)) for b in B]
    check(f, calls)


def test_namedtuple_replace():
    def f(p):
        return p._replace(low=p.low * 2)

    check(f, [(Pair(r(b), r(b, seed=1)),) for b in B])


# ====================================================================== grad mode
def test_no_grad_block():
    def f(x, w):
        y = x @ w
        with torch.no_grad():
            z = y * 2
            inner = torch.is_grad_enabled()
        return y, z, inner, torch.is_grad_enabled()

    calls = [(r(b, 3, requires_grad=True), r(3, 3, seed=1, requires_grad=True)) for b in B]
    check(f, calls)


def test_enable_grad_and_set_grad_enabled():
    def f(x):
        with torch.no_grad():
            a = x * 2
            with torch.enable_grad():
                b = x * 3
        with torch.set_grad_enabled(False):
            c = x * 4
        return a, b, c

    calls = [(r(b, requires_grad=True),) for b in B]
    check(f, calls)


def test_called_under_no_grad_vs_grad():
    def f(x):
        return x * 2

    backend = CountingBackend()
    opt = partialdyn.optimize(f, backend=backend)
    x = r(3, requires_grad=True)
    with torch.no_grad():
        assert opt(x).requires_grad is False
    assert opt(x).requires_grad is True
    assert backend.runs == 2
    with torch.no_grad():
        out, what = outcome(opt, x)
    assert what == "hit" and out.requires_grad is False      # each grad mode has its own entry
    out, what = outcome(opt, x)
    assert what == "hit" and out.requires_grad is True


def test_backward_through_graph():
    def f(x, w):
        return ((x @ w).tanh() ** 2).sum()

    opt = partialdyn.optimize(f, backend=CountingBackend())
    for b in B:
        x1, w1 = r(b, 3, requires_grad=True), r(3, 2, seed=1, requires_grad=True)
        x2, w2 = x1.detach().clone().requires_grad_(), w1.detach().clone().requires_grad_()
        f(x1, w1).backward()
        opt(x2, w2).backward()
        torch.testing.assert_close(x2.grad, x1.grad)
        torch.testing.assert_close(w2.grad, w1.grad)
    assert_compiled(opt)
    assert partialdyn.stats(opt)["recompiles"] == 0


# ====================================================================== user exceptions
def test_user_exception_same_type():
    def f(x, mode):
        if mode == "bad":
            raise ValueError("bad mode")
        return x * 2

    check(f, [(r(3), "ok"), (r(4), "ok"), (r(5), "bad"), (r(3), "ok")], breaks=None, fallbacks=None)


def test_branch_on_int_argument_true():
    def f(x, k):
        if k > 2:
            return x * k
        return x - k

    check(f, [(r(3), k) for k in (3, 4, 6)])


def test_branch_on_int_argument_false():
    def f(x, k):
        if k > 2:
            return x * k
        return x - k

    check(f, [(r(3), k) for k in (2, 0, 6, 7)], recompiles=1)


def test_shape_error_same_type():
    def f(x, y):
        return x + y

    check(f, [(r(3), r(3)), (r(4), r(5)), (r(5), r(5))], fallbacks=None)


def test_assert_statement():
    def f(x):
        assert x.dim() == 2, "need 2-D"
        assert x.shape[1] == 4
        return x.sum(1)

    check(f, batches(4))
    check(f, [(r(3, 4),), (r(3, 5),)], fallbacks=None, breaks=None)


# ====================================================================== the harness itself
class OffByOneBackend(CountingBackend):
    """Compiles 'correctly' but adds 1 to every tensor output: check() must notice."""

    def __call__(self, gm, example_inputs):
        run = super().__call__(gm, example_inputs)
        return lambda *args: [o + 1 if isinstance(o, torch.Tensor) else o for o in run(*args)]


def test_check_detects_wrong_results():
    def f(x):
        return x * 2

    with pytest.raises(AssertionError, match="output"):
        check(f, batches(3), backend=OffByOneBackend())
    check(f, batches(3))        # the same calls pass on a correct backend (and hit the cache when repeated)


def test_check_detects_missing_input_mutation():
    def f(x):
        x.add_(1)
        return x.sum()

    class DropsMutation(CountingBackend):
        def __call__(self, gm, example_inputs):
            run = super().__call__(gm, example_inputs)
            return lambda *args: run(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])

    with pytest.raises(AssertionError, match="inputs after call"):
        check(f, batches(3), backend=DropsMutation())
    check(f, batches(3))        # the same calls pass on a correct backend (and hit the cache when repeated)


def test_failing_assert_rewritten_by_pytest_is_traced_without_an_internal_error():
    # this module's asserts are rewritten by pytest: the failing branch reads the global '@pytest_ar'
    def f(x):
        assert x.shape[1] == 4
        return x.sum(1)

    opt = partialdyn.optimize(f)
    opt(r(3, 4))
    with pytest.raises(AssertionError):
        opt(r(3, 5))
    assert opt.stats.internal_errors == 0
    x = r(2, 4)
    out, what = outcome(opt, x)
    assert what == "hit"
    torch.testing.assert_close(out, f(x))


# PEP 695 syntax exists from 3.12: each source below has a 3.11 spelling with typing.TypeVar, so the test runs (and
# compares with eager) on every supported version.
PEP_695 = sys.version_info >= (3, 12)
GENERICS = """
import typing

def scale[T](x: T) -> T:
    return x * 2 + 1

class Box[T]:
    def __init__(self, value: T):
        self.value = value

def uses_generics_defined_outside(x):
    return scale(x) + Box(x).value

def defines_a_generic_inside(x):
    def shift[T](y: T) -> T:
        return y + 1
    return shift(x) * 2
""" if PEP_695 else """
import typing
T = typing.TypeVar("T")

def scale(x: T) -> T:
    return x * 2 + 1

class Box(typing.Generic[T]):
    def __init__(self, value: T):
        self.value = value

def uses_generics_defined_outside(x):
    return scale(x) + Box(x).value

def defines_a_generic_inside(x):
    U = typing.TypeVar("U")
    def shift(y: U) -> U:
        return y + 1
    return shift(x) * 2
"""
generics = types.ModuleType("generics_for_tests")
exec(compile(GENERICS, "<generics>", "exec"), generics.__dict__)


def test_generic_function_and_class_defined_outside_the_function_compile_with_their_tensor_bodies():
    check(generics.uses_generics_defined_outside, [(r(3),), (r(4),)])


def test_generic_defined_inside_the_function_runs_its_definition_in_python_and_the_body_compiles():
    # 3.12: the `<generic parameters of shift>` helper runs its rest eagerly (a fallback) at the break
    stats = check(generics.defines_a_generic_inside, [(r(3),), (r(4),)], breaks=None, fallbacks=None)
    assert stats["graph_breaks"] >= 1
    if PEP_695:
        assert any("PEP 695" in event["reason"] for event in partialdyn.events("graph_break"))


def except_star_around_tensor_code(x, fail):
    try:
        y = x * 2
        if fail:
            raise ExceptionGroup("group", [ValueError("v"), KeyError("k")])
    except* ValueError:
        y = x - 1
    except* KeyError:
        y = y + 10
    return y + 1


def test_except_star_whose_body_raises_nothing_compiles():
    check(except_star_around_tensor_code, [(r(3), False), (r(4), False)])


def test_except_star_over_an_exception_group_raised_by_user_code_matches_eager():
    stats = check(except_star_around_tensor_code, [(r(3), True), (r(4), True)], breaks=None, fallbacks=None,
                  graph_every_call=False, rehit=False)
    assert stats["graph_breaks"] >= 1
