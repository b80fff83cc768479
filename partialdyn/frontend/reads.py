"""Reads of state from outside the frame: the one place that knows where a value came from.

Every value the trace reads from the caller's world has a source (a global, a closure cell, an attribute
chain, a dict key, a function default, a class attribute found along the MRO, a module in sys.modules),
and `Trace.wrap` turns it into a tracker with the guards its type needs.  This module forms those sources
and adds what the *use* needs on top: ABSENT when a lookup found nothing (the trace took the missing
branch), FUNCTION_MATCH for a function the trace runs (its code, closure and defaults), the builtin a
global name falls back to, the outcome of `in` on a mutable container, its length when iterated.
"""
from __future__ import annotations

import builtins
import sys
import types

import torch

from .. import sources
from .. import trackers
from ..errors import GraphBreak, UserError

MISSING = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()


def known_result(value):
    """A value reached through an object the trace holds without a source: a constant of the trace (a tensor
    there could not be guarded, so it breaks)."""
    if isinstance(value, torch.Tensor):
        raise GraphBreak("a tensor reached through an object the trace cannot guard")
    return trackers.Known(value)


def static_lookup(cls, name):
    """`name` in the first class of `cls`'s MRO that defines it, without running descriptors (MISSING if
    none does).  Guard code calls it too, so a class attribute patched later is seen."""
    for klass in cls.__mro__:
        entry = vars(klass).get(name, MISSING)
        if entry is not MISSING:
            return entry
    return MISSING


LOOKUP = sources.PREFIX + "static_lookup"


# ---------------------------------------------------------------- globals and builtins
def held_dict(f, d):
    """The tracker of the dict `d` when the trace holds it as a container (an object's `__dict__`, the globals
    dict handed to a resume function after `globals()` broke), else None.  Its item writes are synced after the
    graph, apart from the attribute and global assignments the trace replays: a read through one side after a
    write through the other breaks."""
    held = f.trace.by_identity.get(id(d)) if type(d) is dict else None
    return held if isinstance(held, trackers.Dict) else None


def changed_in_trace(f, held) -> bool:
    return held is not None and any(c is held for c in f.trace.side_effects.mutated())


def global_name(f, name):
    """LOAD_GLOBAL: the module's global, else the builtin, which stays right only while no global of that
    name appears (ABSENT guard)."""
    trace = f.trace
    own = f.globals is trace.globals
    if own:
        written = trace.side_effects.written(trace.globals_owner, name)
        if written is not None:
            return written[2]
        if changed_in_trace(f, held_dict(f, trace.globals)):
            raise GraphBreak(f"global {name!r} read after the trace changed the globals dict",
                             hint="it is read in Python, after the change")
    holder = sources.Src(sources.GLOBALS, "G") if own else _foreign_globals(f)
    if name in f.globals:
        value = f.globals[name]
        if not own and isinstance(value, types.ModuleType) and is_library(value):
            return trackers.Known(value)          # `F`, `math`, `torch` inside library code: not rebound in practice
        return trace.wrap(value, sources.global_(name) if own else sources.item(holder, name))
    if hasattr(builtins, name):
        trace.guards.key_absent(holder, name, f"{name!r} is not a global of {f.globals.get('__name__')} "
                                              f"(the builtin is used)")
        return trackers.Known(getattr(builtins, name))
    # not traceable into a handler: no guard says the name stays undefined
    raise UserError(NameError(f"name {name!r} is not defined"), traceable=False)


def _foreign_globals(f):
    """Another module's globals dict (an inlined function's), named through the constant table."""
    return f.trace.constant_source(f.globals, str(f.globals.get("__name__")))


def is_library(module) -> bool:
    name = module.__name__.split(".")[0]
    return name in ("torch", "math", "operator", "builtins", "functools", "itertools", "collections",
                    "typing", "numbers", "warnings", "os", "sys")


# ---------------------------------------------------------------- imports
def imported_module(f, name: str):
    """`import name` inside traced code: the module sys.modules holds now, guarded by identity there."""
    module = sys.modules[name]
    if is_library(module):
        return trackers.Known(module)
    return f.trace.wrap(module, sources.item(module_registry(f).source, name))


def module_registry(f):
    """`sys.modules` itself (`sys` is a library module, read without a source): the dict is never replaced, but
    the modules in it belong to the caller's world, so what the trace reads through it (`sys.modules[__name__].X`)
    is wrapped from this source and guarded like a global."""
    return trackers.Known(sys.modules, f.trace.constant_source(sys.modules, "sys.modules"))


