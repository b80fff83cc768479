"""Builtins, `math`, grad-mode functions and methods the tracer models.

Each entry takes trackers and returns a tracker.  Sizes stay symbolic where
Python allows it (`len(x)`, `int(x.size(0))`, `math.sqrt(d)`, `abs`, `max` of
tensors); where Python needs a concrete value the policy's consumer decides
(`range(n)`, `math.factorial(n)`, `str(n)`), and `min`/`max` of sizes are bool
uses (the comparison is guarded, not the value).  The methods of tensors, lists, dicts,
tuples and symbolic numbers are their `call_method` rules, registered here, as is the `call`
rule of a grad-mode `with` block's exit.
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import inspect
import math
import operator
import types
import typing

import torch

from . import contexts
from . import copies
from . import dict_views
from . import generators
from .. import trackers
from .attributes import guarded_flag, tensor_size
from . import protocol
from . import reads
from .protocol import binary, iterate, python_value, subscript, truth
from .values import hashable_values, identical, mutate, unary
from ..errors import GraphBreak, Unsupported, UserError, run_python


# ---------------------------------------------------------------- builtins
@protocol.register("length", trackers.Tuple, trackers.List, trackers.Dict)
def _container_length(f, obj):
    return trackers.Known(len(obj.items))


@protocol.register("length", trackers.Tensor)
def _tensor_length(f, t):
    return tensor_size(f, t, 0)


@protocol.register("length", trackers.Known)
def _known_length(f, obj):
    n = run_python(len, obj.value)
    if obj.source is not None:
        f.trace.guards.length(obj.source, n)        # a module, set, deque ... of the caller's world
    return trackers.Known(n)


@protocol.register("length", trackers.VT)
def _no_length(f, obj):
    raise GraphBreak(f"len() of a {obj.python_type().__name__}")


LONG_LIVED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type(None), bool,
              type(Ellipsis), type(NotImplemented))


def b_id(f, obj):
    """`id(obj)`: a constant for an object of the caller's world (guarded to stay that object: a list,
    dict or plain object argument) or a class, module or function the code names.  The id of an object made
    in the trace exists only at run time, and so does a tensor's (guarding a frame input's identity would
    recompile on every new tensor): a break."""
    if isinstance(obj, trackers.Known) and obj.source is not None and not obj.owned:
        f.trace.guards.id_match(obj.source, obj.value)
        return trackers.Known(id(obj.value))
    if obj.source is not None and obj.source.code in f.trace.caller_objects:    # tracked by its items
        caller_object = f.trace.caller_objects[obj.source.code]
        f.trace.guards.id_match(obj.source, caller_object)
        return trackers.Known(id(caller_object))
    if isinstance(obj, trackers.Known) and obj.source is None and not obj.owned and isinstance(obj.value, LONG_LIVED):
        return trackers.Known(id(obj.value))
    raise GraphBreak(f"id() of a {obj.python_type().__name__} made in the trace (or of a tensor) is only "
                     f"known at run time", hint="it runs in Python between two graphs")


def b_isinstance(f, obj, classes):
    cls = python_value(f, classes, "isinstance")
    reads.class_hierarchy(f, reads.type_of(f, obj))
    t = obj.python_type() if not isinstance(obj, trackers.Known) else type(obj.value)
    if isinstance(obj, trackers.Opaque):
        t = obj.cls
    try:
        return trackers.Known(issubclass(t, cls))
    except TypeError as e:
        raise UserError(e) from e


def b_issubclass(f, a, b):
    reads.class_hierarchy(f, a)
    return trackers.Known(run_python(issubclass, python_value(f, a, "issubclass"), python_value(f, b, "issubclass")))


def b_type(f, obj):
    return reads.type_of(f, obj)


def b_int(f, obj=None, *rest):
    if obj is None:
        return trackers.Known(0)
    if isinstance(obj, trackers.Sym) and not rest:
        return obj if obj.python_type() is int else f.trace.builder.sym_op(torch.sym_int, obj)
    if isinstance(obj, trackers.Tensor):
        raise GraphBreak("int() of a tensor needs its value")
    return trackers.Known(run_python(int, python_value(f, obj, "int()"), *[python_value(f, r, "int()") for r in rest]))


def b_float(f, obj=None):
    if obj is None:
        return trackers.Known(0.0)
    if isinstance(obj, trackers.Sym):
        return obj if obj.python_type() is float else f.trace.builder.sym_op(torch.sym_float, obj)
    if isinstance(obj, trackers.Tensor):
        raise GraphBreak("float() of a tensor needs its value")
    return trackers.Known(run_python(float, python_value(f, obj, "float()")))


def b_bool(f, obj=None):
    return trackers.Known(False if obj is None else truth(f, obj, "bool()"))


def b_str(f, obj=trackers.Known("")):
    return trackers.Known(str(python_value(f, obj, "str()")))


def b_abs(f, obj):
    return unary(f, operator.abs, obj)


def _choose(f, op, items, name):
    best = items[0]
    for item in items[1:]:
        if isinstance(item, trackers.Tensor) or isinstance(best, trackers.Tensor):
            raise GraphBreak(f"{name}() of tensors compares their values")
        if truth(f, binary(f, op, item, best), f"{name}()"):
            best = item
    return best


def _min_max(op, name):
    def handler(f, *args, **kwargs):
        if kwargs:
            raise GraphBreak(f"{name}() with keyword arguments")
        items = iterate(f, args[0]) if len(args) == 1 else list(args)
        if not items:
            raise UserError(ValueError(f"{name}() arg is an empty sequence"))
        return _choose(f, op, items, name)
    return handler


def b_sum(f, iterable, start=trackers.Known(0)):
    total = start
    for item in iterate(f, iterable):
        total = binary(f, operator.add, total, item)
    return total


def b_range(f, *args):
    values = [python_value(f, a, "range()") for a in args]
    return trackers.Known(run_python(range, *values))


def b_enumerate(f, iterable, start=trackers.Known(0)):
    index = python_value(f, start, "enumerate()")
    return generators.lazy("enumerate", [generators.make_iterator(f, iterable)], index=index)


def b_zip(f, *iterables, strict=trackers.Known(False)):
    sources = [generators.make_iterator(f, it) for it in iterables]
    return generators.lazy("zip", sources, strict=bool(python_value(f, strict, "zip()")), done=not sources)


def b_reversed(f, seq):
    if isinstance(seq, trackers.DataObject) or generators.is_iterator(seq):
        raise GraphBreak(f"reversed() of a {seq.python_type().__name__}")
    return trackers.Iterator(list(reversed(iterate(f, seq))))


def b_iter(f, obj, *sentinel):
    if sentinel:
        raise GraphBreak("iter() with a sentinel")
    return generators.make_iterator(f, obj)


def b_next(f, it, *default):
    if generators.is_iterator(it):
        item = generators.step(f, it)
        if item is not None:
            return item
        if default:
            return default[0]
        raise UserError(StopIteration())
    if isinstance(it, (trackers.Tuple, trackers.List, trackers.Dict, trackers.DictView)):
        raise UserError(TypeError(f"'{it.python_type().__name__}' object is not an iterator"))
    raise GraphBreak("next() of an iterator the tracer cannot see into")


def b_dict_fromkeys(f, keys, value=trackers.Known(None)):
    return trackers.Dict({k: value for k in hashable_values(f, iterate(f, keys), "dict.fromkeys")})


def b_locals(f):
    """A snapshot of the frame's bound variables, in the order CPython lists them."""
    code = f.code
    names = list(code.co_varnames) + [n for n in code.co_cellvars if n not in code.co_varnames] + \
        list(code.co_freevars)
    values = {}
    for name in names:
        cell = f.cells.get(name)
        value = cell.contents if cell is not None else f.locals.get(name)
        if value is not None:
            values[name] = value
    return trackers.Dict(values)


