"""Semantics shared by opcodes: calls, attributes, operators, truth, items.

Calls dispatch on what is called: torch functions and Tensor methods go into
the graph; user functions, methods and nn.Module forwards are inlined; a small
table of builtins (len, isinstance, min, range, math.*, ...) is modelled; the
rest (print, os.getpid, numpy, user classes ...) is a graph break.
"""
from __future__ import annotations

import builtins
import collections.abc
import inspect
import operator
import types

import torch

from . import dataobjects
from . import sources as S
from . import variables as V
from .errors import GraphBreak, Unsupported, UserError

MAX_UNROLL = 10_000


# ---------------------------------------------------------------- globals
def load_global(f, name):
    if f.globals is f.trace.globals:
        written = f.trace.attr_writes.get(f.trace.globals_owner, name)
        if written is not None:
            return written[2]
    if name in f.globals:
        if f.globals is f.trace.globals:
            return f.trace.wrap(f.globals[name], S.global_(name))
        return _wrap_foreign_global(f, name)
    if hasattr(builtins, name):
        return V.Known(getattr(builtins, name))
    raise UserError(NameError(f"name {name!r} is not defined"))


def _wrap_foreign_global(f, name):
    """A global of an inlined function from another module: reached through that module's globals dict."""
    value = f.globals[name]
    if isinstance(value, types.ModuleType) and _is_library(value):
        return V.Known(value)          # `F`, `math`, `torch` inside library code: not rebound in practice
    holder = f.trace.source_constant(f.globals, f.globals.get("__name__", "module"))
    return f.trace.wrap(value, S.Src(f"{holder}[{name!r}]", f"{f.globals.get('__name__')}.{name}"))


# ---------------------------------------------------------------- python values
def python_value(f, vt, op: str):
    """The concrete Python value of a tracker; symbolic values are consumed (specialized) here."""
    if isinstance(vt, V.Known):
        return vt.value
    if isinstance(vt, V.Sym):
        return f.trace.consumer.as_value(vt.value, op)
    if isinstance(vt, (V.Tuple, V.List)):
        vals = [python_value(f, i, op) for i in vt.items]
        if isinstance(vt, V.NamedTuple):
            return vt.cls(*vals) if hasattr(vt.cls, "_make") else vt.cls(vals)
        return vals if isinstance(vt, V.List) else (torch.Size(vals) if isinstance(vt, V.Size) else tuple(vals))
    if isinstance(vt, V.Dict):
        return {k: python_value(f, v, op) for k, v in vt.items.items()}
    if isinstance(vt, V.Slice):
        return slice(*(python_value(f, p, op) for p in (vt.start, vt.stop, vt.step)))
    if isinstance(vt, V.Tensor):
        raise GraphBreak(f"{op} needs the value of a tensor", hint="tensor values are only known at run time")
    raise GraphBreak(f"{op} needs a {vt.python_type().__name__} the tracer cannot hold as a value")


def constant_values(items, what):
    out = []
    for vt in items:
        if not isinstance(vt, V.Known):
            raise Unsupported(f"{what} must be a constant")
        out.append(vt.value)
    return out


def is_none(vt) -> bool:
    return isinstance(vt, V.Known) and vt.value is None


def identical(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, V.Known) and isinstance(b, V.Known):
        return a.value is b.value
    if isinstance(a, V.Known) or isinstance(b, V.Known):
        known, other = (a, b) if isinstance(a, V.Known) else (b, a)
        if isinstance(other, (V.Opaque,)):
            raise GraphBreak("identity test on an opaque value")
        return False
    if isinstance(a, V.Tensor) and isinstance(b, V.Tensor):
        return a.node is b.node
    return False


# ---------------------------------------------------------------- truth
def truth(f, vt, op: str) -> bool:
    if isinstance(vt, V.Known):
        return bool(vt.value)
    if isinstance(vt, V.Sym):
        return f.trace.consumer.as_bool(vt.value, op)
    if isinstance(vt, V.Tensor):
        raise GraphBreak("branch on a tensor's value", hint="use torch.where, or accept the break: "
                                                             "the condition is evaluated in Python")
    if isinstance(vt, (V.Tuple, V.List, V.Dict)):
        return bool(vt.items)
    if isinstance(vt, V.Opaque):
        raise GraphBreak(f"truth of an opaque {vt.cls.__name__}")
    return True


