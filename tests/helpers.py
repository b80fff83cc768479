"""Shared helpers for the differential tests: a counting backend and `check`.

`check(fn, calls, **opts)` runs `fn` eagerly and through `partialdyn.optimize`
on separate clones of every call's arguments and asserts that both sides agree:
outputs (values, dtypes, requires_grad, container types), raised exception types,
mutated inputs, and, for an nn.Module, the module state at the end.  It also
asserts what the engine did (compiled graphs ran, graph breaks, eager fallbacks,
recompiles), that the last call made again hits the cache, and returns the stats plus the
counting backend's figures.

`Compiled(fn, **opts)` is for tests that drive the calls themselves: every call must
run a compiled graph, and `.stats()` asserts what the engine did.

`guards(fn, entry)` and `entries(fn)` read the documented `guards` events (not the cache).
"""
from __future__ import annotations

import copy
import dataclasses
import enum
import types

import torch

import partialdyn


class CountingBackend:
    """Backend that counts compiled graphs and their runs; it runs the fx graph as is, or what the
    backend `inner` (a backend function: `partialdyn.backends.aot_eager` ...) makes of it."""

    def __init__(self, inner=None):
        self.graphs = 0
        self.runs = 0
        self.gms = []
        self.inner = inner

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        self.gms.append(gm)
        forward = self.inner(gm, example_inputs) if self.inner else gm.forward

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


# Shared, not copied: what a call cannot change for the other side, or must see as the same object.
SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
          torch.nn.Module, enum.Enum, torch.dtype, torch.device, torch.layout, torch.memory_format,
          types.GeneratorType, range, slice)


def clone_tensor(t: torch.Tensor, storages: dict) -> torch.Tensor:
    """A copy with the same sizes, strides and storage offset; views of one storage stay views of one
    (copied) storage.  Tensors a storage copy cannot express (conj/neg bits, other layouts) are cloned."""
    if t.layout != torch.strided or t.is_conj() or t.is_neg() or t.is_inference() or t.is_quantized:
        c = t.detach().clone()
    else:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in storages:
            storages[key] = storage.clone()
        c = torch.empty(0, dtype=t.dtype, device=t.device).set_(storages[key], t.storage_offset(), t.size(),
                                                                t.stride())
    return c.requires_grad_(t.requires_grad)


def clone(value, storages=None, shared=()):
    """A copy of a call's arguments that the eager and the optimized side can each mutate on their own:
    tensors (strides, offsets and aliasing kept), containers (namedtuples included), dataclasses and plain
    objects are copied, recursively; the objects in `shared` are passed as they are (identity matters)."""
    storages = {} if storages is None else storages
    if any(value is obj for obj in shared):
        return value
    if isinstance(value, torch.Tensor):
        return clone_tensor(value, storages)
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes) + SHARED):
        return value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(clone(v, storages, shared) for v in value))
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(clone(v, storages, shared) for v in value)
    if isinstance(value, dict):
        return type(value)((k, clone(v, storages, shared)) for k, v in value.items())
    if dataclasses.is_dataclass(value):
        copied = copy.copy(value)
        for field in dataclasses.fields(value):
            object.__setattr__(copied, field.name, clone(getattr(value, field.name), storages, shared))
        return copied
    if hasattr(value, "__dict__"):
        copied = copy.copy(value)
        copied.__dict__.update({k: clone(v, storages, shared) for k, v in vars(value).items()})
        return copied
    return value


def _clone_tensor(t, memo, shared):
    ptr = t.untyped_storage().data_ptr()
    if ptr not in shared:
        return t.detach().clone()
    key = ("storage", ptr, t.dtype)
    if key not in memo:
        memo[key] = torch.empty(0, dtype=t.dtype).set_(t.untyped_storage().clone())
    return memo[key].as_strided(t.shape, t.stride(), t.storage_offset())


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
    if isinstance(a, (set, frozenset)) or type(a).__eq__ is not object.__eq__ or not hasattr(a, "__dict__") \
            or isinstance(a, SHARED):
        assert a == b, f"{where}: {a!r} vs {b!r}"
        return
    # a plain object (copied by clone): the same attributes with the same values
    same(vars(a), vars(b), f"{where}.__dict__")


