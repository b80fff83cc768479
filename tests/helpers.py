"""Shared helpers for the differential tests: a counting backend and `check`.

`check(fn, calls, **opts)` runs `fn` eagerly and through `partialdyn.optimize`
on separate clones of every call's arguments and asserts that both sides agree:
outputs (values, dtypes, requires_grad, container types), raised exception types,
mutated inputs, and, for an nn.Module, the module state at the end.  It also
asserts what the engine did (compiled graphs ran, graph breaks, eager fallbacks,
recompiles) and returns the stats plus the counting backend's figures.
"""
from __future__ import annotations

import copy

import torch

import partialdyn


class CountingBackend:
    """Backend that runs the fx graph as is and counts compiled graphs and their runs."""

    def __init__(self):
        self.graphs = 0
        self.runs = 0
        self.gms = []

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        self.gms.append(gm)
        forward = gm.forward

        def run(*args):
            self.runs += 1
            return forward(*args)
        return run

    def ops(self):
        """Targets of every call node of every graph compiled so far (for 'op is in a graph' checks)."""
        return [node.target for gm in self.gms for node in gm.graph.nodes
                if node.op in ("call_function", "call_method", "call_module")]


def r(*shape, seed=0, dtype=torch.float32, requires_grad=False):
    """A deterministic random tensor."""
    g = torch.Generator().manual_seed(seed * 7919 + sum(shape) * 31 + len(shape))
    t = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    return t.requires_grad_(requires_grad)


def clone(value):
    if isinstance(value, torch.Tensor):
        c = value.detach().clone()
        return c.requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(clone(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, clone(v)) for k, v in value.items())
    return value


def same(a, b, where="output"):
    """Assert a (eager) and b (optimized) are the same value, recursively."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), \
            f"{where}: {type(a).__name__} vs {type(b).__name__}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} vs {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        torch.testing.assert_close(a.detach(), b.detach(), equal_nan=True, msg=lambda m: f"{where}: {m}")
        assert a.requires_grad == b.requires_grad, \
            f"{where}: requires_grad {a.requires_grad} vs {b.requires_grad}"
        return
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
        return
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
        return
    if isinstance(a, float) and a != a:
        assert b != b, f"{where}: nan vs {b!r}"
        return
    assert a == b, f"{where}: {a!r} vs {b!r}"


def _call(fn, args, kwargs):
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # the user's exception is part of the result
        return None, e


_UNSET = object()


def check(fn, calls, *, kwargs=None, before=None, breaks=0, fallbacks=0, recompiles=_UNSET,
          graph_every_call=True, **opts):
    """Run `fn` eagerly and optimized on cloned copies of each call's arguments and compare.

    calls:     list of argument tuples.
    kwargs:    list of keyword dicts, one per call (or None).
    before:    {call index: hook(target)} run on both the eager and the optimized target
               (the function or the module) before that call.
    breaks, fallbacks, recompiles: the expected stats value (exact), or None to not check.
               recompiles defaults to 0 when every call succeeds, else unchecked.
    graph_every_call: every call that does not raise must run at least one compiled graph.
    opts:      passed to partialdyn.optimize; the backend defaults to a CountingBackend.

    Returns the stats dict with `graph_runs` and `backend_graphs` added, and `backend`.
    """
    if isinstance(fn, torch.nn.Module):
        ref, target = copy.deepcopy(fn), fn
    else:
        ref = target = fn
    backend = opts.pop("backend", None) or CountingBackend()
    opt = partialdyn.optimize(target, backend=backend, **opts)
    counting = isinstance(backend, CountingBackend)
    raised = False
    for i, args in enumerate(calls):
        kw = kwargs[i] if kwargs else {}
        if before and i in before:
            before[i](ref)
            if target is not ref:
                before[i](target)
        a_ref, a_opt = clone(args), clone(args)
        k_ref, k_opt = clone(kw), clone(kw)
        out_ref, err_ref = _call(ref, a_ref, k_ref)
        runs = backend.runs if counting else 0
        out_opt, err_opt = _call(opt, a_opt, k_opt)
        if err_ref is not None or err_opt is not None:
            raised = True
            assert type(err_ref) is type(err_opt), (
                f"call {i}: eager raised {err_ref!r}, optimized raised {err_opt!r}")
            continue
        same(out_ref, out_opt, f"call {i} output")
        same(a_ref, a_opt, f"call {i} inputs after call")
        same(k_ref, k_opt, f"call {i} kwargs after call")
        if counting and graph_every_call:
            assert backend.runs > runs, f"call {i} ran no compiled graph; stats {partialdyn.stats(opt)}"
    if isinstance(fn, torch.nn.Module):
        same(dict(ref.state_dict()), dict(target.state_dict()), "module state")
    stats = dict(partialdyn.stats(opt))
    assert stats["compiles"] >= 1, f"never compiled: {stats}"
    assert stats["calls"] == len(calls), stats
    if recompiles is _UNSET:
        recompiles = None if raised else 0
    for name, expected in (("graph_breaks", breaks), ("eager_fallbacks", fallbacks), ("recompiles", recompiles)):
        if expected is not None:
            assert stats[name] == expected, f"{name} {stats[name]} != {expected}: {stats}"
    if counting:
        stats["graph_runs"] = backend.runs
        stats["backend_graphs"] = backend.graphs
    stats["backend"] = backend
    return stats
