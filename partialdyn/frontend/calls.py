"""Call dispatch and inlining: the `call` rules of known callables, functions made in
the trace, bound methods (they go on to their receiver's `call_method` rule) and
partials, and the `call_method` rule of known objects.  The trackers of dataclass
instances, generators, dict views, grad-mode and autocast exits have their call rules
in their own modules.

A known callable dispatches on what it is: torch functions and Tensor methods go into
the graph; user functions, methods, callable objects and nn.Module forwards are
inlined; dataclasses, namedtuples, plain user classes and nn.Modules without parameters
are built in the trace (dataobjects.py); builtins, math, operator and grad-mode functions come from
builtins_table.py, queries of torch's global state from torch_state.py, numpy
on constants from numpyfold.py; escape hatches (escapes.py) run in Python; the
rest (print, os.getpid, ...) is a graph break.
"""
from __future__ import annotations

import functools
import inspect
import operator
import types

import torch

from . import autocast
from . import dataobjects
from . import dict_views
from .builtins_table import BUILTINS, CONSTANT_FOLD, GRAD_MODE, call_getter
from . import environment
from . import reads
from . import escapes
from . import numpyfold
from . import protocol
from .. import sources
from . import torch_state
from .. import trackers
from ..errors import GraphBreak, UserError, run_python
from ..guards import cached_calls
from ..guards.kinds import global_module_hooks


# ---------------------------------------------------------------- calls
@protocol.register("call", trackers.Method)
def _call_bound_method(f, method, args, kwargs):
    if method.owner is not None:      # a builtin class's own method found through super()
        result = read_only_call(f, method, args) if not kwargs else None
        if result is None:
            raise GraphBreak(f"call to {method.owner.__name__}.{method.name} is not traceable")
        return result
    return protocol.call_method(f, method.receiver, method.name, args, kwargs)


@protocol.register("call", trackers.Partial)
def _call_partial(f, partial, args, kwargs):
    return protocol.call(f, partial.fn, list(partial.args) + list(args), {**partial.kwargs, **kwargs})


@protocol.register("call", trackers.VT)
def _not_callable(f, fn, args, kwargs):
    raise GraphBreak(f"call of a {fn.python_type().__name__}")


