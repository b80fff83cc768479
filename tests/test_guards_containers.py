"""Guards on mutable containers the trace read: membership in a set, the keys of a dict (any hashable keys,
an OrderedDict), the elements of an iterated set, deque or list subclass."""
import collections

import pytest
import torch

import partialdyn
from helpers import check, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


class Names(list):
    pass


@pytest.mark.parametrize("container", [collections.deque([1, 2]), Names([1, 2])], ids=["deque", "list subclass"])
def test_membership_in_a_container_mutated_in_place_is_guarded(container):
    def f(x):
        return x + 1 if x.dim() in container else x - 1
    stats = check(f, [(r(3),), (r(3),), (r(3),)], before={2: lambda fn: container.remove(1)}, recompiles=1)
    assert stats["cache_hits"] == 1


def test_discarding_from_a_set_read_by_the_trace_recompiles():
    allowed = {1, 2}

    def f(x):
        return x + 1 if x.dim() in allowed else x - 1
    stats = check(f, [(r(3),), (r(3),), (r(3),)], before={2: lambda fn: allowed.discard(1)}, recompiles=1)
    assert stats["cache_hits"] == 1


def test_iterating_a_mutated_set_or_deque_recompiles():
    values = {"s": {1, 2}, "d": collections.deque([3])}

    def f(x):
        for v in values["s"]:
            x = x + v
        for v in values["d"]:
            x = x * v
        return x
    stats = check(f, [(r(2),), (r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: values["d"].append(4)}, recompiles=1)
    assert stats["cache_hits"] == 2


def test_an_ordereddict_global_is_iterated_without_recompiling():
    od = collections.OrderedDict(a=1, b=2)

    def f(x):
        for k in od:
            x = x + od[k]
        return x
    stats = check(f, [(r(2),), (r(2),), (r(2),), (r(2),)],
                  before={3: lambda fn: od.__setitem__("c", 10)}, recompiles=1)
    assert stats["cache_hits"] == 2


def test_a_shape_keyed_cache_dict_gives_each_shape_its_own_value():
    namespace = {"torch": torch}
    exec("CACHE = {}\n"
         "def f(x):\n"
         "    key = tuple(x.shape)\n"
         "    if key not in CACHE:\n"
         "        CACHE[key] = len(CACHE)\n"
         "    return CACHE[key]\n", namespace)
    eager = dict(namespace)
    exec("CACHE = {}", eager)
    shapes = [(2, 3), (3, 3), (4, 3), (5, 3), (6, 3), (2, 3)]
    o = partialdyn.optimize(namespace["f"], backend="eager")
    got = [o(torch.ones(s)) for s in shapes]
    want = [0, 1, 2, 3, 4, 0]
    assert got == want
    hits = partialdyn.stats(o)["cache_hits"]
    assert o(torch.ones(3, 3)) == 1 and o(torch.ones(3, 3)) == 1        # the cache dict is unchanged now
    assert partialdyn.stats(o)["cache_hits"] >= hits + 1
