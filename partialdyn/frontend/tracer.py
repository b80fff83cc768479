"""The symbolic interpreter: runs a code object's bytecode over trackers.

`Trace` is one compile: the graph being built, the guards, the policy, and the
wrapping of inputs into trackers.  `Frame` interprets one code object (the
traced function, or an inlined callee) with its own stack and locals; opcode
semantics live in `opcodes.py`, the Python operations they apply to trackers in
the rule modules behind `protocol.py`.

The root frame stops at RETURN_VALUE, or at a graph break: the instruction that
could not be traced, with the stack and locals as they were before it.
"""
from __future__ import annotations

import abc
import collections
import dataclasses
import enum
import functools
import linecache
import math
import sys
import types
from dataclasses import dataclass, field

import torch

from ..graph.builder import GraphBuilder
from ..names import FUNCTION, GLOBALS, PREFIX, Constants
from ..guards.kinds import GuardSet, dense_order, keeps_methods, storage_key
from ..guards.provenance import Provenance, provenance_of, user_caller
from ..shapes.fake import provenance_of_sloc, strided_layout
from ..shapes.policy import POLICIES, Consumer
# the rule modules: importing them registers their rules in protocol.py (tests/test_architecture.py checks the list)
from . import (attributes, autocast, builtins_table, calls, contexts, dataobjects, dict_views,  # noqa: F401
               copies, generators, reads, values)
from .dataobjects import is_plain_class
from .. import sources
from .. import trackers
from .autocast import AutocastRestart
from ..errors import GraphBreak, PartialdynError, Unsupported, UserError
from ..rebuilt import GradRestore
from .instructions import decode
from .opcodes import HANDLERS, WORDS
from .outcomes import RETURN, YIELD
from .side_effects import SideEffects

MAX_INLINE_DEPTH = 32
MAX_INSTRUCTIONS = 500_000     # per trace: an endless Python loop or generator stops tracing, never hangs
MAX_BREAKS_BEFORE = 4          # restarts of one compile (one is enough: a trace is the same up to its first break)


@dataclass
class Stop:
    """Where and why the root frame stopped (a graph break)."""
    index: int
    stack: list
    locals: dict
    reason: str
    hint: str
    file: str
    line: int
    kw_names: tuple | None
    inside_callee: bool          # the break came from an inlined call at `index`
    chain: list = field(default_factory=list)   # "file:line in name" from the traced frame to the break
    callee_arguments: dict = field(default_factory=dict)    # that call's parameters as it was entered


@dataclass
class Checkpoint:
    """The root frame's state before an instruction: a graph break there goes back to it."""
    stack: list
    locals: dict
    kw_names: tuple | None
    last_node: object            # the graph's last node (what the instruction adds after it is erased)
    grad_enabled: bool
    side_effects: int            # SideEffects.checkpoint()


class BreakBefore(Exception):
    """Trace the frame again and graph-break before the `visit`-th run of the root frame's instruction `index`,
    tracing nothing of it: the instruction (a call, inlined, that broke inside) had already mutated containers the
    rest of the frame can reach, so it cannot be cut after its traced part and run again (the mutation would
    happen twice).  `reason`, `hint`, `inside_callee`: those of the break made before it."""

    def __init__(self, index: int, visit: int, reason: str, hint: str, inside_callee: bool):
        super().__init__(reason)
        self.index, self.visit, self.reason, self.hint, self.inside_callee = index, visit, reason, hint, inside_callee


class _Forced(GraphBreak):
    """The break a BreakBefore asked for, raised before its instruction runs."""

    def __init__(self, before: BreakBefore):
        super().__init__(before.reason, before.hint)
        self.inside_callee = before.inside_callee


@dataclass
class Result:
    value: trackers.VT | None = None    # the return value, when the frame returned
    stop: Stop | None = None
    raised: UserError | None = None     # the exception the traced code raises out of the frame