@protocol.register("call", trackers.Known)
def call_known(f, fn_vt, args, kwargs):
    fn = fn_vt.value
    python_only = escapes.runs_in_python(fn)
    if python_only:
        raise GraphBreak(python_only, hint="the call runs in Python between two graphs")
    if escapes.is_allowed_in_graph(fn):
        return torch_call(f, fn, args, kwargs)
    if escapes.assumed_constant(fn):
        return _assumed_constant_call(f, fn, args, kwargs)
    if escapes.is_cache_wrapper(fn):
        return _cached_call(f, fn_vt, args, kwargs)
    optimized = escapes.optimized_original(fn)
    if optimized is not None:       # an optimized function called from traced code is traced as part of it
        return protocol.call(f, trackers.Known(optimized, _attr_source(fn_vt, escapes.OPTIMIZED_MARKER)), args, kwargs)
    if fn is autocast.AUTOCAST_CLASS and not f.trace.shape_state.autocast_breaks:
        return autocast.make(f, [protocol.python_value(f, a, "torch.autocast") for a in args],
                             {k: protocol.python_value(f, v, "torch.autocast") for k, v in kwargs.items()})
    handler = _lookup(BUILTINS, fn)
    if handler is not None:
        return handler(f, *args, **kwargs)
    if isinstance(fn, (operator.itemgetter, operator.attrgetter)) and len(args) == 1 and not kwargs:
        return call_getter(f, fn, args[0])
    if _lookup(GRAD_MODE, fn) is not None:
        return GRAD_MODE[fn](f, args, kwargs)
    if _lookup(CONSTANT_FOLD, fn) is not None:
        return trackers.Known(CONSTANT_FOLD[fn](*args))
    state_kind = torch_state.classify(fn)
    if state_kind is not None:
        result = torch_state.call(f, fn, state_kind, args, kwargs)
        if result is not None:
            return result
    if isinstance(fn, torch.nn.Module):
        return call_module(f, fn_vt, args, kwargs)
    if is_torch_op(fn):
        return torch_call(f, fn, args, kwargs)
    if isinstance(fn, functools.partial) and type(fn).__call__ is functools.partial.__call__:
        return _call_partial_object(f, fn_vt, args, kwargs)      # a subclass's own __call__ is inlined below
    if is_autograd_function_apply(fn):
        return autograd_function_call(f, fn, args, kwargs)
    if isinstance(fn, types.MethodType) and environment.is_environ(fn.__self__):
        return environment.call_method(f, fn.__name__, args, kwargs)
    if numpyfold.is_numpy_function(fn):
        return numpyfold.call_numpy(f, fn, args, kwargs)
    if isinstance(fn, types.MethodType) and fn.__func__ in MODULE_WALKS:
        return module_walk(f, fn, args, kwargs)
    receiver = _module_made_in_trace_to_init(f, fn, args)
    if receiver is not None:
        rest = list(args) if isinstance(fn, types.MethodType) else list(args[1:])
        return dataobjects.init_module(f, receiver, rest, kwargs)
    if isinstance(fn, types.MethodType):
        self_vt = f.trace.by_identity.get(id(fn.__self__))
        if self_vt is None:     # read through the method (a classmethod's class): what the callee reads of it is guarded
            self_vt = f.trace.wrap(fn.__self__, sources.attr(fn_vt.source, "__self__")) if fn_vt.source is not None \
                else trackers.Known(fn.__self__)
        if _registers_on_a_built_module(fn, self_vt):
            raise GraphBreak(f"{fn.__name__} on a module built in the trace",
                             hint="it runs in Python, on the module the rest of the frame uses")
        # the function is named through the constant table (its identity is guarded where the method was
        # read), so its code guard is one per function, not one per object it is bound to
        function = trackers.Known(fn.__func__, f.trace.constant_source(fn.__func__, _name_of(fn.__func__))
                                  if escapes.is_cache_wrapper(fn.__func__) else None)   # an lru_cache method
        return protocol.call(f, function, [self_vt] + list(args), kwargs)
    if isinstance(fn, types.FunctionType):
        return inline_function(f, fn, fn_vt, args, kwargs)
    call_slot = reads.static_lookup(type(fn), "__call__")
    if isinstance(call_slot, types.FunctionType) and not isinstance(fn, type):
        if fn_vt.source is not None:
            reads.class_attribute(f, type(fn), "__call__")      # a __call__ replaced on the class later
        return protocol.call(f, trackers.Known(call_slot), [fn_vt] + list(args), kwargs)     # a callable object: its __call__
    if isinstance(fn, type) and issubclass(fn, tuple) and hasattr(fn, "_fields"):
        return trackers.NamedTuple(_bind_namedtuple(fn, args, kwargs), cls=fn)
    if dataobjects.is_traceable_dataclass(fn):
        return dataobjects.construct(f, fn, args, kwargs)
    if dataobjects.is_plain_class(fn) or dataobjects.is_record_class(fn):
        return dataobjects.construct_plain(f, fn, args, kwargs)
    if dataobjects.is_torch_module_class(fn):
        return dataobjects.construct_module(f, fn, args, kwargs)
    if dataobjects.is_module_class_with_init(fn):
        return dataobjects.construct_module_with_init(f, fn, args, kwargs)
    if (fn is object.__setattr__ or fn is object.__delattr__) and args and isinstance(args[0], trackers.DataObject) \
            and not kwargs and len(args) == (3 if fn is object.__setattr__ else 2):
        # a frozen dataclass's own __init__ / __post_init__ setting its fields past its __setattr__
        name = protocol.python_value(f, args[1], fn.__qualname__)
        if type(name) is not str:
            raise UserError(TypeError(f"attribute name must be string, not '{type(name).__name__}'"))
        dataobjects.set_field(f, args[0], name, args[2] if fn is object.__setattr__ else None)
        return trackers.Known(None)
    if isinstance(fn, (types.BuiltinMethodType, types.MethodWrapperType)) and _pure_receiver(fn):
        return trackers.Known(run_python(fn, *[protocol.python_value(f, a, fn.__name__) for a in args],
                                        **{k: protocol.python_value(f, v, fn.__name__) for k, v in kwargs.items()}))
    if dataobjects.is_mapping_method(fn) and args and isinstance(args[0], trackers.DataObject) and \
            args[0].mapping is not None:     # `super().get(...)` in a model output's own method
        return dataobjects.mapping_method(f, args[0], fn.__name__, args[1:], kwargs)
    raise GraphBreak(f"call to {_name_of(fn)} is not traceable",
                     hint="it runs in Python between two graphs")


