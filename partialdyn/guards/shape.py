"""Shape guards read off the trace's ShapeEnv, in the user's terms.

A symbol replaced by a number is a specialized dim (TENSOR_MATCH_STATIC, or
CONSTANT_MATCH for an int argument); replaced by another expression it is a
relation (SHAPE `x.size(0) == y.size(0)`); otherwise its value range is guarded
(`2 <= x.size(0)`, narrowed by predicates such as `x.size(0) > 16`).  Every
other recorded guard that the replacements do not make trivially true is a
SHAPE guard.  Soundness over brevity: ranges are always guarded.  Each guard's
provenance is the one the trace's ShapeEnv recorded where it made the guard, the
replacement or the range bound (shapes/fake.py).
"""
from __future__ import annotations

import re

import sympy
from torch.utils._sympy.numbers import int_oo

from ..shapes.fake import print_python, provenance_of_sloc
from ..names import PREFIX
from .kinds import FIRST, Check, Guard, GuardKind, is_true, mark


def shape_guards(shapes) -> list[Guard]:
    se = shapes.shape_env
    out = []
    for sym, name in shapes.symbol_names.items():
        read = shapes.symbol_reads[sym]
        source, dim = shapes.symbol_dims[sym]
        resolved = se.simplify(sym)
        if resolved != sym:
            made = provenance_of_sloc(se.replacements_slocs.get(sym))
            if resolved.is_number:
                kind = GuardKind.TENSOR_MATCH_STATIC if dim is not None else GuardKind.CONSTANT_MATCH
                out.append(Guard(kind, Check(f"{FIRST} == {_num(resolved)!r}", (read,)),
                                 f"{name} == {_num(resolved)!r}", source, dims=(name,), actual=read.code,
                                 provenance=made))
            else:
                printer = _CodePrinter(shapes)
                template = f"{printer(sym)} == {printer(resolved)}"
                out.append(Guard(GuardKind.SHAPE, printer.check(template), f"{name} == {shapes.describe(resolved)}",
                                 source, dims=_dims(shapes, sym, resolved),
                                 actual=_actuals(shapes, {sym} | resolved.free_symbols), provenance=made))
            continue
        out.extend(_range_guard(shapes, sym, name, read, source))
    out.extend(_layout_guards(shapes))
    for g in se.guards:
        expr = se.simplify(g.expr)
        if is_true(expr) or _implied_by_range(se, expr):
            continue
        printer = _CodePrinter(shapes)
        out.append(Guard(GuardKind.SHAPE, printer.check(printer(expr)), shapes.describe(expr),
                         dims=_dims(shapes, *expr.free_symbols), actual=_actuals(shapes, expr.free_symbols),
                         provenance=provenance_of_sloc(g.sloc)))
    return _dedupe(out)


def _layout_guards(shapes):
    """A strided input's strides and storage offset that are not symbols of their own: each equals its number
    (TENSOR_MATCH_STATIC: `x.stride(1) == 1`, `x.stride(2) == 0` for an expanded dim) or its expression
    (SHAPE: `x.stride(0) == x.size(1)*x.stride(1)`); and the non-overlap conditions (`x.stride(0) >
    x.size(1) - 1`), attributed to no dim: another layout is another entry, not a dim that keeps changing."""
    se, out = shapes.shape_env, []
    for read, name, source, expr, made in shapes.layout_relations:
        expr = se.simplify(expr)
        if expr.is_number:
            out.append(Guard(GuardKind.TENSOR_MATCH_STATIC, Check(f"{FIRST} == {_num(expr)!r}", (read,)),
                             f"{name} == {_num(expr)!r}", source, dims=(name,), actual=read.code, provenance=made))
            continue
        printer = _CodePrinter(shapes)
        template = f"{printer.read(read)} == {printer(expr)}"
        out.append(Guard(GuardKind.SHAPE, printer.check(template), f"{name} == {shapes.describe(expr)}", source,
                         dims=(name,), actual=_actuals(shapes, expr.free_symbols, (name, read)), provenance=made))
    for name, condition, made in shapes.layout_conditions:
        condition = se.simplify(condition)
        if is_true(condition):
            continue
        printer = _CodePrinter(shapes)
        out.append(Guard(GuardKind.SHAPE, printer.check(printer(condition)),
                         f"{name} has no overlapping elements: {shapes.describe(condition)}", name,
                         actual=_actuals(shapes, condition.free_symbols), provenance=made))
    return out