class Trace:
    """Everything one compile accumulates."""

    def __init__(self, fn, options, shape_state, breaks_before=None):
        self.fn = fn
        self.breaks_before: dict = breaks_before or {}   # (index, visit) -> BreakBefore: where the root breaks first
        self.globals = fn.__globals__
        self.options = options
        self.shape_state = shape_state
        self.frame: Frame | None = None
        self.caller = user_caller()                 # the user's line that called this code (guard provenance)
        self.builder = GraphBuilder()
        self.builder.shapes.provenance = self.provenance
        self.guards = GuardSet(provenance=self.provenance)
        self.guards.global_state()
        self.guards.own_code(sources.Src(FUNCTION, fn.__qualname__), fn)    # `f.__code__ = ...` retraces
        self.policy = POLICIES[options.policy]
        self.consumer = Consumer(self.policy, shape_state, self.builder.shapes, where=self.where)
        self.wrapped: dict[str, trackers.VT] = {}          # source code -> tracker
        self.caller_objects: dict[str, object] = {}  # source code -> the object a list, dict ... tracker stands for
        self.strict_dynamic: dict = {}              # symbol -> (tensor source, dim) of mark_dynamic dims
        self.by_identity: dict[int, trackers.VT] = {}      # id(python object) -> tracker with a source, or owned
        self.owned: list = []                       # copies made at trace time (frontend/copies.py)
        self.grad_enabled = torch.is_grad_enabled()
        self.grad_mode_changed = False
        self.side_effects = SideEffects()           # mutations, attribute and global writes, iterator steps
        self.autocast_open: list = []               # autocast modes entered by traced regions, innermost last
        self.autocast_regions = 0                   # regions the graph enters
        self.generators: list = []                  # generator objects made in the trace
        self.instructions = 0
        self.tensor_inputs: list = []   # (source, tensor, is module state) of every tensor graph input
        self.shared_storages: set = set()   # memory blocks whose tensors are static (set by the frame's caller)
        self.free_strides: list = []    # (source, dim, stride) of input dims of size 0/1: any stride is legal there
        self.strides_read = False
        self.globals_owner = trackers.Known(self.globals, sources.Src(GLOBALS, "G"))
        self.source_constants = Constants(PREFIX + "m")    # objects sources name (see `register`)
        self.bounded_cache_calls = {}                      # id(lru_cache wrapper) -> its calls' code (calls.py)
        self.cached_calls = set()                          # the code of each cached call made (calls.py)

    def strides_observed(self):
        """Traced code read strides: the strides size-0/1 dims happened to have now matter, so guard them
        (and those of inputs wrapped later)."""
        self.strides_read = True
        for source, dim, stride in self.free_strides:
            self.guards.static_stride(source, dim, stride)

    def source_constant(self, value) -> str:
        return self.source_constants.name_for(value)

    def constant_source(self, value, text: str) -> sources.Src:
        """A source naming `value` itself through the constant table (a class, a module, a function)."""
        return sources.constant(self.source_constant(value), text, value)

    def register(self, source) -> None:
        """The objects `source`'s code names go into the guard and runner namespaces."""
        for name, value in source.refs:
            self.source_constants.setdefault(name, value)

    # ------------------------------------------------------------ where we are
    def where(self):
        frame = self.frame
        while frame and frame.child:
            frame = frame.child
        if frame is None:
            return None, None, ""
        return frame.location()

    def provenance(self) -> Provenance:
        """Where a guard made now comes from: the operation (the torch op or size use in progress, else the
        instruction) and the traced frames' lines (guards/provenance.py)."""
        frames, frame = [], self.frame
        while frame is not None:
            frames.append(frame)
            frame = frame.child
        if not frames:      # wrapping the arguments, before the first instruction
            code = self.fn.__code__
            line = linecache.getline(code.co_filename, code.co_firstlineno).strip()
            return provenance_of("argument", [(code.co_filename, code.co_firstlineno, line)], self.caller)
        innermost = frames[-1]
        op = self.builder.shapes.current_op or WORDS.get(innermost.decoded.instrs[innermost.current].name,
                                                          "instruction")
        return provenance_of(op, [f.location() for f in frames], self.caller)

    # ------------------------------------------------------------ inputs
    def wrap(self, value, source, frame_input=False, static=False, contents=False) -> trackers.VT:
        """Tracker for a value that lives in the caller's world at `source`, with its guards.  `frame_input`: it
        comes with each call (an argument, a part of one): numbers are symbolic, objects read piece by piece are
        guarded by what the trace reads of them (`_read_by_contents`); `contents`: only the latter (a part of a
        module read by contents, whose own numbers are constants)."""
        if source.code in self.wrapped:
            return self.wrapped[source.code]
        self.register(source)
        known = self.by_identity.get(id(value))
        # an object known with no source (a local function rebuilt from its parts) is wrapped again from this
        # source: there is nothing to compare this read with, and its own guards check it
        if known is not None and known.source is not None and not isinstance(value, (int, float, str, bool, type(None))):
            if isinstance(known, trackers.Tensor) or not is_immutable(value):
                self.guards.alias(source, known.source, same=True)
                self.wrapped[source.code] = known
                return known
        if type(value) is dict and self._instance_dict_of_written_object(value):
            # the trace's attribute writes are replayed after the graph: this dict would show the old values
            raise GraphBreak(f"{source}, the __dict__ of an object whose attributes the trace assigned",
                             hint="it is read in Python, after the assignments")
        vt = self._wrap_new(value, source, frame_input, static, contents)
        self.wrapped[source.code] = vt
        if not isinstance(value, (int, float, str, bool, type(None))):
            self.by_identity.setdefault(id(value), vt)
            if isinstance(vt, (trackers.List, trackers.Tuple, trackers.Dict, trackers.Opaque)):    # id() reads the object behind them
                self.caller_objects[source.code] = value
        return vt

    def _instance_dict_of_written_object(self, d: dict) -> bool:
        """Is `d` the `__dict__` of an object of the caller's world whose attributes the trace assigned (the
        globals dict, for global assignments), however it is reached (`obj.__dict__`, kept elsewhere:
        `holder.table = vars(obj)`, `sys.modules[__name__].__dict__`)?  A dict the trace held before the
        assignment makes the assignment break instead (attributes._store_known_attr)."""
        for owner, _, _ in self.side_effects.writes():
            if owner is self.globals_owner:
                if d is self.globals:
                    return True
                continue
            try:
                if object.__getattribute__(owner.value, "__dict__") is d:
                    return True
            except AttributeError:
                pass
        return False

    def _wrap_new(self, value, source, frame_input, static, contents):
        g = self.guards
        if isinstance(value, torch.Tensor):
            return self._wrap_tensor(value, source, static)
        if type(value) in (int, float) and frame_input and _symbolic_scalar(value) and not (
                type(value) is float and self.shape_state.constant_floats) and self.policy.starts_dynamic(
                self.shape_state, str(source)):
            # floats: only finite nonzero ones are symbolic (symbols know no -0.0, inf or NaN)
            g.type_match(source, value, "math.isfinite({}) and {} != 0.0".replace("{}", "{0}")
                         if type(value) is float else "")
            return self.builder.scalar_input(value, source)
        if isinstance(value, CONSTANT_TYPES) and not isinstance(value, (tuple, list)) or is_numpy_scalar(value):
            g.constant_match(source, value)
            return trackers.Known(value, source)
        if isinstance(value, GradRestore):
            g.constant_match(sources.attr(source, "restore"), value.restore)
            return trackers.GradModeExit(value.restore)
        if type(value) is list:
            g.type_match(source, value)

            def load():
                g.type_match(source, value, f"len({{}}) == {len(value)}",
                             actual=PREFIX + "named({{'type': type({0}), 'len': len({0})}})")
                return [self.wrap(v, sources.item(source, i), frame_input, contents=contents)
                        for i, v in enumerate(value)]
            return trackers.CallerList(source, load)
        if isinstance(value, (tuple, list)) and type(value) in (tuple, list, torch.Size) or _is_namedtuple(value):
            g.type_match(source, value, f"len({{}}) == {len(value)}",
                         actual=PREFIX + "named({{'type': type({0}), 'len': len({0})}})")
            items = [self.wrap(v, sources.item(source, i), frame_input, contents=contents) for i, v in enumerate(value)]
            if _is_namedtuple(value):
                return trackers.NamedTuple(items, source, cls=type(value))
            if isinstance(value, torch.Size):
                return trackers.Size(items, source)
            return (trackers.Tuple if isinstance(value, tuple) else trackers.List)(items, source)
        if (type(value) is dict or _traced_ordered_dict(value)) and all(_constant_key(k) for k in value):
            g.keys_match(source, value)          # the keys in order: move_to_end reorders an OrderedDict
            if type(value) is not dict:
                g.no_instance_attributes(source)
                if type(value) is not collections.OrderedDict:
                    g.inherits(type(value), collections.OrderedDict, ORDERED_DICT_METHODS)
            return trackers.Dict({k: self.wrap(v, sources.item(source, k), frame_input, contents=contents)
                                  for k, v in value.items()},
                                 source, type(value))
        if is_opaque(value):
            g.type_match(source, value)
            return trackers.Opaque(type(value), source)
        if isinstance(value, types.FunctionType) and frame_input and value.__code__.co_name == "<lambda>" or (
                isinstance(value, types.FunctionType) and frame_input and "<locals>" in value.__qualname__):
            return self._wrap_local_function(value, source)
        if isinstance(value, types.MethodType):
            self.wrap(value.__self__, sources.attr(source, "__self__"), frame_input)
            g.id_match(sources.attr(source, "__func__"), value.__func__)
            return trackers.Known(value, source)
        if frame_input and isinstance(value, torch.nn.Module):
            # `self` of a layer's forward compiled as its own frame (a break inside it): guarded by its type and
            # what the trace reads (structure, parameters through their sources, attributes), so every layer of a
            # stack shares the entry instead of compiling once per instance
            g.type_match(source, value)
            return trackers.Known(value, source, by_contents=True, per_call=True)
        if (frame_input or contents) and _read_by_contents(value):
            # a config object or a set passed per call: guarded by what the trace reads of it (its fields,
            # membership, length), so a fresh equal one hits; a use that needs the object itself adds ID_MATCH
            g.type_match(source, value)
            return trackers.Known(value, source, by_contents=True, per_call=frame_input)
        g.id_match(source, value)
        if reads.class_assignable(value):
            g.type_match(source, value)     # `obj.__class__ = Other` keeps its identity: what the trace read of its class
        return trackers.Known(value, source)

    def wrap_part(self, owner, value, source) -> trackers.VT:
        """A part of `owner` (a field, an item, a partial's function or stored arguments) read through `source`:
        guarded by contents when its owner is, and a frame input when its owner's parts come with each call."""
        return self.wrap(value, source, frame_input=owner.by_contents and owner.per_call, contents=owner.by_contents)

    def as_object(self, vt):
        """The trace relies on the object itself (its identity, or all of it at once): a tracker guarded by
        contents gets the guard that use needs."""
        if isinstance(vt, trackers.Known) and vt.by_contents:
            vt.by_contents = False
            value = vt.value
            if isinstance(value, (set, frozenset)) and all(_constant_key(v) for v in value):
                self.guards.contents_match(vt.source, value, list(value))
            else:
                self.guards.id_match(vt.source, value)
        return vt.value

    def check_strict_dynamic(self):
        """Raise PartialdynError if the trace specialized a dim marked with partialdyn.mark_dynamic."""
        shape_env = self.builder.shapes.shape_env
        for sym, (source, dim) in self.strict_dynamic.items():
            resolved, bounds = shape_env.simplify(sym), shape_env.var_to_range.get(sym)
            if resolved.is_number:
                value, sloc = int(resolved), shape_env.replacements_slocs.get(sym)
            elif bounds is not None and bounds.lower == bounds.upper:
                value, sloc = int(bounds.lower), shape_env.var_to_range_sloc[sym].upper
            else:
                continue
            made = provenance_of_sloc(sloc)
            where = f" by {made.describe()}" if made is not None else ""
            raise PartialdynError(
                f"{sources.size(source, dim)} was marked dynamic (partialdyn.mark_dynamic) but the code specializes it "
                f"to {value}{where}. Fix: keep the size in torch ops instead of giving it to Python (int(), "
                f"range(), str(), indexing a list), or use partialdyn.maybe_mark_dynamic({source}, {dim}) to "
                f"allow the specialization")

    def assume_distinct(self):
        """Before the guards are built: every container or object of the caller's world the trace mutated was
        assumed to be no other input it read (`a.append(1); len(b)`); guard that (ALIASING)."""
        written = [c for c in self.side_effects.mutated() if isinstance(c, (trackers.List, trackers.Dict)) and c.source is not None]
        written += [owner for owner, _, _ in self.side_effects.writes() if owner is not self.globals_owner]
        seen = set()
        for w in written:
            if id(w) in seen:
                continue
            seen.add(id(w))
            for other in {id(t): t for t in self.wrapped.values()}.values():
                if other is not w and other.source is not None and other.python_type() is w.python_type():
                    self.guards.alias(w.source, other.source, same=False)

    def guard_tensor_aliasing(self):
        """Before the guards are built: if the graph writes the memory of a tensor input, which tensor inputs
        share memory is part of what it computes (a functionalized graph assumed it): guard it (ALIASING).
        Parameters and buffers count only when written (tied weights are one object, guarded by `is`)."""
        effects = self.builder.effects
        if not effects.writes_inputs:
            return
        fakes = {src.code: node.meta["val"] for src, node in self.builder.inputs}
        chosen = [(src, t) for src, t, module_state in self.tensor_inputs
                  if not module_state or effects.writes(fakes[src.code])]
        if len(chosen) > 1:
            self.guards.storage_aliasing([src for src, _ in chosen], [t for _, t in chosen])

    def _wrap_local_function(self, fn, source):
        """A function made by the traced code's previous part (a lambda or local def passed across a graph break):
        guarded by its code, not its identity, so a new closure per call does not recompile.  It is still the
        caller's object: rebuilt from its source (the same function, its own cells), and an assignment to one of
        its cells (`nonlocal`) breaks, as for any function of the caller's world."""
        self.guards.function_match(source, fn)
        defaults = tuple(self.wrap(d, sources.item(sources.attr(source, "__defaults__"), i)) for i, d in enumerate(fn.__defaults__ or ()))
        cells = []
        for i, (c, name) in enumerate(zip(fn.__closure__ or (), fn.__code__.co_freevars)):
            src = sources.cell(source, i, name)
            cells.append(trackers.Cell(self.wrap(c.cell_contents, src) if trackers.cell_filled(c) else None, src))
        return trackers.Function(fn.__code__, fn.__globals__, fn.__name__, defaults, dict(fn.__kwdefaults__ or {}),
                                 tuple(cells), source)

    def _wrap_tensor(self, t, source, static):
        """A tensor input.  Its sizes start symbolic or not by the policy; its layout decides how its strides are
        traced: a dense block (contiguous, or a permutation of it: guards.kinds.dense_order) has strides that
        are products of its sizes, guarded by one contiguity check; any other layout `strided_layout` accepts
        (a slice, an index, an expand, a storage offset) has symbolic strides and storage offset, each guarded
        as the ShapeEnv wrote it (shapes/fake.py); the rest (overlapping, empty, not strided) is static."""
        marks = getattr(t, "_partialdyn_marks", None) or {}     # set by partialdyn.mark_static / mark_dynamic
        order = dense_order(t)
        strided = order is None and not marks.get("unbacked") and strided_layout(t)
        fully_static = static or (order is None and not strided) or storage_key(t) in self.shared_storages
        if fully_static:
            dynamic, dynamic_strides = set(), frozenset()
            strided = False
        else:
            dynamic = {d for d in range(t.dim())
                       if d in marks.get("dynamic", ()) or
                       (self.policy.starts_dynamic(self.shape_state, sources.size(source, d))
                        and d not in marks.get("static", ()))}
            dynamic_strides = frozenset(d for d in range(t.dim()) if strided and self.policy.stride_starts_dynamic(
                self.shape_state, sources.stride(source, d)))
        self.guards.tensor_match(source, t, static=fully_static, order=order, strided=strided)
        vt = self.builder.tensor_input(t, source, dynamic, frozenset(marks.get("unbacked", ())) & dynamic,
                                       strided, dynamic_strides)
        for d in marks.get("strict", set()) & dynamic:     # partialdyn.mark_dynamic: specializing it is an error
            size = vt.fake.shape[d]
            if isinstance(size, torch.SymInt) and size.node.expr.is_Symbol:
                self.strict_dynamic[size.node.expr] = (source, d)
        self.tensor_inputs.append((source, t, static))
        for d, s in enumerate(vt.fake.shape):
            if not fully_static and not (isinstance(s, torch.SymInt) and s.node.expr.free_symbols):
                # static by policy, or a dynamic dim of size 0/1 that the ShapeEnv made a constant
                self.guards.static_dim(source, d, t.size(d))
        if not strided:     # a strided layout's strides are all guarded (shapes/fake.py)
            self.free_strides += [(source, d, t.stride(d)) for d in range(t.dim()) if t.size(d) in (0, 1)]
        if self.strides_read:
            self.strides_observed()
        return vt

    # ------------------------------------------------------------ grad mode
    def set_grad_enabled(self, enabled: bool):
        if enabled != self.grad_enabled:
            self.builder.change_state(torch._C._set_grad_enabled, (enabled,))
            torch._C._set_grad_enabled(enabled)   # fake execution follows the mode
            self.grad_enabled = enabled
            self.grad_mode_changed = True


