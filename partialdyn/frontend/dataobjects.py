"""Dataclass and plain-class instances created by traced code (model outputs, small records).

A dataclass is built from its constructor arguments without running `__init__`;
a plain class (its instances are just a __dict__) by inlining its `__init__` on
an empty instance.  Fields are trackers, methods are inlined with the tracker as
`self`; at a graph break or return a dataclass is rebuilt by calling the class,
a plain instance without its `__init__` (rebuilt.rebuild_plain).  Dataclasses
that are also dicts (transformers' ModelOutput) get the dict view their
`__post_init__` would build: the fields that are not None, in order; the methods the class takes from
dict or OrderedDict answer from it (`mapping_method`: live keys/values/items views, iteration, `in`).
All the protocol rules of `trackers.DataObject` (attribute, subscript, iterate, length, contains, call,
call_method, store_attribute, store_subscript) are here.

A torch.nn module without parameters or buffers (a loss, an activation, Dropout, ...) built in
traced code is constructed for real at trace time, from constructor arguments that are constants
of the trace (or guarded values), and tracked as an *owned* object (copies.py): no source, so
nothing guards its identity and its attributes are constants of the trace; it is called like any
module, and wherever it outlives the trace it is rebuilt as a fresh copy per call.  A user subclass
with an `__init__` of its own (transformers' GELUActivation) is made empty and owned, and its
`__init__` is traced on it (construct_module_with_init): nn.Module.__init__ runs on it for real, its
attribute assignments set constants and functions on it (copies.store_attr), anything else breaks.
"""
from __future__ import annotations

import abc
import collections
import collections.abc
import dataclasses
import operator
import types
import warnings

import torch

from . import copies
from . import protocol
from . import reads
from .. import trackers
from ..errors import GraphBreak, UserError, run_python