def b_list(f, iterable=None):
    return trackers.List([] if iterable is None else iterate(f, iterable))


def b_tuple(f, iterable=None):
    return trackers.Tuple([] if iterable is None else iterate(f, iterable))


def b_dict(cls):
    """dict(...) or collections.OrderedDict(...): the contents in the order given."""
    def handler(f, *args, **kwargs):
        if len(args) > 1:
            raise UserError(TypeError(f"{cls.__name__} expected at most 1 argument, got {len(args)}"))
        items = entries_of(f, args[0], f"{cls.__name__}()") if args else {}
        items.update(kwargs)
        return trackers.Dict(items, cls=cls)
    return handler


def entries_of(f, src, op: str) -> dict:
    """What `dict(src)` and `d.update(src)` take from `src`, as Python does: a mapping's keys() and its items
    (a model output, a dict subclass), else the key-value pairs it iterates."""
    if isinstance(src, trackers.Dict):
        return dict(src.items)
    if hasattr(src.python_type(), "keys"):
        keys = iterate(f, protocol.call(f, protocol.attribute(f, src, "keys"), [], {}))
        return {python_value(f, k, op): subscript(f, src, k) for k in keys}
    entries = {}
    for i, pair in enumerate(iterate(f, src)):
        pair = iterate(f, pair)
        if len(pair) != 2:
            raise UserError(ValueError(f"dictionary update sequence element #{i} has length {len(pair)}; "
                                       f"2 is required"))
        entries[python_value(f, pair[0], op)] = pair[1]
    return entries