def shared_storages(arguments) -> set:
    """Memory blocks that two distinct tensors among `arguments` (the frame's arguments, and tensors in their lists, tuples and
    dicts) share: `f(x, x[0])`, `f(a.t(), a)`."""
    owners: dict = {}

    def visit(value, depth):
        if isinstance(value, torch.Tensor):
            owners.setdefault(storage_key(value), set()).add(id(value))
        elif depth < 3 and isinstance(value, (list, tuple)):
            for item in value:
                visit(item, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)
    for value in arguments:
        visit(value, 0)
    return {key for key, ids in owners.items() if len(ids) > 1}


def _read_by_contents(value) -> bool:
    """Objects whose state the trace reads piece by piece: sets, deques, dataclass instances (transformers'
    ModelOutput dicts too), torch.autocast objects (made by a `with` that runs in Python), exceptions (made
    fresh by every raising call), functools.partial objects (of that exact type: a call reads `func`, `args`
    and `keywords`) and instances of user classes whose attribute lookup is Python's own (slots and custom
    __init__/__new__/__setattr__ allowed).  A resume function gets the objects a break step made as such
    arguments: guarding them by identity would recompile on every call."""
    if isinstance(value, (set, frozenset, collections.deque)) or type(value) is functools.partial:
        return True
    if isinstance(value, (type, torch.nn.Module)):
        return False
    if dataclasses.is_dataclass(value) or isinstance(value, (torch.amp.autocast_mode.autocast, BaseException)):
        return True
    if isinstance(value, (dict, list, tuple)):
        return False
    return is_plain_class(type(value)) or _python_attribute_lookup(type(value))


