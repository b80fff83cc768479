"""`copy.deepcopy` and `copy.copy` in traced code (transformers deep-copies its config inside forward).

A deep copy of plain data (numbers, strings, None, enum members, dtypes, and lists, tuples, dicts and
sets of them, and objects whose state is such data: configs) is made at trace time.  The original, if it
comes from the caller's world, is guarded by its whole state (CONTENTS_MATCH over `plain_state`).  An
object copy is an *owned* constant: the trace reads it, writes constants to its attributes (its own
`__setattr__` runs at trace time), and wherever it outlives the trace (returned, stored, live at a
break) it is rebuilt as a fresh deep copy per call; a mutable part of it is found again inside that
copy (`locate`).  Containers tracked in the trace are copied as new trackers.  The rest (tensors,
modules, objects with their own `__deepcopy__` or `__reduce__`) is a graph break.
"""
from __future__ import annotations

import collections
import copy
import enum
import functools
import types

import torch

from . import protocol
from .. import sources
from .. import trackers
from ..errors import GraphBreak, run_python

ATOMIC = (type(None), bool, int, float, complex, str, bytes, enum.Enum, torch.dtype, torch.device, type)
CONTAINERS = (list, tuple, dict, set, frozenset)
MAX_ITEMS = 5000          # a bigger state is not worth guarding as a whole


def is_immutable_data(value) -> bool:
    return isinstance(value, ATOMIC) or type(value) in (tuple, frozenset) and all(map(is_immutable_data, value))


def is_plain_data(value) -> bool:
    """Only data that deepcopy copies by value, with no hook of its own, and not too much of it."""
    budget = [MAX_ITEMS]

    def plain(v, depth):
        budget[0] -= 1
        if budget[0] < 0 or depth > 12:
            return False
        if isinstance(v, ATOMIC):
            return True
        if type(v) is dict:
            return all(plain(k, depth + 1) and plain(x, depth + 1) for k, x in v.items())
        if type(v) in CONTAINERS:
            return all(plain(x, depth + 1) for x in v)
        return _plain_object(v) and plain(vars(v), depth + 1)
    return plain(value, 0)


def _plain_object(v) -> bool:
    cls = type(v)
    return (isinstance(getattr(v, "__dict__", None), dict) and "__slots__" not in vars(cls)
            and cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and cls.__getstate__ is object.__getstate__ and not hasattr(cls, "__setstate__")
            and not hasattr(cls, "__deepcopy__") and not hasattr(cls, "__copy__")
            and not isinstance(v, (torch.Tensor, torch.nn.Module)) and cls.__module__ != "builtins")


def plain_state(value):
    """A value comparing equal exactly when two plain-data values are the same data (types included,
    floats bit for bit).  Guard code calls it on the original every call."""
    if isinstance(value, float):
        return float, value.hex()
    if isinstance(value, ATOMIC):
        return type(value), value
    if type(value) is dict:
        return dict, tuple((plain_state(k), plain_state(v)) for k, v in value.items())
    if type(value) in (set, frozenset):
        return type(value), frozenset(map(plain_state, value))
    if type(value) in (list, tuple):
        return type(value), tuple(map(plain_state, value))
    return type(value), plain_state(vars(value))


STATE = sources.PREFIX + "plain_state"


COPIED_DICTS = (dict, collections.OrderedDict)     # a copy of a subclass runs its constructor: in Python


def deepcopy(f, obj, memo=None):
    if memo is not None and not (isinstance(memo, trackers.Known) and memo.value is None):
        raise GraphBreak("copy.deepcopy with a memo", hint="it runs in Python between two graphs")
    return _deep(f, obj, {})


def shallow_copy(f, obj):
    """copy.copy: a tracked container's items in a new container, an immutable value itself."""
    if isinstance(obj, trackers.List):
        return trackers.List(list(obj.items))
    if isinstance(obj, trackers.Dict) and obj.cls in COPIED_DICTS:
        return trackers.Dict(dict(obj.items), cls=obj.cls)
    if isinstance(obj, (trackers.Tuple, trackers.Tensor, trackers.Sym)) or isinstance(obj, trackers.Known) and is_immutable_data(obj.value):
        if isinstance(obj, trackers.Tensor):
            raise GraphBreak("copy.copy of a tensor", hint="it runs in Python between two graphs")
        return obj
    raise GraphBreak(f"copy.copy of a {obj.python_type().__name__}", hint="it runs in Python between two graphs")


def _deep(f, vt, memo):
    if id(vt) in memo:
        return memo[id(vt)]
    if isinstance(vt, trackers.Known):
        result = _deep_known(f, vt)
    elif isinstance(vt, trackers.Sym):
        result = vt
    elif isinstance(vt, trackers.NamedTuple):
        result = trackers.NamedTuple([_deep(f, item, memo) for item in vt.items], cls=vt.cls)
    elif type(vt) in (trackers.Tuple, trackers.List):
        result = type(vt)([_deep(f, item, memo) for item in vt.items])
    elif isinstance(vt, trackers.Dict) and type(vt) is trackers.Dict and vt.cls in COPIED_DICTS:
        result = trackers.Dict({key: _deep(f, item, memo) for key, item in vt.items.items()}, cls=vt.cls)
    else:
        raise GraphBreak(f"copy.deepcopy of a {vt.python_type().__name__}", hint="it runs in Python between two graphs")
    memo[id(vt)] = result
    return result


