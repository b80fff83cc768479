"""The public API: optimize, stats, reset, mark_static / mark_dynamic / maybe_mark_dynamic, disable,
allow_in_graph (explain, set_stance and PartialdynError live in their own modules)."""
from __future__ import annotations

import atexit
import functools
import sys
import types
import warnings
import weakref

import torch

from .backends import check_backend
from .config import config, validate
from .frontend.escapes import allow_in_graph as register_allowed_in_graph
from .logs import clear_events, emit, events
from .runtime.function import OptimizedFunction, Options, forget_warnings

_ROOTS: "weakref.WeakSet[OptimizedFunction]" = weakref.WeakSet()


def optimize(fn=None, *, backend=None, policy=None, recompile_limit=None, cache_size_limit=None,
             fullgraph=None):
    """Optimize a function, a callable object, a functools.partial or an nn.Module.

    Usable bare (`@partialdyn.optimize`), with options (`@partialdyn.optimize(policy="static")`) or called
    (`model = partialdyn.optimize(model)`; a module keeps its state and parameters).  On each call the
    compiled entries' guards are checked; on a miss the function's bytecode is traced into torch.fx graphs
    with symbolic sizes and handed to the backend.  Options not given come from `partialdyn.config`:

    backend          "eager", "aot_eager", "inductor" or a name given to register_backend
    policy           "partial" (default: a dim is specialized only where Python consumes its value),
                     "dynamic", "static" or "automatic" (docs/guards-and-recompiles.md)
    recompile_limit  recompiles one dim may cause before consuming it graph-breaks instead (default 2)
    cache_size_limit entries per code object; past it new inputs run eagerly (default 8)
    fullgraph        raise PartialdynError instead of graph-breaking or falling back

    `partialdyn.stats(fn)` counts compiles and recompiles; `PARTIALDYN_LOGS=recompiles` prints why each
    recompile happened; `partialdyn.explain(fn, *args)` shows graphs, guards and breaks of one call."""
    given = {name: value for name, value in (("backend", backend), ("policy", policy),
                                             ("recompile_limit", recompile_limit),
                                             ("cache_size_limit", cache_size_limit), ("fullgraph", fullgraph))
             if value is not None}
    options = _options(backend, policy, recompile_limit, cache_size_limit, fullgraph)
    if fn is None:
        return lambda f: _optimize(f, options, given)
    return _optimize(fn, options, given)


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


def _optimize(fn, options, given):
    already = fn if isinstance(fn, OptimizedFunction) else getattr(fn, "_partialdyn", None)
    if isinstance(already, OptimizedFunction):
        _warn_if_ignored(already, given)
        return fn
    compiled = _torch_compiled_original(fn)
    if compiled is not None:
        warnings.warn(f"partialdyn.optimize: {fn!r} was made by torch.compile; partialdyn optimizes the original "
                      f"{compiled!r} instead (torch.compile's wrapper is not used)", stacklevel=3)
        return _optimize(compiled, options, given)
    if isinstance(fn, torch.nn.Module):
        return _optimize_module(fn, options)
    if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
        return _bound(_root(fn.__func__, options), fn.__self__, fn)
    if isinstance(fn, functools.partial):
        return _partial(_optimize(fn.func, options, given), fn)
    if isinstance(fn, types.FunctionType):
        return _root(fn, options)
    call = getattr(type(fn), "__call__", None)
    if isinstance(call, types.FunctionType) and not isinstance(fn, type):
        return _bound(_root(call, options), fn, fn)  # a callable object: its __call__ with the object bound
    raise TypeError(f"partialdyn.optimize expects a Python function or an nn.Module (or a callable object, a "
                    f"functools.partial), got {type(fn).__name__}: {fn!r}")


def _warn_if_ignored(opt, given):
    differ = {name: value for name, value in given.items() if getattr(opt.options, name) != value}
    if differ:
        warnings.warn(f"partialdyn.optimize: {opt.name} is already optimized (with "
                      f"{', '.join(f'{k}={getattr(opt.options, k)!r}' for k in differ)}); the options "
                      f"{', '.join(f'{k}={v!r}' for k, v in differ.items())} are ignored. Optimize the original "
                      f"function (its __wrapped__) to get a separately optimized copy.", stacklevel=4)


def _torch_compiled_original(fn):
    """What torch.compile wrapped, for a torch.compile'd function or module (not for disabled ones)."""
    if type(fn).__module__.startswith("torch._dynamo") and isinstance(getattr(fn, "_orig_mod", None),
                                                                      torch.nn.Module):
        return fn._orig_mod
    if isinstance(fn, types.FunctionType) and getattr(fn, "_is_torch_compile", False) and not getattr(
            fn, "_torchdynamo_disable", False):
        return getattr(fn, "_torchdynamo_orig_callable", None)
    return None


def _root(fn, options):
    opt = OptimizedFunction(fn, options)
    _ROOTS.add(opt)
    return opt


def _bound(opt, first, original):
    """`opt` with its first argument bound (a method's self, a callable object).  It has the signature of
    `original` (through __wrapped__): callers such as transformers' generate() read the parameters of a
    forward to decide which arguments to pass."""
    def bound(*args, **kwargs):
        return opt(first, *args, **kwargs)
    bound.__wrapped__ = original
    bound._partialdyn = opt
    return bound


