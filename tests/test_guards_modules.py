"""Guards on nn.Module structure: the children the trace iterated, parameters that were None, the names a
parameters() walk yielded, hooks, a forward set on the instance, and the class's forward and __call__."""
import pytest
import torch

import partialdyn
from helpers import check, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


class Scale(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, t):
        return t * self.k


def test_appending_to_an_iterated_modulelist_recompiles():
    layers = torch.nn.ModuleList([Scale(2)])

    def f(x):
        for layer in layers:
            x = layer(x)
        return x, len(layers)
    stats = check(f, [(r(2),), (r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: layers.append(Scale(3))}, recompiles=1)
    assert stats["cache_hits"] == 2


def test_a_bias_that_was_none_then_set_recompiles():
    lin = torch.nn.Linear(2, 2, bias=False)

    def f(x):
        return lin(x)
    check(f, [(r(1, 2),), (r(1, 2),)],
          before={1: lambda fn: setattr(lin, "bias", torch.nn.Parameter(torch.full((2,), 10.0)))}, recompiles=1)


def test_a_parameter_added_after_a_parameters_walk_recompiles():
    m = torch.nn.Module()
    m.a = torch.nn.Parameter(torch.ones(2))

    def f(x):
        for p in m.parameters():
            x = x + p
        return x
    stats = check(f, [(r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: setattr(m, "b", torch.nn.Parameter(torch.full((2,), 3.0)))}, recompiles=1)
    assert stats["cache_hits"] == 1


def test_a_forward_hook_added_after_the_compile_runs():
    lin = torch.nn.Identity()

    def f(x):
        return lin(x) + 1
    handle = None

    def add_hook(fn):
        nonlocal handle
        handle = lin.register_forward_hook(lambda mod, inp, out: out * 100)
    check(f, [(r(2),), (r(2),)], before={1: add_hook}, recompiles=None, graph_every_call=False, breaks=None)
    handle.remove()


def test_a_global_forward_hook_added_after_the_compile_runs():
    lin = torch.nn.Identity()

    def f(x):
        return lin(x) + 1
    handles = []
    try:
        check(f, [(r(2),), (r(2),)],
              before={1: lambda fn: handles.append(torch.nn.modules.module.register_module_forward_hook(
                  lambda mod, inp, out: out * 100 if isinstance(mod, torch.nn.Identity) else out))},
              recompiles=None, graph_every_call=False, breaks=None)
    finally:
        for h in handles:
            h.remove()


def test_a_forward_set_on_the_instance_is_what_a_call_runs():
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1
    m = M()
    m.forward = lambda x: x * 100

    def f(x):
        return m(x)
    stats = check(f, [(r(2),), (r(2),)])
    assert stats["cache_hits"] == 1


@pytest.mark.parametrize("name, replacement", [("forward", lambda self, x: x - 1),
                                               ("__call__", lambda self, x: x * 10)])
def test_a_forward_or_call_method_set_on_the_module_class_after_the_compile_is_what_a_call_runs(name, replacement):
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1
    m = M()

    def f(x):
        return m(x) * 2

    def patch_class(target):
        setattr(M, name, replacement)
    check(f, [(r(2),), (r(2),), (r(2),)], before={1: patch_class}, recompiles=1)


class WithHelpers(torch.nn.Module):
    factor = 3

    @staticmethod
    def shift(t, k):
        return t + k

    @classmethod
    def scale(cls, t):
        return t * cls.factor

    def forward(self, x):
        return self.scale(self.shift(x, 1))


def test_static_and_class_methods_of_a_module_are_called_as_python_would_and_hit_the_cache():
    stats = check(WithHelpers(), [(r(2),), (r(2),), (r(2),)])
    assert stats["cache_hits"] == 2


class BreakingLayer(torch.nn.Module):
    def __init__(self, shift):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.shift = shift

    def forward(self, t):
        y = self.lin(t)
        print(end="")        # a graph break inside the layer: its forward is compiled as its own frame
        return (y + self.shift).relu()


class Stack(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(BreakingLayer(shift=i % 2) for i in range(n))

    def forward(self, t):
        for layer in self.layers:
            t = layer(t)
        return t


def test_a_layer_forward_compiled_as_its_own_frame_is_shared_by_every_layer_of_the_stack():
    layers = 6
    with torch.no_grad():
        stats = check(Stack(layers), [(r(b, 4),) for b in (2, 3, 4)], breaks=None, recompiles=None)
    line = BreakingLayer.forward.__code__.co_firstlineno
    codes = [e["code"] for e in partialdyn.events("compile") if e["code"].startswith(f"forward (test_guards_modules.py:{line})")]
    # one entry per distinct `shift` value (an attribute the trace read, guarded through its source), not
    # one per layer instance; each layer still runs with its own weights (checked against eager)
    assert 1 <= len(codes) <= 2 < layers, codes
    assert stats["eager_fallbacks"] == 0


def test_forward_pre_hooks_and_forward_hooks_on_a_submodule_are_traced_with_no_break():
    lin = torch.nn.Linear(3, 3)
    seen = []
    handles = [lin.register_forward_pre_hook(lambda mod, args: (args[0] * 2,)),
               lin.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] - 1,), kwargs), with_kwargs=True),
               lin.register_forward_hook(lambda mod, args, out: out + args[0].sum()),
               lin.register_forward_hook(lambda mod, args, kwargs, out: seen.append(out * 3), with_kwargs=True),
               lin.register_forward_hook(lambda mod, args, out: out * 10, always_call=True)]

    def f(x):
        seen.clear()
        y = torch.relu(lin(x))
        return y, list(seen)
    try:
        check(f, [(r(2, 3),), (r(4, 3, seed=1),), (r(5, 3, seed=2),)])
    finally:
        for h in handles:
            h.remove()


