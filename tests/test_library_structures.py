"""Structures library models build on every call: objects created in the trace and grown by a callee
(a KV cache), slices of module lists (`self.layers[:n]`), torch's pytree specs."""
import functools

import torch
import torch.utils._pytree as pytree
from torch import nn

import partialdyn
from helpers import BROKE_BEFORE, assert_broke, assert_compiled, check, outcome, r


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
    """The frame breaks before `cache.update(x)` (it ran eagerly until then): the method, optimized on its own,
    appends once."""
    opt = partialdyn.optimize(grow_cache)
    for n in (2, 3, 4):
        x = r(n)
        got, want = opt(x), grow_cache(x)
        for a, b in zip(got[:2], want[:2]):
            torch.testing.assert_close(a, b)
        assert len(got[2]) == 1
        torch.testing.assert_close(got[2][0], want[2][0])
    assert_compiled(opt, hits=1, fallbacks=0)
    assert_broke(BROKE_BEFORE)


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


def flatten_and_unflatten(x):
    tree = {"a": x, "b": (x * 2, [x + 1, None])}
    leaves, spec = pytree.tree_flatten(tree)
    again = pytree.tree_unflatten([leaf * 3 if leaf is not None else leaf for leaf in leaves], spec)
    return again, spec, spec.num_leaves, pytree.tree_map(lambda t: t - 1, (x, [x])), len(pytree.tree_leaves(tree))


def test_pytree_flatten_and_unflatten_of_plain_containers_trace_into_one_graph():
    """`TreeSpec(...)` (a frozen dataclass with slots and an __init__ of its own) was a graph break inside
    tree_flatten's recursive local `helper`, and the frame with it ran eagerly; now it is traced, and the spec
    returned is rebuilt equal to eager's."""
    check(flatten_and_unflatten, [(r(2),), (r(3),), (r(4),)], breaks=0)


# ---------------------------------------------------------------- the shape of transformers' Mamba (no transformers)
class StateCache:
    """A recurrent model's cache (transformers' DynamicCache for Mamba): made in forward, each layer stores its
    convolution state in it before its scan."""

    def __init__(self):
        self.conv_states = {}
        self.updates = []

    def update_conv_state(self, idx, state):
        self.conv_states[idx] = state
        self.updates.append(idx)


def keeps_kwargs(fn):
    """A wrapper around each forward (transformers' deprecate_kwarg): the cache reaches the layer through it."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapped


def scan(h):
    leaves, spec = pytree.tree_flatten((h, h.cumsum(1)))    # traced (the spec of plain containers)
    print(end="")                                           # a graph break (Mamba's: its associative scan)
    return pytree.tree_unflatten(leaves, spec)[1]


class Mixer(nn.Module):
    def __init__(self, idx):
        super().__init__()
        self.idx = idx
        self.proj = nn.Linear(4, 4)

    @keeps_kwargs
    def forward(self, x, cache):
        h = self.proj(x)
        cache.update_conv_state(self.idx, h[:, -1] * 2)     # the layer changes the cache...
        return scan(h) + x                                  # ...and breaks inside its scan


class Recurrent(nn.Module):
    def __init__(self, layers=2):
        super().__init__()
        self.layers = nn.ModuleList(Mixer(i) for i in range(layers))
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        cache = StateCache()
        for layer in self.layers:
            x = layer(x, cache=cache)
        return self.norm(x), cache


def test_layers_that_change_a_cache_made_in_forward_and_then_break_run_compiled_and_change_it_once():
    """Each layer's call changed the cache and then broke, so the call (run again in Python after the graph)
    could not be cut after its traced part: the whole forward ran eagerly on every call.  Now the forward, and
    each wrapper between it and the layer, breaks before that call; the layer itself compiles up to its scan.
    The cache is changed once per layer, in order (`updates` == [0, 1]), and calls of new shapes hit."""
    torch.manual_seed(0)
    calls = [(r(2, 5, 4),), (r(3, 7, 4),), (r(2, 6, 4),), (r(4, 3, 4),)]
    # recompiles: layer 1's input needs grad where layer 0's does not (all on the first call, below)
    stats = check(Recurrent(), calls, breaks=None, fallbacks=0, recompiles=None)
    assert stats["graph_breaks"] > 0, stats
    assert_broke(BROKE_BEFORE)
    opt = partialdyn.optimize(Recurrent())
    compiles = []
    for args in calls:
        opt(*args)
        compiles.append(partialdyn.stats(opt)["compiles"])
    assert compiles == compiles[:1] * len(calls), compiles     # every part compiled on the first call, then hits
