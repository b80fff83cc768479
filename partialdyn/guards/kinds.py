"""Guard kinds and the guard set one trace accumulates.

A guard is one Python boolean expression over the call's inputs (`code`), the
text a user reads (`text`, usually the same), and the input dims it is about
(`dims`, used to attribute recompiles for backoff).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy
import torch

KINDS = ("TYPE_MATCH", "ID_MATCH", "CONSTANT_MATCH", "TENSOR_MATCH_DYNAMIC", "TENSOR_MATCH_STATIC",
         "SHAPE", "GLOBAL_STATE")


@dataclass(frozen=True)
class Guard:
    kind: str
    code: str                 # Python expression that must be true
    text: str                 # what the user reads
    source: str = ""
    dims: tuple = ()          # dim keys ("x.size(1)") this guard constrains
    actual: str = ""          # expression whose value explains a failure


class GuardSet:
    """Guards in the order they must be checked (containers before their items), deduplicated."""

    def __init__(self):
        self._guards: dict[str, Guard] = {}
        self.constants: dict[str, object] = {}    # K names used by guard code -> objects

    def add(self, guard: Guard) -> None:
        self._guards.setdefault(guard.code, guard)

    def constant(self, value) -> str:
        """A name under which guard code can refer to `value` (a dtype, a type, a device...)."""
        name = f"K{len(self.constants)}"
        for k, v in self.constants.items():
            if v is value:
                return k
        self.constants[name] = value
        return name

    def __iter__(self):
        return iter(self._guards.values())

    # ------------------------------------------------ guard builders per kind
    def type_match(self, src, value, extra: str = "", text: str = ""):
        k = self.constant(type(value))
        code = f"type({src}) is {k}" + (f" and {extra}" if extra else "")
        self.add(Guard("TYPE_MATCH", code, text or f"type({src}) is {type(value).__qualname__}"
                       + (f" and {extra}" if extra else ""), str(src), actual=f"type({src}).__qualname__"))

    def id_match(self, src, value):
        self.add(Guard("ID_MATCH", f"id({src}) == {id(value)}",
                       f"{src} is the same {type(value).__name__} object", str(src)))

    def constant_match(self, src, value):
        k = self.constant(type(value))
        code = f"type({src}) is {k} and {src} == {value!r}"
        self.add(Guard("CONSTANT_MATCH", code, f"{src} == {value!r}", str(src), actual=f"{src}"))

    def tensor_match(self, src, t: torch.Tensor, static_dims: bool):
        k = self.constant(tensor_signature(t))
        self.add(Guard("TENSOR_MATCH_DYNAMIC", f"__sig({src}) == {k}",
                       f"{src}: {describe_signature(tensor_signature(t))}", str(src),
                       actual=f"__describe_sig({src})"))
        if static_dims:
            self.add(Guard("TENSOR_MATCH_STATIC", f"{src}.stride() == {tuple(t.stride())!r}",
                           f"{src}.stride() == {tuple(t.stride())}", str(src), actual=f"{src}.stride()"))

    def static_dim(self, name: str, src: str, value: int):
        self.add(Guard("TENSOR_MATCH_STATIC", f"{name} == {value}", f"{name} == {value}", src,
                       dims=(name,), actual=name))

    def global_state(self):
        self.add(Guard("GLOBAL_STATE", f"__grad_enabled() is {torch.is_grad_enabled()}",
                       f"grad mode is {'on' if torch.is_grad_enabled() else 'off'}",
                       actual="__grad_enabled()"))
        k = self.constant(torch.get_default_dtype())
        self.add(Guard("GLOBAL_STATE", f"__default_dtype() is {k}",
                       f"default dtype is {torch.get_default_dtype()}", actual="__default_dtype()"))


def tensor_signature(t: torch.Tensor) -> tuple:
    """Everything a trace may assume about a tensor besides its sizes."""
    return (type(t), t.dtype, t.device, t.layout, t.requires_grad, t.dim(), t.is_contiguous(),
            torch._C._dispatch_keys(t).raw_repr())


_SIG_FIELDS = ("type", "dtype", "device", "layout", "requires_grad", "ndim", "contiguous", "dispatch keys")


def describe_signature(sig: tuple) -> str:
    typ, dtype, device, layout, rg, ndim, contiguous, _ = sig
    return (f"{typ.__name__} {str(dtype).replace('torch.', '')} {device} ndim={ndim}"
            f"{' requires_grad' if rg else ''}{'' if contiguous else ' non-contiguous'}")


def signature_difference(expected: tuple, actual) -> str:
    if not isinstance(actual, tuple):
        return f"got {actual}"
    for name, e, a in zip(_SIG_FIELDS, expected, actual):
        if e != a:
            show = (lambda v: v.__name__) if name == "type" else repr
            return f"{name} {show(e)} expected, got {show(a)}"
    return "differs"


def is_true(expr) -> bool:
    return expr is sympy.true or expr == sympy.true
