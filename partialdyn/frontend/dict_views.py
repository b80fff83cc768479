"""Dict views: `d.keys()`, `d.values()`, `d.items()` of a Dict tracker, of a model output made in the trace, or of a
dict of the caller's world the tracer holds as an object (a defaultdict, a model output a resume function got).

A view reads its dict every time it is used, so a key added after the view was taken is
seen through it, as in Python.  Keys and items views are sets for `|`, `&`, `-`, `^`, `==`
and `<=`-style comparisons (keys are constants in a Dict tracker; an items view takes part
only while its values are constants); values views have no set operations.
"""
from __future__ import annotations

import collections
import functools
import operator

from . import protocol
from . import reads
from .. import sources
from .. import trackers
from ..errors import GraphBreak, UserError
from ..guards.kinds import keeps_methods

SET_OPERATORS = {operator.or_, operator.and_, operator.sub, operator.xor, operator.eq, operator.ne,
                 operator.lt, operator.le, operator.gt, operator.ge}
KINDS = ("keys", "values", "items")


def view(d: trackers.Dict, kind: str) -> trackers.DictView:
    return trackers.DictView(d, kind)


def of_callers_dict(receiver: trackers.Known, kind: str, args, kwargs) -> trackers.DictView | None:
    """`d.keys()` & co of a dict of the caller's world held as an object, when its class keeps dict's or
    OrderedDict's own view method and iteration (a defaultdict, a model output): a view that reads the dict and
    guards its keys when read (`_entries`).  Mutating such a dict in the trace is a graph break, so it cannot
    change under the view.  None for anything else."""
    value = receiver.value
    if kind not in KINDS or args or kwargs or receiver.source is None or not isinstance(value, dict):
        return None
    base = collections.OrderedDict if isinstance(value, collections.OrderedDict) else dict
    return trackers.DictView(receiver, kind) if keeps_methods(type(value), base, (kind, "__iter__")) else None


@functools.singledispatch
def _entries(owner, f) -> dict:
    """The dict of trackers a view of `owner` reads (one function per owner type).  A Known: the caller's dict as it
    is now, its keys guarded in order, each value read with dict's own lookup (a model output's `__getitem__` is
    its own)."""
    value, source = owner.value, owner.source
    f.trace.guards.keys_match(source, value)
    plain = reads.static_lookup(type(value), "__getitem__") is dict.__getitem__
    return {k: f.trace.wrap_part(owner, dict.__getitem__(value, k),
                                 sources.item(source, k) if plain else _item(source, k)) for k in value}


@_entries.register(trackers.Dict)
def _dict_entries(owner, f) -> dict:
    return owner.items


@_entries.register(trackers.DataObject)
def _model_output_entries(owner, f) -> dict:
    return owner.mapping


def _item(source, key):
    """`dict.__getitem__(d, key)`: an item read past a subclass's own `__getitem__`."""
    name, getitem = sources.PREFIX + "dict_getitem", dict.__getitem__
    key_name, _ = named = sources.KEYS.name_for(key)
    return sources.derived(source, f"{name}({{}}, {key_name})", f"dict.__getitem__({source}, {key!r})",
                           (name, getitem), named)


def entries(f, view_vt: trackers.DictView) -> dict:
    """The dict of trackers the view reads."""
    return _entries(view_vt.dict, f)


def items_of(f, view_vt: trackers.DictView) -> list:
    d = entries(f, view_vt)
    if view_vt.kind == "keys":
        return [trackers.Known(k) for k in d]
    if view_vt.kind == "values":
        return list(d.values())
    return [trackers.Tuple([trackers.Known(k), v]) for k, v in d.items()]


def length(f, view_vt: trackers.DictView) -> int:
    return len(entries(f, view_vt))


@protocol.register("contains", trackers.DictView)
def contains(f, view_vt, item) -> bool:
    d = entries(f, view_vt)
    if view_vt.kind == "keys":
        return protocol.python_value(f, item, "`in` on dict keys") in d
    if view_vt.kind == "values":
        return protocol.contains(f, trackers.List(list(d.values())), item)
    if isinstance(item, trackers.Known) and isinstance(item.value, tuple):
        item = trackers.Tuple([trackers.Known(v) for v in item.value])
    if not isinstance(item, trackers.Tuple) or len(item.items) != 2:
        return False
    key = protocol.python_value(f, item.items[0], "`in` on dict items")
    return key in d and protocol.truth(f, protocol.binary(f, operator.eq, d[key], item.items[1]), "`in` on dict items")


def as_set(f, vt, op_name):
    """The Python set a keys/items view (or a set, or any iterable of constants) stands for."""
    if isinstance(vt, trackers.DictView):
        if vt.kind == "values":
            raise UserError(TypeError(f"unsupported operand type(s) for {op_name}: 'dict_values'"))
        if vt.kind == "items" and not all(isinstance(v, trackers.Known) for v in entries(f, vt).values()):
            raise GraphBreak("a set operation on dict items whose values are not constants")
        return set(protocol.python_value(f, item, op_name) for item in items_of(f, vt))
    if isinstance(vt, trackers.Known):
        try:
            return set(vt.value)
        except TypeError as e:
            raise UserError(e) from e
    return set(protocol.python_value(f, item, op_name) for item in protocol.iterate(f, vt))


@protocol.register_binary("dict views", trackers.DictView)
def binary(f, op, a, b):
    """`view op other` (either side a view): sets out, as Python gives them."""
    if op not in SET_OPERATORS:
        raise UserError(TypeError(f"unsupported operand type(s) for {op.__name__}: "
                                  f"'{a.python_type().__name__}' and '{b.python_type().__name__}'"))
    if op in (operator.eq, operator.ne):
        if not all(isinstance(v, trackers.DictView) and v.kind != "values" or isinstance(v, trackers.Known) and
                   isinstance(v.value, (set, frozenset, type({}.keys()), type({}.items()))) for v in (a, b)):
            if any(isinstance(v, trackers.DictView) and v.kind == "values" for v in (a, b)):
                return trackers.Known((a is b) == (op is operator.eq))   # values views compare by identity
            return trackers.Known(op is operator.ne)
    if op in (operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge):
        for v in (a, b):
            if not (isinstance(v, trackers.DictView) or isinstance(v, trackers.Known) and isinstance(v.value, (set, frozenset))):
                raise UserError(TypeError(f"'{op.__name__}' not supported between these operands"))
    return trackers.Known(op(as_set(f, a, op.__name__), as_set(f, b, op.__name__)))


@protocol.register("call_method", trackers.DictView)
def call_method(f, view_vt, name, args, kwargs):
    if name == "isdisjoint" and view_vt.kind != "values":
        return trackers.Known(as_set(f, view_vt, name).isdisjoint(as_set(f, args[0], name)))
    if name == "__len__":
        return trackers.Known(length(f, view_vt))
    raise GraphBreak(f"method {name!r} of a dict view")


@protocol.register("python_value", trackers.DictView)
def _view_value(f, vt, op):
    return getattr(protocol.python_value(f, vt.dict, op), vt.kind)()


@protocol.register("truth", trackers.DictView)
def _view_truth(f, vt, op):
    return bool(entries(f, vt))


@protocol.register("iterate", trackers.DictView)
def _view_items(f, vt):
    return items_of(f, vt)


protocol.register("attribute", trackers.DictView)(protocol.method_of_type)


@protocol.register("length", trackers.DictView)
def _view_length(f, vt):
    return trackers.Known(length(f, vt))
