"""Python expressions that rebuild traced values at run time.

After a compiled graph runs, the frame's return value (or, at a graph break, its
stack and live locals) must become real Python objects again: graph outputs are
`__o[i]`, values from the caller's world are re-read from their sources,
constants come from a table, containers are rebuilt around them.
"""
from __future__ import annotations

import copy
import functools
import itertools

import torch

from ..frontend import copies
from .. import trackers
from ..names import PREFIX, Constants
from ..errors import Unsupported
from ..rebuilt import GradRestore, rebuild_plain
from .steps import NULL

OUTPUTS = PREFIX + "o"         # the graph's outputs in the runner


MUTABLE_CONSTANTS = (set,)


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
        if isinstance(vt, (trackers.List, trackers.Dict, trackers.Tuple, trackers.Iterator, trackers.DataObject, trackers.Function, trackers.Partial,
                           trackers.LazyIterator, trackers.DictView)):
            if getattr(vt, "source", None) is not None:
                return vt.source.code          # the caller's own container (synced in place if mutated)
            return self.bind(vt, self._build(vt))
        if isinstance(vt, trackers.Known) and vt.source is None and not copies.is_immutable_data(vt.value) and \
                (vt.owned or self.owned) and type(vt.value) not in MUTABLE_CONSTANTS:
            return self._copy_made_in_trace(vt)
        if isinstance(vt, trackers.Known) and vt.source is None and type(vt.value) in MUTABLE_CONSTANTS:
            # a set made in the trace: a fresh copy per call (the traced one is shared by every call)
            if id(vt.value) not in self._bound:
                self.bind(vt.value, f"{type(vt.value).__name__}({self.constant(vt.value)})")
            return self._bound[id(vt.value)][0]
        return self._build(vt)

    def _copy_made_in_trace(self, vt) -> str:
        """An owned copy: a deep copy of its final state per call.  A mutable object reachable from one is that
        part of the rebuilt copy; any other object stays the constant it was."""
        if vt.owned:
            if id(vt.value) not in self._bound:
                self.bind(vt.value, f"{self.constant(copy.deepcopy)}({self.constant(copy.deepcopy(vt.value))})")
            return self._bound[id(vt.value)][0]
        found = copies.locate(vt.value, self.owned)
        if found is None:
            return self._build(vt)
        root, path = found
        return f"{self.constant(copies.follow)}({self.expr(root)}, {self.constant(path)})"

    def _build(self, vt) -> str:
        if vt is trackers.NULL:
            return self.constant(NULL)
        if isinstance(vt, (trackers.Tensor, trackers.Sym)):
            if vt.source is not None and not (self.tensors_from_graph and isinstance(vt, trackers.Tensor)):
                return vt.source.code
            return self.output(vt.node)
        if isinstance(vt, (trackers.Known, trackers.Opaque)):
            return vt.source.code if vt.source is not None else self.constant(vt.value)
        if isinstance(vt, trackers.Size):
            return f"{self.constant(torch.Size)}(({''.join(self.expr(i) + ', ' for i in vt.items)}))"
        if isinstance(vt, trackers.NamedTuple):
            items = "".join(self.expr(i) + ", " for i in vt.items)
            cls = self.constant(vt.cls)
            return f"{cls}({items})" if hasattr(vt.cls, "_make") else f"{cls}(({items}))"
        if isinstance(vt, trackers.Tuple):
            return f"({''.join(self.expr(i) + ', ' for i in vt.items)})"
        if isinstance(vt, trackers.List):
            return f"[{', '.join(self.expr(i) for i in vt.items)}]"
        if isinstance(vt, trackers.Dict):
            return "{" + ", ".join(f"{self.constant(k)}: {self.expr(v)}" for k, v in vt.items.items()) + "}"
        if isinstance(vt, trackers.Iterator):
            return f"iter([{', '.join(self.expr(i) for i in vt.items[vt.pos:])}])"
        if isinstance(vt, trackers.LazyIterator):
            return self._lazy_iterator(vt)
        if isinstance(vt, trackers.DictView):
            return f"{self.expr(vt.dict)}.{vt.kind}()"
        if isinstance(vt, trackers.Generator):
            raise Unsupported(f"a generator ({vt.name}) alive at a graph break: its suspended frame cannot be "
                              f"rebuilt")
        if isinstance(vt, trackers.Slice):
            return f"slice({self.expr(vt.start)}, {self.expr(vt.stop)}, {self.expr(vt.step)})"
        if isinstance(vt, trackers.Method):
            return f"getattr({self.expr(vt.receiver)}, {self.constant(vt.name)})"
        if isinstance(vt, trackers.GradModeExit):
            return f"{self.constant(GradRestore)}({vt.restore})"
        if isinstance(vt, trackers.Function):
            return self._function(vt)
        if isinstance(vt, trackers.DataObject) and vt.plain:
            fields = ", ".join(f"{self.constant(k)}: {self.expr(v)}" for k, v in vt.fields.items())
            return f"{self.constant(rebuild_plain)}({self.constant(vt.cls)}, {{{fields}}})"
        if isinstance(vt, trackers.DataObject):
            fields = ", ".join(f"{k}={self.expr(v)}" for k, v in vt.fields.items())
            return f"{self.constant(vt.cls)}({fields})"
        if isinstance(vt, trackers.Partial):
            args = "".join(self.expr(a) + ", " for a in vt.args)
            kwargs = "".join(f"{k}={self.expr(v)}, " for k, v in vt.kwargs.items())
            return f"{self.constant(functools.partial)}({self.expr(vt.fn)}, {args}{kwargs})"
        raise Unsupported(f"cannot rebuild a {type(vt).__name__} at a graph break")

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

    def _function(self, fn: trackers.Function) -> str:
        from .steps import make_function
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