def logical_not(f, vt):
    if isinstance(vt, V.Sym):
        if f.trace.builder.shapes.is_data_dependent(vt.value) or f.trace.options.policy == "dynamic":
            return f.trace.builder.sym_op(torch.sym_not, vt)
    return V.Known(not truth(f, vt, "not"))


# ---------------------------------------------------------------- operators
def binary(f, op, a, b):
    if isinstance(a, V.Known) and isinstance(b, V.Known):
        return V.Known(_run_python(op, a.value, b.value))
    if isinstance(a, (V.Tensor, V.Sym)) or isinstance(b, (V.Tensor, V.Sym)):
        if isinstance(a, (V.Tuple, V.List)) or isinstance(b, (V.Tuple, V.List)):
            return _sequence_op(f, op, a, b)
        if not all(isinstance(v, (V.Tensor, V.Sym, V.Known)) for v in (a, b)):
            raise GraphBreak(f"operator {op.__name__} on {a.python_type().__name__} and {b.python_type().__name__}")
        return f.trace.builder.call("call_function", op, (a, b), {})
    if op is operator.mod and isinstance(a, V.Known) and isinstance(a.value, str):
        return V.Known(_run_python(op, a.value, python_value(f, b, "% formatting")))
    if isinstance(a, (V.Tuple, V.List)) or isinstance(b, (V.Tuple, V.List)):
        return _sequence_op(f, op, a, b)
    if isinstance(a, V.Opaque) or isinstance(b, V.Opaque):
        raise GraphBreak(f"operator {op.__name__} on an opaque value")
    return V.Known(_run_python(op, python_value(f, a, op.__name__), python_value(f, b, op.__name__)))


def _as_sequence(vt):
    if isinstance(vt, V.Known) and isinstance(vt.value, (tuple, list)):
        items = [V.Known(v) for v in vt.value]
        return V.Size(items) if isinstance(vt.value, torch.Size) else (
            V.List(items) if isinstance(vt.value, list) else V.Tuple(items))
    return vt


def _sequence_op(f, op, a, b):
    """Concatenation, repetition and equality of sequence trackers (`(-1,) + x.shape[1:]`)."""
    a, b = _as_sequence(a), _as_sequence(b)
    seqs = (V.Tuple, V.List)
    if op in (operator.add, operator.iadd) and isinstance(a, seqs) and isinstance(b, seqs):
        if isinstance(a, V.List) != isinstance(b, V.List):
            raise UserError(TypeError("can only concatenate list to list / tuple to tuple"))
        if op is operator.iadd and isinstance(a, V.List):
            mutate(f, a)
            a.items.extend(b.items)
            return a
        items = a.items + b.items
        return V.Size(items) if isinstance(a, V.Size) else V.List(items) if isinstance(a, V.List) else V.Tuple(items)
    if op in (operator.mul, operator.imul) and isinstance(a, seqs) and isinstance(b, (V.Known, V.Sym)):
        n = python_value(f, b, "sequence repetition")
        return (V.List if isinstance(a, V.List) else V.Tuple)(a.items * n)
    if op in (operator.eq, operator.ne) and isinstance(a, seqs) and isinstance(b, seqs):
        if len(a.items) != len(b.items):
            return V.Known(op is operator.ne)
        for x, y in zip(a.items, b.items):
            if not truth(f, binary(f, operator.eq, x, y), "=="):
                return V.Known(op is operator.ne)
        return V.Known(op is operator.eq)
    if op in (operator.eq, operator.ne):
        return V.Known(op is operator.ne)
    raise GraphBreak(f"operator {op.__name__} on {a.python_type().__name__} and {b.python_type().__name__}")


def _run_python(op, *values):
    try:
        return op(*values)
    except Exception as e:
        raise UserError(e) from e


def unary(f, op, vt):
    if isinstance(vt, V.Known):
        return V.Known(_run_python(op, vt.value))
    if isinstance(vt, (V.Tensor, V.Sym)):
        return f.trace.builder.call("call_function", op, (vt,), {})
    raise GraphBreak(f"operator {op.__name__} on a {vt.python_type().__name__}")


def contains(f, container, item) -> bool:
    if isinstance(container, V.Dict):
        return python_value(f, item, "`in` on a dict") in container.items
    if isinstance(container, (V.Tuple, V.List)):
        for x in container.items:
            if isinstance(x, V.Tensor) or isinstance(item, V.Tensor):
                if identical(x, item):
                    return True
                continue
            if truth(f, binary(f, operator.eq, x, item), "`in`"):
                return True
        return False
    if isinstance(container, V.Known):
        return _run_python(operator.contains, container.value, python_value(f, item, "`in`"))
    raise GraphBreak(f"`in` on a {container.python_type().__name__}")


