"""Dict views over Dict trackers and model outputs made in the trace: `d.keys()`, `d.values()`, `d.items()`.

A view reads its dict every time it is used, so a key added after the view was taken is
seen through it, as in Python.  Keys and items views are sets for `|`, `&`, `-`, `^`, `==`
and `<=`-style comparisons (keys are constants in a Dict tracker; an items view takes part
only while its values are constants); values views have no set operations.
"""
from __future__ import annotations

import operator

from . import protocol
from .. import trackers
from ..errors import GraphBreak, UserError

SET_OPERATORS = {operator.or_, operator.and_, operator.sub, operator.xor, operator.eq, operator.ne,
                 operator.lt, operator.le, operator.gt, operator.ge}


def view(d: trackers.Dict, kind: str) -> trackers.DictView:
    return trackers.DictView(d, kind)


def entries(view_vt: trackers.DictView) -> dict:
    """The dict of trackers the view reads: a Dict tracker's items, or a model output's mapping."""
    owner = view_vt.dict
    return owner.items if isinstance(owner, trackers.Dict) else owner.mapping


def items_of(view_vt: trackers.DictView) -> list:
    d = entries(view_vt)
    if view_vt.kind == "keys":
        return [trackers.Known(k) for k in d]
    if view_vt.kind == "values":
        return list(d.values())
    return [trackers.Tuple([trackers.Known(k), v]) for k, v in d.items()]


def length(view_vt: trackers.DictView) -> int:
    return len(entries(view_vt))


@protocol.register("contains", trackers.DictView)
def contains(f, view_vt, item) -> bool:
    d = entries(view_vt)
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
        if vt.kind == "items" and not all(isinstance(v, trackers.Known) for v in entries(vt).values()):
            raise GraphBreak("a set operation on dict items whose values are not constants")
        return set(protocol.python_value(f, item, op_name) for item in items_of(vt))
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
        return trackers.Known(length(view_vt))
    raise GraphBreak(f"method {name!r} of a dict view")


@protocol.register("python_value", trackers.DictView)
def _view_value(f, vt, op):
    return getattr(protocol.python_value(f, vt.dict, op), vt.kind)()


@protocol.register("truth", trackers.DictView)
def _view_truth(f, vt, op):
    return bool(entries(vt))


@protocol.register("iterate", trackers.DictView)
def _view_items(f, vt):
    return items_of(vt)


protocol.register("attribute", trackers.DictView)(protocol.method_of_type)


@protocol.register("length", trackers.DictView)
def _view_length(f, vt):
    return trackers.Known(length(vt))
