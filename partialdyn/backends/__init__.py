"""Backends: what turns a traced fx graph into something callable.

Every backend is `backend(gm, example_inputs) -> callable(*args) -> sequence`.
The example inputs are the trace's fake tensors with symbolic sizes; the graph
layer calls backends inside that fake mode so guards they add are kept.
"""
from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, Callable] = {}


def register_backend(name: str, fn: Callable) -> None:
    """Make `optimize(..., backend=name)` use `fn(graph_module, example_inputs) -> callable`, called once per
    compiled graph with fake inputs whose sizes may be symbolic (torch.SymInt)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"backend {name!r} must be callable, got {type(fn).__name__}")
    _REGISTRY[name] = fn


def check_backend(backend) -> None:
    """Raise a clear error at decoration time for an unknown backend."""
    if callable(backend):
        return
    if backend not in _REGISTRY:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(sorted(_REGISTRY))} "
                         f"or any callable backend(gm, example_inputs)")


def lookup(backend) -> Callable:
    check_backend(backend)
    return backend if callable(backend) else _REGISTRY[backend]


def eager(gm, example_inputs):
    return gm.forward


def aot_eager(gm, example_inputs):
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified

    def run_graph(fx_module, _inputs):
        return make_boxed_func(fx_module.forward)
    return aot_module_simplified(gm, example_inputs, fw_compiler=run_graph)


def inductor(gm, example_inputs):
    from torch._inductor.compile_fx import compile_fx
    return compile_fx(gm, example_inputs)


register_backend("eager", eager)
register_backend("aot_eager", aot_eager)
register_backend("inductor", inductor)
