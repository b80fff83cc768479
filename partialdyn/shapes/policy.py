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

import sympy
import torch

from ..errors import GraphBreak
from ..guards.kinds import GuardKind


# What to do about a break on an unstable size, by the operation that needed its value; the default applies to
# uses a torch op could take instead (arithmetic, indexing, int() feeding an op).
TEXT_HINT = ("turning a size into text needs its value in Python; format it outside the optimized function "
             "(return the tensor and read its shape there), or accept the break")
LOOP_HINT = ("a Python loop over a size runs in Python; a tensor op over the whole dim (x.split, x.unfold, "
             "reshape to blocks) keeps it in the graph")
UNSTABLE_HINTS = {
    "str formatting": TEXT_HINT, "an f-string part": TEXT_HINT, "% formatting": TEXT_HINT, "str()": TEXT_HINT,
    "print()": TEXT_HINT, "range()": LOOP_HINT, "iteration over a tensor": LOOP_HINT,
}
BOOL_HINT = "a branch on the size runs in Python; torch.where or a mask keeps the choice in the graph"
OP_HINT = ("the operation's shape rules need the size as a number; a call that does not (a reshape to blocks "
           "instead of pooling, say) stays in the graph")
DEFAULT_HINT = "keep the size symbolic (pass it to torch ops) to avoid the break"


def unstable_hint(use: str, op: str) -> str:
    if use == "bool use":
        return BOOL_HINT
    return UNSTABLE_HINTS.get(op, DEFAULT_HINT)


@dataclass
class FrameShapeState:
    """What the policy remembers across compiles.  The dim tables are shared by a function and all its resume
    functions and callees (`shared_with`); `constant_floats` and `autocast_breaks` are per code object."""
    recompiles_by_dim: dict = field(default_factory=dict)   # dim key -> recompiles it caused
    charge_by_dim: dict = field(default_factory=dict)       # dim key -> backoff charge (predicate-only: 1/2)
    unstable: set = field(default_factory=set)               # dim keys that graph-break when consumed
    changed: set = field(default_factory=set)                # automatic: dims seen changing
    follows: dict = field(default_factory=dict)              # unstable key -> the unstable dim it was made from
    constant_floats: bool = False   # the backend cannot take symbolic float inputs here: floats are constants
    autocast_breaks: bool = False   # an autocast region here could not be traced: torch.autocast is a break

    def shared_with(self) -> "FrameShapeState":
        """A state for a child code object: the same dim tables, its own float flag."""
        return FrameShapeState(self.recompiles_by_dim, self.charge_by_dim, self.unstable, self.changed,
                               follows=self.follows)


@dataclass(frozen=True)
class Policy:
    """One shape policy: which inputs start symbolic, what consuming a symbol does, how recompiles are charged.
    `POLICIES` has one per name; adding a policy is one entry there."""
    name: str
    symbolic_inputs: bool           # every input dim and int starts as a symbol (partial, dynamic)
    learns_dynamic: bool = False    # a dim seen changing starts as a symbol from then on (automatic)
    consumption_breaks: bool = False    # consuming any symbol is a graph break (dynamic)
    backs_off: bool = False         # a dim recompiled too often becomes unstable (partial)

    def starts_dynamic(self, state: FrameShapeState, key: str) -> bool:
        """Does the input dim or scalar `key` start as a symbol?"""
        return self.symbolic_inputs or (self.learns_dynamic and key in state.changed)

    def stride_starts_dynamic(self, state: FrameShapeState, key: str) -> bool:
        """Does the stride `key` of a strided (not dense) input get a symbol of its own even where the sizes it
        could be written in are static?  Only a stride `automatic` saw changing; elsewhere the ShapeEnv infers
        strides from the sizes (shapes/fake.py)."""
        return self.learns_dynamic and key in state.changed

    def charge_recompile(self, state: FrameShapeState, failed, limit: int) -> list[str]:
        """Account one recompile caused by the `failed` guards; returns the dims that became unstable now.

        A recompile caused by a specialized value counts 1 against each dim it names; one caused only by
        predicates (SHAPE guards) counts 1/2: predicate outcomes split sizes into few regions, so such
        recompiles are usually bounded, and a dim backs off after 2N of them (a long chain of predicates, as
        in a loop, still backs off)."""
        weight = {}
        for g in failed:
            for d in g.dims:
                weight[d] = max(weight.get(d, 0.0), 0.5 if g.kind == GuardKind.SHAPE else 1.0)
        if self.learns_dynamic:
            state.changed.update(weight)
            state.changed.update(g.source for g in failed if g.kind == GuardKind.CONSTANT_MATCH and g.source)
            return []
        unstable = []
        for dim in sorted(weight):
            state.recompiles_by_dim[dim] = state.recompiles_by_dim.get(dim, 0) + 1
            state.charge_by_dim[dim] = charge = state.charge_by_dim.get(dim, 0.0) + weight[dim]
            if self.backs_off and charge >= limit and dim not in state.unstable:
                state.unstable.add(dim)
                unstable.append(dim)
        return unstable


