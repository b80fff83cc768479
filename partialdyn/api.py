"""The public API: optimize, stats, reset, explain, mark_static / mark_dynamic."""
from __future__ import annotations

import atexit
import types
import weakref

import torch

from .backends import check_backend
from .config import config, validate
from .logs import clear_events, emit
from .runtime.function import OptimizedFunction, Options

_ROOTS: "weakref.WeakSet[OptimizedFunction]" = weakref.WeakSet()


def optimize(fn=None, *, backend=None, policy=None, recompile_limit=None, cache_size_limit=None,
             fullgraph=None):
    """Optimize a function or an nn.Module; usable bare, with options, or called directly."""
    options = _options(backend, policy, recompile_limit, cache_size_limit, fullgraph)
    if fn is None:
        return lambda f: _optimize(f, options)
    return _optimize(fn, options)


def _options(backend, policy, recompile_limit, cache_size_limit, fullgraph) -> Options:
    values = {"backend": config.backend if backend is None else backend,
              "policy": config.policy if policy is None else policy,
              "recompile_limit": config.recompile_limit if recompile_limit is None else recompile_limit,
              "cache_size_limit": config.cache_size_limit if cache_size_limit is None else cache_size_limit,
              "fullgraph": config.fullgraph if fullgraph is None else fullgraph}
    for name, value in values.items():
        if name == "backend":
            check_backend(value)
        else:
            values[name] = validate(name, value)
    return Options(**values)


def _optimize(fn, options):
    if isinstance(fn, torch.nn.Module):
        return _optimize_module(fn, options)
    if isinstance(fn, OptimizedFunction):
        return fn
    if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
        opt = _root(fn.__func__, options)
        bound_self = fn.__self__
        wrapper = lambda *a, **k: opt(bound_self, *a, **k)  # noqa: E731
        wrapper._partialdyn = opt
        return wrapper
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"partialdyn.optimize expects a Python function or an nn.Module, "
                        f"got {type(fn).__name__}: {fn!r}")
    return _root(fn, options)


def _root(fn, options):
    opt = OptimizedFunction(fn, options)
    _ROOTS.add(opt)
    return opt


def _optimize_module(module: torch.nn.Module, options):
    """A module object sharing the original's state (same __dict__) whose forward is optimized."""
    cls = type(module)
    opt = _root(cls.forward, options)
    original = module

    def forward(self, *args, **kwargs):
        return opt(original, *args, **kwargs)
    wrapper_cls = type(f"Optimized{cls.__name__}", (cls,), {"forward": forward, "_partialdyn": opt,
                                                            "_partialdyn_original": original,
                                                            "__module__": cls.__module__})
    wrapper = object.__new__(wrapper_cls)
    wrapper.__dict__ = module.__dict__
    return wrapper


def _opt_of(fn) -> OptimizedFunction:
    if isinstance(fn, OptimizedFunction):
        return fn
    opt = getattr(fn, "_partialdyn", None)
    if opt is None:
        raise TypeError(f"{fn!r} is not a partialdyn-optimized function or module")
    return opt


def stats(fn) -> dict:
    """Counters of an optimized function, aggregated over its resume functions and callees."""
    return _opt_of(fn).stats.as_dict()


def emit_stats() -> None:
    """One `stats` event per optimized function that ran (the log viewer's summary)."""
    for opt in list(_ROOTS):
        if opt.stats.calls:
            emit("stats", fn=opt.name, **opt.stats.as_dict())


atexit.register(emit_stats)


def reset() -> None:
    """Drop every cache, policy memory and counter."""
    emit_stats()
    for opt in list(_ROOTS):
        opt.entries.clear()
        opt.children.clear()
        opt.shape_state.__init__()
        opt.always_eager = None
        opt.cache_limit_hit = False
        opt.stats.__init__()
    clear_events()


def mark_static(t: torch.Tensor, dim: int) -> None:
    """Trace `t`'s dim `dim` as a constant (guarded) whatever the policy."""
    _mark(t, dim, "static")


def mark_dynamic(t: torch.Tensor, dim: int) -> None:
    """Trace `t`'s dim `dim` as a symbol whatever the policy."""
    _mark(t, dim, "dynamic")


def _mark(t, dim, kind):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"mark_{kind} expects a tensor, got {type(t).__name__}")
    if not -t.dim() <= dim < t.dim():
        raise IndexError(f"dim {dim} out of range for a tensor of {t.dim()} dims")
    marks = getattr(t, "_partialdyn_marks", None) or {"static": set(), "dynamic": set()}
    other = "dynamic" if kind == "static" else "static"
    marks[kind].add(dim % t.dim())
    marks[other].discard(dim % t.dim())
    t._partialdyn_marks = marks
