"""The process environment: `os.environ` reads (`.get`, `[]`, `in`, and `os.getenv` through them).

A variable's value comes from outside the frame, so a read is guarded by reading the same variable
again (`os.environ.get(KEY) == value`, or `== None` while it is unset): setting or changing it
recompiles. An unset variable is answered without raising, so `os.environ.get` of it inside library
code (`Mapping.get` catches a KeyError) does not end the trace. Writes run in Python.
"""
from __future__ import annotations

import os

from .. import sources
from .. import trackers
from ..errors import GraphBreak, UserError


def is_environ(value) -> bool:
    return value is os.environ


def call_method(f, name: str, args: list, kwargs: dict) -> trackers.VT:
    """`os.environ.<name>(*args)`: the reads the tracer answers; any other method is a graph break."""
    if name == "get" and not kwargs and len(args) in (1, 2):
        value = _variable(f, args[0])
        return trackers.Known(value) if value is not None else (args[1] if len(args) == 2 else trackers.Known(None))
    if name == "__getitem__" and not kwargs and len(args) == 1:
        value = _variable(f, args[0])
        if value is None:
            raise UserError(KeyError(args[0].value))
        return trackers.Known(value)
    if name == "__contains__" and not kwargs and len(args) == 1:
        return trackers.Known(_variable(f, args[0]) is not None)
    raise GraphBreak(f"os.environ.{name}() is not traced", hint="it runs in Python between two graphs")


def _variable(f, key_vt) -> str | None:
    """The variable's value now (None when unset), guarded."""
    if not (isinstance(key_vt, trackers.Known) and isinstance(key_vt.value, str)):
        raise GraphBreak("an os.environ key that is not a constant string")
    key, trace = key_vt.value, f.trace
    value = os.environ.get(key)
    source = sources.Src(f"{trace.source_constant(os.environ)}.get({trace.source_constant(key)})",
                   f"os.environ.get({key!r})")
    trace.guards.constant_match(source, value)
    return value