class _CodePrinter:
    """Guard code for expressions over input symbols: each symbol printed as the mark of its read (the dim or
    scalar argument it stands for), for one Check.  Marks are handed out in the order of the reads' code, so
    terms print in the order they would with the code itself.  A printed expression that may skip part of
    itself (`or`, `and`, a conditional) makes a check that binds no locals."""

    def __init__(self, shapes):
        self.shapes, self.marks, self.reads = shapes, {}, []

    def __call__(self, expr) -> str:
        reads = self.shapes.symbol_reads
        for sym in sorted((s for s in expr.free_symbols if s in reads), key=lambda s: reads[s].code):
            if sym not in self.marks:
                self.marks[sym] = sympy.Symbol(mark(len(self.reads)))
                self.reads.append(reads[sym])
        return print_python(expr, self.marks)

    def read(self, source) -> str:
        """The mark of a read that is not a symbol's (a stride the guard compares with an expression)."""
        self.reads.append(source)
        return mark(len(self.reads) - 1)

    def check(self, template: str) -> Check:
        return Check(template, tuple(self.reads), binds=_BRANCHES.search(template) is None)


_BRANCHES = re.compile(r"\b(?:and|or|if|else|for|lambda)\b")     # printed code that may not evaluate all of itself


def _range_guard(shapes, sym, name, read, source):
    vr = shapes.shape_env.var_to_range.get(sym)
    if vr is None:
        return []
    lower, upper = vr.lower, vr.upper
    low = lower not in (-int_oo, -sympy.oo) and lower.is_finite
    high = upper not in (int_oo, sympy.oo) and upper.is_finite
    if not (low or high):
        return []
    bounds = lambda v: (f"{_num(lower)!r} <= " if low else "") + v + (f" <= {_num(upper)!r}" if high else "")  # noqa
    # an upper bound was narrowed by something in the trace; the lower one may be the default 0/1 split
    slocs = shapes.shape_env.var_to_range_sloc.get(sym)
    sloc = None if slocs is None else slocs.upper if high else slocs.lower
    return [Guard(GuardKind.SHAPE, Check(bounds(FIRST), (read,)), bounds(name), source, dims=(name,),
                  actual=read.code, provenance=provenance_of_sloc(sloc))]


def _num(value):
    """A sympy number as the Python int or float guard code compares against."""
    return int(value) if value.is_Integer else float(value)


def _implied_by_range(se, expr) -> bool:
    """`s > 16` needs no guard of its own when the range guard of `s` already says `17 <= s`.
    (Float ranges are not narrowed by predicates, so their predicates are always kept.)"""
    relations = (sympy.StrictGreaterThan, sympy.GreaterThan, sympy.StrictLessThan, sympy.LessThan)
    if not isinstance(expr, relations):
        return False
    lhs, rhs = expr.args
    if isinstance(rhs, sympy.Symbol) and lhs.is_number:
        expr = expr.reversed
        lhs, rhs = expr.args
    if not (isinstance(lhs, sympy.Symbol) and rhs.is_number) or lhs not in se.var_to_range:
        return False
    vr = se.var_to_range[lhs]
    try:
        if isinstance(expr, sympy.StrictGreaterThan):
            return bool(vr.lower > rhs)
        if isinstance(expr, sympy.GreaterThan):
            return bool(vr.lower >= rhs)
        if isinstance(expr, sympy.StrictLessThan):
            return bool(vr.upper < rhs)
        return bool(vr.upper <= rhs)
    except TypeError:
        return False


def _dims(shapes, *exprs):
    names = set()
    for e in exprs:
        for s in getattr(e, "free_symbols", {e}):
            if s in shapes.symbol_names:
                names.add(shapes.symbol_names[s])
    return tuple(sorted(names))


def _actuals(shapes, symbols, *more) -> str:
    """An expression for the values a failure reports: the one input's value, or a dict of them by name
    (`more`: (name, read) pairs that are not symbols, first)."""
    symbols = sorted((s for s in symbols if s in shapes.symbol_reads), key=lambda s: shapes.symbol_names[s])
    named = list(more) + [(shapes.symbol_names[s], shapes.symbol_reads[s]) for s in symbols]
    if len(named) == 1:
        return named[0][1].code
    return PREFIX + "named({" + ", ".join(f"{name!r}: {read.code}" for name, read in named) + "})"


def _dedupe(guards):
    seen, out = set(), []
    for g in guards:
        if g.code not in seen:
            seen.add(g.code)
            out.append(g)
    return out
