"""Each source read once per guard call: the guard function's checks rewritten over shared locals.

An entry's guards are written one by one, each spelling its sources in full
(`self._modules['h']._modules['0']._modules['attn']._parameters['weight']`), and a
model's guards read the same objects many times.  `joined_checks` turns the list into
one `and` chain in which every source path (names followed by attributes and
subscripts with constant keys) that is read more than once is evaluated at its first
read that certainly runs (`(__pd_cN := path)`) and read from that local afterwards;
a check identical to an earlier one is left out.  Reading a path once is what the
trace did; the rewrite only assumes that reading the same attribute or item twice
in a row gives the same object, as guards in general do.  Per-guard code (what a
failure is explained with) is unchanged.
"""
from __future__ import annotations

import ast
import re
from collections import Counter

from ..names import PREFIX, READ_ONCE

_GUARD_TEMP = re.compile(re.escape(PREFIX) + r"t\d+$")     # what GuardSet names a source read once in a check
_GUARD_TEMP_IN_CODE = re.compile(re.escape(PREFIX) + r"t\d+\b")
_OPAQUE = (ast.Lambda, ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)   # own scope: not rewritten


def path_key(node) -> tuple | None:
    """`a.b[K].c` (a name followed by attribute reads and subscripts by a name or a literal) as a hashable
    key: ('a', '.b', ('[]', 'K'), '.c'); None for any other expression or a lone name."""
    if not isinstance(node, (ast.Attribute, ast.Subscript)):
        return None
    steps = []
    while True:
        if isinstance(node, ast.Attribute):
            steps.append("." + node.attr)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name):
            steps.append(("[]", node.slice.id))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            steps.append(("[]", type(node.slice.value), node.slice.value))
        elif isinstance(node, ast.Name):
            steps.append(node.id)
            return tuple(reversed(steps))
        else:
            return None
        node = node.value


def _node(key: tuple, upto: int, inner, where):
    """The expression for `key[:upto]` built on `inner` (the expression for a shorter prefix), with `where`'s
    position."""
    step = key[upto - 1]
    if isinstance(step, str):
        node = ast.Attribute(inner, step[1:], ast.Load())
    elif len(step) == 2:
        node = ast.Subscript(inner, ast.copy_location(ast.Name(step[1], ast.Load()), where), ast.Load())
    else:
        node = ast.Subscript(inner, ast.copy_location(ast.Constant(step[2]), where), ast.Load())
    return ast.copy_location(node, where)


# How sure the evaluation of a node is, given that the whole guard comes out true: TRUE (it runs and must be
# truthy), RUNS (it runs), MAYBE (it may not run).  A local is assigned only where its path certainly runs,
# so every later read of the local finds it set (the chain stops at the first falsy TRUE node).
TRUE, RUNS, MAYBE = 2, 1, 0
_NOT_EVALUATED = (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)


def _children(node, ctx):
    """(field, index in the field's list or None, ctx) of each child evaluated in the node's own scope, in
    evaluation order."""
    if isinstance(node, ast.BoolOp):
        if ctx == TRUE and isinstance(node.op, ast.And):
            return [("values", i, TRUE) for i in range(len(node.values))]
        return [("values", 0, min(ctx, RUNS))] + [("values", i, MAYBE) for i in range(1, len(node.values))]
    runs = min(ctx, RUNS)
    if isinstance(node, ast.Compare):
        later = runs if ctx == TRUE else MAYBE
        return [("left", None, runs), ("comparators", 0, runs)] + \
            [("comparators", i, later) for i in range(1, len(node.comparators))]
    if isinstance(node, ast.Dict):           # keys and values interleave: assign nothing inside
        return [(field, i, MAYBE) for field in ("keys", "values") for i, v in enumerate(getattr(node, field))
                if v is not None]
    if isinstance(node, ast.IfExp):
        return [("test", None, runs), ("body", None, MAYBE), ("orelse", None, MAYBE)]
    if isinstance(node, ast.NamedExpr):
        return [("value", None, runs)]
    out = []
    for field in node._fields:               # in evaluation order for the remaining node types
        value = getattr(node, field, None)
        if isinstance(value, list):
            out.extend((field, i, runs) for i, v in enumerate(value)
                       if isinstance(v, ast.AST) and not isinstance(v, _NOT_EVALUATED))
        elif isinstance(value, ast.AST) and not isinstance(value, _NOT_EVALUATED):
            out.append((field, None, runs))
    return out


def _get(node, field, index):
    value = getattr(node, field)
    return value if index is None else value[index]


def _set(node, field, index, value):
    if index is None:
        setattr(node, field, value)
    else:
        getattr(node, field)[index] = value


