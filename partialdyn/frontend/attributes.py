"""Attribute semantics: `obj.name` and `obj.name = value` on trackers.

The `attribute` rules of constants and objects, tensors, containers, symbols, functions and
`super()` are here (instances made in the trace, dict views and generators have theirs in
their own modules), and so are the `store_attribute` rules of constants and objects.

Tensor metadata is a constant or a graph node (`x.shape` stays symbolic); module
parameters, buffers and submodules are tracked with their attribute path as source;
properties are traced, not run; `super()` follows the MRO.  Writes to objects from the
caller's world are recorded and replayed after the graph runs.
"""
from __future__ import annotations

import collections
import ctypes
import sys
import types

import torch

from . import copies
from . import dataobjects
from . import protocol
from . import reads
from .. import sources
from .. import trackers
from ..errors import GraphBreak, Unsupported, UserError
from .side_effects import SideEffects

TENSOR_CONST_ATTRS = {"dtype", "device", "layout", "is_cuda", "is_sparse", "is_quantized", "is_meta",
                      "is_nested", "is_leaf", "requires_grad", "is_mkldnn", "is_complex_attr"}


@protocol.register("attribute", trackers.Tensor)
def _tensor_attr(f, t, name):
    fake = t.fake
    if name in ("shape",):
        return tensor_size(f, t)
    if name == "is_leaf":
        return guarded_flag(f, t, "is_leaf", fake.is_leaf)
    if name in TENSOR_CONST_ATTRS:
        return trackers.Known(getattr(fake, name))
    if name == "ndim":
        return trackers.Known(fake.dim())
    if name in ("T", "mT", "H", "mH", "real", "imag"):
        return f.trace.builder.call("call_function", getattr, (t, trackers.Known(name)), {})
    if name in ("grad", "data", "_version", "grad_fn"):
        raise GraphBreak(f"Tensor.{name} is not traced")
    if callable(getattr(torch.Tensor, name, None)):
        return trackers.Method(t, name)
    raise GraphBreak(f"Tensor attribute {name!r}")


def guarded_flag(f, t, expr: str, value: bool):
    """A flag the fake value answers but the tensor guard does not pin (`is_leaf`, `_is_view()`): for a tensor
    from the caller's world (or an op result that is that tensor itself) the guard reads it again."""
    if t.source is not None:
        f.trace.guards.tensor_flag(t.source, expr, value)
    return trackers.Known(value)


def tensor_size(f, t, dim=None):
    fake = t.fake
    builder = f.trace.builder

    def one(d):
        s = fake.size(d)
        if isinstance(s, torch.SymInt):
            if s.node.maybe_as_int() is not None:
                return trackers.Known(s.node.maybe_as_int())
            node = builder.graph.call_method("size", (t.node, d))
            node.meta["val"] = s
            return trackers.Sym(node, s)
        return trackers.Known(s)
    if dim is not None:
        return one(dim if dim >= 0 else dim + fake.dim())
    return trackers.Size([one(d) for d in range(fake.dim())])


