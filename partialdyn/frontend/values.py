"""Python-level value semantics over trackers: a value, its truth, operators, items, iteration.

`python_value()` is where a symbolic value is consumed (the policy decides whether it is
specialized).  Truth, operators (the binary rules, `unary`, `contains`), items (`subscript`,
`store_subscript`, `mutate`) and iteration (`iterate`, `dict_items`) stay symbolic where
they can and break the graph where Python needs a value only known at run time.  The
protocol rules of constants, symbols, tensors, containers and opaque values for these operations
are here, and the binary rules of user classes' operator methods (for constants of the caller's
world and instances made in the trace alike) and of the fallback on Python values.
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import operator
import types

import torch

from . import protocol
from . import reads
from . import environment
from .. import sources
from .. import trackers
from ..errors import GraphBreak, Unsupported, UserError, run_python

MAX_UNROLL = 10_000


# ---------------------------------------------------------------- python values
python_value = protocol.python_value      # the concrete Python value of a tracker; symbols are consumed here
truth = protocol.truth


@protocol.register("python_value", trackers.Known)
def _known_value(f, vt, op):
    return f.trace.as_object(vt) if vt.by_contents else vt.value


@protocol.register("python_value", trackers.Sym)
def _symbol_value(f, vt, op):
    return f.trace.consumer.as_value(vt.value, op)


@protocol.register("python_value", trackers.Tuple, trackers.List)
def _sequence_value(f, vt, op):
    vals = [python_value(f, i, op) for i in vt.items]
    if isinstance(vt, trackers.NamedTuple):
        return vt.cls(*vals) if hasattr(vt.cls, "_make") else vt.cls(vals)
    return vals if isinstance(vt, trackers.List) else (torch.Size(vals) if isinstance(vt, trackers.Size) else tuple(vals))


@protocol.register("python_value", trackers.Dict)
def _dict_value(f, vt, op):
    if vt.cls not in (dict, collections.OrderedDict):
        raise GraphBreak(f"{op} needs a {vt.cls.__name__} the tracer cannot build")
    values = {k: python_value(f, v, op) for k, v in vt.items.items()}
    return values if vt.cls is dict else vt.cls(values)


@protocol.register("python_value", trackers.Slice)
def _slice_value(f, vt, op):
    return slice(*(python_value(f, p, op) for p in (vt.start, vt.stop, vt.step)))


@protocol.register("python_value", trackers.Tensor)
def _tensor_value(f, vt, op):
    raise GraphBreak(f"{op} needs the value of a tensor", hint="tensor values are only known at run time")


@protocol.register("python_value", trackers.VT)
def _no_value(f, vt, op):
    raise GraphBreak(f"{op} needs a {vt.python_type().__name__} the tracer cannot hold as a value")


def constant_values(items, what):
    out = []
    for vt in items:
        if not isinstance(vt, trackers.Known):
            raise Unsupported(f"{what} must be a constant")
        out.append(vt.value)
    return out


def _is_constant(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, bytes))


def hashable_values(f, items, what) -> list:
    """Set elements and dict keys: their Python values (a size in a key is a value use); tensors hash by
    identity, which the tracer does not model."""
    values = []
    for vt in items:
        value = python_value(f, vt, what)
        try:
            hash(value)
        except TypeError as e:
            raise UserError(e) from e
        values.append(value)
    return values


def is_none(vt) -> bool:
    return isinstance(vt, trackers.Known) and vt.value is None


def identical(f, a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, trackers.Known) and isinstance(b, trackers.Known):
        same = a.value is b.value
        if (a.by_contents or b.by_contents) and not (_is_constant(a.value) or _is_constant(b.value)):
            if a.by_contents and b.by_contents and a.source is not None and b.source is not None:
                f.trace.guards.alias(a.source, b.source, same)   # `cfg is other`: only their aliasing matters
            else:
                f.trace.as_object(a)    # the answer depends on the objects themselves
                f.trace.as_object(b)
        return same
    if isinstance(a, trackers.Known) or isinstance(b, trackers.Known):
        known, other = (a, b) if isinstance(a, trackers.Known) else (b, a)
        if isinstance(other, (trackers.Opaque,)):
            raise GraphBreak("identity test on an opaque value")
        return False
    if isinstance(a, trackers.Tensor) and isinstance(b, trackers.Tensor):
        return a.node is b.node
    return False


# ---------------------------------------------------------------- truth
@protocol.register("truth", trackers.Known)
def _known_truth(f, vt, op):
    result = bool(vt.value)
    if vt.source is not None and type(vt.value) not in SCALARS and (
            reads.class_assignable(vt.value) or hasattr(type(vt.value), "__bool__") or hasattr(type(vt.value), "__len__")):
        f.trace.guards.truth(vt.source, result)     # its class's __bool__ or __len__ (now or patched in later) decides
    return result


SCALARS = (bool, int, float, complex, str, bytes, type(None))    # guarded by value where read


@protocol.register("truth", trackers.Sym)
def _symbol_truth(f, vt, op):
    return f.trace.consumer.as_bool(vt.value, op)


@protocol.register("truth", trackers.Tensor)
def _tensor_truth(f, vt, op):
    raise GraphBreak("branch on a tensor's value", hint="use torch.where, or accept the break: "
                                                         "the condition is evaluated in Python")


@protocol.register("truth", trackers.Tuple, trackers.List, trackers.Dict)
def _container_truth(f, vt, op):
    return bool(vt.items)


@protocol.register("truth", trackers.Opaque)
def _opaque_truth(f, vt, op):
    raise GraphBreak(f"truth of an opaque {vt.cls.__name__}")


@protocol.register("truth", trackers.VT)
def _object_truth(f, vt, op):
    return True


def logical_not(f, vt):
    if isinstance(vt, trackers.Sym):
        if f.trace.builder.shapes.is_data_dependent(vt.value) or f.trace.policy.consumption_breaks:
            return f.trace.builder.sym_op(torch.sym_not, vt)
    return trackers.Known(not truth(f, vt, "not"))


# ---------------------------------------------------------------- operators
IN_PLACE = set(protocol.OUT_OF_PLACE)
# operator -> (method, reflected method); an in-place operator falls back to its plain form
DUNDERS = {operator.add: ("__add__", "__radd__"), operator.sub: ("__sub__", "__rsub__"),
           operator.mul: ("__mul__", "__rmul__"), operator.truediv: ("__truediv__", "__rtruediv__"),
           operator.floordiv: ("__floordiv__", "__rfloordiv__"), operator.mod: ("__mod__", "__rmod__"),
           operator.pow: ("__pow__", "__rpow__"), operator.matmul: ("__matmul__", "__rmatmul__"),
           operator.lshift: ("__lshift__", "__rlshift__"), operator.rshift: ("__rshift__", "__rrshift__"),
           operator.and_: ("__and__", "__rand__"), operator.or_: ("__or__", "__ror__"),
           operator.xor: ("__xor__", "__rxor__"), operator.lt: ("__lt__", "__gt__"), operator.le: ("__le__", "__ge__"),
           operator.gt: ("__gt__", "__lt__"), operator.ge: ("__ge__", "__le__"), operator.eq: ("__eq__", "__eq__"),
           operator.ne: ("__ne__", "__ne__")}


def is_immutable_value(value) -> bool:
    return isinstance(value, (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, type))


LIBRARY_OPERATORS = ("builtins", "typing", "enum", "torch", "collections", "functools", "dataclasses", "types",
                     "abc", "numbers", "numpy", "fractions", "decimal")


def _class_of_user_object(vt):
    """The class of a user object whose operators are Python code (library values keep Python's own)."""
    if isinstance(vt, trackers.DataObject):
        return vt.cls
    if isinstance(vt, trackers.Known) and not isinstance(vt.value, type) and \
            (type(vt.value).__module__ or "builtins").split(".")[0] not in LIBRARY_OPERATORS:
        return type(vt.value)
    return None


def _operator_names(op):
    """(in-place method or None, method, reflected method) Python tries for `op`."""
    plain = protocol.OUT_OF_PLACE.get(op, op)
    in_place = "__" + op.__name__.strip("_") + "__" if op in protocol.OUT_OF_PLACE else None
    return (in_place,) + DUNDERS[plain]


def _operator_method(vt, name):
    """`type(vt).name` as Python's operator protocol finds it: a user class's Python function (inlined), None
    when the type has none, or BUILTIN (a method of a builtin or library type, the type's own or inherited)."""
    method = reads.static_lookup(vt.python_type(), name)
    if method is reads.MISSING:
        return None
    if isinstance(method, types.FunctionType):
        return method if _class_of_user_object(vt) is not None else BUILTIN
    if isinstance(method, (types.WrapperDescriptorType, types.MethodDescriptorType, types.BuiltinFunctionType)):
        return BUILTIN
    raise GraphBreak(f"operator method {name} of a {vt.python_type().__name__} that is not a function",
                     hint="the operator runs in Python")


BUILTIN = "builtin"
SEQUENCES = (str, bytes, bytearray, tuple, list, collections.deque)
# a method and the one that gives a type the same slot
SEQUENCE_SLOTS = {"__add__": "__radd__", "__mul__": "__rmul__", "__rmul__": "__mul__", "__iadd__": None,
                  "__imul__": None}


def _sequence_slot(cls, name) -> bool:
    """Whether `cls.name` is a builtin sequence's + or * (or += or *=) and no other class gives `cls` the number
    method: Python tries that sequence slot only after both operands' number methods (`"a" + obj` asks
    obj.__radd__ first), while a number method of a subclass calls it at once (and it raises TypeError)."""
    names = (name, SEQUENCE_SLOTS[name]) if name in SEQUENCE_SLOTS else ()
    definers = [k for k in cls.__mro__ if any(n in vars(k) for n in names if n)]
    return bool(definers) and all(k in SEQUENCES for k in definers)


def _user_operator(f, op, a, b):
    """`a op b` where a user class defines the operator in Python: the operands' methods are tried in Python's
    order (the data model's rules: an in-place method first, falling back to the plain ones when it returns
    NotImplemented; the right operand's reflected method first when its type is a proper subclass of the left
    operand's that overrides it, or, for comparisons, any proper subclass), its own methods inlined and
    builtin ones decided by `_builtin_method`."""
    in_place, name, reflected = _operator_names(op)
    plain = protocol.OUT_OF_PLACE.get(op, op)
    pending = []            # builtin sequence slots Python would try after the number methods
    if in_place is not None:
        result = _attempt(f, op, in_place, a, b, False, pending)
        if result is not NotImplemented:
            return result
    left_type, right_type = a.python_type(), b.python_type()
    comparison = plain in COMPARISONS
    subclass = right_type is not left_type and issubclass(right_type, left_type)
    right_first = subclass and (comparison or _operator_method(b, reflected) is not None and
                                reads.static_lookup(right_type, reflected) is not
                                reads.static_lookup(left_type, reflected))
    attempts = [(a, b, name, False), (b, a, reflected, True)]
    if right_first:
        attempts.reverse()
    elif not comparison and right_type is left_type:
        attempts.pop()          # the reflected method is for operands of different types
    for x, y, method, swapped in attempts:
        result = _attempt(f, plain, method, x, y, swapped, pending)
        if result is not NotImplemented:
            return result
    if pending:
        raise GraphBreak(f"{op.__name__} of a {pending[0]} with a user class's operator methods",
                         hint="the operator runs in Python")
    if plain in (operator.eq, operator.ne):
        return trackers.Known(identical(f, a, b) == (plain is operator.eq))
    raise UserError(TypeError(f"unsupported operand type(s) for {op.__name__}: "
                              f"'{left_type.__name__}' and '{right_type.__name__}'"))


COMPARISONS = (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne)


def _attempt(f, op, name, x, y, swapped, pending):
    """`type(x).name(x, y)` (x the right operand of `op` if swapped): a tracker, or NotImplemented when the
    method declines or the type has none."""
    method = _operator_method(x, name)
    if method is None:
        return NotImplemented
    if method is not BUILTIN:
        result = protocol.call(f, trackers.Known(method), [x, y], {})
        return NotImplemented if isinstance(result, trackers.Known) and result.value is NotImplemented else result
    if name == "__ne__" and reads.static_lookup(x.python_type(), name) is object.__ne__:
        equal = _attempt(f, operator.eq, "__eq__", x, y, swapped, pending)     # object.__ne__ inverts __eq__
        return equal if equal is NotImplemented else trackers.Known(not truth(f, equal, "!="))
    if _sequence_slot(x.python_type(), name):
        pending.append(x.python_type().__name__)
        return NotImplemented
    if op in IN_PLACE and not isinstance(x, trackers.Tensor):
        raise GraphBreak(f"in-place {op.__name__} on a {x.python_type().__name__} with a user class's operator "
                         f"methods", hint="the operator runs in Python")
    return _builtin_method(f, op, name, x, y, swapped)


def _builtin_method(f, op, name, x, y, swapped):
    """A builtin or library method `type(x).name(x, y)` where the other operand may be a user object: run on
    the values of two constants; a tensor's takes tensors, symbols and numbers (a float subclass is a float to
    it), a symbol's the numbers its int or float method takes, and both decline anything else; the others
    decline a user object that is not a subclass of a builtin type, except a sequence's concatenation or
    repetition, which may raise (where they might not decline, the operator runs in Python)."""
    if isinstance(x, trackers.Known) and isinstance(y, trackers.Known):
        method = getattr(type(x.value), name)
        return _known(run_python(method, python_value(f, x, name), python_value(f, y, name)))
    if isinstance(x, (trackers.Tensor, trackers.Sym)):
        numbers = (int, float) if x.python_type() is float else (int,) if isinstance(x, trackers.Sym) else (
            int, float, complex)        # a symbol is an int, a float or a bool to the program
        if isinstance(y, (trackers.Tensor, trackers.Sym)):
            operands = (x, y)
        elif isinstance(y, trackers.Known) and isinstance(y.value, numbers):
            operands = (x, _builtin_number(f, y))
        else:
            return NotImplemented
        if swapped:
            operands = operands[::-1]       # the operator in the program's order
        return f.trace.builder.call("call_function", op, operands, {})
    builtin_base = any(k.__module__ == "builtins" and k is not object for k in y.python_type().__mro__)
    concatenation = name in SEQUENCE_SLOTS and issubclass(x.python_type(), SEQUENCES)   # it may raise
    if isinstance(x, (trackers.Known, trackers.DataObject, trackers.Tuple, trackers.List, trackers.Dict)) and \
            not builtin_base and not concatenation:
        return NotImplemented
    raise GraphBreak(f"operator {op.__name__} on a {x.python_type().__name__} and a {y.python_type().__name__}",
                     hint="the operator runs in Python")


def _known(value):
    return NotImplemented if value is NotImplemented else trackers.Known(value)


def _user_defines(vt, names) -> bool:
    cls = _class_of_user_object(vt)
    return cls is not None and any(isinstance(reads.static_lookup(cls, n), types.FunctionType) for n in names if n)


@protocol.register_binary("operator methods", trackers.Known, trackers.DataObject)
def _operator_methods(f, op, a, b):
    """A user class's operator methods come before any builtin behaviour, whichever operand defines them."""
    if op not in DUNDERS and protocol.OUT_OF_PLACE.get(op) not in DUNDERS:
        return NotImplemented
    in_place, name, reflected = _operator_names(op)
    names = (in_place, name, reflected) + (("__eq__", "__ne__") if op in (operator.eq, operator.ne) else ())
    for operand in (a, b):
        _guard_operator_lookups(f, operand, names)
    if not (_user_defines(a, names) or _user_defines(b, names)):
        return NotImplemented
    return _user_operator(f, op, a, b)


def _guard_operator_lookups(f, vt, names):
    """Guard what a user class's MRO gives for each operator method name the dispatch looks up, so a method
    patched on the class, added or deleted later recompiles (the lookups are not attribute reads of the
    program, so nothing else guards them)."""
    cls = _class_of_user_object(vt)
    if cls is not None:
        for name in names:
            if name:
                reads.class_attribute(f, cls, name)


@protocol.register_binary("constants", trackers.Known)
def _constant_operator(f, op, a, b):
    if not (isinstance(a, trackers.Known) and isinstance(b, trackers.Known)):
        return NotImplemented
    if op in IN_PLACE and a.source is not None and not is_immutable_value(a.value):
        raise GraphBreak(f"in-place {op.__name__} on a {type(a.value).__name__} from outside the trace",
                         hint="it runs in Python")
    return trackers.Known(run_python(op, python_value(f, a, op.__name__), python_value(f, b, op.__name__)))


@protocol.register_binary("dicts", trackers.Dict)
def _dict_operator(f, op, a, b):
    if not (isinstance(a, trackers.Dict) and isinstance(b, trackers.Dict)):
        return NotImplemented
    ordered = [issubclass(v.cls, collections.OrderedDict) for v in (a, b)]
    if op is operator.or_:
        # OrderedDict's | (or its reflected one, tried first on `dict | OrderedDict`) builds an OrderedDict
        if not {a.cls, b.cls} <= {dict, collections.OrderedDict}:
            raise GraphBreak(f"| of a {a.cls.__name__} and a {b.cls.__name__}", hint="it runs in Python")
        return trackers.Dict({**a.items, **b.items}, cls=collections.OrderedDict if any(ordered) else dict)
    if op is operator.ior:
        mutate(f, a)
        a.items.update(b.items)
        return a
    if op in (operator.eq, operator.ne):
        # two OrderedDicts are equal only with their keys in the same order
        equal = a.items.keys() == b.items.keys() and (not all(ordered) or list(a.items) == list(b.items)) and all(
            truth(f, protocol.binary(f, operator.eq, a.items[k], b.items[k]), "dict ==") for k in a.items)
        return trackers.Known(equal == (op is operator.eq))
    raise UserError(TypeError(f"unsupported operand type(s) for {op.__name__}: 'dict' and 'dict'"))


@protocol.register_binary("tensors", trackers.Tensor, trackers.Sym)
def _graph_operator(f, op, a, b):
    """A tensor or a symbol on either side is a graph node, but with a sequence it is a sequence operation
    (`[0] * n` for a symbolic n)."""
    if isinstance(a, (trackers.Tuple, trackers.List)) or isinstance(b, (trackers.Tuple, trackers.List)):
        return _sequence_op(f, op, a, b)
    if not all(isinstance(v, (trackers.Tensor, trackers.Sym, trackers.Known)) for v in (a, b)):
        raise GraphBreak(f"operator {op.__name__} on {a.python_type().__name__} and {b.python_type().__name__}")
    return f.trace.builder.call("call_function", op, (_builtin_number(f, a), _builtin_number(f, b)), {})


def _builtin_number(f, vt):
    """A constant of a subclass of int, float or complex as the builtin number: here its class has no
    operator method of its own (those come first), so Python's builtin methods see only its value (a
    symbolic int refuses the subclass itself: `n + Half(0.5)` raised TypeError where eager gives n + 0.5)."""
    if not (isinstance(vt, trackers.Known) and isinstance(vt.value, (int, float, complex))
            and type(vt.value) not in (bool, int, float, complex)):
        return vt
    number = python_value(f, vt, "operator")
    return trackers.Known(next(t for t in (int, float, complex) if isinstance(number, t))(number))


@protocol.register_binary("% formatting", trackers.Known)
def _string_format(f, op, a, b):
    if not (op is operator.mod and isinstance(a, trackers.Known) and isinstance(a.value, str)):
        return NotImplemented
    return trackers.Known(run_python(op, a.value, python_value(f, b, "% formatting")))


def _as_sequence(vt):
    if isinstance(vt, trackers.Known) and isinstance(vt.value, (tuple, list)):
        items = [trackers.Known(v) for v in vt.value]
        return trackers.Size(items) if isinstance(vt.value, torch.Size) else (
            trackers.List(items) if isinstance(vt.value, list) else trackers.Tuple(items))
    return vt


@protocol.register_binary("sequences", trackers.Tuple, trackers.List)
def _sequence_op(f, op, a, b):
    """Concatenation, repetition and equality of sequence trackers (`(-1,) + x.shape[1:]`), with Python's
    result types: torch.Size's __add__, __radd__, __mul__ and __rmul__ make a Size (whichever side it is on);
    a list never equals a tuple."""
    if isinstance(a, trackers.Known) and op in IN_PLACE and not is_immutable_value(a.value):
        raise GraphBreak(f"in-place {op.__name__} on a {type(a.value).__name__} the trace holds as a value",
                         hint="it runs in Python")
    if op is operator.iadd and isinstance(a, trackers.List):
        protocol.call_method(f, a, "extend", [b], {})      # list += iterable is list.extend
        return a
    a, b = _as_sequence(a), _as_sequence(b)
    seqs = (trackers.Tuple, trackers.List)
    if op in (operator.add, operator.iadd) and isinstance(a, seqs) and isinstance(b, seqs):
        if isinstance(a, trackers.List) != isinstance(b, trackers.List):
            raise UserError(TypeError(f"can only concatenate {a.python_type().__name__} (not "
                                      f"\"{b.python_type().__name__}\") to {a.python_type().__name__}"))
        return _same_kind(a, b, a.items + b.items)
    if op in (operator.mul, operator.imul):
        seq, count = (a, b) if isinstance(a, seqs) else (b, a)
        if isinstance(seq, seqs) and isinstance(count, (trackers.Known, trackers.Sym)):
            n = run_python(operator.index, python_value(f, count, "sequence repetition"))
            if op is operator.imul and isinstance(a, trackers.List):
                mutate(f, a)
                a.items[:] = a.items * n
                return a
            return _same_kind(seq, seq, seq.items * n)
    if op in (operator.eq, operator.ne) and isinstance(a, seqs) and isinstance(b, seqs) and \
            isinstance(a, trackers.List) == isinstance(b, trackers.List):
        if len(a.items) != len(b.items):
            return trackers.Known(op is operator.ne)
        for x, y in zip(a.items, b.items):
            if not truth(f, protocol.binary(f, operator.eq, x, y), "=="):
                return trackers.Known(op is operator.ne)
        return trackers.Known(op is operator.eq)
    if op in (operator.eq, operator.ne):
        return trackers.Known(op is operator.ne)
    raise GraphBreak(f"operator {op.__name__} on {a.python_type().__name__} and {b.python_type().__name__}")


def _same_kind(a, b, items):
    """The sequence `a + b` or `a * n` makes: a list of lists; a Size if either is one; else a plain tuple."""
    if isinstance(a, trackers.List):
        return trackers.List(items)
    return trackers.Size(items) if isinstance(a, trackers.Size) or isinstance(b, trackers.Size) else trackers.Tuple(items)


@protocol.register_binary("opaque", trackers.Opaque)
def _opaque_operator(f, op, a, b):
    raise GraphBreak(f"operator {op.__name__} on an opaque value")


@protocol.register_binary("fallback", trackers.VT)
def _value_operator(f, op, a, b):
    return trackers.Known(run_python(op, python_value(f, a, op.__name__), python_value(f, b, op.__name__)))


def unary(f, op, vt):
    if isinstance(vt, trackers.Known):
        return trackers.Known(run_python(op, vt.value))
    if isinstance(vt, (trackers.Tensor, trackers.Sym)):
        return f.trace.builder.call("call_function", op, (vt,), {})
    raise GraphBreak(f"operator {op.__name__} on a {vt.python_type().__name__}")


@protocol.register("contains", trackers.Dict)
def _dict_contains(f, container, item):
    return python_value(f, item, "`in` on a dict") in container.items


@protocol.register("contains", trackers.Tuple, trackers.List)
def _sequence_contains(f, container, item):
    for x in container.items:
        if isinstance(x, trackers.Tensor) or isinstance(item, trackers.Tensor):
            if identical(f, x, item):
                return True
            continue
        if truth(f, protocol.binary(f, operator.eq, x, item), "`in`"):
            return True
    return False


@protocol.register("contains", trackers.Known)
def _known_contains(f, container, item):
    if environment.is_environ(container.value):
        return environment.call_method(f, "__contains__", [item], {}).value
    key = python_value(f, item, "`in`")
    result = run_python(operator.contains, container.value, key)
    if container.source is not None:
        f.trace.guards.membership(container.source, key, result)    # the container may change
    return result


@protocol.register("contains", trackers.VT)
def _no_contains(f, container, item):
    raise GraphBreak(f"`in` on a {container.python_type().__name__}")


# ---------------------------------------------------------------- items
subscript = protocol.subscript      # `obj[index]`


@protocol.register("subscript", trackers.Tensor)
def _tensor_item(f, obj, index):
    if isinstance(index, trackers.Sym) and index.python_type() is int:
        # x[i] with a symbolic i: select keeps i symbolic where __getitem__ would specialize it
        return f.trace.builder.call("call_function", torch.select, (obj, trackers.Known(0), index), {})
    return f.trace.builder.call("call_function", operator.getitem, (obj, index), {})


@protocol.register("subscript", trackers.Tuple, trackers.List)
def _sequence_item(f, obj, index):
    key = python_value(f, index, "indexing a sequence")
    try:
        picked = obj.items[key]
    except Exception as e:
        raise UserError(e) from e
    if isinstance(key, slice):
        return trackers.Size(picked) if isinstance(obj, trackers.Size) else (
            trackers.List(picked) if isinstance(obj, trackers.List) else trackers.Tuple(picked))
    return picked


@protocol.register("subscript", trackers.Dict)
def _dict_item(f, obj, index):
    key = python_value(f, index, "dict lookup")
    if key not in obj.items:
        raise UserError(KeyError(key))
    return obj.items[key]


@protocol.register("subscript", trackers.Known)
def _known_item(f, obj, index):
    if environment.is_environ(obj.value):
        return environment.call_method(f, "__getitem__", [index], {})
    getitem = getattr(type(obj.value), "__getitem__", None)
    if isinstance(getitem, types.FunctionType) and not (getitem.__module__ or "").startswith("torch.") and \
            not dataclasses.is_dataclass(type(obj.value)):
        # a user class's Python __getitem__ is traced like any method: it may build a fresh object per lookup
        # (transformers' ACT2FN['silu'] makes a new activation module), which a read guarded by identity
        # would recompile on every call (torch.nn's containers, and dataclasses such as model outputs, whose
        # items are their fields, are read as below); the class's entry is guarded, so one patched later is seen
        reads.class_attribute(f, type(obj.value), "__getitem__")
        return protocol.call_method(f, obj, "__getitem__", [index], {})
    key = python_value(f, index, "indexing")
    value = run_python(operator.getitem, obj.value, key)
    if obj.source is not None and isinstance(key, slice) and isinstance(obj.value, MODULE_SEQUENCES):
        return _module_slice(f, value, sources.item(obj.source, key))
    if obj.source is not None:
        if not isinstance(key, LITERAL_KEYS):       # `List[int]`: the key is named through the constant table
            source = sources.Src(f"{obj.source.code}[{f.trace.source_constant(key)}]", f"{obj.source}[{key!r}]")
            return f.trace.wrap(value, source)
        return f.trace.wrap(value, sources.item(obj.source, key))
    return reads.known_result(value)


@protocol.register("subscript", trackers.VT)
def _no_item(f, obj, index):
    raise GraphBreak(f"indexing a {obj.python_type().__name__}")


LITERAL_KEYS = (str, int, float, bool, type(None), slice)


MODULE_SEQUENCES = (torch.nn.ModuleList, torch.nn.Sequential)


def _module_slice(f, value, source):
    """`self.layers[:n]` builds a new ModuleList on every call: guarded by its type and length, not its
    identity; the layers in it are guarded by identity where they are read."""
    f.trace.guards.type_match(source, value, f"len({{}}) == {len(value)}")
    vt = trackers.Known(value, source)
    f.trace.wrapped[source.code] = vt
    return vt


@protocol.register("store_subscript", trackers.Tensor)
def _store_tensor_item(f, container, key, value):
    f.trace.builder.call("call_function", operator.setitem, (container, key, value), {})


@protocol.register("store_subscript", trackers.List, trackers.Dict)
def _store_item(f, container, key, value):
    index = python_value(f, key, "item assignment")
    if isinstance(container, trackers.List) and isinstance(index, slice):
        raise GraphBreak("slice assignment into a list", hint="it runs in Python")
    mutate(f, container)
    container.items[index] = value


@protocol.register("store_subscript", trackers.VT)
def _no_item_store(f, container, key, value):
    raise GraphBreak(f"item assignment into a {container.python_type().__name__} from outside the trace",
                     hint="the assignment runs in Python")


def mutate(f, container):
    """Record a container mutation.  A container from the caller's world (it has a source) is synced in place
    after the graph runs, so the caller sees the change on the same object."""
    f.trace.side_effects.mutate(container)


iterate = protocol.iterate      # the items a `for` loop / unpacking / * would produce, as trackers


@protocol.register("iterate", trackers.Tuple, trackers.List)
def _sequence_items(f, vt):
    return list(vt.items)


@protocol.register("iterate", trackers.Dict)
def _dict_items(f, vt):
    return [trackers.Known(k) for k in vt.items]


@protocol.register("iterate", trackers.Known)
def _known_items(f, vt):
    value = vt.value
    if isinstance(value, torch.nn.Module):
        return _module_items(f, vt)
    if isinstance(value, range) and len(value) > MAX_UNROLL:
        raise Unsupported("loop too long to unroll")
    try:
        values = list(value)
    except TypeError as e:
        raise UserError(e) from e
    if vt.source is not None:
        return _iterate_source(f, vt, values)
    return [reads.known_result(v) for v in values]


@protocol.register("iterate", trackers.Tensor)
def _tensor_items(f, vt):
    n = f.trace.consumer.as_value(vt.fake.size(0), "iteration over a tensor") if isinstance(
        vt.fake.size(0), torch.SymInt) else vt.fake.size(0)
    return [subscript(f, vt, trackers.Known(i)) for i in range(n)]


@protocol.register("iterate", trackers.VT)
def _no_items(f, vt):
    raise GraphBreak(f"iteration over a {vt.python_type().__name__}",
                     hint="the loop runs in Python around a graph break")


def _iterate_source(f, vt, values):
    """Iterating a container of the caller's world that the tracer holds as an object (an OrderedDict, a set,
    a deque, a list subclass): what the loop saw is guarded, keys and length or the elements themselves."""
    guards, src, value = f.trace.guards, vt.source, vt.value
    if isinstance(value, (str, bytes)):
        return [trackers.Known(v) for v in values]         # immutable, guarded by value already
    if isinstance(value, dict):
        guards.keys_match(src, value)
        return [trackers.Known(k) for k in values]
    if isinstance(value, (list, tuple, collections.deque)):
        guards.length(src, len(values))
        return [f.trace.wrap_part(vt, v, sources.item(src, i)) for i, v in enumerate(values)]
    if isinstance(value, (set, frozenset)) and all(isinstance(v, CONSTANT_ITEMS) for v in values):
        guards.contents_match(src, value, values)
        return [trackers.Known(v) for v in values]
    raise GraphBreak(f"iteration over a {type(value).__name__} of the caller's world",
                     hint="the loop runs in Python around a graph break")


CONSTANT_ITEMS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, enum.Enum, type)


def _module_items(f, vt):
    """Iterating Sequential / ModuleList yields submodules (with sources); ModuleDict yields keys."""
    m = vt.value
    if isinstance(m, torch.nn.ModuleDict):
        if vt.source is not None:
            f.trace.guards.module_keys(vt.source, "_modules", tuple(m._modules))
        return [trackers.Known(k) for k in m._modules]
    if not isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)):
        raise GraphBreak(f"iteration over a {type(m).__name__}")
    if vt.source is None:
        raise Unsupported("iteration over a module the trace cannot reach by a source")
    f.trace.guards.module_keys(vt.source, "_modules", tuple(m._modules))
    return [f.trace.wrap(sub, sources.module_entry(vt.source, "_modules", k)) for k, sub in m._modules.items()]


def dict_items(f, vt) -> dict:
    if isinstance(vt, trackers.Dict):
        return dict(vt.items)
    if isinstance(vt, trackers.Known) and isinstance(vt.value, dict):
        return {k: reads.known_result(v) for k, v in vt.value.items()}
    raise Unsupported(f"** of a {vt.python_type().__name__}")