POLICIES = {policy.name: policy for policy in (
    Policy("partial", symbolic_inputs=True, backs_off=True),
    Policy("dynamic", symbolic_inputs=True, consumption_breaks=True),
    Policy("static", symbolic_inputs=False),
    Policy("automatic", symbolic_inputs=False, learns_dynamic=True),
)}


@dataclass
class Consumer:
    """Per-trace policy decisions; records what was specialized and where."""
    policy: Policy
    state: FrameShapeState
    shapes: object                                  # shapes.fake.Shapes
    where: object = None                            # callable -> (file, line, text)
    specializations: list = field(default_factory=list)
    break_allowed: bool = True      # the compile budget affords a backoff break (else unstable dims specialize)
    backoff_break: bool = False     # this trace stopped at an unstable dim

    def __post_init__(self):
        self.shapes.relation_check = self.check_relation

    def check_relation(self, relation):
        """An operation's shape rules are about to guard `relation`.  One that pins an unstable dim to a number
        (`Eq(s, 36)`: F.max_pool1d reads the length as an int) would recompile on every new size, past backoff:
        break before the operation instead, so it runs in Python."""
        if not (self.break_allowed and isinstance(relation, sympy.Eq)) or relation.has(sympy.Mod) or \
                len(relation.free_symbols) != 1:
            return
        unstable = self._unstable(relation.free_symbols)
        if unstable:
            self.backoff_break = True
            raise GraphBreak(f"{self._unstable_text(unstable)}; {self.shapes.current_op} needs its value, so the call "
                             f"runs in Python", hint=OP_HINT)

    def _check(self, value, use: str, op: str):
        shapes = self.shapes
        if shapes.is_data_dependent(value):
            raise GraphBreak(f"Python needs the data-dependent value {self._text(value)} ({op})",
                             hint="data-dependent sizes and .item() results cannot be specialized; "
                                  "keep them in tensor ops or accept the break")
        if self.policy.consumption_breaks:
            raise GraphBreak(f"policy {self.policy.name!r}: Python {use} of {self._text(value)} ({op})",
                             hint="use policy='partial' to allow guarded specialization")
        unstable = self._unstable(shapes.input_symbols(value))
        if unstable and self.break_allowed:
            self.backoff_break = True
            raise GraphBreak(f"{self._unstable_text(unstable)}; its {use} by {op} runs in Python",
                             hint=unstable_hint(use, op))

    def _unstable(self, symbols) -> list[str]:
        """The names of the unstable input dims among `symbols` (the one test of instability, by name: each frame
        names its dims, and the state is shared with the frames a break hands them to)."""
        return [name for s in symbols if (name := self.shapes.symbol_names.get(s)) in self.state.unstable]

    def _unstable_text(self, names) -> str:
        """`x.size(1) is unstable (recompiled too often)`, or `h.size(1) is unstable (it follows x.size(1), ...)`."""
        made_from = sorted({self.state.follows[n] for n in names if n in self.state.follows})
        why = f"it follows {', '.join(made_from)}, which recompiled too often" if made_from else "recompiled too often"
        return f"{', '.join(names)} is unstable ({why})"

    def hand_on(self, sizes):
        """Sizes a break hands to another frame, each with the name it gets there (`runtime.compiler`): one that
        is an expression of an unstable dim varies with it, so it starts unstable there.  Each frame names a size
        its own way; backing off again in every frame that receives it would cost that many recompiles more."""
        for name, value in sizes:
            made_from = sorted(self.state.follows.get(n, n) for n in self._unstable(value.node.expr.free_symbols))
            if made_from and name not in self.state.unstable:
                self.state.unstable.add(name)
                self.state.follows[name] = made_from[0]

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
