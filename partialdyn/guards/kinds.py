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
        """The process-wide state every entry assumes: grad mode, default dtype, autocast, deterministic
        algorithms.  The common case (autocast and deterministic algorithms off) costs one C call each."""
        grad = torch.is_grad_enabled()
        self.add(Guard("GLOBAL_STATE", f"__grad_enabled() is {grad}", f"grad mode is {'on' if grad else 'off'}",
                       actual="__grad_enabled()"))
        k = self.constant(torch.get_default_dtype())
        self.add(Guard("GLOBAL_STATE", f"__default_dtype() is {k}",
                       f"default dtype is {torch.get_default_dtype()}", actual="__default_dtype()"))
        self._autocast_state()
        deterministic = torch._C._get_deterministic_algorithms()
        self.add(Guard("GLOBAL_STATE", f"__deterministic() is {deterministic}",
                       f"deterministic algorithms are {'on' if deterministic else 'off'}", actual="__deterministic()"))
        if deterministic:
            warn_only = torch._C._get_deterministic_algorithms_warn_only()
            self.add(Guard("GLOBAL_STATE", f"__deterministic_warn_only() is {warn_only}",
                           f"deterministic algorithms warn only: {warn_only}", actual="__deterministic_warn_only()"))

    def _autocast_state(self):
        if not torch._C._is_any_autocast_enabled():
            self.add(Guard("GLOBAL_STATE", "__any_autocast() is False", "autocast is off", actual="__any_autocast()"))
            return
        enabled = [d for d in AUTOCAST_DEVICES if torch.is_autocast_enabled(d)]
        for device in enabled:
            dtype = torch.get_autocast_dtype(device)
            d = self.constant(device)
            self.add(Guard("GLOBAL_STATE", f"__autocast_enabled({d}) and __autocast_dtype({d}) is {self.constant(dtype)}",
                           f"autocast is on for {device} with {dtype}", actual=f"__autocast_dtype({d})"))
        others = " and ".join(f"not __autocast_enabled({self.constant(d)})" for d in AUTOCAST_DEVICES
                              if d not in enabled)
        self.add(Guard("GLOBAL_STATE", others or "True", "autocast is off for other device types"))
        cache = torch.is_autocast_cache_enabled()
        self.add(Guard("GLOBAL_STATE", f"__autocast_cache() is {cache}",
                       f"autocast cache is {'on' if cache else 'off'}", actual="__autocast_cache()"))

    def backend_flag(self, owner, name: str, value):
        """`torch.backends.<x>.<flag>` read at trace time: the guard reads it again."""
        compare = "is" if value is None or type(value) is bool else "=="
        where = getattr(owner, "__name__", None) or type(owner).__module__
        self.add(Guard("GLOBAL_STATE", f"{self.constant(owner)}.{name} {compare} {self.constant(value)}",
                       f"{where}.{name} {compare} {value!r}", actual=f"{self.constant(owner)}.{name}"))

    def state_query(self, fn, name: str, args: list, kwargs: dict, value):
        """A query of global state answered at trace time: the guard asks again."""
        k = self.constant
        params = [k(a) for a in args] + [f"{key}={k(v)}" for key, v in kwargs.items()]
        call = f"{k(fn)}({', '.join(params)})"
        shown = ", ".join([repr(a) for a in args] + [f"{key}={v!r}" for key, v in kwargs.items()])
        compare = "is" if value is None or type(value) is bool else "=="
        self.add(Guard("GLOBAL_STATE", f"{call} {compare} {k(value)}", f"{name}({shown}) {compare} {value!r}",
                       actual=call))


AUTOCAST_DEVICES = tuple(d for d in ("cpu", "cuda", "xpu", "mps", "hpu", "xla", "ipu", "mtia", "maia", "privateuseone")
                         if torch.amp.autocast_mode.is_autocast_available(d))

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