def b_set(cls):
    def handler(f, iterable=None):
        values = [] if iterable is None else [python_value(f, v, cls.__name__) for v in iterate(f, iterable)]
        return trackers.Known(cls(values))
    return handler


def b_getattr(f, obj, name, *default):
    attr = python_value(f, name, "getattr()")
    try:
        return protocol.attribute(f, obj, attr)
    except UserError as e:
        if default and isinstance(e.error, AttributeError):
            return default[0]
        raise


def b_setattr(f, obj, name, value):
    protocol.store_attribute(f, obj, python_value(f, name, "setattr()"), value)
    return trackers.Known(None)


def b_delattr(f, obj, name):
    protocol.store_attribute(f, obj, python_value(f, name, "delattr()"), None)
    return trackers.Known(None)


def b_hasattr(f, obj, name):
    attr = python_value(f, name, "hasattr()")
    if isinstance(obj, trackers.Tensor):
        return trackers.Known(hasattr(obj.fake, attr))
    try:
        protocol.attribute(f, obj, attr)
        return trackers.Known(True)
    except UserError as e:
        if isinstance(e.error, AttributeError):
            return trackers.Known(False)
        raise


def b_callable(f, obj):
    if isinstance(obj, trackers.Known):
        if obj.source is not None and reads.class_assignable(obj.value):
            reads.class_attribute(f, type(obj.value), "__call__")       # its class may gain or lose __call__
        return trackers.Known(callable(obj.value))
    return trackers.Known(isinstance(obj, (trackers.Function, trackers.Method)))


def b_any_all(fn):
    def handler(f, iterable):
        items = generators.make_iterator(f, iterable)      # stops pulling at the deciding item
        while (item := generators.step(f, items)) is not None:
            if truth(f, item, fn.__name__) == (fn is any):
                return trackers.Known(fn is any)
        return trackers.Known(fn is not any)
    return handler


def b_round(f, x, ndigits=None):
    if isinstance(x, trackers.Tensor):
        return protocol.call(f, trackers.Known(torch.round), [x], {})
    value = python_value(f, x, "round()")
    return trackers.Known(round(value) if ndigits is None else round(value, python_value(f, ndigits, "round()")))


