"""Controls users know from torch.compile: strict and permissive mark_dynamic, set_stance, PartialdynError,
and help text on every public name."""
from __future__ import annotations

import inspect

import pytest
import torch

import partialdyn
from helpers import outcome

HERE = __file__


def rows_as_int(x):
    total = x[0]
    for i in range(1, x.size(0)):
        total = total + x[i]
    return total


def rows_in_ops(x):
    return x.view(x.size(0), -1).sum(1) + x.size(0)


def rows_in_if(x):
    if x.size(0) > 4:
        return x * 2
    return x - 1


def marked(batch, mark=partialdyn.mark_dynamic):
    x = torch.randn(batch, 3)
    mark(x, 0)
    return x


def test_mark_dynamic_raises_partialdynerror_naming_the_line_and_a_fix_when_the_code_specializes_the_dim():
    partialdyn.reset()
    opt = partialdyn.optimize(rows_as_int)
    with pytest.raises(partialdyn.PartialdynError) as raised:
        opt(marked(5))
    message = str(raised.value)
    line = rows_as_int.__code__.co_firstlineno + 2
    assert "x.size(0) was marked dynamic" in message and "specializes it to 5 by range()" in message, message
    assert f"{HERE}:{line}" in message, message
    assert "partialdyn.maybe_mark_dynamic(x, 0)" in message, message


def run_marked(fn, batches, mark=partialdyn.mark_dynamic, **options):
    """Marks live on the tensor object, so (unlike helpers.check) the same marked inputs go to both runs.  The
    last batch, marked again, must hit the cache; the stats before that call are returned."""
    partialdyn.reset()
    opt = partialdyn.optimize(fn, **options)
    for batch in batches:
        x = marked(batch, mark)
        torch.testing.assert_close(opt(x), fn(x))
    stats = partialdyn.stats(opt)
    assert stats["graphs"] >= 1 and stats["eager_fallbacks"] == 0, stats
    assert outcome(opt, marked(batches[-1], mark))[1] == "hit", partialdyn.stats(opt)
    return stats


def test_mark_dynamic_allows_sizes_that_flow_into_torch_ops_and_predicates_on_them():
    assert run_marked(rows_in_ops, (2, 3, 7), policy="static")["compiles"] == 1
    assert run_marked(rows_in_if, (5, 6, 7), policy="static")["compiles"] == 1


def test_maybe_mark_dynamic_lets_the_code_specialize_the_dim_silently():
    assert run_marked(rows_as_int, (2, 3), partialdyn.maybe_mark_dynamic)["recompiles"] == 1


def test_mark_static_after_mark_dynamic_lifts_the_strict_check():
    def mark_both(x, dim):
        partialdyn.mark_dynamic(x, dim)
        partialdyn.mark_static(x, dim)
    assert run_marked(rows_as_int, (2, 3), mark_both)["recompiles"] == 1


def test_fail_on_recompile_raises_with_the_failed_guard_and_keeps_compiled_calls_working():
    partialdyn.reset()
    opt = partialdyn.optimize(rows_as_int)
    opt(torch.randn(2, 3))
    with partialdyn.set_stance("fail_on_recompile"):
        assert torch.equal(opt(x := torch.randn(2, 3)), rows_as_int(x))     # a cache hit still runs
        with pytest.raises(partialdyn.PartialdynError, match=r"x\.size\(0\) == 2 failed: got 3"):
            opt(torch.randn(3, 3))
    opt(torch.randn(3, 3))                    # the stance is restored on exit
    assert partialdyn.stats(opt)["recompiles"] == 1


def test_eager_on_recompile_runs_new_inputs_as_plain_python_with_an_event_and_no_compile():
    partialdyn.reset()
    opt = partialdyn.optimize(rows_as_int)
    opt(torch.randn(2, 3))
    partialdyn.set_stance("eager_on_recompile")
    try:
        x = torch.randn(3, 3)
        assert torch.equal(opt(x), rows_as_int(x))
        assert outcome(opt, torch.randn(2, 3))[1] == "hit"        # a cache hit still runs compiled
    finally:
        partialdyn.set_stance("default")
    stats = partialdyn.stats(opt)
    assert (stats["compiles"], stats["eager_fallbacks"]) == (1, 1)
    (event,) = partialdyn.events("eager_fallback")
    assert "eager_on_recompile" in event["reason"] and "x.size(0) == 2 failed: got 3" in event["reason"]


def test_set_stance_rejects_an_unknown_stance_with_the_valid_ones():
    with pytest.raises(ValueError, match="fail_on_recompile"):
        partialdyn.set_stance("never")


def test_fullgraph_raises_the_exported_partialdynerror():
    def breaks(x):
        print("side effect")
        return x + 1
    with pytest.raises(partialdyn.PartialdynError, match="fullgraph=True: graph break"):
        partialdyn.optimize(breaks, fullgraph=True)(torch.ones(2))
    assert issubclass(partialdyn.PartialdynError, RuntimeError)


@pytest.mark.parametrize("name", partialdyn.__all__)
def test_every_public_name_has_a_docstring(name):
    assert inspect.getdoc(getattr(partialdyn, name)), name


def test_help_of_optimize_explains_its_options():
    doc = inspect.getdoc(partialdyn.optimize)
    assert len(doc.splitlines()) > 5
    for option in ("backend", "policy", "recompile_limit", "cache_size_limit", "fullgraph"):
        assert option in doc


def test_the_repr_of_an_explanation_is_the_readable_report():
    explanation = partialdyn.explain(rows_in_if, torch.randn(6, 3))
    assert repr(explanation) == str(explanation)
    assert repr(explanation).startswith("partialdyn.explain: 1 graph(s)")


def project(x, weight):
    return (x @ weight).relu().sum(0) + x.size(0)


def branch_on_rows(x):
    if x.size(0) > 2:
        return x + 1
    return x - 1


def test_mark_unbacked_serves_sizes_0_and_1_and_others_from_one_entry():
    weight = torch.randn(3, 4)
    stats = run_marked_with(project, (1, 0, 2, 5, 1), partialdyn.mark_unbacked, weight)
    assert (stats["compiles"], stats["cache_hits"]) == (1, 4), stats


def test_python_consuming_an_unbacked_size_is_a_graph_break_not_a_guess():
    stats = run_marked_with(branch_on_rows, (1, 3, 5), partialdyn.mark_unbacked)
    assert stats["graph_breaks"] >= 1 and stats["recompiles"] == 0, stats


def run_marked_with(fn, batches, mark, *extra, **options):
    partialdyn.reset()
    opt = partialdyn.optimize(fn, **options)
    for batch in batches:
        x = marked(batch, mark)
        torch.testing.assert_close(opt(x, *extra), fn(x, *extra))
    stats = partialdyn.stats(opt)
    assert stats["graphs"] >= 1 and stats["eager_fallbacks"] == 0, stats
    return stats
