"""Escape hatches: callables the tracer never traces into, and functions it puts into the graph whole.

`runs_in_python(fn)` names why a call must run as plain Python at a graph break:
`partialdyn.disable`, `torch.compiler.disable` / `torch._dynamo.disable`, or code
of a module whose point is its side effects (`logging`: a logging call traced
into would bake the logger's level cache into guards and records would name the
wrong caller).  `allow_in_graph` functions become one opaque graph node.
`torch._dynamo.assume_constant_result` functions (transformers' install probes) are
called once at trace time and their answer is a constant; a `functools.lru_cache`
function is called at trace time and its answer guarded by calling it again (frontend/calls.py).
"""
from __future__ import annotations

import functools
import types

DISABLED_MARKERS = ("_partialdyn_disable", "_torchdynamo_disable")
# packages whose functions run in Python at a graph break: logging; functorch's transforms (torch.vmap's wrapper
# pushes interpreter layers in C that a bytecode trace cannot follow) and torch's higher-order operators
# (associative_scan, scan, cond, ...: their Python entry points are written for Dynamo, which handles each one)
PYTHON_ONLY_MODULES = ("logging", "torch._functorch", "torch._higher_order_ops")

_ALLOWED_IN_GRAPH: dict[int, object] = {}     # id -> function (kept alive: its id stays unique)


def runs_in_python(fn) -> str | None:
    """Why a call of `fn` is never traced, or None."""
    for marker in DISABLED_MARKERS:
        if _marked(fn, marker):
            return f"{_name(fn)} is disabled ({marker.strip('_').split('_')[0]}), it runs as plain Python"
    module = _defining_module(fn)
    if module_runs_in_python(module):
        return f"{_name(fn)} ({module}) runs as plain Python"
    return None


def module_runs_in_python(module: str) -> bool:
    """The code of `module` (a function's globals' `__name__`) is never traced: PYTHON_ONLY_MODULES."""
    return any(module == package or module.startswith(package + ".") for package in PYTHON_ONLY_MODULES)


def _defining_module(fn) -> str:
    """The module whose code `fn` runs: a Python function's globals' (`__module__` can say otherwise: torch.vmap
    is re-exported as `torch.vmap`, and the function it returns copies the user function's through
    functools.wraps)."""
    code_owner = fn.__func__ if isinstance(fn, types.MethodType) else fn
    if isinstance(code_owner, types.FunctionType):
        return code_owner.__globals__.get("__name__") or ""
    return _attribute(fn, "__module__") or ""


def _marked(fn, marker) -> bool:
    return _attribute(fn, marker) is True


def _attribute(fn, name):
    try:
        return getattr(fn, name, None)
    except Exception:  # noqa: BLE001 -- an object whose __getattr__ raises simply has no marker
        return None


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


CONSTANT_MARKER = "_dynamo_marked_constant"    # torch._dynamo.assume_constant_result


def assumed_constant(fn) -> bool:
    """The user promised that `fn`'s answer is fixed for the life of the process: marked on `fn`, or on the function
    an lru_cache wrapper `fn` caches (transformers marks `is_torch_greater_or_equal` so, under `@lru_cache`)."""
    if is_cache_wrapper(fn):
        fn = fn.__wrapped__
    return isinstance(fn, types.FunctionType) and _marked(fn, CONSTANT_MARKER)


def is_cache_wrapper(fn) -> bool:
    """`fn` is a `functools.lru_cache` / `functools.cache` function."""
    return isinstance(fn, functools._lru_cache_wrapper)


OPTIMIZED_MARKER = "_partialdyn_traced"     # set by partialdyn on what optimize() returns: the function it traces


def optimized_original(fn):
    """The function an optimized callable traces (so traced code calling it inlines it), or None."""
    original = _attribute(fn, OPTIMIZED_MARKER)
    return original if isinstance(original, types.FunctionType) else None


def allow_in_graph(fn):
    """Register `fn` to be called as one opaque graph node."""
    _ALLOWED_IN_GRAPH[id(fn)] = fn
    return fn


def is_allowed_in_graph(fn) -> bool:
    return _ALLOWED_IN_GRAPH.get(id(fn)) is fn
