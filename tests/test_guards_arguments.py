"""Guards on non-tensor arguments: dataclass, plain-object and set arguments are guarded by what the trace
read of them (fields, membership), not by identity, so a fresh equal object per call hits the cache; a use
that needs the object itself (identity, `==`) still guards it; inputs the trace assumed distinct are."""
import dataclasses

import pytest
import torch

import partialdyn
from helpers import check, r


@pytest.fixture(autouse=True)
def fresh():
    partialdyn.reset()
    yield
    partialdyn.reset()


@dataclasses.dataclass
class Cfg:
    scale: float
    shift: float
    mode: str = "add"


class Plain:
    def __init__(self, k, name):
        self.k = k
        self.name = name


def uses_cfg(x, cfg):
    y = x * cfg.scale
    return y + cfg.shift if cfg.mode == "add" else y - cfg.shift


def test_a_fresh_dataclass_argument_per_call_compiles_once():
    stats = check(uses_cfg, [(r(3, 4), Cfg(1.0 + i, 0.5)) for i in range(5)])
    assert stats["compiles"] == 1 and stats["cache_hits"] == 4


def test_a_dataclass_argument_whose_read_field_changes_recompiles():
    check(uses_cfg, [(r(3), Cfg(2.0, 0.5)), (r(3), Cfg(2.0, 0.5, "sub"))], recompiles=1)


def test_a_fresh_plain_object_argument_per_call_compiles_once():
    def f(x, obj):
        return x * obj.k if obj.name == "mul" else x + obj.k
    stats = check(f, [(r(2), Plain(i + 2, "mul")) for i in range(4)] + [(r(2), Plain(2, "add"))], recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 3


def test_a_fresh_set_argument_per_call_compiles_once_and_membership_is_guarded():
    def f(x, allowed):
        return x + 1 if x.dim() in allowed else x - 1
    stats = check(f, [(r(2), {1, 2}), (r(2), {1, 2}), (r(2), {1, 3}), (r(2), {2})], recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 2


SENTINEL = Cfg(0.0, 0.0)


def test_identity_of_an_argument_is_guarded_when_the_trace_tests_it():
    def f(x, cfg):
        return x if cfg is SENTINEL else x * cfg.scale
    check(f, [(r(2), Cfg(0.0, 0.0)), (r(2), SENTINEL)], recompiles=1)


def test_equality_of_two_arguments_is_guarded():
    def f(x, a, b):
        return x + 1 if a == b else x - 1
    check(f, [(r(2), Cfg(1.0, 0.0), Cfg(1.0, 0.0)), (r(2), Cfg(1.0, 0.0), Cfg(2.0, 0.0))], recompiles=1)


def test_an_entry_traced_with_distinct_lists_rejects_aliased_ones():
    def f(a, b, x):
        a.append(1)
        return x * len(b)
    calls = [([0], [0], r(2)), ([0], [0], r(2))]
    stats = check(f, calls)
    assert stats["cache_hits"] == 1
    partialdyn.reset()
    opt = partialdyn.optimize(f, backend="eager")
    opt([0], [0], r(2))
    shared, eager_shared = [0], [0]
    torch.testing.assert_close(opt(shared, shared, r(2)), f(eager_shared, eager_shared, r(2)))
    assert shared == eager_shared