@protocol.register("attribute", trackers.Known)
def _known_attr(f, obj, name):
    written = f.trace.side_effects.written(_owner_of_writes(f, obj), name)
    if written is not None:
        if written[2] is SideEffects.DELETED:
            raise UserError(AttributeError(name))
        return written[2]
    value = obj.value
    if obj.source is not None:
        _check_instance_dict(f, obj, name)
    if isinstance(value, torch.nn.Module):
        return _module_attr(f, obj, name)
    static = reads.static_lookup(type(value), name)
    if isinstance(static, property) and static.fget is not None:
        if obj.source is not None:
            reads.class_attribute(f, type(value), name)      # the property itself, looked up again
        return protocol.call(f, trackers.Known(static.fget), [obj], {})     # traced, not run: it may build a fresh object
    try:
        attr = getattr(value, name)
    except AttributeError as e:
        if obj.source is not None:
            f.trace.guards.absent(obj.source, name)          # the trace takes the missing branch
        raise UserError(e) from e
    if _is_backend_flags(value) and isinstance(attr, (bool, int, float, str, type(None))):
        f.trace.guards.backend_flag(value, name, attr)      # torch.backends.cudnn.enabled & co: global state
        return trackers.Known(attr)
    if attr is sys.modules:
        return reads.module_registry(f)
    if isinstance(attr, types.MethodType) and (attr.__self__ is value or attr.__self__ is type(value)):
        return reads.bound_method(f, obj, name, attr)
    if isinstance(attr, types.BuiltinMethodType) and getattr(attr, "__self__", None) is value:
        return trackers.Method(obj, name)
    if obj.source is not None and not (isinstance(value, types.ModuleType) and reads.is_library(value)):
        return f.trace.wrap_part(obj, attr, sources.attr(obj.source, name))
    return reads.known_result(attr) if not isinstance(attr, torch.Tensor) else \
        f.trace.wrap(attr, sources.attr(obj.source, name)) if obj.source else reads.known_result(attr)


def _owner_of_writes(f, obj):
    """The tracker the trace's writes to `obj`'s attributes are logged on: the globals for the module whose
    globals the traced function has (`global K; K = 5` then `this_module.K`)."""
    value = obj.value
    if isinstance(value, types.ModuleType) and vars(value) is f.trace.globals:
        return f.trace.globals_owner
    return obj


def _instance_dict(f, value):
    """The tracker of `value.__dict__` when the trace holds that dict as a container (read as `obj.__dict__`,
    or handed to a resume function after `vars(obj)` broke), else None."""
    return reads.held_dict(f, _existing_instance_dict(value))


def _existing_instance_dict(value):
    """`value.__dict__` if it has one, without making one: an object whose dict lives in a slot of its own (a
    positive `__dictoffset__`: a function, a functools.partial) makes it on the first read, which a partial
    shows (partial(p, ...) flattens p only while it has none), so the slot is read directly; an instance of a
    user class (a dict the interpreter manages) is asked, as a dict made on read changes nothing there."""
    offset = type(value).__dictoffset__
    if offset > 0 and not ctypes.c_void_p.from_address(id(value) + offset).value:
        return None
    try:
        return object.__getattribute__(value, "__dict__")
    except Exception:
        return None


def _check_instance_dict(f, obj, name):
    """The trace keeps the attribute writes to an object of the caller's world (replayed after the graph) apart
    from its `__dict__` held as a dict (items changed in the trace, synced after the graph): `obj.name` read after
    `obj.__dict__[name] = v` would miss the change (the old value was read), so it breaks and runs in Python after
    the change.  The other order, `obj.__dict__` read after `obj.name = v`, breaks where the dict is wrapped
    (tracer.Trace.wrap), however it is reached."""
    if name == "__dict__":
        return
    if reads.changed_in_trace(f, _instance_dict(f, obj.value)):
        raise GraphBreak(f"attribute {name!r} of an object whose __dict__ the trace changed",
                         hint="it is read in Python, after the change")


def _is_backend_flags(value) -> bool:
    """A torch.backends module or flag holder (`torch.backends.cuda.matmul`): its attributes are global state."""
    name = value.__name__ if isinstance(value, types.ModuleType) else type(value).__module__
    return isinstance(name, str) and name.startswith("torch.backends")


