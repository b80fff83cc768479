"""`with torch.autocast(...)` inside optimized code: the region is traced into the graph (enter and exit nodes
that aot_autograd understands), so it compiles once instead of breaking on every call; a graph break or an
autocast query inside a region falls back to running the `with` in Python.  Differential against eager."""
import pytest
import torch

import partialdyn
from partialdyn.backends import aot_eager
from helpers import CountingBackend, check, r, same


@pytest.fixture(autouse=True)
def fresh():
    partialdyn.reset()
    saved = torch.get_autocast_dtype("cpu")
    yield
    torch.set_autocast_dtype("cpu", saved)
    partialdyn.reset()


def matmul_in_bfloat16(x, w):
    y = x + 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = y @ w
    return z.float() * 2, z.dtype


@pytest.mark.parametrize("inner", [None, aot_eager])
def test_an_autocast_region_in_the_function_is_part_of_one_graph_compiled_once(inner):
    x, w = r(2, 3), r(3, 4)
    stats = check(matmul_in_bfloat16, [(x, w)] * 4, breaks=0, backend=CountingBackend(inner))
    assert stats["compiles"] == 1 and stats["cache_hits"] == 3, stats
    assert not torch.is_autocast_enabled("cpu")


def test_gradients_through_a_traced_autocast_region_match_eager():
    def loss(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = torch.relu(x @ w)
        return z.float().sum()
    opt = partialdyn.optimize(loss, backend=CountingBackend(aot_eager))
    for _ in range(2):
        w_ref, w_opt = r(3, 4, requires_grad=True), r(3, 4, requires_grad=True)
        same(loss(r(2, 3), w_ref), opt(r(2, 3), w_opt))
        loss(r(2, 3), w_ref).backward()
        opt(r(2, 3), w_opt).backward()
        same(w_ref.grad, w_opt.grad)
    assert partialdyn.stats(opt)["compiles"] == 1


def test_the_default_autocast_dtype_read_by_the_region_is_guarded():
    def matmul(x, w):
        with torch.autocast("cpu"):
            z = x @ w
        return z.float(), z.dtype

    def use_float16(_target):
        torch.set_autocast_dtype("cpu", torch.float16)
    check(matmul, [(r(2, 3), r(3, 4))] * 3, before={1: use_float16}, recompiles=1)


def test_a_graph_break_inside_an_autocast_region_matches_eager_and_does_not_recompile_per_call():
    def with_print(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = x @ w
            print("inside")
        return z.float() + 1
    # the `with` runs in Python; the autocast object it makes reaches the resume function guarded by its state
    check(with_print, [(r(2, 3), r(3, 4))] * 4, breaks=None, recompiles=0, fallbacks=None, graph_every_call=False)
    assert not torch.is_autocast_enabled("cpu")


def test_an_autocast_query_inside_a_region_is_answered_as_in_eager():
    def query(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            on = torch.is_autocast_enabled("cpu")
        return x * 2 if on else x
    # the `with` runs in Python (no graph); the calls after the first reuse its entries instead of recompiling
    stats = check(query, [(r(3),)] * 3, breaks=None, recompiles=0, fallbacks=None, graph_every_call=False)
    assert stats["cache_hits"] >= 2, stats


def test_autocast_is_off_again_after_a_graph_raises_inside_a_region():
    def gather(x, idx):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = x[idx] @ x.t()
        return z.float()
    # the second call's graph raises after entering the region (it re-runs as plain Python, which raises too)
    stats = check(gather, [(r(3, 3), torch.tensor([0, 2])), (r(3, 3), torch.tensor([0, 7]))], recompiles=None,
                  fallbacks=None)
    assert stats["compiles"] == 1 and stats["cache_hits"] == 1, stats    # the graph that raised is the first call's
    assert not torch.is_autocast_enabled("cpu")
