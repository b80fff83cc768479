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
from ..sources import Src, dim_source, size

SYM_TYPES = (torch.SymInt, torch.SymFloat, torch.SymBool)     # the symbolic scalars a ShapeEnv hands out


@dataclass(frozen=True)
class ProvenanceSLoc(SLoc):
    """A ShapeEnv location that also carries the guard's provenance (guards/provenance.py)."""
    provenance: object = None


def _not_a_break(record: logging.LogRecord) -> bool:
    """ShapeEnv warns about any exception raised while it evaluates a guard; a graph break the policy raises
    there (`TracedShapeEnv.relation_check`) is not a failure."""
    return not (record.msg.startswith("failed during evaluate_expr") and isinstance(sys.exc_info()[1], GraphBreak))


_SHAPE_ENV_LOG = logging.getLogger(ShapeEnv.__module__).getChild("partialdyn")    # propagates to torch's
_SHAPE_ENV_LOG.addFilter(_not_a_break)


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
        self.symbol_dims: dict[sympy.Symbol, tuple[str, int | None]] = {}

    def fake_tensor(self, t: torch.Tensor, source: Src, dynamic_dims: set[int],
                    unbacked_dims: frozenset = frozenset()) -> torch.Tensor:
        """`unbacked_dims` (partialdyn.mark_unbacked) get a symbol without a hint: no 0/1 specialization and no
        guards; Python consuming it graph-breaks."""
        dims = [DimDynamic.UNBACKED if d in unbacked_dims else DimDynamic.DYNAMIC if d in dynamic_dims
                else DimDynamic.STATIC for d in range(t.dim())]
        if dynamic_dims or unbacked_dims:
            self.symbolic()
        fake = self.fake_mode.from_tensor(t, source=source,
                                          symbolic_context=StatelessSymbolicContext(dynamic_sizes=dims))
        for d, s in enumerate(fake.shape):
            if isinstance(s, torch.SymInt) and isinstance(s.node.expr, sympy.Symbol):
                self.symbol_names.setdefault(s.node.expr, size(source, d))
                self.symbol_reads.setdefault(s.node.expr, dim_source(source, d))
                self.symbol_dims.setdefault(s.node.expr, (source.code, d))
        return fake

    def symbolic(self) -> None:
        """The trace has symbols: torch's fake-tensor dispatch cache is off from here on.  Making a cache
        entry re-synthesizes the op's output with symbolic sizes (sympy arithmetic per size and stride), and a
        first trace rarely hits what it stored: GPT-2's symbolic trace spends about a quarter of its time
        there (docs/performance.md).  Results are the same with or without the cache."""
        self.fake_mode.cache_enabled = False

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


def print_python(expr, symbols: dict) -> str:
    """`expr` as Python, with the symbols in `symbols` replaced by theirs."""
    from torch.utils._sympy.printers import PythonPrinter
    return PythonPrinter().doprint(expr.xreplace(symbols))