def is_traceable_dataclass(cls) -> bool:
    """A dataclass `construct` builds from its fields: its `__init__` is the one dataclasses wrote, and it has no
    `__post_init__`; or a model output (construct models its `__post_init__` and transformers' wrapper of that
    `__init__`)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return False
    return _is_mapping_output(cls) or getattr(cls, "__post_init__", None) is None and _generated_init(cls)


def _generated_init(cls) -> bool:
    """The `__init__` `cls` uses is one dataclasses generated (exec'd source), not one a class wrote: dataclasses
    keeps an `__init__` the class body defines, and `init=False` keeps the base class's."""
    init = reads.static_lookup(cls, "__init__")
    return isinstance(init, types.FunctionType) and init.__code__.co_filename == "<string>"


_HEAPTYPE = 1 << 9      # Py_TPFLAGS_HEAPTYPE: a class made by a class statement, not a C type


def is_record_class(cls) -> bool:
    """A dataclass `construct` cannot build (an `__init__` of its own, or a `__post_init__`), frozen or with
    `__slots__` or not (torch's pytree TreeSpec: frozen, slots, an `__init__` that sets its fields with
    `object.__setattr__` and calls `__post_init__`): built like a plain class, its `__init__` traced on an empty
    instance.  Its classes are Python classes (object aside) with Python's own `__new__` and attribute lookup."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or _is_mapping_output(cls):
        return False
    return (type(cls) in (type, abc.ABCMeta) and cls.__new__ is object.__new__
            and cls.__getattribute__ is object.__getattribute__ and not hasattr(cls, "__getattr__")
            and isinstance(reads.static_lookup(cls, "__init__"), types.FunctionType)
            and all(k is object or k.__flags__ & _HEAPTYPE for k in cls.__mro__))


def _is_mapping_output(cls) -> bool:
    return issubclass(cls, dict) and any(k.__name__ == "ModelOutput" for k in cls.__mro__)


def construct(f, cls, args, kwargs):
    fields = [fl for fl in dataclasses.fields(cls) if fl.init]
    if len(args) > len(fields):
        raise UserError(TypeError(f"{cls.__name__}() takes {len(fields)} positional arguments"))
    values = dict(zip((fl.name for fl in fields), args))
    for name, vt in kwargs.items():
        if name in values or name not in {fl.name for fl in fields}:
            raise UserError(TypeError(f"{cls.__name__}() got an unexpected or repeated argument {name!r}"))
        values[name] = vt
    for fl in fields:
        if fl.name in values:
            continue
        if fl.default is not dataclasses.MISSING:
            values[fl.name] = trackers.Known(fl.default)
        elif fl.default_factory in (list, dict, tuple):
            values[fl.name] = {list: trackers.List([]), dict: trackers.Dict({}), tuple: trackers.Tuple([])}[fl.default_factory]
        else:
            raise GraphBreak(f"dataclass {cls.__name__} field {fl.name!r} has a default factory")
    if _is_mapping_output(cls) and _maybe_pairs(cls, values):
        raise GraphBreak(f"{cls.__name__} built from its first field alone, which may hold key-value pairs",
                         hint="it is built in Python")
    obj = trackers.DataObject(cls, values)
    if _is_mapping_output(cls):
        # __post_init__ sets the dict part in the order of the fields, whatever the order of the arguments
        obj.mapping = {fl.name: values[fl.name] for fl in dataclasses.fields(cls)
                       if fl.name in values and not _is_none(values[fl.name])}
    return obj


def _maybe_pairs(cls, values) -> bool:
    """ModelOutput.__post_init__ takes a first field that is iterable (a dict, a list of (name, value) pairs),
    the other fields None, as the fields to set: not a tensor, a number or a string."""
    first, *rest = dataclasses.fields(cls)
    head = values.get(first.name, trackers.Known(None))
    if not all(_is_none(values.get(fl.name, trackers.Known(None))) for fl in rest) or _is_none(head):
        return False
    return not (isinstance(head, (trackers.Tensor, trackers.Sym)) or
                isinstance(head, trackers.Known) and isinstance(head.value, (bool, int, float, str, torch.Tensor)))


def is_plain_class(cls) -> bool:
    """A user class whose instances are just a __dict__: no metaclass, custom __new__/__setattr__/__getattr__,
    slots, or library base."""
    if not isinstance(cls, type) or type(cls) not in (type, abc.ABCMeta) or cls.__module__ in ("builtins",):
        return False
    if (cls.__module__ or "").startswith("torch") or "__slots__" in vars(cls):
        return False
    return (cls.__new__ is object.__new__ and cls.__setattr__ is object.__setattr__
            and cls.__getattribute__ is object.__getattribute__ and not hasattr(cls, "__getattr__")
            and all(b is object or b.__module__ not in ("builtins",) and not (b.__module__ or "").startswith("torch")
                    for b in cls.__mro__[1:]))


_CLASS_METADATA = {"__module__", "__qualname__", "__doc__", "__annotations__", "__firstlineno__",
                   "__static_attributes__", "__dict__", "__weakref__", "__orig_bases__", "__parameters__"}
_COPY_AND_BUILD_HOOKS = {"__init__", "__new__", "__setattr__", "__delattr__", "__getattr__", "__getattribute__",
                         "__deepcopy__", "__copy__", "__getstate__", "__setstate__", "__reduce__", "__reduce_ex__",
                         "__del__"}


def _classes_above_torch(cls):
    """The classes of `cls`'s MRO before the first one of torch.nn's modules (None if there is none): the code a
    user subclass adds to a torch.nn module."""
    if not (isinstance(cls, type) and type(cls) is type and issubclass(cls, torch.nn.Module)):
        return None
    above = []
    for klass in cls.__mro__:
        if (klass.__module__ or "").startswith("torch.nn.modules."):
            return above
        above.append(klass)
    return None


def _only_methods_and_constants(classes, allowed_hooks=()) -> bool:
    return all(
        name in allowed_hooks and isinstance(value, types.FunctionType) or name not in _COPY_AND_BUILD_HOOKS and (
            name in _CLASS_METADATA or isinstance(value, (types.FunctionType, staticmethod, classmethod))
            or copies.is_immutable_data(value))
        for klass in classes for name, value in vars(klass).items())


def is_torch_module_class(cls) -> bool:
    """A module class of torch.nn itself, or a subclass whose classes between it and torch.nn define only
    methods and immutable constants (transformers' SiLUActivation: a forward, and `kernel_layer_name = "SiLU"`
    from its kernel decorator): building one runs torch.nn's constructor alone, and the copy made where it
    outlives the trace is torch.nn's too.  A constant class attribute read from such a module is guarded through
    the class lookup (attributes._module_attr).  A mutable class attribute (read unguarded: a list could change
    under the trace), a property (its setter runs once in the build) or a hook of construction, attribute access
    or copying of its own keeps the class out: a candidate for construct_module."""
    above = _classes_above_torch(cls)
    return above is not None and _only_methods_and_constants(above)


def is_module_class_with_init(cls) -> bool:
    """The same, except that classes above torch.nn define an `__init__` (transformers' GELUActivation: it calls
    super().__init__() and sets `self.act = nn.functional.gelu`): a candidate for construct_module_with_init."""
    above = _classes_above_torch(cls)
    return bool(above) and any("__init__" in vars(k) for k in above) and \
        _only_methods_and_constants(above, allowed_hooks=("__init__",))


def construct_module(f, cls, args, kwargs):
    """`nn.CrossEntropyLoss(...)` in traced code: the module is built now, from constructor arguments that are
    immutable constants of the trace (a symbolic value is specialized and guarded by python_value); one that
    would hold parameters or buffers, or warns while it is built, is a graph break."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    py_args = [protocol.python_value(f, a, name) for a in args]
    py_kwargs = {k: protocol.python_value(f, v, name) for k, v in kwargs.items()}
    if not all(map(copies.is_immutable_data, [*py_args, *py_kwargs.values()])):
        raise GraphBreak(f"call to {name} is not traceable: a constructor argument is not a constant",
                         hint="it runs in Python between two graphs")
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            module = cls(*py_args, **py_kwargs)
        except Exception as e:
            raise UserError(e) from e
    if warned or any(True for _ in module.parameters()) or any(b is not None for b in module.buffers()):
        raise GraphBreak(f"call to {name} is not traceable: the module " +
                         ("warns when built" if warned else "has parameters or buffers"),
                         hint="build it outside the traced code")
    return _owned(f, module)


def _owned(f, module):
    made = trackers.Known(module, owned=True)        # fresh per call: rebuilt as a copy wherever it outlives the trace
    f.trace.owned.append(made)
    f.trace.by_identity[id(module)] = made     # its bound methods get this tracker as self
    return made


# what the build of a module made in the trace relies on in its class (looked up again by the guards)
_BUILD_LOOKUPS = ("__init__", "__new__", "__setattr__", "__getattribute__")
_MODULE_TABLES = ("_parameters", "_buffers", "_modules", "_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                  "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
                  "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def construct_module_with_init(f, cls, args, kwargs):
    """`GELUActivation()` in traced code, a module class with an `__init__` of its own: an empty instance is
    made now (object.__new__, as nn.Module's construction does) and tracked as an owned object, and the class's
    `__init__` is traced on it: nn.Module.__init__ reached from it runs on the instance (init_module), an
    attribute assignment sets a constant or a function on it (copies.store_attr, through nn.Module.__setattr__),
    anything else it does is traced as any code (writes to the caller's world are replayed).  What it cannot
    trace (a parameter, a buffer, a submodule or a hook registered, print ...) is a graph break at this call: the
    module is built in Python.  The lookups the build relies on (`__init__`, `__new__`, `__setattr__`,
    `__getattribute__`) are guarded through the class, so a patched class builds anew."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    init = None
    for hook in _BUILD_LOOKUPS:
        entry = reads.class_attribute(f, cls, hook)
        init = entry if hook == "__init__" else init
    if not (isinstance(init, trackers.Known) and isinstance(init.value, types.FunctionType)):
        raise GraphBreak(f"call to {name} is not traceable: its __init__ is not a Python function",
                         hint="it runs in Python between two graphs")
    made = _owned(f, object.__new__(cls))
    result = protocol.call(f, init, [made] + list(args), kwargs)
    if not (isinstance(result, trackers.Known) and result.value is None):
        raise UserError(TypeError("__init__() should return None, not "
                                  f"'{result.python_type().__name__}'"))
    module = made.value
    if "_parameters" not in vars(module):
        raise GraphBreak(f"call to {name} is not traceable: its __init__ does not call nn.Module.__init__",
                         hint="it runs in Python between two graphs")
    if any(vars(module).get(table) for table in _MODULE_TABLES):
        raise GraphBreak(f"call to {name} is not traceable: the module has parameters, buffers, submodules or "
                         f"hooks", hint="build it outside the traced code")
    return made


def init_module(f, module_vt, args, kwargs):
    """`super().__init__()` reaching nn.Module.__init__ on a module made in the trace: it only fills the
    instance's own tables (training, _parameters, hooks ...), so it runs now, on the trace-time instance; the
    class attribute it consults (`call_super_init`, which would go on to the next class of the MRO) is guarded."""
    module = module_vt.value
    flag = reads.class_attribute(f, type(module), "call_super_init")
    if not (isinstance(flag, trackers.Known) and flag.value is False):
        raise GraphBreak(f"nn.Module.__init__ of a {type(module).__name__} with call_super_init set",
                         hint="the module is built in Python")
    py_args = [protocol.python_value(f, a, "nn.Module.__init__") for a in args]
    py_kwargs = {k: protocol.python_value(f, v, "nn.Module.__init__") for k, v in kwargs.items()}
    f.trace.side_effects.mutate(module_vt)
    run_python(torch.nn.Module.__init__, module, *py_args, **py_kwargs)
    return trackers.Known(None)


def slot(f, cls, name):
    """The member descriptor of `cls`'s `__slots__` entry `name` (guarded through the class lookup), or None."""
    if not isinstance(reads.static_lookup(cls, name), types.MemberDescriptorType):
        return None
    return reads.class_attribute(f, cls, name).value


def set_field(f, obj: trackers.DataObject, name: str, value):
    """`object.__setattr__(obj, name, value)` (value None: `object.__delattr__`) on an instance made in the trace:
    its slot or its `__dict__` entry, past any `__setattr__` of its class (a frozen dataclass's); another data
    descriptor of the class would run its own `__set__`: in Python."""
    if slot(f, obj.cls, name) is None:
        if data_descriptor(obj.cls, name) is not None:
            raise GraphBreak(f"object.__setattr__ through the descriptor {name!r} of a {obj.cls.__name__}",
                             hint="it runs in Python")
        if reads.static_lookup(obj.cls, "__dict__") is reads.MISSING:
            raise UserError(AttributeError(f"{obj.cls.__name__!r} object has no attribute {name!r}"))
    f.trace.side_effects.mutate(obj)
    if value is not None:
        obj.fields[name] = value
    elif obj.fields.pop(name, None) is None:
        raise UserError(AttributeError(name))


def construct_plain(f, cls, args, kwargs):
    if getattr(cls, "__abstractmethods__", None):
        raise UserError(TypeError(f"Can't instantiate abstract class {cls.__name__}"))
    obj = trackers.DataObject(cls, {}, plain=True)
    if cls.__init__ is not object.__init__:
        result = protocol.call(f, trackers.Known(cls.__init__), [obj] + list(args), kwargs)
        if not (isinstance(result, trackers.Known) and result.value is None):
            raise UserError(TypeError("__init__() should return None"))
    elif args or kwargs:
        raise UserError(TypeError(f"{cls.__name__}() takes no arguments"))
    return obj


def data_descriptor(cls, name):
    """The class attribute `name` if it is a data descriptor (it takes precedence over the instance dict)."""
    attr = reads.static_lookup(cls, name)
    kind = type(attr)
    return attr if hasattr(kind, "__set__") or hasattr(kind, "__delete__") else None


_OBJECT_CLASS = vars(object)["__class__"]


@protocol.register("attribute", trackers.DataObject)
def get_attr(f, obj: trackers.DataObject, name: str):
    """An attribute of an instance made in the trace: a data descriptor of the class, else its own field, else
    the class attribute found along the MRO (guarded through that lookup, so a class attribute of None is a
    value, not a missing one).  A slot is a field (an unset one raises AttributeError, as in Python)."""
    if name == "__class__" and reads.static_lookup(obj.cls, name) is _OBJECT_CLASS:
        return trackers.Known(obj.cls)
    if slot(f, obj.cls, name) is not None:
        if name not in obj.fields:
            raise UserError(AttributeError(f"{obj.cls.__name__!r} object has no attribute {name!r}"))
        return obj.fields[name]
    if data_descriptor(obj.cls, name) is not None:
        descriptor = reads.class_attribute(f, obj.cls, name).value
        if isinstance(descriptor, property):
            if descriptor.fget is None:
                raise UserError(AttributeError(f"property {name!r} of {obj.cls.__name__!r} object has no getter"))
            return protocol.call(f, trackers.Known(descriptor.fget), [obj], {})
        return through_get(f, descriptor, obj)
    if name in obj.fields:
        return obj.fields[name]
    entry = reads.class_attribute(f, obj.cls, name)
    if entry is None:
        raise UserError(AttributeError(f"{obj.cls.__name__!r} object has no attribute {name!r}"))
    raw = entry.value if isinstance(entry, trackers.Known) else None
    if isinstance(raw, staticmethod):
        return trackers.Known(raw.__func__)
    if isinstance(raw, classmethod):
        return trackers.Known(types.MethodType(raw.__func__, obj.cls))
    if isinstance(raw, (types.FunctionType,) + BUILTIN_METHODS):
        return trackers.Method(obj, name)     # bound to the instance, as Python binds it: a call keeps its receiver
    return through_get(f, raw, obj) if hasattr(type(raw), "__get__") else entry


BUILTIN_METHODS = (types.MethodDescriptorType, types.WrapperDescriptorType)    # `OrderedDict.values`, `dict.__iter__`


def through_get(f, descriptor, obj: trackers.DataObject):
    """`obj.name` for a descriptor the class holds at `name`: what its `__get__` makes of it (traced)."""
    getter = getattr(type(descriptor), "__get__", None)
    if getter is None:
        return trackers.Known(descriptor)
    return protocol.call(f, trackers.Known(getter), [trackers.Known(descriptor), obj, trackers.Known(obj.cls)], {})


@protocol.register("store_attribute", trackers.DataObject)
def set_attr(f, obj: trackers.DataObject, name: str, value):
    """`obj.name = value` (value None: `del obj.name`), through a data descriptor of the class if there is one; a
    model output's field enters its dict part too (ModelOutput.__setattr__).  Anything else eager would do
    differently runs in Python (_assignment_modelled)."""
    if not _assignment_modelled(f, obj, name, value):
        raise GraphBreak(f"{'assignment to' if value is not None else 'deletion of'} attribute {name!r} of a "
                         f"{obj.cls.__name__}", hint="it runs in Python")
    if slot(f, obj.cls, name) is not None:
        return set_field(f, obj, name, value)
    f.trace.side_effects.mutate(obj)    # a break in the call that wrote it must not rebuild the half-changed object
    descriptor = data_descriptor(obj.cls, name)
    if descriptor is not None:
        method = (descriptor.fset if value is not None else descriptor.fdel) if isinstance(descriptor, property) \
            else getattr(type(descriptor), "__set__" if value is not None else "__delete__", None)
        if method is None:
            raise UserError(AttributeError(f"can't {'set' if value is not None else 'delete'} attribute {name!r}"))
        owner = [] if isinstance(descriptor, property) else [trackers.Known(descriptor)]
        protocol.call(f, trackers.Known(method), owner + [obj] + ([value] if value is not None else []), {})
        return
    if value is None:
        if name not in obj.fields:
            raise UserError(AttributeError(name))
        del obj.fields[name]
        return
    obj.fields[name] = value
    if obj.mapping is not None and not _is_none(value):
        obj.mapping[name] = value


def _is_none(vt) -> bool:
    return isinstance(vt, trackers.Known) and vt.value is None


def _assignment_modelled(f, obj: trackers.DataObject, name: str, value) -> bool:
    """`obj.name = value` (value None: `del`) does what set_attr does: the class's __setattr__ is object's, or
    ModelOutput's given one of the output's fields; the instance has a __dict__, a slot for the name, or a data
    descriptor of the class takes it."""
    setter = reads.class_attribute(f, obj.cls, "__setattr__" if value is not None else "__delattr__").value
    if obj.mapping is not None:       # None on a field in the dict part: eager keeps the entry, a rebuild would not
        return (value is not None and name in _field_names(obj.cls) and not (_is_none(value) and name in obj.mapping)
                and setter is _model_output_base(obj.cls).__setattr__)
    stored = reads.static_lookup(obj.cls, "__dict__") is not reads.MISSING or name in _field_names(obj.cls) or \
        data_descriptor(obj.cls, name) is not None
    return setter is (object.__setattr__ if value is not None else object.__delattr__) and stored


def _field_names(cls) -> set:
    return {fl.name for fl in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def _model_output_base(cls):
    return next(k for k in cls.__mro__ if k.__name__ == "ModelOutput")


@protocol.register("subscript", trackers.DataObject)
def get_item(f, obj: trackers.DataObject, index):
    if obj.mapping is None:
        return call_method(f, obj, "__getitem__", [index], {})
    key = protocol.python_value(f, index, "indexing")
    if isinstance(key, str):
        if key not in obj.mapping:
            raise UserError(KeyError(key))
        return obj.mapping[key]
    return operator.getitem(list(obj.mapping.values()), key)


@protocol.register("store_subscript", trackers.DataObject)
def set_item(f, obj: trackers.DataObject, index, value):
    """`output[key] = value` on a model output (ModelOutput.__setitem__: the dict entry, then the attribute) for a
    key that is one of its fields; anything else, and None (a dict entry a rebuild would not make), runs the
    class's __setitem__ in Python (a graph break)."""
    key = protocol.python_value(f, index, "item assignment") if obj.mapping is not None else None
    if not (isinstance(key, str) and key in _field_names(obj.cls)) or _is_none(value):
        raise GraphBreak(f"item assignment into a {obj.cls.__name__} (not one of its fields, or None)",
                         hint="the assignment runs in Python")
    f.trace.side_effects.mutate(obj)
    obj.mapping[key] = value
    obj.fields[key] = value


@protocol.register("call", trackers.DataObject)
def _call_instance(f, obj: trackers.DataObject, args, kwargs):
    return call_method(f, obj, "__call__", args, kwargs)


@protocol.register("call_method", trackers.DataObject)
def call_method(f, obj: trackers.DataObject, name, args, kwargs):
    entry = reads.class_attribute(f, obj.cls, name)     # a method patched on the class later is seen
    if obj.mapping is not None and isinstance(entry, trackers.Known) and is_mapping_method(entry.value):
        return mapping_method(f, obj, name, args, kwargs)
    method = getattr(obj.cls, name, None)
    if method is None or not callable(method) or getattr(method, "__module__", "") == "builtins":
        raise GraphBreak(f"method {name!r} of {obj.cls.__name__}")
    return protocol.call(f, trackers.Known(method), [obj] + list(args), kwargs)


def is_mapping_method(method) -> bool:
    """A method of dict or OrderedDict itself, which a model output's dict part answers (its Python overrides,
    ModelOutput.get or __contains__, are inlined and reach these through super())."""
    return isinstance(method, BUILTIN_METHODS) and method.__objclass__ in (dict, collections.OrderedDict)


def mapping_method(f, obj: trackers.DataObject, name, args, kwargs):
    """dict's or OrderedDict's own `name` on a model output made in the trace: its dict part is `obj.mapping`
    (the fields that are not None, in the order they were set)."""
    if kwargs or name in ("keys", "values", "items", "__len__", "__iter__") and args:
        raise GraphBreak(f"method {name!r} of a {obj.cls.__name__} with these arguments")
    if name in ("keys", "values", "items"):
        return trackers.DictView(obj, name)
    if name == "__len__":
        return trackers.Known(len(obj.mapping))
    if name == "__iter__":
        return trackers.Iterator([trackers.Known(k) for k in obj.mapping])
    if name in ("get", "__contains__", "__getitem__") and args:
        key = protocol.python_value(f, args[0], f"{obj.cls.__name__}.{name}")
        if name == "get":
            return obj.mapping.get(key, args[1] if len(args) > 1 else trackers.Known(None))
        if name == "__contains__":
            return trackers.Known(key in obj.mapping)
        if key not in obj.mapping:
            raise UserError(KeyError(key))
        return obj.mapping[key]
    raise GraphBreak(f"method {name!r} of a {obj.cls.__name__}", hint="it runs in Python on the output")


@protocol.register("length", trackers.DataObject)
def _length(f, obj: trackers.DataObject):
    return call_method(f, obj, "__len__", [], {})


@protocol.register("contains", trackers.DataObject)
def _contains(f, obj: trackers.DataObject, item) -> bool:
    if reads.static_lookup(obj.cls, "__contains__") is reads.MISSING:
        raise GraphBreak(f"`in` on a {obj.cls.__name__} without __contains__")
    return protocol.truth(f, call_method(f, obj, "__contains__", [item], {}), "`in`")


@protocol.register("iterate", trackers.DataObject)
def _items(f, obj: trackers.DataObject):
    if reads.static_lookup(obj.cls, "__iter__") is collections.abc.Sequence.__iter__:
        # the mixin's __iter__ ends on an IndexError; a Sequence is its len() items
        n = protocol.python_value(f, call_method(f, obj, "__len__", [], {}), "len()")
        return [call_method(f, obj, "__getitem__", [trackers.Known(i)], {}) for i in range(n)]
    return protocol.iterate(f, call_method(f, obj, "__iter__", [], {}))