def _module_attr(f, obj, name):
    """`m.name` as nn.Module resolves it: parameters, buffers and submodules from their tables (an entry of
    None is a value, guarded like one), then the instance dict, then the class; a miss is guarded ABSENT."""
    m = obj.value
    d = m.__dict__
    src = sources.attr(obj.source, name) if obj.source is not None else None
    for table in ("_parameters", "_buffers"):
        if name in d.get(table, {}):
            value = d[table][name]
            if src is None:
                if value is None:
                    return trackers.Known(None)
                raise Unsupported("a parameter of a module the trace cannot reach by a source")
            return f.trace.wrap(value, sources.module_entry(obj.source, table, name), static=True)
    if name in d.get("_modules", {}):
        sub = d["_modules"][name]
        return f.trace.wrap(sub, sources.module_entry(obj.source, "_modules", name), frame_input=obj.by_contents) \
            if src is not None else trackers.Known(sub)
    if name in d:       # read by contents as the module is (a partial made anew with it), numbers constants
        return f.trace.wrap(d[name], src, contents=obj.by_contents) if src is not None else \
            reads.known_result(d[name])
    if src is None:
        found = _class_attr_of_sourceless_module(f, obj, name)
        if found is not None:
            return found
    attr = getattr(type(m), name, None)
    if isinstance(attr, property):
        if obj.source is not None:
            reads.class_attribute(f, type(m), name)
        return protocol.call(f, trackers.Known(attr.fget), [obj], {})
    if isinstance(reads.static_lookup(type(m), name), types.FunctionType):
        return reads.bound_method(f, obj, name, types.MethodType(attr, m))
    try:
        value = getattr(m, name)
    except AttributeError as e:
        if obj.source is not None:
            f.trace.guards.absent(obj.source, name)
        raise UserError(e) from e
    if isinstance(value, types.MethodType) and value.__self__ is type(m):
        return reads.bound_method(f, obj, name, value)          # a classmethod: a new bound method per read
    return f.trace.wrap(value, src) if src is not None else reads.known_result(value)


def _class_attr_of_sourceless_module(f, obj, name):
    """`m.name` found on the class of a module the trace holds without a source (one built in the trace): the
    class entry is read through the guarded MRO lookup (a method, a property or a constant patched on the class
    later, `kernel_layer_name` on transformers' activations, `_gelu_python` bound in GELUActivation.__init__,
    recompiles; so does a name that appears).  None: another kind of entry (a classmethod, a descriptor), read
    by getattr after this guard."""
    entry = reads.class_attribute(f, type(obj.value), name)
    if entry is None or not isinstance(entry, trackers.Known):
        return entry          # None: a miss, guarded, raised by getattr as nn.Module.__getattr__ raises it
    raw = entry.value
    if isinstance(raw, property):
        if raw.fget is None:
            return None
        return protocol.call(f, trackers.Known(raw.fget), [obj], {})
    if isinstance(raw, types.FunctionType):
        return trackers.Known(types.MethodType(raw, obj.value))
    if copies.is_immutable_data(raw):
        return entry
    return None


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
            return trackers.Partial(trackers.Known(_object_init), [sup.obj], {})
        if isinstance(attr, (types.FunctionType,) + dataobjects.BUILTIN_METHODS):
            return trackers.Partial(trackers.Known(attr), [sup.obj], {})     # bound: a call keeps its receiver
        if isinstance(attr, property):
            return protocol.call(f, trackers.Known(attr.fget), [sup.obj], {})
        if hasattr(type(attr), "__get__"):
            return dataobjects.through_get(f, attr, sup.obj)
        return reads.known_result(attr)
    # a miss no guard keeps a miss (the classes of the MRO may gain the name): not traceable into a handler
    raise UserError(AttributeError(f"'super' object has no attribute {name!r}"), traceable=False)


@protocol.register("attribute", trackers.Super)
def _super_attr(f, sup, name):
    if isinstance(sup.obj, trackers.DataObject):
        return _super_attr_of_traced(f, sup, name)
    target = sup.obj.value if isinstance(sup.obj, trackers.Known) else None
    if target is None:
        raise GraphBreak("super() of a traced value")
    try:
        attr = getattr(super(sup.cls, target), name)
    except AttributeError as e:
        raise UserError(e, traceable=False) from e     # unguarded miss, as above
    if isinstance(attr, types.MethodType):
        return trackers.Known(attr)
    if isinstance(attr, types.BuiltinMethodType) and getattr(attr, "__self__", None) is target:
        owner = next((k for k in type(target).__mro__ if k.__module__ == "builtins" and name in vars(k)), None)
        if owner is not None:
            return trackers.Method(trackers.Known(target, sup.obj.source), name, owner)
    return reads.known_result(attr)


