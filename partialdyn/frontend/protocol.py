"""Python semantics over trackers, as one function per operation dispatched on the tracker's type.

A module that needs an operation (OPERATIONS, and binary) calls it here instead of importing the module
that implements it; the rule modules register their rules for tracker types when they are imported
(`register("truth", trackers.Known)(rule)`), so they need not import each other.  Dispatch follows the
tracker class's MRO: a rule for `trackers.VT` is the fallback for every tracker.  Adding a tracker type is
registering its rules; adding an operation is one entry in OPERATIONS and one function below.
`binary` depends on both operands: its rules are registered per stage (`register_binary`), and the stages
are asked in BINARY_ORDER.
`method_of_type` is the attribute rule the trackers of builtin containers, numbers and iterators
share: it is here so that their modules need not import each other for it.
"""
from __future__ import annotations

import operator

from .. import trackers
from ..errors import UserError

OPERATIONS = ("python_value", "truth", "iterate", "subscript", "attribute", "call", "call_method", "contains",
              "length", "store_attribute", "store_subscript", "enter")
_RULES: dict[str, dict[type, object]] = {operation: {} for operation in OPERATIONS}


def register(operation: str, *tracker_types: type):
    """Decorator: `rule` implements `operation` for trackers of these types (and their subclasses)."""
    return _adding_to(_RULES[operation], tracker_types)


def _adding_to(table: dict, tracker_types: tuple):
    def add(rule):
        for tracker_type in tracker_types:
            table[tracker_type] = rule
        return rule
    return add


def _rule(operation: str, vt):
    rule = _lookup(_RULES[operation], vt)
    if rule is None:
        raise LookupError(f"no {operation} rule for a {type(vt).__name__} (is its rule module imported?)")
    return rule


def _lookup(table: dict, vt):
    for klass in type(vt).__mro__:
        rule = table.get(klass)
        if rule is not None:
            return rule
    return None


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


# `s += x` on a number is `s = s + x` in Python (numbers have no in-place methods): recorded as such, the
# graph never holds an in-place operator on a constant (fx would emit `0 += x`).
OUT_OF_PLACE = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv,
                operator.imod: operator.mod, operator.ipow: operator.pow, operator.imatmul: operator.matmul,
                operator.ilshift: operator.lshift, operator.irshift: operator.rshift, operator.iand: operator.and_,
                operator.ior: operator.or_, operator.ixor: operator.xor}

# Who decides `a <op> b`.  Python asks the left operand's method, then the right operand's reflected one; here
# the kinds of both operands decide, in this order: a user class's operator methods (either operand), two
# constants, a dict view (either), two dicts, a tensor or a symbol (either), `str % x`, a sequence (either),
# an opaque value (either), and the fallback on the operands' Python values.
BINARY_ORDER = ("operator methods", "constants", "dict views", "dicts", "tensors", "% formatting", "sequences",
                "opaque", "fallback")
_BINARY_RULES: dict[str, dict[type, object]] = {stage: {} for stage in BINARY_ORDER}


def register_binary(stage: str, *tracker_types: type):
    """Decorator: `rule(f, op, a, b)` is asked at `stage` of BINARY_ORDER when either operand is of these types
    (or their subclasses); like a Python operator method, it returns NotImplemented for a pair it leaves to the
    rules after it."""
    return _adding_to(_BINARY_RULES[stage], tracker_types)


def binary(f, op, a, b):
    """`a <op> b` for an operator-module function `op`: at each stage, the left operand's rule, then the right
    operand's; the first result that is not NotImplemented is the answer."""
    if op in OUT_OF_PLACE and (isinstance(a, trackers.Sym) or isinstance(a, trackers.Known) and
                               type(a.value) in (int, float, bool, complex)):
        op = OUT_OF_PLACE[op]
    for stage in BINARY_ORDER:
        table = _BINARY_RULES[stage]
        for rule in dict.fromkeys((_lookup(table, a), _lookup(table, b))):
            if rule is not None:
                result = rule(f, op, a, b)
                if result is not NotImplemented:
                    return result
    raise LookupError(f"no binary rule for a {type(a).__name__} and a {type(b).__name__} "
                      f"(is the fallback's rule module imported?)")


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
