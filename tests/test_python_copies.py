"""copy.deepcopy / copy.copy and id() inside traced code (transformers deep-copies its config in forward)."""
import copy

import pytest
import torch

import partialdyn
from helpers import BROKE_BEFORE, Compiled, assert_broke, assert_compiled, check, outcome, r

B = (2, 3, 5)


def setup_function():
    partialdyn.reset()


class Config:
    def __init__(self):
        self.layers = 3
        self.scale = 0.5
        self.names = {"a": 1}
        self.kinds = ["attn", "mlp"]

    def __eq__(self, other):
        return type(other) is Config and vars(self) == vars(other)


CONFIG = Config()


def with_decoder_layers(x):
    decoder = copy.deepcopy(CONFIG)
    decoder.layers = 5
    decoder.extra = "decoder"
    del decoder.scale
    return x * decoder.layers + len(decoder.kinds), decoder, decoder.names


def test_a_deep_copy_of_a_config_is_written_to_in_the_trace_without_touching_the_original():
    check(with_decoder_layers, [(r(b),) for b in B])
    assert CONFIG.layers == 3 and CONFIG.scale == 0.5 and not hasattr(CONFIG, "extra")


def test_a_returned_deep_copy_is_a_fresh_object_on_every_call_and_its_parts_are_its_own():
    opt = partialdyn.optimize(with_decoder_layers)
    _, first, first_names = opt(r(2))
    _, second, second_names = opt(r(3))
    assert partialdyn.stats(opt)["graphs"] == 1 and partialdyn.stats(opt)["graph_breaks"] == 0
    assert first is not second and first is not CONFIG and first_names is not second_names
    assert first.names is first_names and first.names is not CONFIG.names
    first.names["b"] = 2
    assert second.names == {"a": 1} and CONFIG.names == {"a": 1}


def test_a_change_to_the_copied_config_is_seen_by_the_next_call():
    def more_kinds(_):
        CONFIG.kinds.append("norm")

    def with_kinds(x):
        return x * len(copy.deepcopy(CONFIG).kinds)
    try:
        check(with_kinds, [(r(b),) for b in B], before={2: more_kinds}, recompiles=1)
    finally:
        CONFIG.kinds = ["attn", "mlp"]


def _bump_layers_then_break(config):
    config.layers = config.layers + 1
    print("", end="")       # a graph break inside the call that changed the copy


def copy_changed_in_a_call_that_breaks(x):
    decoder = copy.deepcopy(CONFIG)
    _bump_layers_then_break(decoder)
    return x * decoder.layers


def test_a_copy_changed_by_a_call_that_graph_breaks_is_not_changed_twice():
    """The call that broke ran again in Python on the copy rebuilt from its trace-time state, which already had
    the change: layers 5 where eager has 4.  Then the frame ran eagerly (the copy is logged as mutated); now it is
    traced again and breaks before that call, so the copy rebuilt at the break is the unchanged one."""
    opt = partialdyn.optimize(copy_changed_in_a_call_that_breaks, backend="eager")
    for b in B:
        torch.testing.assert_close(opt(r(b)), r(b) * 4)
    assert CONFIG.layers == 3
    assert_compiled(opt, hits=1, fallbacks=0)
    assert_broke(BROKE_BEFORE)


def test_a_deep_copy_of_a_dict_made_in_the_trace_copies_its_lists():
    def f(x):
        table = {"sizes": [1, 2], "name": "t"}
        mine = copy.deepcopy(table)
        mine["sizes"].append(3)
        shallow = copy.copy(table)
        shallow["name"] = "s"
        return x * len(table["sizes"]) + len(mine["sizes"]), table, mine, shallow
    check(f, [(r(b),) for b in B])


def test_a_deep_copy_of_a_tensor_is_a_graph_break():
    def f(x):
        return copy.deepcopy(x * 2) + 1
    check(f, [(r(b),) for b in B], breaks=1)


OTHER = Config()


def test_id_of_a_global_object_is_a_constant_guarded_by_its_identity():
    def f(x):
        memo = {id(CONFIG): "config"}
        return x * (2 if id(OTHER) in memo else 3)

    def alias(target):
        globals()["OTHER"] = CONFIG
    try:
        check(f, [(r(b),) for b in B], before={2: alias}, recompiles=1)
    finally:
        globals()["OTHER"] = Config()


def test_id_of_a_list_made_in_the_trace_is_only_known_at_run_time():
    def f(x):
        y = x * 2
        kept = copy.deepcopy(CONFIG)
        tagged = id([y]) != id(kept)       # both exist only at run time: Python answers
        return y + 1 if tagged else y
    check(f, [(r(b),) for b in B], breaks=1, recompiles=None, rehit=False)  # the resume gets a new id (an int) every call