# ---------------------------------------------------------------- functions the trace runs
def function_source(f, fn, fn_vt):
    """Where guard code finds a function the trace inlines (its own source, or the function named through
    the constant table), with its code guarded."""
    src = fn_vt.source if fn_vt is not None and fn_vt.source is not None else \
        f.trace.constant_source(fn, fn.__qualname__)
    f.trace.guards.function_match(src, fn)
    return src


def default(f, fn, fn_src, name: str, value, keyword_only: bool):
    """A default value the call used, read through the function's `__defaults__` / `__kwdefaults__`."""
    if keyword_only:
        src = sources.item(sources.attr(fn_src, "__kwdefaults__"), name)
    else:
        names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
        src = sources.item(sources.attr(fn_src, "__defaults__"), names.index(name) - (len(names) - len(fn.__defaults__)))
    return f.trace.wrap(value, src)


# ---------------------------------------------------------------- class attributes
def class_attribute(f, cls, name: str, cls_src=None):
    """`name` looked up along `cls`'s MRO (an instance made in the trace reading a class attribute or a
    method): guarded through the lookup itself, so a patched or removed class attribute is seen.  Returns
    the raw entry's tracker, or None when no class defines it (guarded absent)."""
    base = cls_src if cls_src is not None else f.trace.constant_source(cls, cls.__qualname__)
    key, key_value = sources.KEYS.name_for(name)
    src = sources.derived(base, f"{LOOKUP}({{}}, {key})", f"{base}.{name}", (LOOKUP, static_lookup), (key, key_value))
    entry = static_lookup(cls, name)
    if entry is MISSING:
        f.trace.register(src)
        f.trace.guards.id_match(src, MISSING)
        return None
    if isinstance(entry, (types.FunctionType, property, staticmethod, classmethod, type)) or callable(entry):
        f.trace.register(src)
        f.trace.guards.id_match(src, entry)
        return trackers.Known(entry, src)
    return f.trace.wrap(entry, src)


def class_method(f, cls, name: str):
    """The function `cls.name` (a module's `forward` or `__call__`), guarded by identity through a plain
    class attribute read (`K.forward is fn`, one cached C lookup), so a method replaced on the class later is
    seen; any other kind of entry goes through the MRO lookup (class_attribute)."""
    entry = static_lookup(cls, name)
    if not isinstance(entry, types.FunctionType):
        return class_attribute(f, cls, name)
    src = sources.attr(f.trace.constant_source(cls, cls.__qualname__), name)
    f.trace.register(src)
    f.trace.guards.id_match(src, entry)
    return trackers.Known(entry, src)


# ---------------------------------------------------------------- attributes
HEAP_TYPE, IMMUTABLE_TYPE = 1 << 9, 1 << 8      # Py_TPFLAGS_*: a class made by a class statement is a mutable heap type


def class_assignable(value) -> bool:
    """`value.__class__ = other` is allowed (an instance of a user class): its identity does not fix its type."""
    return type(value).__flags__ & (HEAP_TYPE | IMMUTABLE_TYPE) == HEAP_TYPE and not isinstance(value, type)


def type_of(f, obj):
    """`type(obj)`: for an object of the caller's world, its class read through `type(source)` and wrapped like
    any value there, so what the trace reads from that class is guarded (a class attribute patched later)."""
    if isinstance(obj, trackers.Known) and obj.source is not None and class_assignable(obj.value):
        return f.trace.wrap(type(obj.value), sources.derived(obj.source, "type({})", f"type({obj.source})"))
    return trackers.Known(obj.python_type() if not isinstance(obj, trackers.Known) else type(obj.value))


def class_hierarchy(f, cls):
    """A class of the caller's world (a tracker with a source) whose MRO the trace answered a question from
    (isinstance, issubclass): its `__mro__` is read and guarded, as `C.__bases__ = ...` changes it."""
    if isinstance(cls, trackers.Known) and cls.source is not None and isinstance(cls.value, type):
        f.trace.wrap(cls.value.__mro__, sources.attr(cls.source, "__mro__"))


def bound_method(f, obj, name: str, method):
    """`obj.name` found a bound method: guard which function it binds and to what (an instance attribute or
    a class patched later changes either); the call inlines that function."""
    if obj.source is None:
        return trackers.Known(method)
    src = sources.attr(obj.source, name)
    f.trace.register(src)
    f.trace.guards.bound_method(src, obj.source, method, to_owner=method.__self__ is obj.value)
    return trackers.Known(method, src)
