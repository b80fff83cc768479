"""Torch functions that read or change global state, and what a trace does with each.

- A **query** (`torch.get_num_threads()`, `torch.is_autocast_enabled("cpu")`) is answered at trace time and
  its answer guarded (`GLOBAL_STATE`): the entry's guard calls it again with the same arguments.
- A **setter** (`torch.set_default_dtype`, `torch.use_deterministic_algorithms`) is a graph break: it runs in
  Python on every call, and the code after it is traced (and guarded) under the new state.
- Torch builtins that are not dispatcher ops and that nobody classified follow a rule (`classify`): without
  tensor or symbolic arguments, a `get_*` / `is_*` / `are_*` / `has_*` name is a query, anything else a
  setter; with tensor arguments, only a setter-like name (`set_*`, ...) breaks, since the answer then comes
  from the tensors' (guarded) metadata.  No such call is ever folded without a guard.
Dispatcher ops (`torch.zeros`, `torch.promote_types`, `F.linear`) are not state functions: they go into the
graph or are computed from their arguments.
"""
from __future__ import annotations

import types

import torch

from .. import trackers
from ..errors import GraphBreak, run_python
from . import protocol

# Every entry pins grad mode, the default dtype, autocast and deterministic algorithms through its
# GLOBAL_STATE guards (guards/kinds.py); these queries are guarded by their answer like any other.
QUERIES = {
    torch.get_num_threads, torch.get_num_interop_threads, torch.are_deterministic_algorithms_enabled,
    torch.is_deterministic_algorithms_warn_only_enabled, torch.get_deterministic_debug_mode,
    torch.is_autocast_enabled, torch.get_autocast_dtype, torch.is_autocast_cache_enabled,
    torch.get_autocast_cpu_dtype, torch.get_autocast_gpu_dtype, torch._C._is_any_autocast_enabled,
    torch.get_float32_matmul_precision, torch.is_inference_mode_enabled, torch.is_anomaly_enabled,
    torch.is_anomaly_check_nan_enabled, torch.is_warn_always_enabled, torch.get_default_device,
    torch._C._get_cudnn_enabled, torch._C._get_deterministic_algorithms,
    torch._C._get_deterministic_algorithms_warn_only, torch.cuda.is_available, torch.cuda.device_count,
    torch.cuda.is_initialized, torch.backends.mps.is_available, torch.initial_seed, torch.get_rng_state,
}

SETTERS = {
    torch.set_default_dtype, torch.set_default_tensor_type, torch.set_default_device, torch.set_num_threads,
    torch.set_num_interop_threads, torch.use_deterministic_algorithms, torch.set_deterministic_debug_mode,
    torch.set_float32_matmul_precision, torch.set_autocast_enabled, torch.set_autocast_dtype,
    torch.set_autocast_cache_enabled, torch.set_autocast_cpu_enabled, torch.set_autocast_cpu_dtype,
    torch.set_autocast_gpu_dtype, torch.autocast_increment_nesting, torch.autocast_decrement_nesting,
    torch.clear_autocast_cache, torch.set_anomaly_enabled, torch.set_flush_denormal, torch.set_warn_always,
    torch.set_printoptions, torch.manual_seed, torch.seed, torch.random.manual_seed, torch.random.seed,
    torch.set_rng_state, torch.random.set_rng_state,
    torch.autograd.set_detect_anomaly, torch._C._set_deterministic_algorithms, torch._C._set_default_dtype,
    torch._C._set_cudnn_enabled,
}

# Non-dispatcher namespaces whose builtins are tensor ops (F.linear is torch._C._nn.linear).
_OP_MODULES = ("torch._C._nn", "torch._C._fft", "torch._C._linalg", "torch._C._special", "torch._C._nested",
               "torch._C._sparse")
_QUERY_PREFIXES = ("get_", "is_", "are_", "has_")
_SETTER_PREFIXES = ("set_", "use_", "enable", "disable", "clear", "reset", "manual_seed", "seed", "enter",
                    "exit", "increment", "decrement", "push", "pop", "init")


def classify(fn) -> str | None:
    """'query', 'setter', or None (not a global-state function)."""
    try:
        if fn in QUERIES:
            return "query"
        if fn in SETTERS:
            return "setter"
    except TypeError:                      # unhashable callables are not torch functions
        return None
    if not isinstance(fn, types.BuiltinFunctionType) or not _is_torch_state_builtin(fn):
        return None
    name = fn.__name__.lstrip("_")
    if name.startswith(_SETTER_PREFIXES):
        return "setter"
    return "query" if name.startswith(_QUERY_PREFIXES) else "unknown"


def _is_torch_state_builtin(fn) -> bool:
    """A builtin from torch's C module (or a torch submodule) that is not a dispatcher op."""
    owner = getattr(fn, "__self__", None)
    if not isinstance(owner, types.ModuleType):
        return False                       # dispatcher ops are bound to no module (_VariableFunctions)
    name = getattr(owner, "__name__", "")
    return name.startswith("torch") and name not in _OP_MODULES


def call(f, fn, kind, args, kwargs):
    """The tracker for calling a global-state function `fn` classified as `kind`, or None to trace it as
    an ordinary torch call (an unclassified builtin given tensors)."""
    name = _name(fn)
    takes_graph_values = any(isinstance(a, (trackers.Tensor, trackers.Sym)) for a in list(args) + list(kwargs.values()))
    if kind == "setter":
        raise GraphBreak(f"{name}() changes global state",
                         hint="it runs in Python; the code after it is traced under the new state")
    if takes_graph_values:
        return None
    if f.trace.autocast_open and "autocast" in name:
        raise GraphBreak(f"{name}() inside a traced autocast region")    # answered in Python (AutocastRestart)
    if kind == "unknown":
        raise GraphBreak(f"{name}() is a torch function that reads or changes global state the tracer "
                         f"does not model", hint="it runs in Python between two graphs")
    values = [protocol.python_value(f, a, name) for a in args]
    kw = {k: protocol.python_value(f, v, name) for k, v in kwargs.items()}
    result = run_python(fn, *values, **kw)
    if not isinstance(result, _GUARDABLE):
        raise GraphBreak(f"{name}() returned a {type(result).__name__}, which a guard cannot compare")
    f.trace.guards.state_query(fn, name, values, kw, result)
    return trackers.Known(result)


_GUARDABLE = (type(None), bool, int, float, str, torch.dtype, torch.device)


def _name(fn) -> str:
    module = getattr(fn, "__module__", None) or "torch"
    if module == "torch._C" and not fn.__name__.startswith("_"):
        module = "torch"
    return f"{module}.{fn.__name__}"