def _call(fn, args, kwargs):
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # the user's exception is part of the result
        return None, e


_UNSET = object()


def check(fn, calls, *, kwargs=None, before=None, breaks=0, fallbacks=0, recompiles=_UNSET,
          graph_every_call=True, rehit=True, shared=(), **opts):
    """Run `fn` eagerly and optimized on cloned copies of each call's arguments and compare.

    calls:     list of argument tuples.
    kwargs:    list of keyword dicts, one per call (or None).
    before:    {call index: hook(target)} run on both the eager and the optimized target
               (the function or the module) before that call.
    breaks, fallbacks, recompiles: the expected stats value (exact), or None to not check.
               recompiles defaults to 0 when every call succeeds, else unchecked.
    graph_every_call: every call that does not raise must run at least one compiled graph.
    rehit:     the last call that ran compiled (no exception, no eager fallback, a graph ran) is made again
               (optimized only, after the comparisons) with fresh copies of its arguments and must hit the
               cache (False where that call changes what its own guards read, or where no call ran compiled).
    shared:    argument objects not copied (compared by identity in the function: sentinels, ...).
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
    last_compiled = last_ok = None
    for i, args in enumerate(calls):
        kw = kwargs[i] if kwargs else {}
        if before and i in before:
            before[i](ref)
            if target is not ref:
                before[i](target)
        a_ref, a_opt, a_again = (clone(args, shared=shared) for _ in range(3))
        k_ref, k_opt, k_again = (clone(kw, shared=shared) for _ in range(3))
        out_ref, err_ref = _call(ref, a_ref, k_ref)
        runs = backend.runs if counting else 0
        fallbacks_before = partialdyn.stats(opt)["eager_fallbacks"]
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
        if partialdyn.stats(opt)["eager_fallbacks"] == fallbacks_before and (not counting or backend.runs > runs):
            last_compiled = (i, a_again, k_again)
        last_ok = (i, a_again, k_again)
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
    if rehit and last_compiled is not None:
        _rehit(opt, fn, *last_compiled)
    elif rehit and not raised and not stats["eager_fallbacks"]:     # no graph ran (no tensor op): the last call
        _rehit(opt, fn, *last_ok)
    return stats


def _rehit(opt, fn, i, args, kwargs):
    """Call `i` made again (fresh copies of its arguments) must hit the cache: no compile, a hit."""
    before = dict(partialdyn.stats(opt))
    opt(*args, **kwargs)
    after = partialdyn.stats(opt)
    assert after["compiles"] == before["compiles"] and after["cache_hits"] > before["cache_hits"], (
        f"call {i} made again did not hit the cache (pass rehit=False if that call changes what its own "
        f"guards read): stats before {before}, after {dict(after)}; guards: {guard_texts(fn)}")


class Compiled:
    """`partialdyn.optimize(fn, **opts)` on a CountingBackend, for tests that make the calls themselves.

    Each call must run a compiled graph (`graphs=False`: for functions with no tensor op, none to run);
    `.stats(...)` asserts at least one compile and the expected breaks, fallbacks and recompiles (exact,
    None to not check) and returns the stats.  `.opt` is what optimize returned."""

    def __init__(self, fn, graphs=True, **opts):
        self.backend = opts.pop("backend", None) or CountingBackend()
        self.opt = partialdyn.optimize(fn, backend=self.backend, **opts)
        self.graphs = graphs

    def __call__(self, *args, **kwargs):
        runs = self.backend.runs
        out = self.opt(*args, **kwargs)
        if self.graphs:
            assert self.backend.runs > runs, f"the call ran no compiled graph; stats {partialdyn.stats(self.opt)}"
        return out

    def stats(self, *, breaks=0, fallbacks=0, recompiles=0):
        stats = dict(partialdyn.stats(self.opt))
        assert stats["compiles"] >= 1, f"never compiled: {stats}"
        for name, expected in (("graph_breaks", breaks), ("eager_fallbacks", fallbacks), ("recompiles", recompiles)):
            if expected is not None:
                assert stats[name] == expected, f"{name} {stats[name]} != {expected}: {stats}"
        return stats


def _code_name(fn) -> str:
    """The `code` field the events of `fn`'s own frame carry (`name (file.py:line)`)."""
    if isinstance(fn, torch.nn.Module):
        fn = type(fn).forward
    code = fn.__code__
    return f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"


