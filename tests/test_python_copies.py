"""copy.deepcopy / copy.copy and id() inside traced code (transformers deep-copies its config in forward)."""
import copy

import torch

import partialdyn
from helpers import check, r

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
