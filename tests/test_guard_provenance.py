"""Every guard says where it came from: the operation and the user's line (and the library line).

Read through the documented `guards` and `compile` events (docs/logs.md).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import partialdyn
from partialdyn import demo
from helpers import outcome

HERE = __file__


def run(fn, calls, **options):
    """Make the calls, then the last one again, which must hit; the stats and the events."""
    partialdyn.reset()
    opt = partialdyn.optimize(fn, **options)
    for args in calls:
        opt(*args)
    assert outcome(opt, *calls[-1])[1] == "hit", partialdyn.stats(opt)
    return partialdyn.stats(opt), partialdyn.events()


def recompile_reasons(events):
    return [e["reason"] for e in events if e["kind"] == "compile" and e["recompile"]]


@pytest.mark.parametrize("policy", ["partial", "static"])
def test_every_guard_of_the_demo_runs_has_a_provenance(policy):
    torch.manual_seed(0)
    model = demo.TinyTransformer().eval()
    stats, events = run(model, [(x,) for x in demo.make_inputs(3)], policy=policy)
    assert stats["compiles"] >= 2
    guards = [g for e in events if e["kind"] == "guards" for g in e["guards"]]
    assert guards
    missing = [g["text"] for g in guards if not (g.get("provenance") and g["provenance"]["op"]
                                                 and g["provenance"]["file"] and g["provenance"]["line"])]
    assert not missing, missing[:5]
    for reason in recompile_reasons(events):
        assert "(from " in reason and "demo.py:" in reason, reason


def test_a_guard_made_inside_a_library_module_names_the_library_line_and_the_calling_user_line():
    partialdyn.reset()
    opt = partialdyn.optimize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    for batch in (2, 3, 16):
        opt(torch.randn(batch, 3, 8, 8))
    call_line = test_a_guard_made_inside_a_library_module_names_the_library_line_and_the_calling_user_line \
        .__code__.co_firstlineno + 4
    reasons = recompile_reasons(partialdyn.events())
    assert any("from torch.conv2d at torch/nn/modules/conv.py:" in r and f"called from {HERE}:{call_line}" in r
               for r in reasons), reasons


def test_a_recompile_on_a_relation_prints_each_value_as_an_int():
    def f(tokens, mask):
        if tokens.size(1) != mask.size(1):
            return tokens
        return tokens * mask
    _, events = run(f, [(torch.ones(2, 4), torch.ones(2, 4)), (torch.ones(2, 4), torch.ones(2, 5))])
    (reason,) = recompile_reasons(events)
    assert "failed: got mask.size(1)=5, tokens.size(1)=4" in reason
    assert "(" + "5,)" not in reason
    line = f.__code__.co_firstlineno + 1
    assert reason.endswith(f"(from if at {HERE}:{line})")


def test_a_recompile_on_an_expression_of_one_dim_prints_its_value_as_an_int():
    scales = [0.5, 1.5, 2.5]

    def f(x):
        return x * scales[x.size(0) % 3]
    _, events = run(f, [(torch.ones(3),), (torch.ones(4),), (torch.ones(7),)])
    reasons = recompile_reasons(events)
    assert reasons and all("got (" not in r for r in reasons), reasons
    assert any("failed: got 4" in r for r in reasons), reasons


def test_a_specialized_dim_names_the_operation_and_line_that_specialized_it():
    def f(x):
        total = x[0]
        for i in range(1, x.size(0)):
            total = total + x[i]
        return total
    _, events = run(f, [(torch.ones(3, 2),), (torch.ones(4, 2),)])
    (reason,) = recompile_reasons(events)
    assert reason == f"x.size(0) == 3 failed: got 4 (from range() at {HERE}:{f.__code__.co_firstlineno + 2})"


def test_a_list_length_guard_reports_type_and_length_by_name():
    def f(xs):
        return sum(xs)
    _, events = run(f, [([torch.ones(2)],), ([torch.ones(2), torch.ones(2)],)])
    (reason,) = recompile_reasons(events)
    assert "failed: got type=list, len=2" in reason, reason