def _deep_known(f, vt):
    value = vt.value
    if is_immutable_data(value):
        return vt
    if not vt.owned and not is_plain_data(value):
        raise GraphBreak(f"copy.deepcopy of a {type(value).__name__} that holds more than plain data",
                         hint="it runs in Python between two graphs")
    if vt.source is not None:
        state = sources.derived(vt.source, f"{STATE}({{}})", f"the state of {vt.source}", (STATE, plain_state))
        f.trace.register(state)
        f.trace.guards.state_match(state, plain_state(value))
    return tracked(f, copy.deepcopy(value))


def tracked(f, value):
    """A fresh copy made at trace time as trackers: containers as containers, objects owned."""
    if is_immutable_data(value) or isinstance(value, (set, frozenset)):
        return trackers.Known(value)
    if type(value) is dict:
        return trackers.Dict({key: tracked(f, item) for key, item in value.items()})
    if type(value) in (list, tuple):
        return (trackers.List if type(value) is list else trackers.Tuple)([tracked(f, item) for item in value])
    owned = trackers.Known(value, owned=True)
    f.trace.owned.append(owned)
    f.trace.by_identity[id(value)] = owned     # its bound methods get this tracker as self
    return owned


def store_attr(f, obj, name, value):
    """`copy.attr = value` (None: `del copy.attr`) on an owned copy or a module made in the trace: done now, by the
    object's own code (nn.Module.__setattr__ for a module), so the value must be one the object can hold for
    every call: a constant, a function, a method bound to the object itself, a functools.partial of those.  The
    object is logged as mutated: a graph break in the call that wrote it must not rebuild it half changed and
    run that call again."""
    held = None if value is None else _held(f, obj, value)
    if held is _NOT_HELD:
        kind = value.python_type()
        what = ("a tensor (parameters and buffers are not traced)" if issubclass(kind, torch.Tensor) else
                "a module (submodules are not traced)" if issubclass(kind, torch.nn.Module) else f"a {kind.__name__}")
        raise GraphBreak(f"assignment of {what} to an attribute of a {type(obj.value).__name__} made in the trace",
                         hint="the assignment runs in Python")
    f.trace.side_effects.mutate(obj)
    if value is None:
        run_python(delattr, obj.value, name)
    else:
        run_python(setattr, obj.value, name, held)


_NOT_HELD = object()


def _plain_function(v) -> bool:
    """A Python function, or a builtin one not bound to an object (`F.gelu`, `math.sqrt`; not `[].append`)."""
    return isinstance(v, types.FunctionType) or isinstance(v, types.BuiltinFunctionType) and (
        v.__self__ is None or isinstance(v.__self__, types.ModuleType))


def _held(f, obj, value):
    """The Python value `obj` (an owned object) stores for the tracker `value`, or _NOT_HELD.  A symbolic number is
    specialized (guarded), as a constructor argument of a torch.nn module built in the trace is; a function is the
    one the trace read (and guarded where it read it); a method is bound to `obj` itself, so a rebuilt copy binds
    it to the copy."""
    if isinstance(value, trackers.Sym):
        return protocol.python_value(f, value, "an attribute of an object made in the trace")
    if isinstance(value, trackers.Partial):
        parts = [_held(f, obj, v) for v in [value.fn, *value.args, *value.kwargs.values()]]
        if _NOT_HELD in parts or not all(map(is_immutable_data, parts[1:])):
            return _NOT_HELD
        return functools.partial(parts[0], *parts[1:1 + len(value.args)],
                                 **dict(zip(value.kwargs, parts[1 + len(value.args):])))
    if not isinstance(value, trackers.Known) or value.owned:
        return _NOT_HELD
    v = value.value
    if is_immutable_data(v) or _plain_function(v):
        return v
    if isinstance(v, types.MethodType) and v.__self__ is obj.value and isinstance(v.__func__, types.FunctionType):
        return v
    return _NOT_HELD


# ---------------------------------------------------------------- run time
def locate(value, roots):
    """The path (("attr", name) / ("item", key) steps) from one of the owned copies `roots` to the mutable
    object `value`, or None."""
    for root in roots:
        path = _path_to(root.value, value, 0)
        if path is not None:
            return root, tuple(path)
    return None


# what a deep copy shares with the original instead of copying (a copy's function, or a method bound to the copy)
SHARED_BY_DEEPCOPY = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type, types.ModuleType)


def _path_to(holder, value, depth):
    if depth > 12:
        return None
    if isinstance(holder, CONTAINERS):
        steps = ((("item", k), v) for k, v in holder.items()) if type(holder) is dict else \
            ((("item", i), v) for i, v in enumerate(holder)) if type(holder) in (list, tuple) else ()
    else:
        state = getattr(holder, "__dict__", None)
        if not isinstance(state, dict) or isinstance(holder, SHARED_BY_DEEPCOPY):
            return None         # nothing of it is copied (a module's function, F.gelu held by a module copy)
        if state is value:
            return [("attr", "__dict__")]
        steps = ((("attr", k), v) for k, v in state.items())
    for step, item in steps:
        if item is value:
            return [step]
        if not is_immutable_data(item):
            rest = _path_to(item, value, depth + 1)
            if rest is not None:
                return [step] + rest
    return None


def follow(root, path):
    """Run time: the part of a rebuilt copy at `path`."""
    for kind, key in path:
        root = getattr(root, key) if kind == "attr" else root[key]
    return root