# ---------------------------------------------------------------- items
def subscript(f, obj, index):
    if isinstance(obj, V.Tensor):
        if isinstance(index, V.Sym) and index.python_type() is int:
            # x[i] with a symbolic i: select keeps i symbolic where __getitem__ would specialize it
            return f.trace.builder.call("call_function", torch.select, (obj, V.Known(0), index), {})
        return f.trace.builder.call("call_function", operator.getitem, (obj, index), {})
    if isinstance(obj, (V.Tuple, V.List)):
        key = python_value(f, index, "indexing a sequence")
        try:
            picked = obj.items[key]
        except Exception as e:
            raise UserError(e) from e
        if isinstance(key, slice):
            return V.Size(picked) if isinstance(obj, V.Size) else (
                V.List(picked) if isinstance(obj, V.List) else V.Tuple(picked))
        return picked
    if isinstance(obj, V.Dict):
        key = python_value(f, index, "dict lookup")
        if key not in obj.items:
            raise UserError(KeyError(key))
        return obj.items[key]
    if isinstance(obj, V.DataObject) and obj.mapping is None:
        return dataobjects.call_method(f, obj, "__getitem__", [index], {})
    if isinstance(obj, V.DataObject):
        return dataobjects.get_item(f, obj, python_value(f, index, "indexing"))
    if isinstance(obj, V.Known):
        key = python_value(f, index, "indexing")
        value = _run_python(operator.getitem, obj.value, key)
        if obj.source is not None:
            return f.trace.wrap(value, S.item(obj.source, key))
        return _known_result(value)
    raise GraphBreak(f"indexing a {obj.python_type().__name__}")


def store_subscript(f, container, key, value):
    if isinstance(container, V.Tensor):
        f.trace.builder.call("call_function", operator.setitem, (container, key, value), {})
        return
    if isinstance(container, (V.List, V.Dict)):
        index = python_value(f, key, "item assignment")
        if isinstance(container, V.List) and isinstance(index, slice):
            raise GraphBreak("slice assignment into a list", hint="it runs in Python")
        mutate(f, container)
        container.items[index] = value
        return
    raise GraphBreak(f"item assignment into a {container.python_type().__name__} from outside the trace",
                     hint="the assignment runs in Python")


def mutate(f, container):
    """Record a container mutation.  A container from the caller's world (it has a source) is synced in place
    after the graph runs, so the caller sees the change on the same object."""
    f.trace.mutated.append(container)


def iterate(f, vt) -> list:
    """The items a `for` loop / unpacking / * would produce, as trackers."""
    if isinstance(vt, V.Iterator):
        items = vt.items[vt.pos:]
        f.trace.advance(vt, len(vt.items))
        return items
    if isinstance(vt, (V.Tuple, V.List)):
        return list(vt.items)
    if isinstance(vt, V.Dict):
        return [V.Known(k) for k in vt.items]
    if isinstance(vt, V.Known) and isinstance(vt.value, torch.nn.Module):
        return _module_items(f, vt)
    if isinstance(vt, V.DataObject) and vt.mapping is None:
        if _static_lookup(vt.cls, "__iter__") is collections.abc.Sequence.__iter__:
            # the mixin's __iter__ ends on an IndexError; a Sequence is its len() items
            n = python_value(f, dataobjects.call_method(f, vt, "__len__", [], {}), "len()")
            return [dataobjects.call_method(f, vt, "__getitem__", [V.Known(i)], {}) for i in range(n)]
        return iterate(f, dataobjects.call_method(f, vt, "__iter__", [], {}))
    if isinstance(vt, V.Known):
        value = vt.value
        if isinstance(value, range) and len(value) > MAX_UNROLL:
            raise Unsupported("loop too long to unroll")
        try:
            values = list(value)
        except TypeError as e:
            raise UserError(e) from e
        if vt.source is not None and isinstance(value, (dict, list, tuple)):
            return [f.trace.wrap(v, S.item(vt.source, i)) for i, v in enumerate(values)]
        return [_known_result(v) for v in values]
    if isinstance(vt, V.Tensor):
        n = f.trace.consumer.as_value(vt.fake.size(0), "iteration over a tensor") if isinstance(
            vt.fake.size(0), torch.SymInt) else vt.fake.size(0)
        return [subscript(f, vt, V.Known(i)) for i in range(n)]
    raise GraphBreak(f"iteration over a {vt.python_type().__name__}",
                     hint="the loop runs in Python around a graph break")


