"""Trackers: what the symbolic interpreter keeps on its stack, and how graph values are recorded.

Every value the traced code touches is one of:

  Known        a Python value known at trace time (numbers, strings, functions, modules, dtypes,
               objects of the caller's world); guarded by its source if it has one
  Tensor       a tensor in the graph: fx node + fake value (symbolic sizes)
  Sym          a symbolic int/float/bool in the graph (sizes and size math)
  Tuple/List/Dict, NamedTuple, Size   containers of trackers (structure known, items may be symbolic)
  Function     a function made during the trace (lambda, comprehension, def), with its Cells
  Method       a callable bound to a tracker (`x.view`, `lst.append`, `d.items`)
  Partial      functools.partial over a tracked callable
  Iterator     an iterator over known items (for loops)
  Generator    a generator object made in the trace: a suspended frame, run only as far as it is consumed
  LazyIterator zip / enumerate / map / filter / itertools.count & co, pulled one item at a time
  DictView     d.keys() / d.values() / d.items(): a live view of a Dict tracker, a model output's dict part or a
               dict of the caller's world held as an object
  GradMode / GradModeExit   torch.no_grad() & co, and the exit of their `with`
  Autocast / AutocastExit   torch.autocast(...) and the exit of its `with` (a region in the graph)
  Slice        a slice with symbolic bounds
  DataObject   a dataclass or plain-class instance created in the trace
  Super        super() of a class and an instance
  Opaque       a runtime value the tracer must not look into
  NULL         CPython's NULL stack marker

`inputs` on Tensor is the dataflow the policy and the logs report: the set of
graph-input sources a value was computed from.
"""
from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field
from typing import Any

import torch


class VT:
    source = None

    def python_type(self) -> type:
        raise NotImplementedError


@dataclass(eq=False)
class Known(VT):
    value: Any
    source: Any = None
    by_contents: bool = False      # guarded by what the trace reads of it (fields, items), not by identity
    per_call: bool = False         # (by contents) its parts come with each call as arguments do (Trace.wrap_part)
    owned: bool = False            # a plain-data copy made in the trace (copy.deepcopy): rebuilt fresh per call

    def python_type(self):
        return type(self.value)


@dataclass(eq=False)
class Tensor(VT):
    node: Any                  # torch.fx.Node
    fake: torch.Tensor
    source: Any = None
    inputs: frozenset = frozenset()
    cls: type = torch.Tensor   # nn.Parameter for parameters

    def python_type(self):
        return self.cls


@dataclass(eq=False)
class Sym(VT):
    node: Any
    value: Any                 # torch.SymInt / SymFloat / SymBool
    source: Any = None

    def python_type(self):
        return {torch.SymInt: int, torch.SymFloat: float, torch.SymBool: bool}[type(self.value)]


@dataclass(eq=False)
class Tuple(VT):
    items: list
    source: Any = None

    def python_type(self):
        return tuple


@dataclass(eq=False)
class NamedTuple(Tuple):
    cls: type = tuple

    def python_type(self):
        return self.cls


@dataclass(eq=False)
class Size(Tuple):
    def python_type(self):
        return torch.Size


@dataclass(eq=False)
class List(VT):
    items: list
    source: Any = None

    def python_type(self):
        return list


class CallerList(List):
    """A list of the caller's world whose length and items are read (and guarded, by `load`) only when the
    trace first needs them: a trace that only appends to it (a log) does not depend on how long it is, as
    eager would not.  Appends made before that wait in `appended` and are replayed with `extend`."""

    def __init__(self, source, load):
        self.source, self._load, self._items, self.appended = source, load, None, []

    @property
    def loaded(self) -> bool:
        return self._items is not None

    @property
    def items(self) -> list:
        if self._items is None:
            self._items = self._load() + self.appended
            self.appended = []
        return self._items

    @items.setter
    def items(self, items):
        self._items = items

    def __repr__(self):
        return f"CallerList({self.source}, {'loaded' if self.loaded else f'{len(self.appended)} appended'})"


@dataclass(eq=False)
class Dict(VT):
    items: dict                # python key -> VT
    source: Any = None
    cls: type = dict           # or an OrderedDict (a subclass that keeps OrderedDict's methods) of the caller's world

    def python_type(self):
        return self.cls


@dataclass(eq=False)
class Function(VT):
    code: Any
    globals: dict
    name: str
    defaults: tuple = ()
    kwdefaults: dict = field(default_factory=dict)
    closure: tuple = ()        # of Cell
    source: Any = None         # the caller's function object this stands for (a local function passed in)

    def python_type(self):
        return type(lambda: None)