def _assumed_constant_call(f, fn, args, kwargs):
    """A function marked `assume_constant_result`: called now on constant arguments, its answer folded (not
    guarded: the mark promises it never changes)."""
    result = run_python(fn, *[protocol.python_value(f, a, fn.__name__) for a in args],
                              **{k: protocol.python_value(f, v, fn.__name__) for k, v in kwargs.items()})
    if not _plain_constant(result):
        raise GraphBreak(f"{_name_of(fn)} is marked assume_constant_result but returned a "
                         f"{type(result).__name__}", hint="it runs in Python between two graphs")
    return trackers.Known(result)


def _module_made_in_trace_to_init(f, fn, args):
    """The tracker of the module `fn` initializes when it is nn.Module.__init__ (bound by `super().__init__()`, or
    called as `nn.Module.__init__(self)`) on a module made in the trace (dataobjects.init_module), else None."""
    if isinstance(fn, types.MethodType) and fn.__func__ is torch.nn.Module.__init__:
        receiver = f.trace.by_identity.get(id(fn.__self__))
    elif fn is torch.nn.Module.__init__ and args:
        receiver = args[0]
    else:
        return None
    return receiver if isinstance(receiver, trackers.Known) and receiver.owned and \
        isinstance(receiver.value, torch.nn.Module) else None


def _registers_on_a_built_module(method, self_vt) -> bool:
    """`m.register_forward_hook(...)` (and the other register_* / add_module of nn.Module) on a module made in the
    trace: the registration would change the trace-time module's tables, not those of the copy the rest of the
    frame gets at a graph break inside it, so it runs in Python, on that copy."""
    return (isinstance(method.__self__, torch.nn.Module) and isinstance(self_vt, trackers.Known) and self_vt.owned
            and (method.__name__.startswith("register_") or method.__name__ == "add_module"))