def _module_items(f, vt):
    """Iterating Sequential / ModuleList yields submodules (with sources); ModuleDict yields keys."""
    m = vt.value
    if isinstance(m, torch.nn.ModuleDict):
        return [V.Known(k) for k in m._modules]
    if not isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)):
        raise GraphBreak(f"iteration over a {type(m).__name__}")
    if vt.source is None:
        raise Unsupported("iteration over a module the trace cannot reach by a source")
    return [f.trace.wrap(sub, S.module_entry(vt.source, "_modules", k)) for k, sub in m._modules.items()]


def dict_items(f, vt) -> dict:
    if isinstance(vt, V.Dict):
        return dict(vt.items)
    if isinstance(vt, V.Known) and isinstance(vt.value, dict):
        return {k: _known_result(v) for k, v in vt.value.items()}
    raise Unsupported(f"** of a {vt.python_type().__name__}")


def _known_result(value):
    if isinstance(value, torch.Tensor):
        raise GraphBreak("a tensor reached through an object the trace cannot guard")
    return V.Known(value)


# ---------------------------------------------------------------- attributes
TENSOR_CONST_ATTRS = {"dtype", "device", "layout", "is_cuda", "is_sparse", "is_quantized", "is_meta",
                      "is_nested", "is_leaf", "requires_grad", "is_mkldnn", "is_complex_attr"}


def getattr_vt(f, obj, name):
    if isinstance(obj, V.Tensor):
        return _tensor_attr(f, obj, name)
    if isinstance(obj, V.NamedTuple) and hasattr(obj.cls, "_fields") and name in obj.cls._fields:
        return obj.items[obj.cls._fields.index(name)]
    if isinstance(obj, V.NamedTuple) and name in getattr(obj.cls, "__match_args__", ()):
        return obj.items[obj.cls.__match_args__.index(name)]        # torch.return_types (structseq) fields
    if isinstance(obj, V.Known):
        return _known_attr(f, obj, name)
    if isinstance(obj, (V.Tuple, V.List, V.Dict, V.Sym)):
        return V.Method(obj, name)
    if isinstance(obj, V.Function) and name in ("__name__", "__qualname__"):
        return V.Known(obj.name)
    if isinstance(obj, V.Super):
        return _super_attr(f, obj, name)
    if isinstance(obj, V.DataObject):
        return dataobjects.get_attr(f, obj, name)
    raise GraphBreak(f"attribute {name!r} of a {obj.python_type().__name__}")


def _tensor_attr(f, t, name):
    fake = t.fake
    if name in ("shape",):
        return tensor_size(f, t)
    if name in TENSOR_CONST_ATTRS:
        return V.Known(getattr(fake, name))
    if name == "ndim":
        return V.Known(fake.dim())
    if name in ("T", "mT", "H", "mH", "real", "imag"):
        return f.trace.builder.call("call_function", getattr, (t, V.Known(name)), {})
    if name in ("grad", "data", "_version", "grad_fn"):
        raise GraphBreak(f"Tensor.{name} is not traced")
    if callable(getattr(torch.Tensor, name, None)):
        return V.Method(t, name)
    raise GraphBreak(f"Tensor attribute {name!r}")


def tensor_size(f, t, dim=None):
    fake = t.fake
    builder = f.trace.builder

    def one(d):
        s = fake.size(d)
        if isinstance(s, torch.SymInt):
            if s.node.maybe_as_int() is not None:
                return V.Known(s.node.maybe_as_int())
            node = builder.graph.call_method("size", (t.node, d))
            node.meta["val"] = s
            return V.Sym(node, s)
        return V.Known(s)
    if dim is not None:
        return one(dim if dim >= 0 else dim + fake.dim())
    return V.Size([one(d) for d in range(fake.dim())])


def _object_init(self, *args, **kwargs):
    return None


