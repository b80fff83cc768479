"""An entry's guard function reads a source that several guards check (a nested object, a submodule, a
closure cell, a function inlined from two places) once per call and checks everything against that one
read: replacing or mutating what such a source leads to between calls still recompiles, and calls that
change nothing still hit the cache."""
import pytest
import torch

from helpers import check, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


class Inner:
    def __init__(self, scale, shift, on=True):
        self.scale, self.shift, self.on = scale, shift, on


class Outer:
    def __init__(self, inner):
        self.inner = inner


def test_a_nested_object_read_by_several_guards_is_rechecked_when_it_or_its_fields_change():
    cfg = Outer(Inner(2, 1))

    def f(x):
        inner = cfg.inner
        y = x * inner.scale + inner.shift
        return y if cfg.inner.on else -y
    check(f, [(r(3),), (r(3),), (r(3),), (r(3),), (r(3),), (r(3),)],
          before={2: lambda fn: setattr(cfg, "inner", Inner(2, 5)),          # a new object, one field differs
                  3: lambda fn: setattr(cfg.inner, "scale", 3),              # the same object, mutated
                  4: lambda fn: setattr(cfg.inner, "on", False)},
          recompiles=3)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(self.lin(x)) + self.lin.bias


class Stack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def _replace_bias(model):
    model.blocks[1].lin.bias = torch.nn.Parameter(torch.ones(4))


def _add_pre_hook(model):
    model.blocks[1].norm.register_forward_pre_hook(lambda module, args: (args[0] * 2,))


def test_submodules_read_by_many_guards_are_rechecked_when_a_parameter_or_a_hook_changes():
    check(Stack(), [(r(2, 4),), (r(2, 4),), (r(2, 4),), (r(2, 4),)],
          before={2: _replace_bias, 3: _add_pre_hook}, recompiles=None, breaks=None)


def _patch_forward(model):
    def forward(self, x):
        return self.lin(x) * 3
    Block.forward = forward


def test_a_method_inlined_from_two_modules_recompiles_when_its_class_changes_it():
    original = Block.forward
    try:
        check(Stack(), [(r(2, 4),), (r(2, 4),), (r(2, 4),)], before={2: _patch_forward}, recompiles=1)
    finally:
        Block.forward = original


def test_a_closure_cell_and_the_defaults_of_its_function_read_by_several_guards_are_rechecked():
    def make(k):
        def helper(x, bias=1.0, power=2):
            return (x * k) ** power + bias
        return helper
    box = {"helper": make(2.0)}

    def f(x):
        h = box["helper"]
        return h(x) + h(x, 0.5)

    def new_defaults(fn):
        box["helper"].__defaults__ = (3.0, 1)

    def new_cell(fn):
        box["helper"].__closure__[0].cell_contents = 4.0
    check(f, [(r(3),), (r(3),), (r(3),), (r(3),), (r(3),)],
          before={2: new_defaults, 3: new_cell, 4: lambda fn: box.update(helper=make(2.0))}, recompiles=3)


class Flags:
    def __init__(self):
        self.strict, self.limit = True, None


def test_a_bool_or_none_attribute_is_guarded_by_identity_so_equal_values_of_other_types_recompile():
    flags = Flags()

    def f(x):
        y = x * 2 if flags.strict is True else x * 3
        return y if flags.limit is None else y + 1
    check(f, [(r(3),), (r(3),), (r(3),), (r(3),), (r(3),)],
          before={2: lambda fn: setattr(flags, "strict", 1),        # == True, but not True
                  3: lambda fn: setattr(flags, "limit", False),     # falsy like None, not None
                  4: lambda fn: setattr(flags, "strict", True)},
          recompiles=3)
