"""Backoff caps compiles: under `partial` a function never compiles more than a full cache.

The property test compares `partial`, `static` and `automatic` on generated shape streams
and functions.  The default suite runs a few dozen streams; the documented 500-stream run:

    BACKOFF_STREAMS=500 python -m pytest tests/test_backoff_cost.py -k property
"""
from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import partialdyn

SCALES = [0.5, 1.5, 2.5]


def chunked_norm(x, chunk=4):
    n, d = x.shape
    out = []
    if n % chunk != 0:
        x = torch.cat([x, x.new_zeros(chunk - n % chunk, d)])
    for i in range(0, x.shape[0], chunk):
        blk = x[i:i + chunk]
        out.append(blk / blk.norm(dim=1, keepdim=True).clamp(min=1e-6))
    return torch.cat(out)[:n], f"rows={n}"


def factorial_scale(x):
    return x / math.factorial(x.size(0))


def range_loop(x):
    acc = x[0]
    for i in range(1, x.size(0)):
        acc = acc + x[i] * i
    return acc


def int_scale(x):
    return x * int(x.size(0))


def list_index(x):
    return x * SCALES[x.size(0) % 3]


def predicate_then_range(x):
    if x.size(0) > 6:
        x = x * 2
    total = x[0]
    for i in range(1, x.size(0)):
        total = total + x[i]
    return total, f"{x.size(0)} rows"


def predicate_only(x):
    if x.size(0) > 5:
        return x.sum(0)
    return x.mean(0)


pytestmark = pytest.mark.filterwarnings("ignore:partialdyn.*cache_size_limit")

FUNCTIONS = [chunked_norm, factorial_scale, range_loop, int_scale, list_index, predicate_then_range,
             predicate_only]


def run_stream(fn, sizes, policy, **options):
    """Call `fn` optimized on one tensor per size; per call, the function's compiles so far.  Results must
    match eager."""
    partialdyn.reset()
    opt = partialdyn.optimize(fn, policy=policy, **options)
    compiles = []
    for n in sizes:
        x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) / 7 + 1
        expected, got = fn(x.clone()), opt(x.clone())
        assert_same(expected, got)
        compiles.append(partialdyn.stats(opt)["compiles"])
    assert compiles[-1] >= 1, partialdyn.stats(opt)
    return compiles, partialdyn.stats(opt), partialdyn.events()


def assert_same(expected, got):
    if isinstance(expected, tuple):
        assert type(got) is tuple and len(got) == len(expected)
        for e, g in zip(expected, got):
            assert_same(e, g)
    elif isinstance(expected, torch.Tensor):
        torch.testing.assert_close(got, expected)
    else:
        assert got == expected


def own_compiles(events, fn):
    """Compiles of the function's own code (not of resume functions), from the documented compile events."""
    return sum(1 for e in events if e["kind"] == "compile" and e["code"].startswith(f"{fn.__name__} (")
               and not e["code"].startswith(f"{fn.__name__} (after line "))


def test_backoff_of_a_padded_chunk_loop_makes_no_more_compiles_than_static():
    sizes = [8, 12, 16, 20, 24, 9, 28, 32, 8]
    partial, stats, events = run_stream(chunked_norm, sizes, "partial")
    static, _, _ = run_stream(chunked_norm, sizes, "static")
    assert partial[-1] <= static[-1] == 8
    assert stats["graph_breaks"] >= 1, "the backoff break is still taken while it is affordable"
    fallbacks = [e for e in events if e["kind"] == "eager_fallback"]
    assert stats["eager_fallbacks"] == 0 or fallbacks, "every eager fallback is explained by an event"
    assert all(e.get("reason") for e in fallbacks)


def test_an_unaffordable_backoff_break_specializes_instead():
    # with room for two compiles only, the function specializes like `static` and never breaks; a size it
    # specialized for hits its entry again
    partial, stats, _ = run_stream(range_loop, [2, 3, 4, 5, 3], "partial", cache_size_limit=2, recompile_limit=1)
    assert partial[-1] <= 2 and stats["graph_breaks"] == 0
    assert stats["cache_hits"] == 1, stats


def test_resume_functions_share_the_backoff_state_of_their_function():
    # `n` reaches the f-string through a resume function; its recompiles count toward the same dim
    _, _, events = run_stream(chunked_norm, [8, 12, 16, 20, 24], "partial")
    backoffs = [e for e in events if e["kind"] == "backoff"]
    assert backoffs and len({e["dim"] for e in backoffs}) == len(backoffs), "a dim backs off once for the whole function"


MAX_STREAMS = int(os.environ.get("BACKOFF_STREAMS", "12"))


@settings(max_examples=MAX_STREAMS, deadline=None, suppress_health_check=list(HealthCheck))
@given(fn=st.sampled_from(FUNCTIONS),
       sizes=st.lists(st.integers(2, 12), min_size=1, max_size=10),
       cache_size_limit=st.sampled_from([2, 3, 4, 8]),
       recompile_limit=st.sampled_from([1, 2]))
def test_property_partial_compiles_are_capped_and_own_compiles_never_exceed_static(
        fn, sizes, cache_size_limit, recompile_limit):
    options = {"cache_size_limit": cache_size_limit, "recompile_limit": recompile_limit}
    partial, stats, events = run_stream(fn, sizes, "partial", **options)
    static, _, _ = run_stream(fn, sizes, "static", **options)
    automatic, _, _ = run_stream(fn, sizes, "automatic", **options)
    for call, (p, s, a) in enumerate(zip(partial, static, automatic)):
        # the documented bound: the function and its backoff resume functions share one cache_size_limit
        assert p <= cache_size_limit, f"call {call}: {p} compiles"
        # once static has filled its cache, partial has made no more compiles than static
        assert s < cache_size_limit or p <= s
        assert a <= s
    assert own_compiles(events, fn) <= static[-1]
    if stats["eager_fallbacks"]:
        assert any(e["kind"] == "eager_fallback" and e.get("reason") for e in events)