def b_divmod(f, a, b):
    return trackers.Tuple([binary(f, operator.floordiv, a, b), binary(f, operator.mod, a, b)])


def b_sorted(f, iterable, **kwargs):
    if kwargs:
        raise GraphBreak("sorted() with a key")
    values = [python_value(f, v, "sorted()") for v in iterate(f, iterable)]
    return trackers.List([trackers.Known(v) for v in sorted(values)])


def b_slice(f, *args):
    parts = list(args) + [trackers.Known(None)] * (3 - len(args)) if len(args) > 1 else [trackers.Known(None), args[0], trackers.Known(None)]
    if all(isinstance(p, trackers.Known) for p in parts):
        return trackers.Known(slice(*[p.value for p in parts]))
    return trackers.Slice(*parts)


def b_super(f, *args):
    if args:
        return trackers.Super(python_value(f, args[0], "super()"), args[1])
    cell = f.cells.get("__class__")
    first = f.code.co_varnames[0] if f.code.co_argcount else None
    obj = f.locals.get(first) or (f.cells[first].contents if first in f.cells else None)
    if cell is None or cell.contents is None or obj is None:
        raise Unsupported("super() outside a method")
    return trackers.Super(cell.contents.value, obj)


def b_map(f, fn, *iterables):
    if not iterables:
        raise UserError(TypeError("map() must have at least two arguments."))
    return generators.lazy("map", [generators.make_iterator(f, it) for it in iterables], fn=fn)


def b_filter(f, fn, iterable):
    return generators.lazy("filter", [generators.make_iterator(f, iterable)], fn=fn)


def b_reduce(f, fn, iterable, *initial):
    items = iterate(f, iterable)
    if not initial and not items:
        raise UserError(TypeError("reduce() of empty iterable with no initial value"))
    acc, rest = (initial[0], items) if initial else (items[0], items[1:])
    for item in rest:
        acc = protocol.call(f, fn, [acc, item], {})
    return acc


def b_partial(f, fn, *args, **kwargs):
    if isinstance(fn, trackers.Partial):
        return trackers.Partial(fn.fn, list(fn.args) + list(args), {**fn.kwargs, **kwargs})
    return trackers.Partial(fn, list(args), dict(kwargs))


def b_getter(kind):
    """operator.itemgetter / attrgetter: a Known getter object applied to trackers."""
    def make(f, *keys):
        return trackers.Known(kind(*[python_value(f, k, kind.__name__) for k in keys]))
    return make


def call_getter(f, getter, obj):
    keys = getter.__reduce__()[1]
    if isinstance(getter, operator.itemgetter):
        picked = [subscript(f, obj, trackers.Known(k)) for k in keys]
    else:
        picked = []
        for dotted in keys:
            value = obj
            for part in dotted.split("."):
                value = protocol.attribute(f, value, part)
            picked.append(value)
    return picked[0] if len(picked) == 1 else trackers.Tuple(picked)


def b_print(f, *args, **kwargs):
    raise GraphBreak("print() has a side effect", hint="printing runs in Python between two graphs")


# ---------------------------------------------------------------- math
def _math_symbolic(sym_fn, py_fn):
    def handler(f, x):
        if isinstance(x, trackers.Sym):
            return f.trace.builder.sym_op(sym_fn, x)
        return trackers.Known(run_python(py_fn, python_value(f, x, py_fn.__name__)))
    return handler


def _math_value(py_fn):
    def handler(f, *args):
        values = [python_value(f, a, f"math.{py_fn.__name__}") for a in args]
        return trackers.Known(run_python(py_fn, *values))
    return handler