def entries(fn) -> list[list[dict]]:
    """The guards (`{"kind", "text", "source", "dims"}`) of each cache entry of `fn`'s own code, in
    entry order, from the `guards` events in memory since the last `partialdyn.reset()`.  `fn`: the
    plain function or module that was optimized."""
    name = _code_name(fn)
    return [event["guards"] for event in partialdyn.events("guards") if event["code"] == name]


def compile_events(fn) -> list[dict]:
    """The `compile` events of `fn`'s own code (see `entries`), in entry order."""
    name = _code_name(fn)
    return [event for event in partialdyn.events("compile") if event["code"] == name]


def guards(fn, entry=0, kinds=None) -> list[dict]:
    """The guards of one cache entry of `fn` (see `entries`), only those of `kinds` when given."""
    found = entries(fn)
    assert len(found) > entry, f"no entry {entry} for {_code_name(fn)}: {len(found)} guards events"
    return [g for g in found[entry] if kinds is None or g["kind"] in kinds]


def guard_texts(fn) -> list[list[str]]:
    return [[g["text"] for g in entry] for entry in entries(fn)]


def outcome(opt, *args, **kwargs):
    """Call `opt` and say from its stats what the call did: `(result, what)`, `what` one of "hit" (a cache
    entry accepted the arguments), "recompile", "compile" (a first compile) or "eager" (none of these)."""
    before = partialdyn.stats(opt)
    out = opt(*args, **kwargs)
    after = partialdyn.stats(opt)
    if after["recompiles"] > before["recompiles"]:
        return out, "recompile"
    if after["compiles"] > before["compiles"]:
        return out, "compile"
    if after["cache_hits"] > before["cache_hits"]:
        return out, "hit"
    return out, "eager"


def assert_compiled(opt, *, hits=1, fallbacks=0):
    """What `opt` did so far: at least one compile, at least `hits` cache hits, `fallbacks` eager fallbacks
    (exact; None to not check).  For tests that make their own calls and compare with eager."""
    stats = dict(partialdyn.stats(opt))
    assert stats["compiles"] >= 1, f"never compiled: {stats}"
    assert stats["cache_hits"] >= hits, f"fewer than {hits} cache hits: {stats}"
    if fallbacks is not None:
        assert stats["eager_fallbacks"] == fallbacks, f"eager_fallbacks {stats['eager_fallbacks']} != {fallbacks}: {stats}"
    return stats


def assert_raises_like_eager(fn, error: type, *args, match: str = ""):
    """`fn` and its optimized version both raise `error` (with `match` in its message) on `args`, and the
    optimized one ran eagerly because the traced code raises there."""
    for candidate in (fn, partialdyn.optimize(fn)):
        try:
            candidate(*args)
        except error as raised:
            assert match in str(raised), f"{candidate}: {raised!r} does not say {match!r}"
            continue
        raise AssertionError(f"{candidate} did not raise {error.__name__}")
    assert_fell_back(f"the traced code raises here: {error.__name__}")


def assert_fell_back(because: str):
    """An `eager_fallback` event was logged with `because` in its reason: for tests of what runs eagerly by
    design (the engine decided it, for that reason)."""
    reasons = [event["reason"] for event in partialdyn.events("eager_fallback")]
    assert any(because in reason for reason in reasons), f"no eager fallback because {because!r}: {reasons}"


def assert_broke(because: str):
    """A `graph_break` event was logged with `because` in its reason."""
    reasons = [event["reason"] for event in partialdyn.events("graph_break")]
    assert any(because in reason for reason in reasons), f"no graph break because {because!r}: {reasons}"


# the break a frame makes before a call that mutated what the frame reaches and then broke inside (tracer.BreakBefore)
BROKE_BEFORE = "after mutating the caller's containers runs whole outside the graph"
