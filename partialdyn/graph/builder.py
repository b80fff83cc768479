"""Recording tensor operations into an fx graph.

`GraphBuilder` owns the fx.Graph of one trace, its graph inputs (each with the
source the runtime reads it from) and the fake-mode execution of every op: an op
runs on fake values to learn its result (shape, dtype, symbolic sizes), and a
node with `meta['val']` set to that result is added to the graph.
"""
from __future__ import annotations

import functools
import operator
import sys

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import (DataDependentOutputException, DynamicOutputShapeException,
                                           UnsupportedOperatorException)
from torch._dispatch.python import enable_python_dispatcher
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

from .. import trackers
from ..config import config
from ..errors import GraphBreak, Unsupported, UserError
from ..shapes.fake import SYM_TYPES, Shapes
from .effects import EffectRecorder
from .reuse import FakeResults


class GraphBuilder:
    def __init__(self):
        self.graph = fx.Graph()
        self.shapes = Shapes()
        self.inputs: list[tuple[object, fx.Node]] = []    # (source, placeholder)
        self._last_placeholder = None
        self._by_fake: dict[int, trackers.Tensor] = {}           # id(fake value) -> its tracker (identity of results)
        self.effects = EffectRecorder()                    # input writes and randomness of the recorded ops
        self.reuse = FakeResults(self.shapes, self.effects, config.fake_reuse)  # fake results an identical later op rebuilds

    # ------------------------------------------------------------ inputs
    def _placeholder(self, source, value) -> fx.Node:
        name = "".join(c if c.isalnum() else "_" for c in source.code).strip("_") or "arg"
        where = (self.graph.inserting_after(self._last_placeholder) if self._last_placeholder
                 else self.graph.inserting_before(next(iter(self.graph.nodes), None)))
        with where:
            node = self.graph.placeholder(name)
        node.meta["val"] = value
        node.meta["source"] = source.code
        self._last_placeholder = node
        self.inputs.append((source, node))
        return node

    def tensor_input(self, t: torch.Tensor, source, dynamic_dims: set[int], unbacked_dims: frozenset = frozenset(),
                     strided: bool = False, dynamic_strides: frozenset = frozenset()) -> trackers.Tensor:
        fake = self.shapes.fake_tensor(t, source, dynamic_dims, unbacked_dims, strided, dynamic_strides)
        self.effects.add_input(fake)
        node = self._placeholder(source, fake)
        cls = type(t) if isinstance(t, torch.nn.Parameter) else torch.Tensor
        return self._remember(trackers.Tensor(node, fake, source, frozenset([source.code]), cls))

    def _remember(self, vt: trackers.Tensor) -> trackers.Tensor:
        self._by_fake[id(vt.fake)] = vt
        return vt

    def scalar_input(self, value, source) -> trackers.Sym:
        """An int or float argument as a symbolic graph input."""
        sym = self.shapes.sym_int(value, source) if type(value) is int else self.shapes.sym_float(value, source)
        return trackers.Sym(self._placeholder(source, sym), sym, source)

    # ------------------------------------------------------------ torch global state
    def change_state(self, target, args: tuple) -> fx.Node:
        """Record a node that changes torch's global state (`_set_grad_enabled`, autocast enter/exit); the caller
        applies the change for real before the next op, whose fake propagation must see it."""
        self.reuse.state_changed()
        return self.graph.call_function(target, args)

    # ------------------------------------------------------------ ops
    def call(self, kind: str, target, args: tuple, kwargs: dict):
        """Add one op (`call_function` target or `call_method` name) and return its tracker."""
        node_args, fake_args = split(args)
        node_kwargs, fake_kwargs = split(kwargs)
        if kind == "call_method" or _is_torch_function(target):
            node_args, node_kwargs = _spell_dtypes(node_args), _spell_dtypes(node_kwargs)
        with self.shapes.operation(describe(target)):
            result = self.reuse.run(kind, target, fake_args, fake_kwargs, self.run_fake)
        if not contains_graph_value(result):
            if result is None and contains_graph_value((fake_args, fake_kwargs)):
                # ran for its effect on a tensor (`x[0] = v`, `lst.sort()`-style ops): keep the node
                self.graph.create_node(kind, target, node_args, node_kwargs).meta["val"] = None
            return trackers.Known(result) if is_plain(result) else self._unsupported_result(target, result)
        node = self.graph.create_node(kind, target, node_args, node_kwargs)
        return self.wrap(node, result, inputs_of(args, kwargs))

    def run_fake(self, kind, target, args, kwargs):
        try:
            # the Python dispatcher runs symbolic-aware decompositions (F.pad keeps its sizes symbolic)
            with self.shapes.fake_mode, enable_python_dispatcher(), self.effects:
                if kind == "call_method":
                    return getattr(args[0], target)(*args[1:], **kwargs)
                return target(*args, **kwargs)
        except (GuardOnDataDependentSymNode, DataDependentOutputException) as e:
            raise GraphBreak(f"{describe(target)} needs a data-dependent value: {first_line(e)}",
                             hint="the op runs in Python around a graph break") from e
        except (UnsupportedOperatorException, DynamicOutputShapeException, NotImplementedError) as e:
            raise GraphBreak(f"{describe(target)} has no fake/meta kernel: {first_line(e)}",
                             hint="register a fake kernel (torch.library.register_fake) to keep it in the graph") from e
        except RuntimeError as e:
            if "fake impl" in str(e) or "meta" in str(e).lower() and "kernel" in str(e).lower():
                raise GraphBreak(f"{describe(target)} has no fake kernel",
                                 hint="register a fake kernel (torch.library.register_fake) "
                                      "to keep it in the graph") from e
            raise UserError(e, traceable=False) from e
        except (TypeError, ValueError, IndexError, AssertionError, ArithmeticError) as e:   # the op's own checks
            raise UserError(e, traceable=False) from e

    def _unsupported_result(self, target, result):
        raise GraphBreak(f"{describe(target)} returned a {type(result).__name__}, which the tracer cannot hold")

    def wrap(self, node: fx.Node, value, inputs=frozenset()):
        """Tracker for a graph value; tuples/lists are split with getitem nodes.  An op that returns one of its
        inputs itself (`x.add_(1)`, `x.contiguous()`, `x.to(x.dtype)`: the fake result is the input's fake) gives
        back that input's tracker, so `is` and the rebuilt result keep eager's identity; the node stays in
        the graph for its effect."""
        node.meta["val"] = value
        if isinstance(value, torch.Tensor):
            same = self._by_fake.get(id(value))
            if same is not None and same.fake is value:
                return same
            return self._remember(trackers.Tensor(node, value, None, inputs))
        if isinstance(value, SYM_TYPES):
            return trackers.Sym(node, value)
        if isinstance(value, (tuple, list)):
            items = [self._item(node, i, v, inputs) for i, v in enumerate(value)]
            if isinstance(value, torch.Size):
                return trackers.Size(items)
            if hasattr(value, "_fields") or type(value).__module__ == "torch.return_types":
                return trackers.NamedTuple(items, cls=type(value))
            return trackers.Tuple(items) if isinstance(value, tuple) else trackers.List(items)
        if is_plain(value):
            return trackers.Known(value)
        raise GraphBreak(f"an op returned a {type(value).__name__}, which the tracer cannot hold")

    def _item(self, node, i, v, inputs):
        if not contains_graph_value(v):
            return trackers.Known(v)
        item = self.graph.call_function(operator.getitem, (node, i))
        return self.wrap(item, v, inputs)

    def sym_op(self, fn, *args):
        """Symbolic arithmetic (`s // 4`, `s0 * s1`): stays in the graph as a SymInt node."""
        return self.call("call_function", fn, args, {})