def _math_entries():
    table = {math.sqrt: _math_symbolic(torch._sym_sqrt, math.sqrt),
             math.ceil: _math_symbolic(math.ceil, math.ceil),
             math.floor: _math_symbolic(math.floor, math.floor)}
    for name in ("factorial", "isfinite", "log", "log2", "log10", "exp", "pow", "gcd", "lcm", "comb", "perm", "isqrt",
                 "sin", "cos", "tan", "tanh", "atan", "atan2", "erf", "fabs", "isnan", "isinf", "isclose",
                 "prod", "trunc", "copysign", "hypot", "radians", "degrees", "log1p", "expm1", "fsum"):
        fn = getattr(math, name)
        table.setdefault(fn, _math_value(fn))
    return table


# ---------------------------------------------------------------- operator module
def _operator(op):
    def handler(f, *args):
        if op is operator.getitem:
            return subscript(f, *args)
        if op is operator.not_:
            return trackers.Known(not truth(f, args[0], "not"))
        if op in (operator.is_, operator.is_not):
            return trackers.Known(identical(f, *args) == (op is operator.is_))
        if op is operator.truth:
            return trackers.Known(truth(f, args[0], "truth"))
        if len(args) == 1:
            return unary(f, op, args[0])
        return binary(f, op, *args)
    return handler


_OPERATORS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs",
              "invert", "lt", "le", "eq", "ne", "gt", "ge", "and_", "or_", "xor", "lshift", "rshift",
              "getitem", "not_", "is_", "is_not", "truth", "iadd", "isub", "imul", "itruediv", "index")


# ---------------------------------------------------------------- grad mode
def g_no_grad(f, args, kwargs):
    return trackers.GradMode(False)


def g_enable_grad(f, args, kwargs):
    return trackers.GradMode(True)


def g_set_grad_enabled(f, args, kwargs):
    mode = python_value(f, args[0] if args else kwargs["mode"], "set_grad_enabled")
    previous = f.trace.grad_enabled
    f.trace.set_grad_enabled(bool(mode))
    return trackers.GradMode(bool(mode), applied=previous)


def g_set_grad_enabled_c(f, args, kwargs):
    f.trace.set_grad_enabled(bool(python_value(f, args[0], "_set_grad_enabled")))
    return trackers.Known(None)


def g_is_grad_enabled(f, args, kwargs):
    return trackers.Known(f.trace.grad_enabled)


@protocol.register("enter", trackers.GradMode)
def _enter_grad_mode(f, mode):
    """`with torch.no_grad():` & co: the mode changes now (set_grad_enabled(...) changed it when called)."""
    previous = f.trace.grad_enabled
    if mode.applied is None:
        f.trace.set_grad_enabled(mode.enabled)
    else:
        previous = mode.applied
    return trackers.GradModeExit(previous), trackers.Known(None)


@protocol.register("call", trackers.GradModeExit)
def _exit_grad_mode(f, region, args, kwargs):
    """The `__exit__` a traced grad-mode `with` block left on the stack: the mode before the block comes back."""
    f.trace.set_grad_enabled(region.restore)
    return trackers.Known(None)


GRAD_MODE = {torch.no_grad: g_no_grad, torch.enable_grad: g_enable_grad,
             torch.set_grad_enabled: g_set_grad_enabled, torch._C._set_grad_enabled: g_set_grad_enabled_c,
             torch.is_grad_enabled: g_is_grad_enabled}

# Functions answered at trace time; they receive trackers and must not look into tensors.  (Queries of global
# state are answered and guarded by torch_state.py; get_default_dtype is pinned by every entry's guard.)
CONSTANT_FOLD = {
    torch.jit.is_scripting: lambda: False, torch.jit.is_tracing: lambda: False,
    torch._C._get_tracing_state: lambda: None, torch.get_default_dtype: torch.get_default_dtype,
    torch.overrides.has_torch_function: lambda *a: False,
    torch.overrides.has_torch_function_unary: lambda *a: False,
    torch.overrides.has_torch_function_variadic: lambda *a: False,
    torch._C._has_torch_function: lambda *a: False, torch._C._has_torch_function_unary: lambda *a: False,
    torch._C._has_torch_function_variadic: lambda *a: False,
    # traced code is being compiled: libraries take their compiler-friendly paths (as under torch.compile)
    torch.compiler.is_compiling: lambda: True, torch.compiler.is_dynamo_compiling: lambda: True,
    torch.compiler.is_exporting: lambda: False,
}


