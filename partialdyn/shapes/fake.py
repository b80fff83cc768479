"""One FakeTensorMode + ShapeEnv per compile, and fake values for inputs.

Input tensors become fake tensors whose chosen dims are fresh symbols (no duck
sizing: two dims are equal only if the trace proves it); int inputs become
symbolic ints.  `symbol_names` maps every symbol we create to the user-facing
expression of its source (`x.size(0)`, `k`), which is also valid guard code.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import sympy
import torch
from torch._guards import SLoc
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import (DimDynamic, ShapeEnv, StatelessSymbolicContext,
                                                   free_unbacked_symbols)

from ..errors import GraphBreak
from ..sources import Src, dim_source, size, storage_offset, storage_offset_source, stride, stride_source

SYM_TYPES = (torch.SymInt, torch.SymFloat, torch.SymBool)     # the symbolic scalars a ShapeEnv hands out


@dataclass(frozen=True)
class ProvenanceSLoc(SLoc):
    """A ShapeEnv location that also carries the guard's provenance (guards/provenance.py)."""
    provenance: object = None


# what torch logs about an exception that escapes a guard's evaluation or a fake kernel (ShapeEnv warns, the fake
# tensor mode logs an error with its traceback); a graph break the policy raises there
# (`TracedShapeEnv.relation_check`) is not a failure, and the user would see a traceback for nothing
_FAILURE_MESSAGES = ("failed during evaluate_expr", "failed while attempting to run meta")


def _not_a_break(record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, str) and record.msg.startswith(_FAILURE_MESSAGES)
                and isinstance(sys.exc_info()[1], GraphBreak))


_SHAPE_ENV_LOG = logging.getLogger(ShapeEnv.__module__).getChild("partialdyn")    # propagates to torch's
_SHAPE_ENV_LOG.addFilter(_not_a_break)
logging.getLogger(FakeTensorMode.__module__).addFilter(_not_a_break)     # its module's own logger


class TracedShapeEnv(ShapeEnv):
    """A ShapeEnv whose guards and range bounds record where in the *traced* code they were made: the
    ShapeEnv's own location lookup walks partialdyn's stack, not the user's.  While an operation runs on fake
    values, `relation_check` sees every relation its shape rules are about to guard, and may refuse it with a
    graph break (shapes/policy.py `Consumer.check_relation`)."""
    provenance = None       # callable -> Provenance, set by the trace
    relation_check = None   # callable(sympy relation), set while an operation runs (Shapes.operation)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = _SHAPE_ENV_LOG

    def _get_sloc(self, framework_loc=None):
        provenance = self.provenance() if self.provenance is not None else None
        return ProvenanceSLoc(framework_loc, None, provenance)

    def _maybe_guard_rel(self, expr) -> None:
        if self.relation_check is not None:
            self.relation_check(expr)
        super()._maybe_guard_rel(expr)


def provenance_of_sloc(sloc):
    """The provenance a TracedShapeEnv recorded, or None."""
    return getattr(sloc, "provenance", None)