def _super_attr_of_traced(f, sup, name):
    """super() inside a method of an instance created in the trace: look up past `sup.cls` in its MRO."""
    mro = sup.obj.cls.__mro__
    for klass in mro[mro.index(sup.cls) + 1:]:
        if name not in vars(klass):
            continue
        attr = vars(klass)[name]
        if klass is object and name == "__init__":
            return V.Partial(V.Known(_object_init), [sup.obj], {})
        if isinstance(attr, types.FunctionType):
            return V.Partial(V.Known(attr), [sup.obj], {})
        if isinstance(attr, property):
            return call(f, V.Known(attr.fget), [sup.obj], {})
        return _known_result(attr)
    raise UserError(AttributeError(f"'super' object has no attribute {name!r}"))


def _super_attr(f, sup, name):
    if isinstance(sup.obj, V.DataObject):
        return _super_attr_of_traced(f, sup, name)
    target = sup.obj.value if isinstance(sup.obj, V.Known) else None
    if target is None:
        raise GraphBreak("super() of a traced value")
    try:
        attr = getattr(super(sup.cls, target), name)
    except AttributeError as e:
        raise UserError(e) from e
    if isinstance(attr, types.MethodType):
        return V.Known(attr)
    if isinstance(attr, types.BuiltinMethodType) and getattr(attr, "__self__", None) is target:
        owner = next((k for k in type(target).__mro__ if k.__module__ == "builtins" and name in vars(k)), None)
        if owner is not None:
            return V.Method(V.Known(target, sup.obj.source), f"{owner.__name__}.{name}")
    return _known_result(attr)


READ_ONLY = {"get", "keys", "values", "items", "__getitem__", "__contains__", "__len__", "count", "index"}
BUILTIN_CONTAINERS = {"dict", "list", "tuple", "str", "set", "frozenset"}


def read_only_call(f, receiver, qualname, args):
    """`d.get(k)` and similar on a container from the caller's world: read now, guarded by reading again."""
    owner, _, name = qualname.rpartition(".")
    if receiver.source is None or owner not in BUILTIN_CONTAINERS or name not in READ_ONLY:
        return None
    values = [python_value(f, a, qualname) for a in args]
    if not all(isinstance(v, (str, int, float, bool, type(None))) for v in values):
        return None
    result = _run_python(getattr(getattr(builtins, owner), name), receiver.value, *values)
    call_src = S.Src(f"__import__('builtins').{qualname}({receiver.source.code}"
                     f"{''.join(', ' + repr(v) for v in values)})")
    return f.trace.wrap(result, call_src)


def store_attr(f, obj, name, value):
    """`obj.name = value` (value None: `del obj.name`) on an object from the caller's world: recorded, replayed
    after the graph runs."""
    if isinstance(obj, V.DataObject) and value is not None:
        dataobjects.set_attr(obj, name, value)
        return
    if not (isinstance(obj, V.Known) and obj.source is not None) or isinstance(obj.value, type) or \
            name.startswith("__"):
        raise GraphBreak(f"assignment to attribute {name!r} of a {obj.python_type().__name__}",
                         hint="the assignment runs in Python")
    if isinstance(obj.value, torch.nn.Module) and name in obj.value.__dict__.get("_parameters", {}):
        raise GraphBreak(f"assignment to parameter {name!r}", hint="the assignment runs in Python")
    writes = f.trace.attr_writes
    writes.set(obj, name, writes.DELETED if value is None else value)


def _known_attr(f, obj, name):
    written = f.trace.attr_writes.get(obj, name)
    if written is not None:
        if written[2] is f.trace.attr_writes.DELETED:
            raise UserError(AttributeError(name))
        return written[2]
    value = obj.value
    if isinstance(value, torch.nn.Module):
        return _module_attr(f, obj, name)
    static = _static_lookup(type(value), name)
    if isinstance(static, property) and static.fget is not None and name not in getattr(value, "__dict__", {}):
        return call(f, V.Known(static.fget), [obj], {})     # traced, not run: it may build a fresh object
    try:
        attr = getattr(value, name)
    except AttributeError as e:
        raise UserError(e) from e
    if isinstance(attr, (types.MethodType, types.BuiltinMethodType)) and getattr(attr, "__self__", None) is value:
        return V.Method(obj, name) if not isinstance(attr, types.MethodType) else V.Known(attr)
    if obj.source is not None and not isinstance(value, types.ModuleType) or (
            isinstance(value, types.ModuleType) and obj.source is not None and not _is_library(value)):
        return f.trace.wrap(attr, S.attr(obj.source, name))
    return _known_result(attr) if not isinstance(attr, torch.Tensor) else \
        f.trace.wrap(attr, S.attr(obj.source, name)) if obj.source else _known_result(attr)