@dataclass(eq=False)
class Cell(VT):
    contents: VT | None = None     # None: the cell is empty (a cell holding Python None holds trackers.Known(None))
    source: Any = None             # a cell of the traced function's own closure


def cell_filled(cell) -> bool:
    """Whether a Python cell holds a value (None included); an empty cell raises ValueError on read."""
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


@dataclass(eq=False)
class Method(VT):
    receiver: VT
    name: str
    owner: type | None = None  # a builtin class whose own method this is, found through super() (`dict.get`)

    def python_type(self):
        return type(len)

    def function(self):
        """The owner's own method (`dict.get`); None when the name is looked up on the receiver."""
        return None if self.owner is None else getattr(self.owner, self.name)


@dataclass(eq=False)
class Iterator(VT):
    items: list
    pos: int = 0

    def python_type(self):
        return type(iter([]))


@dataclass(eq=False)
class Generator(VT):
    frame: Any                     # the generator's tracer Frame, suspended at its last yield
    name: str
    state: str = "created"         # created / suspended / running / finished

    def python_type(self):
        return type((lambda: (yield))())


@dataclass(eq=False)
class LazyIterator(VT):
    """An iterator whose items are produced on demand (generators.py gives each kind its step and rebuild)."""
    kind: str                      # zip, enumerate, map, filter, count, repeat, islice
    sources: list                  # the iterator trackers it pulls from
    state: dict = field(default_factory=dict)   # per kind: the function, the counter, the items left ...

    def python_type(self):
        import itertools
        return {"zip": zip, "enumerate": enumerate, "map": map, "filter": filter, "count": itertools.count,
                "repeat": itertools.repeat, "islice": itertools.islice}[self.kind]


@dataclass(eq=False)
class DictView(VT):
    """`d.keys()`, `d.values()`, `d.items()` of a Dict tracker, of a DataObject's mapping (a model output), or of a
    Known dict of the caller's world (a defaultdict): reads the dict each time, so it stays live."""
    dict: VT
    kind: str                      # keys / values / items

    def python_type(self):
        ordered = issubclass(self.dict.python_type(), collections.OrderedDict)
        return type(getattr(collections.OrderedDict() if ordered else {}, self.kind)())


@dataclass(eq=False)
class GradMode(VT):
    enabled: bool
    applied: bool | None = None    # set_grad_enabled(...) applies at once: the mode it replaced

    def python_type(self):
        return torch.no_grad


@dataclass(eq=False)
class GradModeExit(VT):
    restore: bool

    def python_type(self):
        return type(len)


@dataclass(eq=False)
class Autocast(VT):
    """`torch.autocast(...)` made in the trace, its arguments resolved (frontend/autocast.py)."""
    device_type: str
    dtype: Any
    enabled: bool
    cache_enabled: bool

    def python_type(self):
        return torch.autocast


@dataclass(eq=False)
class AutocastExit(VT):
    """The exit of a traced autocast region: the graph node that entered it and the mode entered at trace time."""
    node: Any
    mode: Any

    def python_type(self):
        return type(len)


@dataclass(eq=False)
class Slice(VT):
    start: VT
    stop: VT
    step: VT

    def python_type(self):
        return slice


@dataclass(eq=False)
class DataObject(VT):
    """An instance created in the trace (a dataclass, or a plain class whose __init__ was inlined): its
    fields are trackers.  For dataclasses that are also dicts (transformers' ModelOutput), `mapping` holds
    the dict view (fields that are not None)."""
    cls: type
    fields: dict
    mapping: dict | None = None
    plain: bool = False            # built by __init__ (rebuilt without calling it), not by dataclass fields

    def python_type(self):
        return self.cls


@dataclass(eq=False)
class Partial(VT):
    """functools.partial over a tracked callable."""
    fn: VT
    args: list
    kwargs: dict

    def python_type(self):
        return functools.partial


@dataclass(eq=False)
class Super(VT):
    cls: type
    obj: VT

    def python_type(self):
        return super


class _Null(VT):
    def __repr__(self):
        return "NULL"


NULL = _Null()


@dataclass(eq=False)
class Opaque(VT):
    """A runtime value the tracer must not look into (numpy arrays, iterators, ranges from inputs)."""
    cls: type
    source: Any = None

    def python_type(self):
        return self.cls