def _pure_on_constants(fn):
    """Library functions with no side effects: evaluated at trace time when every argument is a constant."""
    def handler(f, *args, **kwargs):
        values = [python_value(f, a, fn.__name__) for a in args]
        kw = {k: python_value(f, v, fn.__name__) for k, v in kwargs.items()}
        return trackers.Known(run_python(fn, *values, **kw))
    return handler


PURE_ON_CONSTANTS = (inspect.signature, inspect.isclass, inspect.isfunction, inspect.ismethod,
                     inspect.isroutine, dataclasses.fields, dataclasses.is_dataclass, typing.get_origin,
                     typing.get_args, torch.finfo, torch.iinfo)

BUILTINS = {
    id: b_id, copy.deepcopy: copies.deepcopy, copy.copy: copies.shallow_copy, len: protocol.length, isinstance: b_isinstance, issubclass: b_issubclass, type: b_type, int: b_int,
    float: b_float, bool: b_bool, str: b_str, abs: b_abs, min: _min_max(operator.lt, "min"),
    max: _min_max(operator.gt, "max"), sum: b_sum, range: b_range, enumerate: b_enumerate, zip: b_zip,
    reversed: b_reversed, iter: b_iter, next: b_next, list: b_list, tuple: b_tuple, dict: b_dict(dict),
    collections.OrderedDict: b_dict(collections.OrderedDict),
    set: b_set(set), frozenset: b_set(frozenset), getattr: b_getattr, hasattr: b_hasattr, setattr: b_setattr, delattr: b_delattr, callable: b_callable, any: b_any_all(any), all: b_any_all(all),
    round: b_round, divmod: b_divmod, sorted: b_sorted, slice: b_slice, super: b_super, print: b_print,
    map: b_map, filter: b_filter, functools.reduce: b_reduce, functools.partial: b_partial,
    operator.itemgetter: b_getter(operator.itemgetter), operator.attrgetter: b_getter(operator.attrgetter),
    torch.Size: lambda f, items=None: trackers.Size([] if items is None else iterate(f, items)),
    torch.is_tensor: lambda f, x: trackers.Known(isinstance(x, trackers.Tensor)), locals: b_locals, dict.fromkeys: b_dict_fromkeys,
}
BUILTINS.update(generators.ITERTOOLS)
BUILTINS.update(contexts.MODELS)
BUILTINS.update(_math_entries())
BUILTINS.update({fn: _pure_on_constants(fn) for fn in PURE_ON_CONSTANTS})
BUILTINS.update({getattr(operator, n): _operator(getattr(operator, n)) for n in _OPERATORS})


# ---------------------------------------------------------------- methods
STRIDE_READERS = {"stride", "is_contiguous", "is_non_overlapping_and_dense", "as_strided", "data_ptr"}


GUARDED_FLAGS = {"_is_view", "_is_zerotensor"}          # the fake knows them; tensor guards do not pin them
STORAGE_QUERIES = {"is_pinned", "is_shared", "is_set_to"}  # the fake cannot know them