def _cached_call(f, fn_vt, args, kwargs):
    """A `functools.lru_cache` / `functools.cache` function on constant arguments: called now, as eager calls it
    (its function runs only if the answer is not cached), and its answer read like any value of the caller's
    world from the call itself (`scale(3)`, arguments spelled by their sources): the guard makes that call
    again, a cache hit that runs nothing, unless the cache was cleared (or evicted the answer), when eager
    would run the function too, and a different answer recompiles.  Within one call of the frame, the guards,
    the input readers and the trace share the first answer (guards/cached_calls.py), so the cache counts the
    one call eager makes.  Tracing the function instead would run
    its side effects on every call.  The call runs in Python instead when the guard could not repeat it
    faithfully: an argument that is neither a constant nor read from a source (a tensor or an object made in
    the trace: the cache keys it by identity), writes of the trace to the caller's world not made yet (the
    function could read them), a second distinct call of a bounded cache in one trace (evictions follow the
    order of calls), or an exception (not cached: eager calls again)."""
    name = _name_of(fn_vt.value)
    named = list(args) + list(kwargs.values())
    maxsize = fn_vt.value.cache_parameters()["maxsize"]
    reason = _uncached_call_reason(f, fn_vt, named, kwargs, maxsize)
    if reason:
        raise _runs_in_python(name, reason)
    values = [protocol.python_value(f, a, name) for a in named]
    spelled, refs = [], list(fn_vt.source.refs)
    for tracker, value in zip(named, values):
        if isinstance(tracker, trackers.Known) and tracker.source is not None:
            spelled.append(tracker.source.code)
            refs.extend(tracker.source.refs)
        else:
            key_name, key = sources.KEYS.name_for(value)
            spelled.append(key_name)
            refs.append((key_name, key))
    positional, keywords = spelled[:len(args)], [f"{k}={code}" for k, code in zip(kwargs, spelled[len(args):])]
    arg_values, kwarg_values = values[:len(args)], dict(zip(kwargs, values[len(args):]))
    code = f"{fn_vt.source.code}({', '.join(positional + keywords)})"
    if maxsize is not None:
        # a bounded cache evicts in the order of all its calls, which the guard, calling each distinct call of
        # the trace once, does not repeat when the trace makes several
        calls = f.trace.bounded_cache_calls.setdefault(id(fn_vt.value), set())
        calls.add(code)
        if len(calls) > 1:
            raise _runs_in_python(name, f"a second distinct call of a bounded cache (lru_cache(maxsize={maxsize})) "
                                        f"in one trace")
    texts = [repr(v) for v in arg_values] + [f"{k}={v!r}" for k, v in kwarg_values.items()]
    # guards and input readers share the call's answer within one call of the frame (guards/cached_calls.py)
    key, key_value = sources.KEYS.name_for(code)
    source = sources.Src(f"{ANSWER}({key}, lambda: {code})", f"{fn_vt.source}({', '.join(texts)})",
                         tuple(refs) + ((ANSWER, cached_calls.answer), (key, key_value)), runs_code=True)
    call = functools.partial(run_python, fn_vt.value, *arg_values, **kwarg_values)
    first = code not in f.trace.cached_calls        # a second one in the trace is a second call in eager too
    f.trace.cached_calls.add(code)
    try:
        result = cached_calls.answer(code, call) if first else call()
    except UserError as error:
        raise GraphBreak(f"call of the cached function {name} raised {type(error.error).__name__}",
                         hint="exceptions are not cached: the call runs in Python") from None
    return f.trace.wrap(result, source)


ANSWER = sources.PREFIX + "cached_answer"


def _runs_in_python(name: str, reason: str) -> GraphBreak:
    return GraphBreak(f"call of the cached function {name}: {reason}", hint="it runs in Python between two graphs")


def _uncached_call_reason(f, fn_vt, named, kwargs, maxsize) -> str | None:
    """Why a cached call must run in Python before it is made (see _cached_call), or None."""
    if fn_vt.source is None:
        return "made in the trace"
    if maxsize == 0:
        return "lru_cache(maxsize=0) caches nothing"
    if not all(k.isidentifier() for k in kwargs):
        return "a keyword that is not an identifier"
    for arg in named:
        # a tensor, or an object the trace made (a container, a module built in it), is keyed by its identity,
        # which is new on every call in eager; constants, classes and functions of libraries are not
        constant = isinstance(arg, trackers.Sym) or isinstance(arg, trackers.Known) and not arg.owned and (
            arg.source is not None or not isinstance(arg.value, torch.Tensor))
        if not constant:
            return f"a {arg.python_type().__name__} argument made in the trace (the cache keys it by identity)"
    pending = f.trace.side_effects.writes() or any(c.source is not None for c in f.trace.side_effects.mutated())
    certain_hit = not named and fn_vt.value.cache_info().currsize > 0   # `is_torch_available()` called before
    if pending and not certain_hit:
        return "the trace has writes to the caller's world it makes after the graph"
    return None


def is_autograd_function_apply(fn) -> bool:
    return (isinstance(fn, types.MethodType) and isinstance(fn.__self__, type)
            and issubclass(fn.__self__, torch.autograd.Function) and fn.__func__ is _FUNCTION_APPLY)


_FUNCTION_APPLY = torch.autograd.Function.apply.__func__