# ---------------------------------------------------------------- conversions
@functools.singledispatch
def split(obj):
    """(fx argument structure, fake value structure) for a structure of trackers: one function per tracker type
    (and per structure holding op arguments), registered below."""
    raise Unsupported(f"cannot pass a {type(obj).__name__} tracker to a torch op")


split.register(trackers.Tensor, lambda obj: (obj.node, obj.fake))
split.register(trackers.Sym, lambda obj: (obj.node, obj.value))


@split.register(trackers.Known)
def _constant_argument(obj):
    value = graph_constant(obj.value)
    return value, value


@split.register(trackers.Slice)
def _slice_argument(obj):
    parts = [split(p) for p in (obj.start, obj.stop, obj.step)]
    return slice(*[p[0] for p in parts]), slice(*[p[1] for p in parts])


def _split_items(items, kind):
    pairs = [split(i) for i in items]
    return kind(p[0] for p in pairs), kind(p[1] for p in pairs)


def _split_entries(entries: dict):
    pairs = {k: split(v) for k, v in entries.items()}
    return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}


split.register(trackers.Tuple, lambda obj: _split_items(obj.items, tuple))
split.register(trackers.List, lambda obj: _split_items(obj.items, list))


@split.register(trackers.Dict)
def _dict_argument(obj):
    if obj.cls is not dict:       # the op would get a plain dict
        raise GraphBreak(f"a {obj.cls.__name__} as an argument of a torch op", hint="the op runs in Python")
    return _split_entries(obj.items)