@protocol.register("call_method", trackers.Tensor)
def _tensor_method(f, t, name, args, kwargs):
    builder = f.trace.builder
    if name == "size":
        if args or kwargs:
            dim = python_value(f, args[0] if args else kwargs["dim"], "Tensor.size")
            return tensor_size(f, t, dim)
        return tensor_size(f, t)
    if name in ("dim", "ndimension"):
        return trackers.Known(t.fake.dim())
    if name in STRIDE_READERS:
        f.trace.strides_observed()
    if name in ("is_floating_point", "is_complex", "is_contiguous", "get_device", "element_size",
                "is_signed", "has_names"):
        return trackers.Known(getattr(t.fake, name)(*[python_value(f, a, name) for a in args],
                                              **{k: python_value(f, v, name) for k, v in kwargs.items()}))
    if name in GUARDED_FLAGS and not args and not kwargs:
        return guarded_flag(f, t, f"{name}()", getattr(t.fake, name)())
    if name in STORAGE_QUERIES:
        raise GraphBreak(f"Tensor.{name}() asks about the storage, which the trace does not see",
                         hint="it runs in Python between two graphs")
    if name in ("tolist", "numpy", "__array__", "data_ptr", "backward", "register_hook", "retain_grad",
                "resize_", "resize_as_", "set_", "share_memory_"):   # leave the graph; metadata changes too
        raise GraphBreak(f"Tensor.{name}() leaves the graph", hint="it runs in Python between two graphs")
    if name == "__len__":
        return tensor_size(f, t, 0)
    return builder.call("call_method", name, (t,) + tuple(args), kwargs)


@protocol.register("call_method", trackers.Tuple)
def _tuple_method(f, obj, name, args, kwargs):
    if name == "index":
        for i, item in enumerate(obj.items):
            if truth(f, binary(f, operator.eq, item, args[0]), "tuple.index"):
                return trackers.Known(i)
        raise UserError(ValueError("tuple.index(x): x not in tuple"))
    if name == "count":
        return trackers.Known(sum(truth(f, binary(f, operator.eq, i, args[0]), "tuple.count") for i in obj.items))
    return _no_method(f, obj, name, args, kwargs)


@protocol.register("call_method", trackers.Size)
def _size_method(f, obj, name, args, kwargs):
    if name == "numel":
        total = trackers.Known(1)
        for item in obj.items:
            total = binary(f, operator.mul, total, item)
        return total
    return _tuple_method(f, obj, name, args, kwargs)


@protocol.register("call_method", trackers.NamedTuple)
def _named_tuple_method(f, obj, name, args, kwargs):
    if name == "_replace" and hasattr(obj.cls, "_fields"):
        values = dict(zip(obj.cls._fields, obj.items))
        values.update(kwargs)
        return trackers.NamedTuple([values[n] for n in obj.cls._fields], cls=obj.cls)
    return _tuple_method(f, obj, name, args, kwargs)


@protocol.register("call_method", trackers.Sym)
def _symbol_method(f, obj, name, args, kwargs):
    op = {"__mul__": operator.mul, "__add__": operator.add, "__floordiv__": operator.floordiv}.get(name)
    if op:
        return binary(f, op, obj, args[0])
    return _no_method(f, obj, name, args, kwargs)


@protocol.register("call_method", trackers.VT)
def _no_method(f, obj, name, args, kwargs):
    raise GraphBreak(f"method {name!r} of a {obj.python_type().__name__}")


@protocol.register("call_method", trackers.List)
def _list_method(f, lst, name, args, kwargs):
    if name in ("append", "extend", "insert", "pop", "clear", "reverse"):
        mutate(f, lst)
    unread = isinstance(lst, trackers.CallerList) and not lst.loaded
    if name == "append":
        (lst.appended if unread else lst.items).append(args[0])
    elif name == "extend":
        (lst.appended if unread else lst.items).extend(iterate(f, args[0]))
    elif name == "insert":
        lst.items.insert(python_value(f, args[0], "list.insert"), args[1])
    elif name == "pop":
        return lst.items.pop(python_value(f, args[0], "list.pop") if args else -1)
    elif name == "clear":
        lst.items.clear()
    elif name == "reverse":
        lst.items.reverse()
    elif name == "copy":
        return trackers.List(list(lst.items))
    elif name == "remove":
        mutate(f, lst)
        for i, item in enumerate(lst.items):
            if identical(f, item, args[0]) or (not isinstance(item, trackers.Tensor) and
                                            truth(f, binary(f, operator.eq, item, args[0]), "list.remove")):
                del lst.items[i]
                return trackers.Known(None)
        raise UserError(ValueError("list.remove(x): x not in list"))
    elif name == "count":
        return trackers.Known(sum(1 for item in lst.items if not isinstance(item, trackers.Tensor) and
                           truth(f, binary(f, operator.eq, item, args[0]), "list.count")))
    elif name == "index":
        for i, item in enumerate(lst.items):
            if identical(f, item, args[0]) or (not isinstance(item, trackers.Tensor) and
                                            truth(f, binary(f, operator.eq, item, args[0]), "list.index")):
                return trackers.Known(i)
        raise UserError(ValueError("list.index(x): x not in list"))
    else:
        raise GraphBreak(f"list method {name!r}")
    return trackers.Known(None)