def autograd_function_call(f, apply, args, kwargs):
    """`MyFunction.apply(x, ...)`: one call in the graph, not inlined, so autograd (or aot_autograd tracing
    the graph) runs the Function's own forward and backward. Its arguments must be graph values or plain
    constants."""
    for value in list(args) + list(kwargs.values()):
        if not (isinstance(value, (trackers.Tensor, trackers.Sym)) or isinstance(value, trackers.Known) and _plain_constant(value.value)):
            raise GraphBreak(f"{apply.__self__.__qualname__}.apply with a {value.python_type().__name__} argument",
                             hint="the Function runs in Python between two graphs")
    return f.trace.builder.call("call_function", _graph_apply(apply.__self__), tuple(args), kwargs)


_GRAPH_APPLY: dict = {}


def _graph_apply(function_cls):
    """A plain function calling `function_cls.apply`: fx code generation names a torch-defined callable by its
    import path, which a Function's bound `apply` does not have."""
    if function_cls not in _GRAPH_APPLY:
        def apply(*args, **kwargs):
            return function_cls.apply(*args, **kwargs)
        apply.__name__ = apply.__qualname__ = f"{function_cls.__name__}_apply"
        _GRAPH_APPLY[function_cls] = apply
    return _GRAPH_APPLY[function_cls]


def _plain_constant(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device))


def _call_partial_object(f, fn_vt, args, kwargs):
    """Calling a functools.partial made outside the trace: its function with its stored arguments first.
    With a source, the function, the argument tuple and the keyword dict (its keys too) are read through it
    and guarded as any value read there (as an argument's fields when the partial is read by contents)."""
    partial = fn_vt.value
    if fn_vt.source is None:
        fn = reads.known_result(partial.func)
        stored_args = [reads.known_result(a) for a in partial.args]
        stored_kwargs = {k: reads.known_result(v) for k, v in partial.keywords.items()}
        return protocol.call(f, fn, stored_args + list(args), {**stored_kwargs, **kwargs})
    fields = {name: f.trace.wrap_part(fn_vt, getattr(partial, name), sources.attr(fn_vt.source, name))
              for name in ("func", "args", "keywords")}
    fn, stored_args, stored_kwargs = fields["func"], fields["args"], fields["keywords"]
    if not isinstance(stored_args, trackers.Tuple) or not isinstance(stored_kwargs, trackers.Dict):
        raise GraphBreak("call of a functools.partial whose arguments the tracer cannot hold")
    return protocol.call(f, fn, list(stored_args.items) + list(args), {**stored_kwargs.items, **kwargs})

def _attr_source(vt, name):
    return sources.attr(vt.source, name) if vt.source is not None else None


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
    return [values[n] if n in values else trackers.Known(defaults[n]) for n in fields]


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


@protocol.register("call_method", trackers.Known)
def _known_method(f, receiver, name, args, kwargs):
    if isinstance(receiver.value, set) and receiver.source is None and name in SET_MUTATORS | SET_READERS:
        # a set made in the trace: run the method on it (the runner returns a copy of the final set)
        if name in SET_MUTATORS:
            f.trace.side_effects.mutate(receiver)
        values = [protocol.python_value(f, a, f"set.{name}") for a in args]
        return trackers.Known(run_python(getattr(receiver.value, name), *values))
    view = dict_views.of_callers_dict(receiver, name, args, kwargs)
    if view is not None:
        return view
    return protocol.call(f, trackers.Known(getattr(receiver.value, name)), args, kwargs)


SET_MUTATORS = {"add", "discard", "update", "remove", "clear", "pop", "difference_update", "intersection_update",
                "symmetric_difference_update"}
SET_READERS = {"copy", "union", "intersection", "difference", "symmetric_difference", "issubset", "issuperset",
               "isdisjoint", "__len__", "__contains__"}

READ_ONLY = {"get", "keys", "values", "items", "__getitem__", "__contains__", "__len__", "count", "index"}
BUILTIN_CONTAINERS = {"dict", "list", "tuple", "str", "set", "frozenset"}