def _static_lookup(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def _is_library(module) -> bool:
    name = module.__name__.split(".")[0]
    return name in ("torch", "math", "operator", "builtins", "functools", "itertools", "collections",
                    "typing", "numbers", "warnings", "os", "sys")


def _module_attr(f, obj, name):
    m = obj.value
    d = m.__dict__
    src = S.attr(obj.source, name) if obj.source is not None else None
    for table in ("_parameters", "_buffers"):
        if name in d.get(table, {}):
            value = d[table][name]
            if value is None:
                return V.Known(None)
            if src is None:
                raise Unsupported("a parameter of a module the trace cannot reach by a source")
            return f.trace.wrap(value, S.module_entry(obj.source, table, name), static=True)
    if name in d.get("_modules", {}):
        sub = d["_modules"][name]
        return f.trace.wrap(sub, S.module_entry(obj.source, "_modules", name)) if src is not None else V.Known(sub)
    if name in d:
        return f.trace.wrap(d[name], src) if src is not None else _known_result(d[name])
    attr = getattr(type(m), name, None)
    if isinstance(attr, property):
        return call(f, V.Known(attr.fget), [obj], {})
    if isinstance(attr, types.FunctionType):
        return V.Known(types.MethodType(attr, m)) if src is None else V.Known(getattr(m, name), None)
    try:
        value = getattr(m, name)
    except AttributeError as e:
        raise UserError(e) from e
    return f.trace.wrap(value, src) if src is not None else _known_result(value)


# ---------------------------------------------------------------- calls
def call(f, fn, args, kwargs):
    if isinstance(fn, V.Method):
        return call_method(f, fn.receiver, fn.name, args, kwargs)
    if isinstance(fn, V.Function):
        return inline_made_function(f, fn, args, kwargs)
    if isinstance(fn, V.GradModeExit):
        f.trace.set_grad_enabled(fn.restore)
        return V.Known(None)
    if isinstance(fn, V.Partial):
        return call(f, fn.fn, list(fn.args) + list(args), {**fn.kwargs, **kwargs})
    if isinstance(fn, V.Known):
        return call_known(f, fn, args, kwargs)
    raise GraphBreak(f"call of a {fn.python_type().__name__}")


def call_known(f, fn_vt, args, kwargs):
    fn = fn_vt.value
    from .builtins_table import BUILTINS, CONSTANT_FOLD, GRAD_MODE
    handler = _lookup(BUILTINS, fn)
    if handler is not None:
        return handler(f, *args, **kwargs)
    if isinstance(fn, (operator.itemgetter, operator.attrgetter)) and len(args) == 1 and not kwargs:
        from .builtins_table import call_getter
        return call_getter(f, fn, args[0])
    if _lookup(GRAD_MODE, fn) is not None:
        return GRAD_MODE[fn](f, args, kwargs)
    if _lookup(CONSTANT_FOLD, fn) is not None:
        return V.Known(CONSTANT_FOLD[fn](*args))
    if isinstance(fn, torch.nn.Module):
        return call_module(f, fn_vt, args, kwargs)
    if is_torch_op(fn):
        return torch_call(f, fn, args, kwargs)
    if isinstance(fn, types.MethodType) and fn.__func__ in MODULE_WALKS:
        return module_walk(f, fn, args, kwargs)
    if isinstance(fn, types.MethodType):
        self_vt = f.trace.by_identity.get(id(fn.__self__)) or V.Known(fn.__self__)
        return call(f, V.Known(fn.__func__), [self_vt] + list(args), kwargs)
    if isinstance(fn, types.FunctionType):
        return inline_function(f, fn, fn_vt, args, kwargs)
    if isinstance(fn, type) and issubclass(fn, tuple) and hasattr(fn, "_fields"):
        return V.NamedTuple(_bind_namedtuple(fn, args, kwargs), cls=fn)
    if dataobjects.is_traceable_dataclass(fn):
        return dataobjects.construct(f, fn, args, kwargs)
    if dataobjects.is_plain_class(fn):
        return dataobjects.construct_plain(f, fn, args, kwargs)
    if isinstance(fn, (types.BuiltinMethodType, types.MethodWrapperType)) and _pure_receiver(fn):
        return V.Known(_run_python(fn, *[python_value(f, a, fn.__name__) for a in args],
                                   **{k: python_value(f, v, fn.__name__) for k, v in kwargs.items()}))
    raise GraphBreak(f"call to {_name_of(fn)} is not traceable",
                     hint="it runs in Python between two graphs")


def _lookup(table, fn):
    try:
        return table.get(fn)
    except TypeError:
        return None


def _pure_receiver(fn) -> bool:
    receiver = getattr(fn, "__self__", None)
    return isinstance(receiver, (str, int, float, tuple, bytes, frozenset, complex, torch.dtype, torch.device))


def _name_of(fn) -> str:
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return f"{mod}.{name}" if mod and mod != "builtins" else name


def _bind_namedtuple(cls, args, kwargs):
    fields = list(cls._fields)
    values = dict(zip(fields, args))
    values.update(kwargs)
    defaults = getattr(cls, "_field_defaults", {})
    return [values[n] if n in values else V.Known(defaults[n]) for n in fields]


def is_torch_op(fn) -> bool:
    if isinstance(fn, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return True
    mod = getattr(fn, "__module__", None) or ""
    if type(fn).__module__.startswith("torch._library") and hasattr(fn, "_opoverload"):
        return True
    if isinstance(fn, type):
        return False
    if isinstance(fn, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return mod.startswith("torch") or getattr(fn, "__self__", None) is torch._C._VariableFunctions \
            or isinstance(getattr(fn, "__self__", None), types.ModuleType) and \
            getattr(fn.__self__, "__name__", "").startswith("torch")
    if type(fn).__name__ in ("method_descriptor", "getset_descriptor", "wrapper_descriptor"):
        return getattr(fn, "__objclass__", None) in (torch._C.TensorBase, torch.Tensor)
    if isinstance(fn, types.FunctionType):
        return mod.startswith("torch.nn.functional") or mod == "torch.functional" or (
            mod.startswith("torch") and fn.__name__ in _TORCH_PY_OPS)
    return False


_TORCH_PY_OPS = {"_in_projection_packed", "_in_projection", "_canonical_mask", "_none_or_dtype",
                 "split", "norm", "stft", "einsum", "broadcast_tensors", "chain_matmul", "cdist",
                 "tensordot", "unique", "atleast_1d", "atleast_2d", "atleast_3d", "meshgrid", "block_diag",
                 "cartesian_prod", "lu", "unravel_index", "_get_softmax_dim"}


def torch_call(f, fn, args, kwargs):
    return f.trace.builder.call("call_function", fn, tuple(args), kwargs)


def call_method(f, receiver, name, args, kwargs):
    from .builtins_table import container_method, tensor_method
    if isinstance(receiver, V.Tensor):
        return tensor_method(f, receiver, name, args, kwargs)
    if isinstance(receiver, V.DataObject):
        return dataobjects.call_method(f, receiver, name, args, kwargs)
    if isinstance(receiver, V.Known) and "." in name:       # a builtin method found through super()
        result = read_only_call(f, receiver, name, args) if not kwargs else None
        if result is None:
            raise GraphBreak(f"call to {name} is not traceable")
        return result
    if isinstance(receiver, V.Known):
        if isinstance(receiver.value, set) and receiver.source is None and name in SET_MUTATORS:
            f.trace.mutated.append(receiver)
            values = [python_value(f, a, f"set.{name}") for a in args]
            return V.Known(getattr(receiver.value, name)(*values))
        return call(f, V.Known(getattr(receiver.value, name)), args, kwargs)
    return container_method(f, receiver, name, args, kwargs)


SET_MUTATORS = {"add", "discard", "update", "remove", "clear"}

_M = torch.nn.Module
MODULE_WALKS = {_M.parameters: ("named_parameters", False), _M.named_parameters: ("named_parameters", True),
                _M.buffers: ("named_buffers", False), _M.named_buffers: ("named_buffers", True),
                _M.modules: ("named_modules", False), _M.named_modules: ("named_modules", True),
                _M.children: ("named_children", False), _M.named_children: ("named_children", True)}


def module_walk(f, method, args, kwargs):
    """`m.parameters()`, `m.named_modules()`, ...: the items, each tracked with its attribute path as source."""
    module = method.__self__
    owner = f.trace.by_identity.get(id(module))
    if owner is None or owner.source is None:
        raise GraphBreak(f"{method.__name__}() of a module the trace cannot reach by a source")
    named, with_names = MODULE_WALKS[method.__func__]
    py_args = [python_value(f, a, method.__name__) for a in args]
    py_kwargs = {k: python_value(f, v, method.__name__) for k, v in kwargs.items()}
    items = []
    for name, value in getattr(module, named)(*py_args, **py_kwargs):
        src = owner.source
        for part in name.split(".") if name else []:
            src = S.attr(src, part)
        vt = f.trace.wrap(value, src, static=isinstance(value, torch.Tensor))
        items.append(V.Tuple([V.Known(name), vt]) if with_names else vt)
    return V.Iterator(items)


def call_module(f, module_vt, args, kwargs):
    m = module_vt.value
    if (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
            or torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks):
        raise GraphBreak(f"module {type(m).__name__} has hooks", hint="modules with hooks run in Python")
    forward = type(m).forward
    return call(f, V.Known(forward), [module_vt] + list(args), kwargs)


def inline_function(f, fn, fn_vt, args, kwargs):
    sig = _signature(fn)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise UserError(e) from e
    locals_ = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            value = V.Tuple(list(value))
        elif kind == inspect.Parameter.VAR_KEYWORD:
            value = V.Dict(dict(value))
        locals_[name] = value
    for name, p in sig.parameters.items():
        if name not in locals_:
            if p.kind == inspect.Parameter.VAR_POSITIONAL:
                locals_[name] = V.Tuple([])
            elif p.kind == inspect.Parameter.VAR_KEYWORD:
                locals_[name] = V.Dict({})
            else:
                locals_[name] = _default(f, fn, fn_vt, name, p.default)
    cells = {}
    code = fn.__code__
    for i, name in enumerate(code.co_freevars):
        contents = fn.__closure__[i].cell_contents if _cell_filled(fn.__closure__[i]) else None
        src = S.Src(f"{fn_vt.source.code}.__closure__[{i}].cell_contents") if fn_vt.source is not None else None
        if f.parent is None and f.trace.fn is fn and src is None:
            src = S.closure(i)
        vt = None if contents is None else (f.trace.wrap(contents, src) if src is not None
                                            else _known_or_wrap(f, contents))
        cells[name] = V.Cell(vt, src)
    return f.inline(code, fn.__globals__, locals_, cells)


def _known_or_wrap(f, value):
    known = f.trace.by_identity.get(id(value))
    if known is not None:
        return known
    return _known_result(value)


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _default(f, fn, fn_vt, name, value):
    if isinstance(value, torch.Tensor):
        src = S.Src(f"{fn_vt.source.code}.__defaults__") if fn_vt.source is not None else None
        if src is None:
            raise Unsupported("a tensor default argument of a function without a source")
        index = list(_signature(fn).parameters).index(name) - (fn.__code__.co_argcount - len(fn.__defaults__))
        return f.trace.wrap(value, S.item(src, index))
    return V.Known(value)


def _signature(fn):
    return inspect.signature(fn, follow_wrapped=False)


def _code_argnames(code) -> list[str]:
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    return list(code.co_varnames[:n])


def inline_made_function(f, fn: V.Function, args, kwargs):
    real = types.FunctionType(fn.code, fn.globals, fn.name, tuple(None for _ in fn.defaults) or None,
                              tuple(types.CellType() for _ in fn.code.co_freevars) or None)
    real.__kwdefaults__ = {k: None for k in fn.kwdefaults} or None
    sig = inspect.signature(real)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise UserError(e) from e
    params = list(sig.parameters.values())
    real_names = dict(zip((p.name for p in params), _code_argnames(fn.code)))   # inspect renames `.0`
    locals_ = {real_names[k]: v for k, v in bound.arguments.items()}
    positional_with_defaults = [p for p in params if p.default is not inspect.Parameter.empty
                                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for p, d in zip(positional_with_defaults, fn.defaults):
        locals_.setdefault(real_names[p.name], d)
    for p in params:
        name = real_names[p.name]
        if p.kind == p.VAR_POSITIONAL:
            locals_[name] = V.Tuple(list(locals_.get(name, ())))
        elif p.kind == p.VAR_KEYWORD:
            locals_[name] = V.Dict(dict(locals_.get(name, {})))
        elif p.kind == p.KEYWORD_ONLY and name not in locals_:
            if p.name not in fn.kwdefaults:
                raise UserError(TypeError(f"{fn.name}() missing keyword-only argument {p.name!r}"))
            locals_[p.name] = fn.kwdefaults[p.name]
    cells = dict(zip(fn.code.co_freevars, fn.closure))
    return f.inline(fn.code, fn.globals, locals_, cells)