def test_a_forward_hook_that_returns_a_new_output_is_what_the_caller_gets():
    lin = torch.nn.Linear(3, 3)
    handle = lin.register_forward_hook(lambda mod, args, out: (out, out.sum()))

    def f(x):
        y, total = lin(x)
        return y * total
    try:
        check(f, [(r(2, 3),), (r(3, 3),)])
    finally:
        handle.remove()


def test_hooks_added_and_removed_between_calls_recompile_and_give_eager_results():
    lin = torch.nn.Linear(3, 3)
    handles = []

    def f(x):
        return lin(x) + 1

    def remove(fn):
        handles.pop().remove()
    try:
        stats = check(f, [(r(2, 3),), (r(2, 3),), (r(2, 3),), (r(2, 3),)],
                      before={1: lambda fn: handles.append(lin.register_forward_hook(lambda m, a, out: out * 100)),
                              2: lambda fn: handles.append(lin.register_forward_pre_hook(lambda m, a: (a[0] - 5,))),
                              3: remove},
                      recompiles=2)
        assert stats["cache_hits"] == 1      # the last call has the hooks of the second: its entry
    finally:
        for h in handles:
            h.remove()


def test_global_forward_hooks_are_traced_and_removing_one_recompiles():
    lin = torch.nn.Linear(3, 3)
    module = torch.nn.modules.module
    handles = [module.register_module_forward_pre_hook(
                   lambda mod, args: (args[0] + 1,) if isinstance(mod, torch.nn.Linear) else None),
               module.register_module_forward_hook(
                   lambda mod, args, out: out * 2 if isinstance(mod, torch.nn.Linear) else None)]

    def f(x):
        return lin(x) - 1
    try:
        check(f, [(r(2, 3),), (r(2, 3),), (r(2, 3),)], before={2: lambda fn: handles.pop().remove()},
              recompiles=1)
    finally:
        for h in handles:
            h.remove()


def test_a_forward_hook_in_a_layer_loop_inside_try_finally_is_not_an_eager_fallback():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))

        def forward(self, x):
            for layer in self.layers:
                x = torch.relu(layer(x))
            return x
    net = Net()
    collected = []
    for layer in net.layers:
        layer.register_forward_hook(lambda mod, args, out: collected.append(out))

    def f(x):
        collected.clear()
        try:
            return net(x), list(collected)
        finally:
            pass
    stats = check(f, [(r(2, 4),), (r(3, 4),), (r(5, 4),)])
    assert stats["compiles"] == 1


def test_a_backward_hook_still_runs_the_module_in_python():
    lin = torch.nn.Linear(3, 3)
    grads = []
    handle = lin.register_full_backward_hook(lambda mod, gin, gout: grads.append(gout[0].sum()))

    def f(x):
        return lin(x) * 2
    try:
        check(f, [(r(2, 3, requires_grad=True),), (r(3, 3, requires_grad=True),)], breaks=1)
    finally:
        handle.remove()
    assert [e["reason"] for e in partialdyn.events("graph_break")] == ["module Linear has backward hooks"]


def test_a_global_hook_added_after_the_compile_reaches_a_module_built_in_the_trace():
    def f(x):
        return torch.nn.ReLU()(x) + 1
    handles = []
    try:
        check(f, [(r(2),), (r(2),)],
              before={1: lambda fn: handles.append(torch.nn.modules.module.register_module_forward_hook(
                  lambda mod, args, out: out * 100 if isinstance(mod, torch.nn.ReLU) else None))},
              recompiles=1)
    finally:
        for h in handles:
            h.remove()
