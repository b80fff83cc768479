"""Structures library models build on every call: objects created in the trace and grown by a callee
(a KV cache), slices of module lists (`self.layers[:n]`)."""
import functools

import torch
from torch import nn

import partialdyn
from helpers import assert_compiled, assert_fell_back, check, outcome, r


def setup_function():
    partialdyn.reset()


class Cache:
    def __init__(self):
        self.keys = []

    def update(self, t):
        self.keys.append(t * 2)
        self.last = t + 1
        print(end="")          # a graph break inside the callee, after it changed the object
        return self.last


def grow_cache(x):
    cache = Cache()
    y = cache.update(x)
    return y, cache.last, cache.keys


def test_break_in_a_method_after_it_changed_an_object_made_in_the_trace_runs_correctly():
    opt = partialdyn.optimize(grow_cache)
    for n in (2, 3):
        x = r(n)
        got, want = opt(x), grow_cache(x)
        for a, b in zip(got[:2], want[:2]):
            torch.testing.assert_close(a, b)
        assert len(got[2]) == 1
        torch.testing.assert_close(got[2][0], want[2][0])
    assert_fell_back("a call that graph-broke had already mutated the caller's containers")


class Stack(nn.Module):
    def __init__(self, depth=3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(depth))
        self.used = 2

    def forward(self, x):
        for layer in self.layers[:self.used]:
            x = layer(x)
        return x


def test_slice_of_a_module_list_made_fresh_on_every_call_does_not_recompile():
    torch.manual_seed(0)
    check(Stack(), [(r(2, 4),), (r(3, 4),), (r(5, 4),)])


def test_slice_of_a_module_list_follows_a_layer_replaced_later():
    torch.manual_seed(0)
    model = Stack()
    opt = partialdyn.optimize(model)
    x = r(3, 4)
    torch.testing.assert_close(opt(x), model.layers[1](model.layers[0](x)))
    model.layers[1] = nn.Linear(4, 4)
    torch.testing.assert_close(opt(x), model.layers[1](model.layers[0](x)))
    model.used = 3
    torch.testing.assert_close(opt(x), model.layers[2](model.layers[1](model.layers[0](x))))
    assert assert_compiled(opt, hits=0)["recompiles"] == 2


class PartialActivation(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = functools.partial(nn.functional.gelu, approximate="tanh")

    def forward(self, x):
        return self.act(x)


def test_functools_partial_object_stored_on_a_module_is_called_in_the_graph():
    check(PartialActivation(), [(r(2, 3),), (r(4, 3),)])


def test_functools_partial_object_follows_its_replacement():
    model = PartialActivation()
    opt = partialdyn.optimize(model)
    x = r(3)
    torch.testing.assert_close(opt(x), nn.functional.gelu(x, approximate="tanh"))
    assert outcome(opt, x)[1] == "hit"
    model.act = functools.partial(torch.mul, 3.0)
    torch.testing.assert_close(opt(x), x * 3.0)
    out, what = outcome(opt, x)
    assert what == "hit"
    torch.testing.assert_close(out, x * 3.0)
    assert_compiled(opt, hits=2)
    assert partialdyn.stats(opt)["recompiles"] == 1