class Shapes:
    def __init__(self):
        self.shape_env = TracedShapeEnv(duck_shape=False)
        self.current_op = None          # the operation running on fake values now (a provenance's op)
        self.relation_check = None      # what an operation's guarded relations must pass (Consumer.check_relation)
        self.fake_mode = FakeTensorMode(shape_env=self.shape_env, allow_non_fake_inputs=True)
        self.symbol_names: dict[sympy.Symbol, str] = {}     # symbol -> `x.size(0)` (what users read)
        self.symbol_reads: dict[sympy.Symbol, Src] = {}     # symbol -> the source guards read (`x.shape[0]`)
        self.symbol_dims: dict[sympy.Symbol, tuple[str, int | str | None]] = {}
        # (read, name, tensor source code, expr, provenance): a stride or storage offset of a strided input
        # (`fake_tensor`) that is a number or an expression over other symbols; the guard asks the read to equal it
        self.layout_relations: list[tuple] = []
        # (tensor name, sympy condition, provenance): a strided input's elements do not overlap (`strided_layout`)
        self.layout_conditions: list[tuple] = []

    def fake_tensor(self, t: torch.Tensor, source: Src, dynamic_dims: set[int],
                    unbacked_dims: frozenset = frozenset(), strided: bool = False,
                    dynamic_strides: frozenset = frozenset()) -> torch.Tensor:
        """`unbacked_dims` (partialdyn.mark_unbacked) get a symbol without a hint: no 0/1 specialization and no
        guards; Python consuming it graph-breaks.

        `strided`: the tensor's layout is not a dense block (a slice, an index, an expand, a storage offset;
        `strided_layout` says which qualify): its strides and storage offset are symbolic too.  The ShapeEnv
        writes each stride as a number (0 and 1), as an expression over the sizes and strides of the dims
        below it where the values agree (`x.stride(0) == x.size(1) * x.stride(1)`, a slice of the last dim),
        or as a fresh symbol (`x[:, 0]`'s first stride): fresh symbols become inputs like sizes (`x.stride(0)`,
        `x.storage_offset()`), the rest `layout_relations`; the order in which the dims do not overlap
        becomes `layout_conditions`.  `dynamic_strides` (dims) get a fresh symbol even where sizes are static
        (policy `automatic`, a stride seen changing)."""
        dims = [DimDynamic.UNBACKED if d in unbacked_dims else DimDynamic.DYNAMIC if d in dynamic_dims
                else DimDynamic.STATIC for d in range(t.dim())]
        strides = [DimDynamic.DYNAMIC if d in dynamic_strides else DimDynamic.INFER_STRIDE for d in range(t.dim())]
        if dynamic_dims or unbacked_dims or dynamic_strides:
            self.symbolic()
        context = StatelessSymbolicContext(dynamic_sizes=dims, dynamic_strides=strides)
        fake = self.fake_mode.from_tensor(t, source=source, symbolic_context=context)
        for d, s in enumerate(fake.shape):
            if isinstance(s, torch.SymInt) and isinstance(s.node.expr, sympy.Symbol):
                self.symbol_names.setdefault(s.node.expr, size(source, d))
                self.symbol_reads.setdefault(s.node.expr, dim_source(source, d))
                self.symbol_dims.setdefault(s.node.expr, (source.code, d))
        if strided:
            for d, s in enumerate(fake.stride()):
                self._layout_value(s, stride_source(source, d), stride(source, d), source.code, f"stride({d})")
            self._layout_value(fake.storage_offset(), storage_offset_source(source), storage_offset(source),
                               source.code, "storage_offset()")
            self._no_overlap(fake, str(source))
        return fake

    def _layout_value(self, value, read: Src, name: str, tensor: str, what: str) -> None:
        expr = _expr(value)
        if isinstance(expr, sympy.Symbol) and expr not in self.symbol_names:
            self.symbolic()
            self.symbol_names[expr], self.symbol_reads[expr], self.symbol_dims[expr] = name, read, (tensor, what)
        else:
            self.layout_relations.append((read, name, tensor, expr, self._made_here()))

    def _no_overlap(self, fake, name: str) -> None:
        """The condition `strided_layout` checked on the real tensor, over the fake's symbolic sizes and
        strides: each dim's stride (in the order of the traced strides) is past the last element the dims
        below it reach.  Dims of size 1 and of stride 0 (expanded) are left out: the guard pins them (size
        1, stride 0), so the overlap an expanded dim makes is the same for every input the entry accepts."""
        order = overlap_order([_hint(s) for s in fake.shape], [_hint(s) for s in fake.stride()])
        for stride_, reach in strides_and_reaches([_expr(s) for s in fake.shape], [_expr(s) for s in fake.stride()],
                                                  order):
            self.layout_conditions.append((name, sympy.Gt(stride_, reach), self._made_here()))

    def symbolic(self) -> None:
        """The trace has symbols: torch's fake-tensor dispatch cache is off from here on.  Making a cache
        entry re-synthesizes the op's output with symbolic sizes (sympy arithmetic per size and stride), and a
        first trace rarely hits what it stored: GPT-2's symbolic trace spends about a quarter of its time
        there (docs/performance.md).  Results are the same with or without the cache."""
        self.fake_mode.cache_enabled = False

    def _made_here(self):
        return self.provenance() if self.provenance is not None else None

    @property
    def provenance(self):
        return self.shape_env.provenance

    @provenance.setter
    def provenance(self, callback):
        self.shape_env.provenance = callback

    @contextmanager
    def operation(self, op: str):
        """Guards the ShapeEnv makes inside the block are attributed to `op`, and pass `relation_check`."""
        outer, self.current_op = self.current_op, op
        outer_check, self.shape_env.relation_check = self.shape_env.relation_check, self.relation_check
        try:
            yield
        finally:
            self.current_op = outer
            self.shape_env.relation_check = outer_check

    def sym_int(self, value: int, source: Src) -> torch.SymInt:
        self.symbolic()
        sym = self.shape_env.create_symbol(value, source, dynamic_dim=DimDynamic.DYNAMIC,
                                           positive=None, do_not_specialize_zero_one=True)
        self.symbol_names[sym] = str(source)
        self.symbol_reads[sym] = source
        self.symbol_dims[sym] = (source.code, None)
        return self.shape_env.create_symintnode(sym, hint=value, source=source)

    def sym_float(self, value: float, source: Src) -> torch.SymFloat:
        self.symbolic()
        sym = self.shape_env.create_unspecified_symbol(value, source, dynamic_dim=DimDynamic.DYNAMIC)
        self.symbol_names[sym] = str(source)
        self.symbol_reads[sym] = source
        self.symbol_dims[sym] = (source.code, None)
        return self.shape_env.create_symfloatnode(sym, hint=value, source=source)

    def input_symbols(self, value) -> set:
        """The input symbols a symbolic value or tensor size depends on."""
        exprs = []
        if isinstance(value, torch.Tensor):
            exprs = [s.node.expr for s in value.shape if isinstance(s, torch.SymInt)]
        elif isinstance(value, SYM_TYPES):
            exprs = [value.node.expr]
        return {f for e in exprs for f in e.free_symbols if f in self.symbol_names}

    def is_data_dependent(self, value) -> bool:
        return bool(free_unbacked_symbols(value))

    def describe(self, expr) -> str:
        """A sympy expression over input symbols in the user's terms."""
        return print_python(expr, {s: sympy.Symbol(n) for s, n in self.symbol_names.items()})