def read_only_call(f, method: trackers.Method, args):
    """`super().get(k)` and similar, a builtin container's own method on a container from the caller's world: read
    now, guarded by reading again."""
    receiver, owner, name = method.receiver, method.owner.__name__, method.name
    qualname = f"{owner}.{name}"
    if receiver.source is None or owner not in BUILTIN_CONTAINERS or name not in READ_ONLY:
        return None
    values = [protocol.python_value(f, a, qualname) for a in args]
    if not all(isinstance(v, (str, int, float, bool, type(None))) for v in values):
        return None
    result = run_python(method.function(), receiver.value, *values)
    named = [sources.KEYS.name_for(v) for v in values]
    method_name = f"{sources.PREFIX}builtins_{owner}_{name}"         # one global load where guards call it again
    call_src = sources.derived(receiver.source, f"{method_name}({{}}{''.join(', ' + n for n, _ in named)})",
                         f"{qualname}({receiver.source}{''.join(', ' + repr(v) for v in values)})",
                         (method_name, method.function()), *named)
    return f.trace.wrap(result, call_src)


_M = torch.nn.Module
MODULE_WALKS = {_M.parameters: ("named_parameters", False), _M.named_parameters: ("named_parameters", True),
                _M.buffers: ("named_buffers", False), _M.named_buffers: ("named_buffers", True),
                _M.modules: ("named_modules", False), _M.named_modules: ("named_modules", True),
                _M.children: ("named_children", False), _M.named_children: ("named_children", True)}


def module_walk(f, method, args, kwargs):
    """`m.parameters()`, `m.named_modules()`, ...: the items, each tracked with its attribute path as source."""
    module = method.__self__
    owner = f.trace.by_identity.get(id(module))
    named, with_names = MODULE_WALKS[method.__func__]
    py_args = [protocol.python_value(f, a, method.__name__) for a in args]
    py_kwargs = {k: protocol.python_value(f, v, method.__name__) for k, v in kwargs.items()}
    if owner is not None and owner.owned and isinstance(owner, trackers.Known):
        # a module built in the trace holds no parameters, buffers or submodules: its walks find at most itself
        found = list(getattr(module, named)(*py_args, **py_kwargs))
        if any(value is not module for _, value in found):
            raise GraphBreak(f"{method.__name__}() of a module built in the trace that holds other objects")
        return trackers.Iterator([trackers.Tuple([trackers.Known(name), owner]) if with_names else owner
                                  for name, _ in found])
    if owner is None or owner.source is None:
        raise GraphBreak(f"{method.__name__}() of a module the trace cannot reach by a source")
    items, names = [], []
    for name, value in getattr(module, named)(*py_args, **py_kwargs):
        src = owner.source
        for part in name.split(".") if name else []:
            src = sources.attr(src, part)
        vt = f.trace.wrap(value, src, static=isinstance(value, torch.Tensor))
        items.append(trackers.Tuple([trackers.Known(name), vt]) if with_names else vt)
        names.append(name)
    f.trace.guards.walk_names(owner.source, named, tuple(py_args), py_kwargs, tuple(names))
    return trackers.Iterator(items)