def _python_attribute_lookup(cls) -> bool:
    module = cls.__module__ or ""
    return (type(cls) in (type, abc.ABCMeta) and module != "builtins" and not module.startswith("torch")
            and cls.__getattribute__ is object.__getattribute__ and not hasattr(cls, "__getattr__"))


def _constant_key(key) -> bool:
    """A dict key guard code can compare by value (`list(d) == [...]`): constants and tuples of them."""
    if type(key) is tuple:
        return all(_constant_key(k) for k in key)
    return isinstance(key, CONSTANT_TYPES + (enum.Enum, type)) and not isinstance(key, slice)


# what the tracer does with a dict tracker (items, views, order, operators, mutations, attribute lookup): an
# OrderedDict subclass whose classes define none of these behaves as traced
ORDERED_DICT_METHODS = frozenset((
    "__getattribute__", "__getattr__", "__iter__", "__reversed__", "__getitem__", "__missing__", "__setitem__",
    "__delitem__", "__contains__", "__len__", "__bool__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__or__", "__ror__", "__ior__", "keys", "values", "items", "get", "pop", "popitem", "setdefault", "update", "clear",
    "copy", "move_to_end"))


def _traced_ordered_dict(value) -> bool:
    """An OrderedDict of the caller's world the tracer holds as a dict tracker: no attribute of its own, and a
    class (metaclass `type`) that keeps OrderedDict's methods (ORDERED_DICT_METHODS)."""
    cls = type(value)
    if not isinstance(value, collections.OrderedDict) or type(cls) is not type or vars(value):
        return False
    return keeps_methods(cls, collections.OrderedDict, ORDERED_DICT_METHODS)