def _partial(optimized, partial):
    """An optimized functools.partial: the partial's arguments are the optimized function's first ones."""
    def call(*args, **kwargs):
        return optimized(*partial.args, *args, **{**partial.keywords, **kwargs})
    call.__wrapped__ = partial
    call._partialdyn = _opt_of(optimized)
    return call


def disable(fn):
    """Never trace `fn`: traced code calling it graph-breaks around the call, which runs as plain Python (like
    torch.compiler.disable); optimize(fn) runs it eagerly."""
    @functools.wraps(fn)
    def disabled(*args, **kwargs):
        return fn(*args, **kwargs)
    disabled._partialdyn_disable = True
    return disabled


def allow_in_graph(fn):
    """Put calls of `fn` into the graph as one opaque node instead of tracing into it.  The tracer learns
    the result by running `fn` on fake tensors; the compiled graph calls `fn` itself.  `fn` must be a pure
    function of its arguments (tensors, numbers, tuples): globals it reads are not guarded and Python side
    effects happen while tracing, not on each call."""
    if not callable(fn):
        raise TypeError(f"allow_in_graph expects a callable, got {type(fn).__name__}")
    return register_allowed_in_graph(fn)


def _optimize_module(module: torch.nn.Module, options):
    """A module object sharing the original's state (same __dict__) whose forward is optimized."""
    if isinstance(module, _DDP_TYPES):
        return _optimize_ddp(module, options)
    cls = type(module)
    opt = _root(cls.forward, options)
    original = module

    @functools.wraps(cls.forward)          # forward's signature: callers read its parameters (generate())
    def forward(self, *args, **kwargs):
        return opt(original, *args, **kwargs)
    wrapper_cls = type(f"Optimized{cls.__name__}", (cls,), {"forward": forward, "_partialdyn": opt,
                                                            "_partialdyn_original": original,
                                                            "__module__": cls.__module__})
    wrapper = object.__new__(wrapper_cls)
    wrapper.__dict__ = module.__dict__
    return wrapper


_DDP_TYPES = tuple(t for t in [getattr(torch.nn.parallel, "DistributedDataParallel", None)] if t is not None)


def _optimize_ddp(ddp, options):
    """DistributedDataParallel: its own forward (bucketing, buffer sync, hooks into autograd) runs as plain
    Python; the module it wraps is optimized.  The result shares the DDP object's state (same __dict__); only
    `.module` differs: it is the optimized wrapped module (which shares the wrapped module's state)."""
    inner = _optimize_module(ddp.module, options)
    cls = type(ddp)
    wrapper_cls = type(f"Optimized{cls.__name__}", (cls,), {"module": property(lambda self: inner),
                                                            "_partialdyn": inner._partialdyn,
                                                            "_partialdyn_original": ddp,
                                                            "__module__": cls.__module__})
    wrapper = object.__new__(wrapper_cls)
    wrapper.__dict__ = ddp.__dict__
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


def _at_exit() -> None:
    """The `stats` events, then the summary on stderr when PARTIALDYN_LOGS (config.logs) has `summary`."""
    emit_stats()
    if "summary" in config.logs:
        from .logs.summary import summary
        print(summary(events()), file=sys.stderr)


atexit.register(_at_exit)


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
    forget_warnings()
    clear_events()


def mark_static(t: torch.Tensor, dim: int) -> None:
    """Trace `t`'s dim `dim` as a constant (guarded: another size recompiles) whatever the policy."""
    _mark(t, dim, "static")


def mark_dynamic(t: torch.Tensor, dim: int) -> None:
    """Trace `t`'s dim `dim` as a symbol whatever the policy, and promise it stays one: if the traced code
    specializes it (int(), range(), str() of the size, or a torch op that fixes it to a constant), compiling
    raises PartialdynError naming the line and a fix (like torch's mark_dynamic).  Predicates on the size
    (`if x.size(0) > 8`) are allowed: they are guarded.  A size of 0 or 1 is traced as a constant and is not
    checked.  `maybe_mark_dynamic` is the permissive version."""
    _mark(t, dim, "dynamic", strict=True)


def maybe_mark_dynamic(t: torch.Tensor, dim: int) -> None:
    """Trace `t`'s dim `dim` as a symbol whatever the policy; code that consumes its value specializes it
    (guarded) as under the `partial` policy, silently."""
    _mark(t, dim, "dynamic")


def mark_unbacked(t: torch.Tensor, dim: int) -> None:
    """Trace `t`'s dim `dim` as a size without a known value (like torch's mark_unbacked): one entry serves
    every size, 0 and 1 included (no separate 0/1 entries, no guards on the dim); torch ops use size-oblivious
    rules, and Python consuming the size (`if`, `range`, `str`) is a graph break."""
    _mark(t, dim, "dynamic", unbacked=True)


def _mark(t, dim, kind, strict=False, unbacked=False):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"mark_{kind} expects a tensor, got {type(t).__name__}")
    if not -t.dim() <= dim < t.dim():
        raise IndexError(f"dim {dim} out of range for a tensor of {t.dim()} dims")
    marks = getattr(t, "_partialdyn_marks", None) or {"static": set(), "dynamic": set(), "strict": set(),
                                                       "unbacked": set()}
    other = "dynamic" if kind == "static" else "static"
    dim = dim % t.dim()
    marks[kind].add(dim)
    marks[other].discard(dim)
    (marks["strict"].add if strict else marks["strict"].discard)(dim)
    (marks["unbacked"].add if unbacked else marks["unbacked"].discard)(dim)
    t._partialdyn_marks = marks
