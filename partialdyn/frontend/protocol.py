"""Python semantics over trackers, as one function per operation dispatched on the tracker's type.

A module that needs an operation (OPERATIONS) calls it here instead of importing the module that
implements it; the rule modules register their rules for tracker types when they are imported
(`register("truth", trackers.Known)(rule)`), so they need not import each other.  Dispatch follows the
tracker class's MRO: a rule for `trackers.VT` is the fallback for every tracker.  Adding a tracker type is
registering its rules; adding an operation is one entry in OPERATIONS and one function below.
`method_of_type` is the attribute rule the trackers of builtin containers, numbers and iterators
share: it is here so that their modules need not import each other for it.
"""
from __future__ import annotations

from .. import trackers
from ..errors import UserError

OPERATIONS = ("python_value", "truth", "iterate", "subscript", "attribute", "call", "call_method", "binary",
              "contains", "length", "store_attribute", "store_subscript", "enter")
_RULES: dict[str, dict[type, object]] = {operation: {} for operation in OPERATIONS}


def register(operation: str, *tracker_types: type):
    """Decorator: `rule` implements `operation` for trackers of these types (and their subclasses)."""
    table = _RULES[operation]

    def add(rule):
        for tracker_type in tracker_types:
            table[tracker_type] = rule
        return rule
    return add


def _rule(operation: str, vt):
    table = _RULES[operation]
    for klass in type(vt).__mro__:
        rule = table.get(klass)
        if rule is not None:
            return rule
    raise LookupError(f"no {operation} rule for a {type(vt).__name__} (is its rule module imported?)")


def python_value(f, vt, op: str):
    """The concrete Python value of a tracker; symbolic values are consumed (specialized) here."""
    return _rule("python_value", vt)(f, vt, op)


def truth(f, vt, op: str) -> bool:
    return _rule("truth", vt)(f, vt, op)


def iterate(f, vt) -> list:
    """The items a `for` loop / unpacking / * would produce, as trackers."""
    return _rule("iterate", vt)(f, vt)


def subscript(f, obj, index):
    return _rule("subscript", obj)(f, obj, index)


def attribute(f, obj, name: str):
    """`obj.name`."""
    return _rule("attribute", obj)(f, obj, name)


def method_of_type(f, obj, name: str):
    """`obj.name` for a tracker standing for a builtin container, number or iterator: a name its Python type
    has is a method bound to the tracker; any other is Python's AttributeError."""
    if not hasattr(obj.python_type(), name):
        raise UserError(AttributeError(f"'{obj.python_type().__name__}' object has no attribute {name!r}"))
    return trackers.Method(obj, name)


def call(f, fn, args: list, kwargs: dict):
    return _rule("call", fn)(f, fn, args, kwargs)


def call_method(f, receiver, name: str, args: list, kwargs: dict):
    """`receiver.name(*args, **kwargs)` for a method bound to a tracker (`trackers.Method`), dispatched on the receiver."""
    return _rule("call_method", receiver)(f, receiver, name, args, kwargs)


def binary(f, op, a, b):
    """`a <op> b` for an operator-module function `op`.  One rule, for `trackers.VT`, serves every pair: which
    operand's kind decides is an order over both kinds (values.binary), not the left operand's type."""
    return _rule("binary", a)(f, op, a, b)


def contains(f, container, item) -> bool:
    return _rule("contains", container)(f, container, item)


def length(f, obj):
    """`len(obj)`, as a tracker (a tensor's is its first size, which may be symbolic)."""
    return _rule("length", obj)(f, obj)


def store_attribute(f, obj, name: str, value) -> None:
    """`obj.name = value`; a value of None is `del obj.name`."""
    _rule("store_attribute", obj)(f, obj, name, value)


def store_subscript(f, container, key, value) -> None:
    """`container[key] = value`."""
    _rule("store_subscript", container)(f, container, key, value)


def enter(f, manager) -> tuple:
    """`with manager:` entered: (the callable its exit calls with three Nones, the value bound by `as`)."""
    return _rule("enter", manager)(f, manager)