class _Reads:
    """Every path a chain of checks reads, in evaluation order, and how often each prefix is read.  A guard's
    temp (`(__pd_tN := path)`, read as `__pd_tN` after) counts as reads of its path; a temp of anything else
    (a call) is renamed to a name of its own in the whole function."""

    def __init__(self, fresh):
        self.fresh = fresh
        self.occurrences = []             # (parent, field, index, key, ctx, node read)
        self.counts = Counter()
        self.extended = Counter()         # (prefix, one step longer) -> reads
        self.temps: dict = {}             # this guard's temps: name -> key of the path
        self.renamed: dict = {}           # this guard's other temps: name -> new name

    def guard(self, parent, field, index):
        self.temps, self.renamed = {}, {}
        self._visit(parent, field, index, TRUE)

    def visit_evaluated(self, parent, field, index):
        """An expression that is evaluated in full (not a check that must come out true)."""
        self._visit(parent, field, index, RUNS)

    def _visit(self, parent, field, index, ctx):
        node = _get(parent, field, index)
        key = path_key(node)
        if isinstance(node, ast.Name):
            key = self.temps.get(node.id)
            node.id = self.renamed.get(node.id, node.id)
        elif key is not None and key[0] in self.temps:       # `__pd_tN.dtype`: a longer read of the path
            key = self.temps[key[0]] + key[1:]
        elif key is not None and key[0] in self.renamed:
            key = (self.renamed[key[0]],) + key[1:]
        if key is not None:
            self._read(parent, field, index, key, ctx, node)
            return
        if isinstance(node, _OPAQUE):      # its own scope: read in full there, nothing assigned
            _set(parent, field, index, _TempsSpelledOut(self.temps, self.renamed).visit(node))
            return
        if isinstance(node, ast.NamedExpr) and _GUARD_TEMP.match(node.target.id):
            key = path_key(node.value)
            if key is not None:            # the temp is the path itself, read where the temp was set
                self.temps[node.target.id] = key
                self._read(parent, field, index, key, ctx, node.value)
                return
            self.renamed[node.target.id] = node.target.id = self.fresh()
        for child_field, child_index, child_ctx in _children(node, ctx):
            self._visit(node, child_field, child_index, child_ctx)

    def _read(self, parent, field, index, key, ctx, node):
        self.occurrences.append((parent, field, index, key, ctx, node))
        for length in range(2, len(key) + 1):
            self.counts[key[:length]] += 1
            if length > 2:
                self.extended[(key[:length - 1], key[:length])] += 1

    def shared(self) -> set:
        """Prefixes read more than once, except one read only as the start of a single longer shared path
        (that path's local covers it)."""
        longest = Counter()
        for (prefix, _), n in self.extended.items():
            longest[prefix] = max(longest[prefix], n)
        return {key for key, n in self.counts.items() if n > 1 and n > longest[key]}


class _TempsSpelledOut(ast.NodeTransformer):
    """Inside a comprehension or lambda: a guard temp of a path is the path again, another temp its new name."""

    def __init__(self, temps, renamed):
        self.temps, self.renamed = temps, renamed

    def visit_Name(self, node):
        if node.id in self.temps:
            key = self.temps[node.id]
            expr = ast.copy_location(ast.Name(key[0], ast.Load()), node)
            for upto in range(2, len(key) + 1):
                expr = _node(key, upto, expr, node)
            return expr
        node.id = self.renamed.get(node.id, node.id)
        return node


def _canonical(code: str) -> str:
    """The code with its temps numbered by first appearance: equal for the same check made at two places."""
    numbers = {}
    return _GUARD_TEMP_IN_CODE.sub(lambda m: numbers.setdefault(m.group(), f"{PREFIX}t#{len(numbers)}"), code)


def _rewrite(reads: _Reads, fresh):
    """Each read replaced, in evaluation order, by the longest prefix already in a local and the steps after
    it, assigning a local at each shared prefix where the read certainly runs."""
    shared, local = reads.shared(), {}
    for parent, field, index, key, ctx, where in reads.occurrences:
        start = next((n for n in range(len(key), 1, -1) if key[:n] in local), 1)
        expr = ast.copy_location(ast.Name(local[key[:start]] if start > 1 else key[0], ast.Load()), where)
        for upto in range(start + 1, len(key) + 1):
            expr = _node(key, upto, expr, where)
            if key[:upto] in shared and ctx != MAYBE:
                local[key[:upto]] = name = fresh()
                expr = ast.copy_location(ast.NamedExpr(ast.copy_location(ast.Name(name, ast.Store()), where),
                                                       expr), where)
        _set(parent, field, index, expr)


def _fresh_names():
    count = iter(range(1, 1 << 62))
    return lambda: f"{READ_ONCE}{next(count)}"


def read_once(codes: list[str]) -> list[str]:
    """Expressions evaluated one after the other, each in full (a graph call's arguments), rewritten so that a
    path several of them read is read once: the first reads it into a local, the others use that."""
    if not codes:
        return []
    fresh = _fresh_names()
    holder = ast.parse("(\n" + ",\n".join(f"({code})" for code in codes) + ",\n)", mode="eval").body
    reads = _Reads(fresh)
    for index in range(len(codes)):
        reads.visit_evaluated(holder, "elts", index)
    _rewrite(reads, fresh)
    return [ast.unparse(expr) for expr in holder.elts]


def joined_checks(codes: list[str]) -> ast.expr:
    """The guards' codes as one `and` chain reading each shared source once."""
    fresh = _fresh_names()
    distinct = {}                      # the same check again cannot fail where the first passed
    for code in codes:
        distinct.setdefault(_canonical(code), code)
    if not distinct:
        return ast.parse("True", mode="eval").body
    trees = ast.parse("(\n" + ",\n".join(f"({code})" for code in distinct.values()) + ",\n)", mode="eval").body.elts
    chain = ast.copy_location(ast.BoolOp(ast.And(), trees), trees[0])
    reads = _Reads(fresh)
    for index in range(len(trees)):
        reads.guard(chain, "values", index)
    _rewrite(reads, fresh)
    return chain if len(trees) > 1 else chain.values[0]
