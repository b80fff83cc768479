"""Python expressions that rebuild traced values at run time.

After a compiled graph runs, the frame's return value (or, at a graph break, its
stack and live locals) must become real Python objects again: graph outputs are
`__o[i]`, values from the caller's world are re-read from their sources,
constants come from a table, containers are rebuilt around them.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import types

import torch

from ..frontend import copies
from ..frontend.reads import static_lookup
from .. import trackers
from ..names import PREFIX, Constants
from ..errors import Unsupported
from ..rebuilt import GradRestore, completed, rebuild_plain
from .steps import NULL

OUTPUTS = PREFIX + "o"         # the graph's outputs in the runner


MUTABLE_CONSTANTS = (set, list, dict, bytearray)     # made at trace time (`s.split()`): a fresh copy per call


def _built_once(build):
    """For a container or an object whose identity the rebuilt code keeps: the caller's own is re-read from its
    source (synced in place if mutated); one made in the trace is built once, and every reference to its tracker
    gets the same object."""
    @functools.wraps(build)
    def rebuild(self, vt) -> str:
        if vt.source is not None:
            return vt.source.code
        return self.bind(vt, build(self, vt))
    return rebuild


class Rebuilder:
    def __init__(self, owned=()):
        self.owned = list(owned)       # copies made at trace time: rebuilt fresh, their parts found inside
        self.outputs = []              # fx nodes the graph must return
        self._output_index = {}
        self.constants = Constants(PREFIX + "c")   # the generated code's namespace
        self.tensors_from_graph = False
        self.statements = []           # `__vN = ...` bindings, so each container is built once
        self._bound = {}               # id(tracker) -> its variable
        self._building = set()         # id(tracker) of the functions being rebuilt (a closure holding itself)

    def bind(self, vt, expr: str) -> str:
        """Build a container once: every reference to the same tracker gets the same object."""
        name = f"{PREFIX}v{len(self.statements)}"
        self.statements.append(f"{name} = {expr}")
        self._bound[id(vt)] = (name, vt)
        return name

    def constant(self, value) -> str:
        return self.constants.name_for(value)

    def output(self, node) -> str:
        if node not in self._output_index:
            self._output_index[node] = len(self.outputs)
            self.outputs.append(node)
        return f"{OUTPUTS}[{self._output_index[node]}]"

    def expr(self, vt) -> str:
        if id(vt) in self._bound:
            return self._bound[id(vt)][0]
        return self._build(vt)

    @functools.singledispatchmethod
    def passed(self, vt) -> tuple[str, str | None]:
        """What a resume function takes for a live local: its expression and None; for a dict view, its dict's
        expression and the view's kind (the resume function's prologue takes the view again)."""
        return self.expr(vt), None

    @passed.register(trackers.DictView)
    def _view_passed(self, vt) -> tuple[str, str | None]:
        return self.expr(vt.dict), vt.kind

    @functools.singledispatchmethod
    def _build(self, vt) -> str:
        """The expression for one tracker: one method per tracker type, registered below."""
        raise Unsupported(f"cannot rebuild a {type(vt).__name__} at a graph break")

    @_build.register(trackers.Known)
    def _known(self, vt) -> str:
        inside_a_copy = vt.owned or self.owned and (type(vt.value) not in MUTABLE_CONSTANTS
                                                    or copies.locate(vt.value, self.owned) is not None)
        if vt.source is None and not copies.is_immutable_data(vt.value) and inside_a_copy:
            return self._copy_made_in_trace(vt)
        if vt.source is None and type(vt.value) in MUTABLE_CONSTANTS:
            # a set or list made in the trace: a fresh copy per call (the traced one would be shared by every
            # call, and a write after the break would show in the next call)
            if id(vt.value) not in self._bound:
                self.bind(vt.value, f"{type(vt.value).__name__}({self.constant(vt.value)})")
            return self._bound[id(vt.value)][0]
        return self._value(vt)

    @_build.register(trackers.Opaque)
    def _value(self, vt) -> str:
        return vt.source.code if vt.source is not None else self.constant(vt.value)

    def _copy_made_in_trace(self, vt) -> str:
        """An owned copy: a deep copy of its final state per call.  A mutable object reachable from one is that
        part of the rebuilt copy; any other object stays the constant it was."""
        if vt.owned:
            if id(vt.value) not in self._bound:
                self.bind(vt.value, f"{self.constant(copy.deepcopy)}({self.constant(copy.deepcopy(vt.value))})")
            return self._bound[id(vt.value)][0]
        if isinstance(vt.value, types.MethodType):
            # a method bound to a copy made in the trace (`m.register_forward_hook` loaded before the break):
            # bound to the rebuilt copy, which the rest of the frame uses
            receiver = next((o for o in self.owned if o.value is vt.value.__self__), None)
            if receiver is not None:
                return f"getattr({self.expr(receiver)}, {self.constant(vt.value.__name__)})"
        found = copies.locate(vt.value, self.owned)
        if found is None:
            return self._value(vt)
        root, path = found
        return f"{self.constant(copies.follow)}({self.expr(root)}, {self.constant(path)})"

    @_build.register(type(trackers.NULL))
    def _null(self, vt) -> str:
        return self.constant(NULL)

    @_build.register(trackers.Tensor)
    def _tensor(self, vt) -> str:
        if vt.source is not None and not self.tensors_from_graph:
            return vt.source.code
        return self.output(vt.node)

    @_build.register(trackers.Sym)
    def _symbol(self, vt) -> str:
        return vt.source.code if vt.source is not None else self.output(vt.node)

    @_build.register(trackers.Tuple)
    @_built_once
    def _tuple(self, vt) -> str:
        return f"({''.join(self.expr(i) + ', ' for i in vt.items)})"

    @_build.register(trackers.Size)
    @_built_once
    def _size(self, vt) -> str:
        return f"{self.constant(torch.Size)}(({''.join(self.expr(i) + ', ' for i in vt.items)}))"

    @_build.register(trackers.NamedTuple)
    @_built_once
    def _named_tuple(self, vt) -> str:
        items = "".join(self.expr(i) + ", " for i in vt.items)
        cls = self.constant(vt.cls)
        return f"{cls}({items})" if hasattr(vt.cls, "_make") else f"{cls}(({items}))"

    @_build.register(trackers.List)
    @_built_once
    def _list(self, vt) -> str:
        return f"[{', '.join(self.expr(i) for i in vt.items)}]"

    @_build.register(trackers.Dict)
    @_built_once
    def _dict(self, vt) -> str:
        items = "{" + ", ".join(f"{self.constant(k)}: {self.expr(v)}" for k, v in vt.items.items()) + "}"
        return items if vt.cls is dict else f"{self.constant(vt.cls)}({items})"

    @_build.register(trackers.Iterator)
    @_built_once
    def _iterator(self, vt) -> str:
        return f"iter([{', '.join(self.expr(i) for i in vt.items[vt.pos:])}])"

    @_build.register(trackers.DictView)
    @_built_once
    def _dict_view(self, vt) -> str:
        return f"{self.expr(vt.dict)}.{vt.kind}()"

    @_build.register(trackers.Generator)
    def _generator(self, vt) -> str:
        raise Unsupported(f"a generator ({vt.name}) alive at a graph break: its suspended frame cannot be "
                          f"rebuilt")

    @_build.register(trackers.Slice)
    def _slice(self, vt) -> str:
        return f"slice({self.expr(vt.start)}, {self.expr(vt.stop)}, {self.expr(vt.step)})"

    @_build.register(trackers.Method)
    def _method(self, vt) -> str:
        method = vt.function()
        if method is not None:      # `dict.get` found through super(), past the receiver's own class
            return f"{self.constant(types.MethodType)}({self.constant(method)}, {self.expr(vt.receiver)})"
        return f"getattr({self.expr(vt.receiver)}, {self.constant(vt.name)})"

    @_build.register(trackers.GradModeExit)
    def _grad_mode_exit(self, vt) -> str:
        return f"{self.constant(GradRestore)}({vt.restore})"

    @_build.register(trackers.DataObject)
    @_built_once
    def _data_object(self, vt) -> str:
        if vt.plain:
            slots = {k for k in vt.fields if isinstance(static_lookup(vt.cls, k), types.MemberDescriptorType)}
            fields, slotted = ({k: v for k, v in vt.fields.items() if (k in slots) is in_slot} for in_slot in (False, True))
            args = [self.constant(vt.cls)] + ["{" + ", ".join(f"{self.constant(k)}: {self.expr(v)}" for k, v in part.items())
                                              + "}" for part in ([fields, slotted] if slotted else [fields])]
            return f"{self.constant(rebuild_plain)}({', '.join(args)})"
        arguments = {fl.name for fl in dataclasses.fields(vt.cls) if fl.init}
        fields = ", ".join(f"{k}={self.expr(v)}" for k, v in vt.fields.items() if k in arguments)
        built = f"{self.constant(vt.cls)}({fields})"
        attributes = {k: v for k, v in vt.fields.items() if k not in arguments}
        keys = tuple(vt.mapping or ())
        if keys == tuple(fl.name for fl in dataclasses.fields(vt.cls) if fl.name in keys) and not attributes:
            return built
        attributes = "{" + ", ".join(f"{self.constant(k)}: {self.expr(v)}" for k, v in attributes.items()) + "}"
        return f"{self.constant(completed)}({built}, {attributes}, {self.constant(keys)})"

    @_build.register(trackers.Partial)
    @_built_once
    def _partial(self, vt) -> str:
        args = "".join(self.expr(a) + ", " for a in vt.args)
        kwargs = "".join(f"{k}={self.expr(v)}, " for k, v in vt.kwargs.items())
        return f"{self.constant(functools.partial)}({self.expr(vt.fn)}, {args}{kwargs})"

    @_build.register(trackers.LazyIterator)
    @_built_once
    def _lazy_iterator(self, it: trackers.LazyIterator) -> str:
        sources = [self.expr(s) for s in it.sources]
        state = it.state
        if it.kind == "zip":
            return f"zip({''.join(s + ', ' for s in sources)}strict={state['strict']})" if not state["done"] \
                else "iter(())"
        if it.kind == "enumerate":
            return f"enumerate({sources[0]}, {state['index']})"
        if it.kind in ("map", "filter"):
            return f"{it.kind}({self.expr(state['fn'])}, {', '.join(sources)})"
        if it.kind == "count":
            return f"{self.constant(itertools.count)}({state['next']!r}, {state['step']!r})"
        if it.kind == "repeat":
            times = "" if state["times"] is None else f", {state['times']}"
            return f"{self.constant(itertools.repeat)}({self.expr(state['item'])}{times})"
        if state.get("done"):
            return "iter(())"
        stop = None if state["stop"] is None else state["stop"] - state["pos"]
        start = max(state["start"] - state["pos"], 0)
        if state["pos"] > state["start"]:     # the next item kept is the first step boundary from here
            start = (-(state["pos"] - state["start"])) % state["step"]
        return f"{self.constant(itertools.islice)}({sources[0]}, {start}, {stop}, {state['step']})"

    @_build.register(trackers.Function)
    @_built_once
    def _function(self, fn: trackers.Function) -> str:
        from .steps import make_function
        if fn.source is not None:
            return fn.source.code       # the caller's function itself (its cells are never written in the trace)
        if id(fn) in self._building:
            raise Unsupported(f"a function whose closure holds itself ({fn.name}, a recursive local function) "
                              f"cannot be rebuilt at a graph break")
        self._building.add(id(fn))
        try:
            defaults = f"({''.join(self.expr(d) + ', ' for d in fn.defaults)})"
            kwdefaults = "{" + ", ".join(f"{self.constant(k)}: {self.expr(v)}" for k, v in fn.kwdefaults.items()) + "}"
            cells = [c.contents for c in fn.closure]
            if any(c is None for c in cells):
                raise Unsupported("cannot rebuild a closure with an empty cell")
            values = f"({''.join(self.expr(c) + ', ' for c in cells)})"
        finally:
            self._building.discard(id(fn))
        return (f"{self.constant(make_function)}({self.constant(fn.code)}, {self.constant(fn.globals)}, "
                f"{self.constant(fn.name)}, {defaults}, {kwdefaults}, {values})")