def call_module(f, module_vt, args, kwargs):
    """`m(...)`: what nn.Module.__call__ would run, with the module's hooks, an instance `forward` and a
    class `__call__` of its own guarded (MODULE_STRUCTURE).  Forward pre-hooks and forward hooks (the
    module's and the global ones) are traced around the forward in the order `Module._call_impl` runs them;
    backward hooks are a graph break (the module runs in Python)."""
    m, src = module_vt.value, module_vt.source
    if "_parameters" not in vars(m):
        # its __init__ did not call nn.Module.__init__: nn.Module.__call__ raises AttributeError reading its hooks
        raise GraphBreak(f"call of a {type(m).__name__} that nn.Module.__init__ did not initialize",
                         hint="it runs in Python")
    g_forward, g_pre, g_backward, g_backward_pre = global_module_hooks()
    if m._backward_hooks or m._backward_pre_hooks or g_backward or g_backward_pre:
        raise GraphBreak(f"module {type(m).__name__} has backward hooks",
                         hint="modules with backward hooks run in Python")
    hooked = bool(m._forward_hooks or m._forward_pre_hooks or g_forward or g_pre)
    if m._forward_hooks or m._forward_pre_hooks:
        if src is None:
            raise GraphBreak(f"module {type(m).__name__} has hooks and the trace cannot reach it by a source",
                             hint="it runs in Python")
    own_forward = "forward" in m.__dict__
    f.trace.guards.module_structure(src, m, own_forward)     # hooks (their ids) and an instance forward
    class_call = reads.class_method(f, type(m), "__call__")        # guarded: a class patched later is seen
    if class_call.value is not torch.nn.Module.__call__:
        if hooked:
            raise GraphBreak(f"module {type(m).__name__} has hooks and a __call__ of its own",
                             hint="it runs in Python")
        return protocol.call(f, class_call, [module_vt] + list(args), kwargs)
    if not hooked:
        return _module_forward(f, module_vt, own_forward, list(args), kwargs)
    return _call_with_hooks(f, module_vt, own_forward, list(args), dict(kwargs))


def _module_forward(f, module_vt, own_forward, args, kwargs):
    m, src = module_vt.value, module_vt.source
    if own_forward:
        forward = f.trace.wrap(m.__dict__["forward"], sources.attr(src, "forward")) if src is not None else \
            reads.known_result(m.__dict__["forward"])
        return protocol.call(f, forward, list(args), kwargs)
    return protocol.call(f, reads.class_method(f, type(m), "forward"), [module_vt] + list(args), kwargs)


_GLOBAL_HOOKS = "torch.nn.modules.module."


def _hooks(f, module_vt, table: str):
    """(hook id, hook tracker) of the global table then the module's own, as `_call_impl` iterates them; each
    hook read through its source (ID_MATCH), the tables' ids guarded by module_structure."""
    m, src = module_vt.value, module_vt.source
    glob = getattr(torch.nn.modules.module, "_global" + table)
    g_src = f.trace.constant_source(glob, _GLOBAL_HOOKS + "_global" + table)
    hooks = [(i, f.trace.wrap(h, sources.item(g_src, i))) for i, h in list(glob.items())]
    own = getattr(m, table)
    if own:
        hooks += [(i, f.trace.wrap(h, sources.item(sources.attr(src, table), i))) for i, h in list(own.items())]
    return hooks


def _is_none(vt) -> bool:
    return isinstance(vt, trackers.Known) and vt.value is None


def _call_with_hooks(f, module_vt, own_forward, args, kwargs):
    """Module._call_impl's forward part: pre-hooks (that may replace args, or args and kwargs), forward, forward
    hooks (that may replace the result).  `always_call` hooks need nothing more: an exception at trace time
    runs the call eagerly, which runs them."""
    m = module_vt.value
    mod = torch.nn.modules.module
    kwargs_vt = trackers.Dict(dict(kwargs))       # one dict, as in _call_impl: a hook may change it in place
    for hook_id, hook in _hooks(f, module_vt, "_forward_pre_hooks"):
        if hook_id in m._forward_pre_hooks_with_kwargs:
            out = protocol.call(f, hook, [module_vt, trackers.Tuple(list(args)), kwargs_vt], {})
            if _is_none(out):
                continue
            pair = protocol.iterate(f, out) if issubclass(out.python_type(), tuple) else None
            if pair is None or len(pair) != 2:
                raise UserError(RuntimeError("forward pre-hook must return None or a tuple of (new_args, new_kwargs)"))
            if not isinstance(pair[1], trackers.Dict) or not all(isinstance(k, str) for k in pair[1].items):
                raise GraphBreak("a forward pre-hook returned kwargs that are not a dict the trace holds")
            args, kwargs_vt = protocol.iterate(f, pair[0]), pair[1]
        else:
            out = protocol.call(f, hook, [module_vt, trackers.Tuple(list(args))], {})
            if not _is_none(out):
                args = protocol.iterate(f, out) if issubclass(out.python_type(), tuple) else [out]
    result = _module_forward(f, module_vt, own_forward, list(args), dict(kwargs_vt.items))
    args_vt = trackers.Tuple(list(args))
    for hook_id, hook in _hooks(f, module_vt, "_forward_hooks"):
        if hook_id in m._forward_hooks_with_kwargs or hook_id in mod._global_forward_hooks_with_kwargs:
            out = protocol.call(f, hook, [module_vt, args_vt, kwargs_vt, result], {})
        else:
            out = protocol.call(f, hook, [module_vt, args_vt, result], {})
        if not _is_none(out):
            result = out
    return result