def _hint(value) -> int:
    return value.node.hint if isinstance(value, torch.SymInt) else int(value)


def _expr(value):
    return value.node.expr if isinstance(value, torch.SymInt) else sympy.Integer(value)


def overlap_order(sizes, strides) -> list[int]:
    """The dims that can make elements overlap (size > 1, stride > 0), by increasing stride."""
    return sorted((d for d in range(len(sizes)) if sizes[d] > 1 and strides[d] > 0), key=lambda d: (strides[d], -d))


def strided_layout(t: torch.Tensor) -> bool:
    """Can a tensor that is not a dense block (shapes.fake.Shapes.fake_tensor) have symbolic sizes, strides
    and storage offset?  A strided tensor without an empty dim whose dims of size > 1 and stride > 0, taken by
    increasing stride, each step past every element the ones before reach (no two elements share memory,
    except along expanded dims of stride 0): slices, indexing, `narrow`, `select`, `diagonal`, `expand` and
    their permutations.  Other overlaps (`unfold`, `as_strided`) are static."""
    if t.layout != torch.strided or 0 in t.shape:
        return False
    sizes, strides = t.shape, t.stride()
    return all(stride > reach for stride, reach in strides_and_reaches(sizes, strides, overlap_order(sizes, strides)))


def strides_and_reaches(sizes, strides, order):
    """For each dim of `order` after the first: its stride and how far the elements of the dims before it reach
    (their sum of (size - 1) * stride).  The layout has no overlap when each stride is past its reach; numbers
    for a real tensor (`strided_layout`), expressions for a fake one (`Shapes._no_overlap`)."""
    reach = None
    for d in order:
        if reach is not None:
            yield strides[d], reach
        extent = (sizes[d] - 1) * strides[d]
        reach = extent if reach is None else reach + extent


def print_python(expr, symbols: dict) -> str:
    """`expr` as Python, with the symbols in `symbols` replaced by theirs."""
    from torch.utils._sympy.printers import PythonPrinter
    return PythonPrinter().doprint(expr.xreplace(symbols))