# ---------------------------------------------------------------- id() of an argument
REGISTERED = Config()
REGISTERED_ID = id(REGISTERED)


def id_as_a_dict_key(x, obj):
    memo = {id(obj): x * 2}
    return memo[id(obj)] + obj.scale


def id_compared_with_a_stored_id(x, obj):
    return x * 2 if id(obj) == REGISTERED_ID else x - obj.scale


def id_in_a_dict_argument(x, obj, table):
    return x * table.get(id(obj), -1.0)


ID_USES = [id_as_a_dict_key, id_compared_with_a_stored_id]


@pytest.mark.parametrize("use", ID_USES, ids=lambda fn: fn.__name__)
def test_id_of_the_same_argument_object_hits_the_cache_and_gives_eager_results(use):
    check(use, [(r(b), REGISTERED) for b in B], shared=(REGISTERED,))


@pytest.mark.parametrize("use", ID_USES, ids=lambda fn: fn.__name__)
def test_id_of_a_fresh_argument_object_per_call_gives_eager_results(use):
    # check() copies the object for each side and each call: every call sees a new object (a recompile is
    # acceptable); the fresh copy made for the re-hit is one more new object
    check(use, [(r(b), Config()) for b in B], recompiles=None, rehit=False)


def test_id_of_an_argument_looked_up_in_a_dict_argument_gives_eager_results():
    other = Config()
    table = {REGISTERED_ID: 2.0, id(other): 3.0}
    calls = [(r(2), REGISTERED, table), (r(3), other, table), (r(5), Config(), table), (r(5), REGISTERED, table)]
    opt = Compiled(id_in_a_dict_argument)
    for x, obj, table in calls:
        torch.testing.assert_close(opt(x, obj, table), id_in_a_dict_argument(x, obj, table))
    opt.stats(recompiles=None)
    assert outcome(opt.opt, r(3), other, table)[1] == "hit"


def test_id_returned_for_an_argument_is_the_id_of_that_calls_object():
    def f(x, obj):
        return x + obj.scale, id(obj)
    opt = Compiled(f)
    kept = []
    for b in B:
        obj = Config()
        kept.append(obj)                     # alive: every call's object has its own id
        out, got = opt(r(b), obj)
        assert got == id(obj)
        torch.testing.assert_close(out, r(b) + 0.5)
    out, got = opt(r(3), REGISTERED)
    assert got == REGISTERED_ID
    result, what = outcome(opt.opt, r(2), REGISTERED)
    assert what == "hit" and result[1] == REGISTERED_ID
    opt.stats(recompiles=None)


def test_id_of_tensor_arguments_compares_the_objects_of_each_call():
    def f(x, y):
        return x * 2 if id(x) == id(y) else x + y
    opt = Compiled(f)
    for b in B:
        a, other = r(b), r(b, seed=1)
        torch.testing.assert_close(opt(a, a), f(a, a))
        torch.testing.assert_close(opt(a, other), f(a, other))
    opt.stats(breaks=None, recompiles=None)


def ids_of_containers(x, items, names, pair):
    memo = {id(items): 1.0, id(names): 2.0, id(pair): 3.0}
    return x * memo[id(items)] + memo[id(names)] * memo[id(pair)] + len(memo)


def test_id_of_the_same_list_dict_and_tuple_arguments_hits_the_cache_without_a_break():
    items, names, pair = [1, 2], {"a": 1}, (4, 5)
    check(ids_of_containers, [(r(b), items, names, pair) for b in B], shared=(items, names, pair))


def test_id_of_fresh_list_dict_and_tuple_arguments_per_call_gives_eager_results_without_a_break():
    # a recompile per new object (identity guard), never a wrong result, a break or an eager fallback
    check(ids_of_containers, [(r(b), [1, 2], {"a": 1}, (4, 5)) for b in B], recompiles=None, rehit=False)


def test_id_keyed_memo_in_a_closure_counts_distinct_objects_as_eager_does():
    def make():
        seen = {}

        def f(x, obj):
            number = seen.setdefault(id(obj), len(seen))
            return x * (number + 1)
        return f
    eager, opt = make(), Compiled(make())
    first, second = Config(), Config()
    for b, obj in zip((2, 3, 5, 5, 3), (first, second, first, second, Config())):
        torch.testing.assert_close(opt(r(b), obj), eager(r(b), obj))
    opt.stats(breaks=None, recompiles=None)