def _symbolic_scalar(value) -> bool:
    return type(value) is int or (math.isfinite(value) and value != 0.0)


def _is_namedtuple(value) -> bool:
    return isinstance(value, tuple) and (hasattr(value, "_fields") or type(value).__module__ == "torch.return_types")


CONSTANT_TYPES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.layout,
                  torch.memory_format, type(Ellipsis), slice, type(NotImplemented))


def is_immutable(value) -> bool:
    return isinstance(value, CONSTANT_TYPES)


def is_opaque(value) -> bool:
    """Runtime values the tracer must not look into: their contents change per call (numpy arrays, not numpy's
    functions or scalars)."""
    mod = type(value).__module__ or ""
    return (mod.startswith("numpy") and not callable(value) or isinstance(value, (range, types.GeneratorType))
            or (hasattr(value, "__next__") and not isinstance(value, torch.Tensor)))


def is_numpy_scalar(value) -> bool:
    """np.float32(0.5), np.int64(3): immutable, so a constant like a Python number."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.generic)


class Frame:
    """Interprets one code object over trackers."""

    def __init__(self, trace: Trace, code, globals_, locals_: dict, cells: dict, parent=None):
        self.trace = trace
        self.code = code
        self.decoded = decode(code)
        self.globals = globals_
        self.locals = locals_
        self.arguments = dict(locals_)  # the parameters as the frame was entered
        self.cells = cells              # name -> trackers.Cell, for cell and free variables
        self.stack: list = []
        self.ip = 0
        self.current = 0
        self.kw_names = None
        self.parent = parent
        self.child: Frame | None = None
        self.depth = 0 if parent is None else parent.depth + 1
        self.return_value = None
        self.suspended = False          # a generator frame stopped at a yield (return_value: the yielded value)
        self.captured: set[str] = set()  # the cells of this frame a closure was made over
        self.handling: list = []        # the exceptions this frame's running handlers handle, innermost last
                                        # (PUSH_EXC_INFO / POP_EXCEPT): sys.exc_info() inside them
        self.rewind = None              # root: (checkpoint, index, callee frame, UserError) of the instruction
                                        # whose exception its running handler caught: a break inside the handler
                                        # stops there instead, as if the handler were not traced
        self.saved = None               # root: the checkpoint taken before the current instruction
        self.visits = collections.Counter()     # root: how many times each instruction index started (BreakBefore)

    # ------------------------------------------------------------ stack helpers
    def push(self, vt):
        self.stack.append(vt)

    def pop(self):
        return self.stack.pop()

    def popn(self, n):
        if n == 0:
            return []
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def location(self):
        instr = self.decoded.instrs[self.current]
        line = instr.lineno or self.code.co_firstlineno
        return self.code.co_filename, line, linecache.getline(self.code.co_filename, line).strip()

    def jump(self, instr_index=None):
        self.ip = self.decoded.targets[self.current if instr_index is None else instr_index]

    # ------------------------------------------------------------ the loop
    def run(self) -> trackers.VT:
        """Run an inlined frame to its return (a generator frame: to its next yield); any break propagates to
        the root."""
        while True:
            outcome = self._execute_next()
            if outcome is RETURN or outcome is YIELD:
                self.suspended = outcome is YIELD
                return self.return_value

    def run_root(self) -> Result:
        """Run the traced frame; on a graph break return where it stopped instead of raising."""
        builder = self.trace.builder
        breaks_before = self.trace.breaks_before
        while True:
            saved = Checkpoint(list(self.stack), dict(self.locals), self.kw_names, _last_node(builder.graph),
                               self.trace.grad_enabled, self.trace.side_effects.checkpoint())
            self.saved = saved
            self.visits[self.ip] += 1
            try:
                if breaks_before and (self.ip, self.visits[self.ip]) in breaks_before:
                    self.current = self.ip
                    raise _Forced(breaks_before[self.ip, self.visits[self.ip]])
                if self._execute_next() is RETURN:
                    generators.check_dropped(self.trace)
                    return Result(value=self.return_value)
            except (GraphBreak, Unsupported) as e:
                if self.trace.autocast_open:
                    raise AutocastRestart(e.reason) from e
                if self.rewind is not None:
                    saved, e = self._rewind()
                return Result(stop=self._stop_here(e, saved))

    def _rewind(self):
        """A break inside a handler of this frame: stop at the instruction whose exception it caught, with what
        the trace did before the exception was traced (a GraphBreak there inside a `try` body; the exception
        itself elsewhere, e.g. from an inlined comprehension's cleanup)."""
        saved, index, child, error = self.rewind
        self.rewind, self.handling = None, []
        self.current, self.child = index, child
        if not self.decoded.is_user_try(index):
            self.trace.side_effects.rollback(saved.side_effects)
            raise error
        return saved, _try_break(error)

    def _execute_next(self):
        """Run the instruction at `ip` with its handler; a user exception inside a `try` block becomes a graph
        break there."""
        self.current = self.ip
        instr = self.decoded.instrs[self.ip]
        self.ip += 1
        self._count()
        handler = HANDLERS.get(instr.name)
        if handler is None:
            raise Unsupported(f"opcode {instr.name} is not supported")
        try:
            return handler(self, instr)
        except UserError as e:
            if not self._catch(e):
                raise

    def _catch(self, e: UserError) -> bool:
        """CPython's exception unwinding for an exception the traced code raises: if this frame's exception
        table covers the instruction with a handler the tracer can run, pop the stack to the handler's depth,
        push the instruction's offset (lasti) if the entry says so and the exception, and go on at the handler.
        False: the exception leaves the frame (to the caller's handlers).  An exception the tracer cannot
        follow (found by a fake kernel, or about to run a `with` cleanup) breaks inside a `try` as before."""
        entry = self.decoded.entries[self.current]
        if entry is None:
            return False
        if not (e.traceable and entry.traceable(self.decoded.instrs) and _plain_exception(e.error)):
            e.traceable = False
            if self.decoded.is_user_try(self.current):
                raise _try_break(e) from e
            return False
        if self.parent is None and self.rewind is None:
            self.rewind = (self.saved, self.current, self.child, e)
        self.child = None
        del self.stack[entry.depth:]
        if entry.lasti:
            self.push(trackers.Known(self.current))
        error = e.error
        error.__traceback__ = error.__context__ = None     # the tracer's frames, not the program's
        self.push(copies.tracked(self, error))             # owned: a handler that returns it returns a fresh copy
        self.ip = entry.target
        return True

    def _count(self):
        self.trace.instructions += 1
        if self.trace.instructions > MAX_INSTRUCTIONS:
            raise Unsupported(f"trace longer than {MAX_INSTRUCTIONS} instructions (an endless loop or generator?)")

    def _stop_here(self, e, saved: "Checkpoint") -> Stop:
        stack, locals_, kw_names = saved.stack, saved.locals, saved.kw_names
        mutated = self.trace.side_effects.rollback(saved.side_effects)
        callee_frame = self.child
        deepest, chain = self, []
        while deepest is not None:
            file_, line_, _ = deepest.location()
            chain.append(f"{file_}:{line_} in {deepest.code.co_name}")
            if deepest.child is None:
                break
            deepest = deepest.child
        self.child = None
        _erase_after(self.trace.builder.graph, saved.last_node)
        generators.check_dropped(self.trace)
        file, line, _ = deepest.location()
        if self._mutations_seen_again(mutated, stack, locals_):
            raise self._break_before(e, file, line, inside_callee=callee_frame is not None) from e
        if self.trace.grad_enabled != saved.grad_enabled:
            self.trace.set_grad_enabled(saved.grad_enabled)
        self.stack, self.locals = stack, locals_
        return Stop(self.current, stack, locals_, e.reason, e.hint, file, line, kw_names,
                    inside_callee=callee_frame is not None or getattr(e, "inside_callee", False), chain=chain,
                    callee_arguments=callee_frame.arguments if callee_frame is not None else {})

    def _break_before(self, e, file, line, inside_callee) -> Exception:
        """The instruction that broke had already mutated what the rest of the frame reaches: the compile traces
        again and breaks before it (BreakBefore), so the instruction runs once, whole, in Python.  Past
        MAX_BREAKS_BEFORE restarts the frame runs eagerly."""
        key = (self.current, self.visits[self.current])
        if key in self.trace.breaks_before or len(self.trace.breaks_before) >= MAX_BREAKS_BEFORE:
            return Unsupported("a call that graph-broke had already mutated the caller's containers")
        where = f"{file.rsplit('/', 1)[-1]}:{line}"
        return BreakBefore(*key, f"a call that graph-breaks inside ({where}: {e.reason}) after mutating the "
                                 f"caller's containers runs whole outside the graph",
                           "it runs in Python (a Python function is optimized on its own)", inside_callee)

    def _mutations_seen_again(self, mutated, stack, locals_) -> bool:
        """The call that broke runs again in Python after the graph, which syncs the containers it mutated
        while traced: the mutation would happen twice if that code can reach one of them.  A container of the
        caller's world (one with a source: a global, a closure cell, an attribute) can be reached from
        anywhere; one made in the trace, through the rebuilt frame or an assignment replayed after the graph."""
        if not mutated:
            return False
        if any(container.source is not None for container in mutated):
            return True
        assigned = [value for _, _, value in self.trace.side_effects.writes() if isinstance(value, trackers.VT)]
        return _reachable(mutated, stack + list(locals_.values()) + assigned)

    # ------------------------------------------------------------ inlining
    def inline(self, code, globals_, locals_: dict, cells: dict) -> trackers.VT:
        if self.depth >= MAX_INLINE_DEPTH:
            raise Unsupported("call depth too large to inline")
        child = Frame(self.trace, code, globals_, locals_, cells, parent=self)
        self.child = child
        result = child.run()
        self.child = None
        return result


def _try_break(e: UserError) -> GraphBreak:
    return GraphBreak(f"exception inside a try block: {e}", hint="the try block runs in Python")


def _plain_exception(error: BaseException) -> bool:
    """An exception a handler may hold as a constant: an Exception whose args are constants (not, e.g., a
    KeyError carrying a fake tensor)."""
    def constant(value):
        return type(value) is tuple and all(constant(v) for v in value) or is_immutable(value)
    return isinstance(error, Exception) and constant(error.args) and not vars(error)


def _reachable(targets, roots) -> bool:
    """Is any of `targets` (trackers) reachable from `roots` through containers, objects and closures?"""
    if not targets:
        return False
    wanted = {id(t) for t in targets}
    seen, todo = set(), list(roots)
    while todo:
        vt = todo.pop()
        if id(vt) in seen:
            continue
        seen.add(id(vt))
        if id(vt) in wanted:
            return True
        todo.extend(_held(vt))
    return False


@functools.singledispatch
def _held(vt):
    """The trackers `vt` holds, through which a mutation of one of them can be seen (none for most types)."""
    return ()


_held.register(trackers.Tuple, lambda vt: vt.items)
_held.register(trackers.List, lambda vt: vt.items)
_held.register(trackers.Iterator, lambda vt: vt.items)
_held.register(trackers.Dict, lambda vt: vt.items.values())
_held.register(trackers.DataObject, lambda vt: vt.fields.values())
_held.register(trackers.Function, lambda vt: [cell.contents for cell in vt.closure if cell.contents is not None])
_held.register(trackers.Method, lambda vt: [vt.receiver])
_held.register(trackers.DictView, lambda vt: [vt.dict])
_held.register(trackers.Partial, lambda vt: [vt.fn, *vt.args, *vt.kwargs.values()])
_held.register(trackers.LazyIterator,
               lambda vt: [*vt.sources, *(v for v in vt.state.values() if isinstance(v, trackers.VT))])


def _last_node(graph):
    return next(iter(reversed(graph.nodes)), None)


def _erase_after(graph, last_node):
    """Undo what a half-traced instruction added to the graph."""
    for node in reversed(list(graph.nodes)):
        if node is last_node:
            break
        if node.op == "placeholder":
            continue
        graph.erase_node(node)
