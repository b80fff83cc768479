"""One generated Python guard function per cache entry, and failure explanations.

The guard function takes the frame's arguments by name and returns whether the
entry applies: a single `and` chain, compiled once.  On a miss,
`explain_failure` checks the guards one by one to say which failed and with what
value: that sentence is the recompile reason.
"""
from __future__ import annotations

import math

import torch

from ..names import FUNCTION, GLOBALS, PREFIX
from .hoisting import joined_checks
from .kinds import Guard, signature_difference, storage_groups, tensor_signature


def _describe_sig(t):
    return tensor_signature(t) if isinstance(t, torch.Tensor) else type(t).__name__


def _namespace(constants: dict, globals_: dict, fn) -> dict:
    """`math` is for the ShapeEnv's printed expressions (`math.floor`); arguments are renamed, so no user
    name can shadow it (names.argument_name)."""
    ns = {GLOBALS: globals_, FUNCTION: fn, PREFIX + "describe_sig": _describe_sig, PREFIX + "named": NamedValues,
          PREFIX + "grad_enabled": torch.is_grad_enabled, PREFIX + "default_dtype": torch.get_default_dtype,
          PREFIX + "inference_mode": torch.is_inference_mode_enabled,
          PREFIX + "any_autocast": torch._C._is_any_autocast_enabled,
          PREFIX + "autocast_enabled": torch.is_autocast_enabled,
          PREFIX + "autocast_dtype": torch.get_autocast_dtype, PREFIX + "autocast_cache": torch.is_autocast_cache_enabled,
          PREFIX + "deterministic": torch._C._get_deterministic_algorithms,
          PREFIX + "deterministic_warn_only": torch._C._get_deterministic_algorithms_warn_only,
          PREFIX + "storage_groups": storage_groups, "math": math,
          PREFIX + "is_contiguous": torch._C.TensorBase.is_contiguous,
          PREFIX + "storage_offset": torch._C.TensorBase.storage_offset, PREFIX + "stride": torch._C.TensorBase.stride,
          PREFIX + "is_inference": torch._C.TensorBase.is_inference}
    ns.update(constants)
    return ns


class NamedValues(dict):
    """What a failure reports when a guard is about several values: name -> value (`__pd_named` in guard
    code)."""


def _shown(value) -> str:
    return value.__qualname__ if isinstance(value, type) else repr(value)


def _runs_code(g: Guard) -> bool:
    return any(getattr(read, "runs_code", False) for read in g.check.reads)


def _made_by(g: Guard) -> str:
    return f" (from {g.provenance.describe()})" if g.provenance is not None else ""


class GuardFunction:
    def __init__(self, guards: list[Guard], argnames: list[str], constants: dict, globals_: dict, fn):
        self.guards = guards
        self.argnames = argnames
        self.namespace = _namespace(constants, globals_, fn)
        self.source = (f"def guard({', '.join(argnames)}):\n    try:\n        return {joined_checks(guards)}\n"
                       f"    except Exception:\n        return False\n")
        exec(compile(self.source, "<partialdyn guard>", "exec"), self.namespace)
        self.check = self.namespace["guard"]

    def explain_failure(self, args: tuple) -> tuple[Guard | None, str]:
        """The first guard that rejects `args`, and one line saying why: the guard as users read it, the
        value that failed it, and the operation and line that made the trace assume it."""
        env = dict(self.namespace)
        env.update(zip(self.argnames, args))
        for g in self.guards:
            try:
                ok = eval(g.code, env)
            except Exception as e:
                if not g.expected:      # a signature check says how the value differs, not how its check failed
                    return g, f"{g.text} failed: {type(e).__name__}: {e}{_made_by(g)}"
                ok = False
            if not ok:
                return g, f"{g.text} failed: {self._actual(g, env)}{_made_by(g)}"
        return None, "no guard failed"

    def failures(self, args: tuple) -> list[Guard]:
        """Every guard that rejects `args` (a recompile is attributed to all the dims they name)."""
        env = dict(self.namespace)
        env.update(zip(self.argnames, args))
        out = []
        for g in self.guards:
            if out and _runs_code(g):
                continue        # the guard function stops at the first failure: it would not have run this
            try:
                ok = eval(g.code, env)
            except Exception:
                ok = False
            if not ok:
                out.append(g)
        return out

    def _actual(self, g: Guard, env) -> str:
        if not g.actual:
            return "false"
        try:
            value = eval(g.actual, env)
        except Exception as e:
            return f"{type(e).__name__}"
        if g.expected:
            return signature_difference(env[g.expected], value)
        if isinstance(value, NamedValues):
            return "got " + ", ".join(f"{name}={_shown(v)}" for name, v in value.items())
        return f"got {_shown(value)}"

    def __str__(self):
        return "\n".join(f"{g.kind:22} {g.text}" for g in self.guards)