def inline_function(f, fn, fn_vt, args, kwargs):
    """Inline a Python function: its code, the defaults the call used and the cells it reads are guarded
    through the function's source (reads.function_source)."""
    sig = _signature(fn)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise UserError(e) from e
    fn_src = reads.function_source(f, fn, fn_vt) if not (f.parent is None and f.trace.fn is fn) else None
    locals_ = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            value = trackers.Tuple(list(value))
        elif kind == inspect.Parameter.VAR_KEYWORD:
            value = trackers.Dict(dict(value))
        locals_[name] = value
    for name, p in sig.parameters.items():
        if name not in locals_:
            if p.kind == inspect.Parameter.VAR_POSITIONAL:
                locals_[name] = trackers.Tuple([])
            elif p.kind == inspect.Parameter.VAR_KEYWORD:
                locals_[name] = trackers.Dict({})
            elif fn_src is None:
                locals_[name] = trackers.Known(p.default)
            else:
                locals_[name] = reads.default(f, fn, fn_src, name, p.default, p.kind == p.KEYWORD_ONLY)
    cells = {}
    code = fn.__code__
    for i, name in enumerate(code.co_freevars):
        cell = fn.__closure__[i]
        src = sources.closure(i, name) if fn_src is None else sources.cell(fn_src, i, name)
        # a cell holding None is filled (its contents are guarded like any value); only an empty cell is trackers.Cell(None)
        cells[name] = trackers.Cell(f.trace.wrap(cell.cell_contents, src) if trackers.cell_filled(cell) else None, src)
    return f.inline(code, fn.__globals__, locals_, cells)


def _signature(fn):
    """The parameters of the code that runs. A `__signature__` attribute (set by decorators such as transformers'
    deprecate_kwarg) describes what callers see, not the code's own parameters, so it is not consulted."""
    plain = types.FunctionType(fn.__code__, {}, fn.__name__, fn.__defaults__, fn.__closure__)
    plain.__kwdefaults__ = fn.__kwdefaults__
    return inspect.signature(plain)


def _code_argnames(code) -> list[str]:
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    return list(code.co_varnames[:n])


@protocol.register("call", trackers.Function)
def inline_made_function(f, fn: trackers.Function, args, kwargs):
    module = fn.globals.get("__name__") or ""
    if escapes.module_runs_in_python(module):       # torch.vmap's wrapper handed to a resume function
        raise GraphBreak(f"{fn.name} ({module}) runs as plain Python", hint="the call runs in Python between two graphs")
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
            locals_[name] = trackers.Tuple(list(locals_.get(name, ())))
        elif p.kind == p.VAR_KEYWORD:
            locals_[name] = trackers.Dict(dict(locals_.get(name, {})))
        elif p.kind == p.KEYWORD_ONLY and name not in locals_:
            if p.name not in fn.kwdefaults:
                raise UserError(TypeError(f"{fn.name}() missing keyword-only argument {p.name!r}"))
            locals_[p.name] = fn.kwdefaults[p.name]
    cells = dict(zip(fn.code.co_freevars, fn.closure))
    return f.inline(fn.code, fn.globals, locals_, cells)