_ORDER_SIGNATURES = {(dict, "popitem"): inspect.signature(lambda: None),
                     (collections.OrderedDict, "popitem"): inspect.signature(lambda last=True: None),
                     (collections.OrderedDict, "move_to_end"): inspect.signature(lambda key, last=True: None)}


def _bound(f, d, name, args, kwargs) -> dict:
    """The arguments of dict.popitem() (none) or OrderedDict.popitem(last) / move_to_end(key, last), by name."""
    signature = _ORDER_SIGNATURES[collections.OrderedDict if d.cls is not dict else dict, name]
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as e:
        raise UserError(e) from e
    bound.apply_defaults()
    return {k: python_value(f, v, f"{d.cls.__name__}.{name}") if isinstance(v, trackers.VT) else v
            for k, v in bound.arguments.items()}


def _reorder(f, d, name, arguments):
    """popitem(): the last item (OrderedDict: the first with last=False); move_to_end(key, last): the key's item
    moved to the end (the front with last=False)."""
    last = arguments.get("last", True)
    if name == "popitem":
        if not d.items:
            raise UserError(KeyError("popitem(): dictionary is empty"))
        key = next(reversed(d.items)) if last else next(iter(d.items))
    else:
        key = arguments["key"]
        if key not in d.items:
            raise UserError(KeyError(key))
    mutate(f, d)
    value = d.items.pop(key)
    if name == "popitem":
        return trackers.Tuple([trackers.Known(key), value])
    rest = {} if last else dict(d.items)
    if not last:
        d.items.clear()
    d.items[key] = value
    d.items.update(rest)
    return trackers.Known(None)


@protocol.register("call_method", trackers.Dict)
def _dict_method(f, d, name, args, kwargs):
    if name in ("keys", "values", "items"):
        return dict_views.view(d, name)
    if name == "get":
        key = python_value(f, args[0], "dict.get")
        return d.items.get(key, args[1] if len(args) > 1 else trackers.Known(None))
    if name == "copy":
        if d.cls not in copies.COPIED_DICTS:
            raise GraphBreak(f"{d.cls.__name__}.copy() calls the class", hint="it runs in Python")
        return trackers.Dict(dict(d.items), cls=d.cls)
    if name in ("popitem", "move_to_end"):
        return _reorder(f, d, name, _bound(f, d, name, args, kwargs))
    if name in ("update", "pop", "setdefault", "clear"):
        mutate(f, d)
        if name == "update":
            if args:
                d.items.update(entries_of(f, args[0], "dict.update"))
            d.items.update(kwargs)
            return trackers.Known(None)
        if name == "pop":
            key = python_value(f, args[0], "dict.pop")
            return d.items.pop(key, *(args[1:2]))
        if name == "setdefault":
            key = python_value(f, args[0], "dict.setdefault")
            return d.items.setdefault(key, args[1] if len(args) > 1 else trackers.Known(None))
        d.items.clear()
        return trackers.Known(None)
    raise GraphBreak(f"dict method {name!r}")
