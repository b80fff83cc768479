"""Guard kinds and the guard set one trace accumulates.

A guard is one Python boolean expression over the call's inputs (`code`), the
text a user reads (`text`, usually the same), and the input dims it is about
(`dims`, used to attribute recompiles for backoff).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy
import torch

from ..names import Constants



@dataclass(frozen=True)
class Guard:
    kind: str
    code: str                 # Python expression that must be true
    text: str                 # what the user reads
    source: str = ""
    dims: tuple = ()          # dim keys ("x.size(1)") this guard constrains
    actual: str = ""          # expression whose value explains a failure
    expected: str = ""        # constant name of the expected tensor signature (TENSOR_MATCH_DYNAMIC)


class GuardSet:
    """Guards in the order they must be checked (containers before their items), deduplicated."""

    def __init__(self):
        self._guards: dict[str, Guard] = {}
        self.constants = Constants("K")            # names guard code uses for objects

    def add(self, guard: Guard) -> None:
        self._guards.setdefault(guard.code, guard)

    def constant(self, value) -> str:
        """A name under which guard code can refer to `value` (a dtype, a type, a device...)."""
        return self.constants.name_for(value)

    def __iter__(self):
        return iter(self._guards.values())

    # ------------------------------------------------ guard builders per kind
    def type_match(self, src, value, extra: str = "", actual: str = ""):
        """`extra` is a condition written with `{}` where the source goes (`len({}) == 3`); `actual` likewise
        the value a failure reports (`list({})`)."""
        k = self.constant(type(value))
        code = f"type({src.code}) is {k}" + (f" and {extra.format(src.code)}" if extra else "")
        shown = f"type({src}) is {type(value).__qualname__}" + (f" and {extra.format(src)}" if extra else "")
        self.add(Guard("TYPE_MATCH", code, shown, str(src),
                       actual=actual.format(src.code) if actual else f"type({src.code}).__qualname__"))

    def id_match(self, src, value):
        self.add(Guard("ID_MATCH", f"{src.code} is {self.constant(value)}",
                       f"{src} is the same {type(value).__name__} object", str(src)))

    def constant_match(self, src, value):
        """Guard code names the expected value through the constant table, never through its repr (an Enum
        member's repr is not Python)."""
        k = self.constant(type(value))
        if type(value) is float:
            # bit-exact: `==` would take -0.0 for 0.0 and never match a NaN
            code = f"type({src.code}) is {k} and {src.code}.hex() == {self.constant(value.hex())}"
        else:
            code = f"type({src.code}) is {k} and {src.code} == {self.constant(value)}"
        self.add(Guard("CONSTANT_MATCH", code, f"{src} == {value!r}", str(src), actual=src.code))

    def tensor_match(self, src, t: torch.Tensor, static: bool):
        """One tensor's metadata.  A static tensor (parameter, buffer, odd layout) is pinned to its exact
        shape and strides; a dynamic one to its rank and contiguity, sizes being guarded per dim.  With the
        exact type checked, the dispatch keys of a plain tensor vary only with inference mode (and conj/neg
        bits for complex dtypes), so those are checked instead of the slower full key set."""
        k = self.constant
        if src.code.isidentifier():
            c, first = src.code, src.code
        else:                                    # evaluate a longer source once: `type(__tN := src) is ...`
            c = f"__t{len(self._guards)}"
            first = f"({c} := {src.code})"
        device = f"{c}.is_cpu" if t.device.type == "cpu" else f"{c}.device == {k(t.device)}"
        checks = [f"type({first}) is {k(type(t))}", f"{c}.dtype is {k(t.dtype)}", device,
                  f"{c}.requires_grad is {t.requires_grad}", f"{c}.is_inference() is {t.is_inference()}"]
        if t.is_complex():
            checks += [f"{c}.is_conj() is {t.is_conj()}", f"{c}.is_neg() is {t.is_neg()}"]
        if static:
            checks += [f"{c}.shape == {k(t.shape)}", f"{c}.stride() == {tuple(t.stride())!r}",
                       f"{c}.storage_offset() == {t.storage_offset()}"]
        else:
            checks += [f"{c}.dim() == {t.dim()}", f"{c}.is_contiguous()", f"{c}.storage_offset() == 0"]
        text = f"{src}: {describe_signature(tensor_signature(t))}" + (f" shape={tuple(t.shape)}" if static else "")
        self.add(Guard("TENSOR_MATCH_STATIC" if static else "TENSOR_MATCH_DYNAMIC", " and ".join(checks), text,
                       str(src), actual=f"__describe_sig({src.code})", expected=k(tensor_signature(t))))

    def static_stride(self, src, dim: int, value: int):
        self.add(Guard("TENSOR_MATCH_STATIC", f"{src.code}.stride({dim}) == {value}",
                       f"{src}.stride({dim}) == {value}", str(src), actual=f"{src.code}.stride({dim})"))

    def static_dim(self, name: str, code: str, src: str, value: int):
        self.add(Guard("TENSOR_MATCH_STATIC", f"{code} == {value}", f"{name} == {value}", src,
                       dims=(name,), actual=code))

    def global_state(self):
        self.add(Guard("GLOBAL_STATE", f"__grad_enabled() is {torch.is_grad_enabled()}",
                       f"grad mode is {'on' if torch.is_grad_enabled() else 'off'}",
                       actual="__grad_enabled()"))
        k = self.constant(torch.get_default_dtype())
        self.add(Guard("GLOBAL_STATE", f"__default_dtype() is {k}",
                       f"default dtype is {torch.get_default_dtype()}", actual="__default_dtype()"))


def tensor_signature(t: torch.Tensor) -> tuple:
    """Everything a trace may assume about a tensor, for explaining a failed tensor guard."""
    return (type(t), t.dtype, t.device, t.layout, t.requires_grad, t.dim(), t.is_contiguous(),
            torch._C._dispatch_keys(t).raw_repr(), tuple(t.shape), tuple(t.stride()))


_SIG_FIELDS = ("type", "dtype", "device", "layout", "requires_grad", "ndim", "contiguous", "dispatch keys",
               "shape", "stride")


def describe_signature(sig: tuple) -> str:
    typ, dtype, device, layout, rg, ndim, contiguous = sig[:7]
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