@protocol.register("store_attribute", trackers.Known)
def _store_known_attr(f, obj, name, value):
    """`obj.name = value` (value None: `del obj.name`) on an object from the caller's world: recorded, replayed
    after the graph runs (on a copy made in the trace: done now, copies.py)."""
    if obj.owned:
        copies.store_attr(f, obj, name, value)
        return
    if obj.source is None or isinstance(obj.value, type) or name.startswith("__"):
        _no_attribute_store(f, obj, name, value)
    if isinstance(obj.value, types.ModuleType):
        # its attributes are the globals of its functions, which the trace reads from their globals dict
        raise GraphBreak(f"assignment to attribute {name!r} of module {obj.value.__name__}",
                         hint="the assignment runs in Python")
    if isinstance(obj.value, torch.nn.Module) and name in obj.value.__dict__.get("_parameters", {}):
        raise GraphBreak(f"assignment to parameter {name!r}", hint="the assignment runs in Python")
    if dataobjects.data_descriptor(type(obj.value), name) is not None:
        raise GraphBreak(f"assignment to {name!r} through a data descriptor (a property setter or __set__)",
                         hint="the assignment runs in Python")
    if _instance_dict(f, obj.value) is not None:
        # the dict the trace holds would not see the write (replayed after the graph): see _check_instance_dict
        raise GraphBreak(f"assignment to attribute {name!r} of an object whose __dict__ the trace holds as a dict",
                         hint="the assignment runs in Python")
    f.trace.side_effects.write(obj, name, SideEffects.DELETED if value is None else value)


@protocol.register("store_attribute", trackers.VT)
def _no_attribute_store(f, obj, name, value):
    raise GraphBreak(f"assignment to attribute {name!r} of a {obj.python_type().__name__}",
                     hint="the assignment runs in Python")


protocol.register("attribute", trackers.Tuple, trackers.List, trackers.Sym)(protocol.method_of_type)


@protocol.register("attribute", trackers.Dict)
def _dict_attr(f, obj, name):
    """A name an OrderedDict subclass defines beyond OrderedDict: a function is a method bound to the dict
    tracker (inlined), a plain value is read like any class attribute (both guarded through the class lookup);
    another descriptor is read in Python."""
    if obj.cls is dict or hasattr(collections.OrderedDict, name) or not hasattr(obj.cls, name):
        return protocol.method_of_type(f, obj, name)
    entry = reads.class_attribute(f, obj.cls, name)
    raw = entry.value if isinstance(entry, trackers.Known) else None
    if isinstance(raw, types.FunctionType):
        return trackers.Partial(trackers.Known(raw), [obj], {})
    if hasattr(type(raw), "__get__"):
        raise GraphBreak(f"attribute {name!r} of a {obj.cls.__name__}", hint="it is read in Python")
    return entry


@protocol.register("attribute", trackers.NamedTuple)
def _named_field(f, obj, name):
    if hasattr(obj.cls, "_fields") and name in obj.cls._fields:
        return obj.items[obj.cls._fields.index(name)]
    if name in getattr(obj.cls, "__match_args__", ()):
        return obj.items[obj.cls.__match_args__.index(name)]        # torch.return_types (structseq) fields
    return protocol.method_of_type(f, obj, name)


@protocol.register("attribute", trackers.Function)
def _function_attr(f, fn, name):
    if name in ("__name__", "__qualname__"):
        return trackers.Known(fn.name)
    return _no_attribute(f, fn, name)


@protocol.register("attribute", trackers.VT)
def _no_attribute(f, obj, name):
    raise GraphBreak(f"attribute {name!r} of a {obj.python_type().__name__}")
