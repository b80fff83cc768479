"""The shape policy: what happens when Python consumes a symbolic value.

`partial` (default): a bool use guards the predicate only; a value use
specializes the dims involved; a dim that already caused `recompile_limit`
recompiles of the function (its resume functions share the count) is *unstable*
and consuming it graph-breaks, when the compile budget affords the break
(runtime/budget.py); otherwise it is specialized as `static` would.
`dynamic`: every consumption graph-breaks.  `static`: inputs have no symbols.
`automatic`: inputs start static; a dim seen changing becomes dynamic and is
then treated as under `partial` (without backoff).
Data-dependent (unbacked) values can never be specialized: consuming them is a
graph break under every policy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import GraphBreak


@dataclass
class FrameShapeState:
    """What the policy remembers across compiles.  The dim tables are shared by a function and all its resume
    functions and callees (`shared_with`); `constant_floats` is per code object."""
    recompiles_by_dim: dict = field(default_factory=dict)   # dim key -> recompiles it caused
    charge_by_dim: dict = field(default_factory=dict)       # dim key -> backoff charge (predicate-only: 1/2)
    unstable: set = field(default_factory=set)               # dim keys that graph-break when consumed
    changed: set = field(default_factory=set)                # automatic: dims seen changing
    constant_floats: bool = False   # the backend cannot take symbolic float inputs here: floats are constants

    def shared_with(self) -> "FrameShapeState":
        """A state for a child code object: the same dim tables, its own float flag."""
        return FrameShapeState(self.recompiles_by_dim, self.charge_by_dim, self.unstable, self.changed)


def starts_dynamic(policy: str, state: FrameShapeState, key: str) -> bool:
    if policy in ("partial", "dynamic"):
        return True
    if policy == "automatic":
        return key in state.changed
    return False


@dataclass
class Consumer:
    """Per-trace policy decisions; records what was specialized and where."""
    policy: str
    state: FrameShapeState
    shapes: object                                  # shapes.fake.Shapes
    where: object = None                            # callable -> (file, line, text)
    specializations: list = field(default_factory=list)
    break_allowed: bool = True      # the compile budget affords a backoff break (else unstable dims specialize)
    backoff_break: bool = False     # this trace stopped at an unstable dim

    def _check(self, value, use: str, op: str):
        shapes = self.shapes
        if shapes.is_data_dependent(value):
            raise GraphBreak(f"Python needs the data-dependent value {self._text(value)} ({op})",
                             hint="data-dependent sizes and .item() results cannot be specialized; "
                                  "keep them in tensor ops or accept the break")
        if self.policy == "dynamic":
            raise GraphBreak(f"policy 'dynamic': Python {use} of {self._text(value)} ({op})",
                             hint="use policy='partial' to allow guarded specialization")
        unstable = [shapes.symbol_names[s] for s in shapes.input_symbols(value)
                    if shapes.symbol_names[s] in self.state.unstable]
        if unstable and self.break_allowed:
            self.backoff_break = True
            raise GraphBreak(f"{', '.join(unstable)} is unstable (recompiled too often); "
                             f"its {use} by {op} runs in Python",
                             hint="keep the size symbolic (pass it to torch ops) to avoid the break")

    def as_bool(self, value, op: str) -> bool:
        self._check(value, "bool use", op)
        text, symbols = self._text(value), self.shapes.input_symbols(value)   # before guarding replaces them
        with self.shapes.operation(op):
            result = bool(value)
        self._record("predicate", text if result else f"not ({text})", op, symbols)
        return result

    def as_value(self, value, op: str):
        self._check(value, "value use", op)
        symbols, text = self.shapes.input_symbols(value), self._text(value)
        with self.shapes.operation(op):
            concrete = value.node.guard_int("", 0) if isinstance(value, torch.SymInt) else \
                value.node.guard_float("", 0) if isinstance(value, torch.SymFloat) else bool(value)
        self._record("value", concrete, op, symbols, expr=text)
        return concrete

    def _text(self, value) -> str:
        return self.shapes.describe(value.node.expr)

    def _record(self, kind, detail, op, symbols, expr=None):
        """One record per input dim involved; `expr` is the consumed expression when it is more than the dim
        (`x.size(1) // 4`), so a value record never claims the dim itself had that value."""
        file, line, text = self.where() if self.where else (None, None, "")
        for sym in sorted(symbols, key=str):
            name = self.shapes.symbol_names[sym]
            record = {"source": name, "use": kind, ("value" if kind == "value" else "predicate"): detail,
                      "op": op, "file": file, "line": line, "text": text}
            if expr is not None and expr != name:
                record["expr"] = expr
            self.specializations.append(record)