split.register(tuple, lambda obj: _split_items(obj, tuple))
split.register(dict, _split_entries)


@split.register(trackers.Size)
def _size_argument(obj):
    nodes, fakes = _split_items(obj.items, tuple)
    return nodes, torch.Size(fakes)


PYTHON_TYPE_DTYPES = {bool: torch.bool, int: torch.int64, float: torch.float64, complex: torch.complex128}


def _is_torch_function(target) -> bool:
    return isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)) or (
        getattr(target, "__module__", None) or "").startswith("torch")


def _spell_dtypes(structure):
    """torch ops take the Python types bool, int, float and complex as dtypes (`torch.tensor(0, dtype=int)`,
    `x.to(float)`): in the node they are the torch dtypes they stand for, which fx code can spell."""
    if isinstance(structure, type) and structure in PYTHON_TYPE_DTYPES:
        return PYTHON_TYPE_DTYPES[structure]
    if isinstance(structure, (tuple, list)):
        return type(structure)(_spell_dtypes(item) for item in structure)
    if isinstance(structure, dict):
        return {key: _spell_dtypes(value) for key, value in structure.items()}
    return structure


def graph_constant(value):
    """A constant as an op argument: numpy scalars become the Python numbers torch treats them as (fx code
    cannot spell `np.float64(2.0)`); a numpy bool, which torch does not treat as a Python bool, breaks."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(value, numpy.generic):
        return value
    if isinstance(value, numpy.bool_):
        raise GraphBreak("a numpy bool as a torch op argument", hint="the op runs in Python")
    return value.item()


def inputs_of(*structures) -> frozenset:
    found = set()

    def visit(o):
        if isinstance(o, trackers.Tensor):
            found.update(o.inputs)
        elif isinstance(o, (trackers.Tuple, trackers.List)):
            for i in o.items:
                visit(i)
        elif isinstance(o, (tuple, list)):
            for i in o:
                visit(i)
        elif isinstance(o, dict):
            for i in o.values():
                visit(i)
    visit(structures)
    return frozenset(found)


def contains_graph_value(v) -> bool:
    if isinstance(v, (torch.Tensor,) + SYM_TYPES):
        return True
    if isinstance(v, (tuple, list)):
        return any(contains_graph_value(i) for i in v)
    if isinstance(v, dict):
        return any(contains_graph_value(i) for i in v.values())
    if isinstance(v, slice):
        return any(contains_graph_value(i) for i in (v.start, v.stop, v.step))
    return False


PLAIN = (type(None), bool, int, float, complex, str, torch.dtype, torch.device, torch.layout,
         torch.memory_format, type(Ellipsis), slice)


def is_plain(v) -> bool:
    if isinstance(v, (tuple, list)):
        return all(is_plain(i) for i in v)
    return isinstance(v, PLAIN)


def describe(target) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    if "<locals>" in name:                              # F.max_pool1d is boolean_dispatch.<locals>.fn
        name = getattr(target, "__name__", name)
    if name.startswith("_VariableFunctionsClass."):      # torch.conv2d and the other C functions
        mod, name = "torch", name.split(".", 1)[1]
    return f"{mod}.{name}" if mod and not mod.startswith("builtins") else name


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
