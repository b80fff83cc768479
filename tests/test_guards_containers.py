"""Guards on mutable containers the trace read: membership in a set, the keys of a dict (any hashable keys,
an OrderedDict in order, its class and instance attributes), the elements of an iterated set, deque or list
subclass."""
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


LAYERS = collections.OrderedDict(first=torch.ones(2), second=torch.ones(2) * 2)


def summed_layers(x):
    total = x
    for value in LAYERS.values():
        total = total * 2 + value       # the order matters
    return total, [name for name, _ in LAYERS.items()]


def test_views_of_an_ordereddict_global_are_traced_without_a_break():
    """Its keys are guarded in order and its values as read, as a dict's (it was an object guarded by identity:
    its views were a break, each new view a recompile, 9 compiles and 8 breaks in 4 calls)."""
    stats = check(summed_layers, [(r(2),), (r(2),), (r(2),), (r(2),)], breaks=0)
    assert stats["compiles"] == 1


def test_an_ordereddict_global_reordered_by_move_to_end_recompiles():
    """The keys guard compares them in order: move_to_end changes what a loop over the values computes."""
    try:
        check(summed_layers, [(r(2),), (r(2),), (r(2),)], before={1: lambda fn: LAYERS.move_to_end("first")},
              recompiles=1, breaks=0)
    finally:
        LAYERS.move_to_end("second")


class _Registry(collections.OrderedDict):
    def total(self, x):
        for value in self.values():
            x = x + value
        return x


def test_an_ordereddict_subclass_keeping_its_methods_is_traced_and_guarded_against_new_ones():
    """Its own methods are inlined with it as `self`; one of OrderedDict's methods defined on the class later
    (or an attribute of the instance hiding one) recompiles, and the object then runs as Python's."""
    registry = _Registry(a=1, b=2)
    shadowed = collections.OrderedDict(a=1, b=2)

    def f(x):
        return registry.total(x), [v * 2 for v in shadowed.values()]

    def redefine(fn):
        _Registry.values = lambda self: [10, 20]

    def shadow(fn):
        shadowed.values = lambda: [30]
    try:
        check(f, [(r(2),), (r(2),), (r(2),), (r(2),)], before={1: redefine, 2: shadow}, breaks=None,
              recompiles=None, rehit=False)
    finally:
        del _Registry.values
        del shadowed.values
    assert check(f, [(r(2),), (r(2),)], breaks=0)["compiles"] == 1


def test_a_new_ordereddict_argument_per_call_hits_the_cache():
    """An OrderedDict argument is guarded by its keys, not its identity."""
    def f(x, table):
        return x + table["a"] + len(list(table.items()))
    stats = check(f, [(r(2), collections.OrderedDict(a=1.5, b=2)) for _ in range(3)], breaks=0)
    assert stats["compiles"] == 1


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
