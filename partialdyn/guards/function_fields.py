"""A function's code and defaults, checked without reading its audited attributes.

Reading `function.__code__` or `function.__defaults__` raises the audit event `object.__getattr__`.  With no
Python audit hook installed that costs nothing, but filelock, which torch's compile stack imports, installs
one on CPython 3.12 and later, and from then on every such read calls it (0.3 us; a 2-layer GPT-2's guard
reads them about 120 times, and for `x + y` the one read was a fifth of the cache hit).  A guard about a
function object it holds compares that object's own pointer fields with the ones it had at trace time
instead: the bytes of those fields, read through a ctypes view of the function (`FieldSnapshot`).  The
objects the fields pointed to are kept alive by the snapshot, so equal bytes mean the same objects.

The fields' offsets are found once, on functions made here, within the size of a function object, and
confirmed by reassigning `__code__` and `__defaults__`; where that fails, `snapshot` returns None and guards
read the attributes as before.
"""
from __future__ import annotations

import ctypes
import types

FIELDS = ("__code__", "__defaults__")
_WORD = ctypes.sizeof(ctypes.c_void_p)


def _pointer_at(fn, offset: int):
    """The pointer stored `offset` bytes into the function object (None for NULL)."""
    return ctypes.c_void_p.from_address(id(fn) + offset).value


def _address(value):
    """What a field holding `value` stores: a missing `__defaults__` is NULL, not None."""
    return None if value is None else id(value)


def _offsets() -> dict | None:
    def first(a=1):
        return a

    def second(b=2, c=3):
        return b
    probes = (first, second)
    found = {}
    for name in FIELDS:
        matches = [offset for offset in range(_WORD, types.FunctionType.__basicsize__ - _WORD + 1, _WORD)
                   if all(_pointer_at(fn, offset) == _address(getattr(fn, name)) for fn in probes)]
        if len(matches) != 1:
            return None
        found[name] = matches[0]
    first.__code__, first.__defaults__ = (lambda b=0: b).__code__, None     # the fields follow reassignment
    if any(_pointer_at(first, offset) != _address(getattr(first, name)) for name, offset in found.items()):
        return None
    return found


OFFSETS = _offsets()


class FieldSnapshot:
    """The bytes of some of a function's fields at trace time (`expected`) and a live view of them (`view`):
    guard code checks `view.raw == expected`.  Holds the function and the objects its fields pointed to."""

    def __init__(self, fn: types.FunctionType, fields: tuple):
        start = min(OFFSETS[name] for name in fields)
        stop = max(OFFSETS[name] for name in fields) + _WORD
        self.function = fn
        self.pointees = [getattr(fn, name) for name in fields]
        self.view = (ctypes.c_char * (stop - start)).from_address(id(fn) + start)
        self.expected = self.view.raw


def snapshot(fn, fields: tuple = FIELDS) -> FieldSnapshot | None:
    """A snapshot of `fn`'s `fields`, or None when this interpreter's function layout was not confirmed (or
    `fn` is not a plain Python function)."""
    if OFFSETS is None or type(fn) is not types.FunctionType:
        return None
    return FieldSnapshot(fn, fields)
