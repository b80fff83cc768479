"""Shape guards read off the trace's ShapeEnv, in the user's terms.

A symbol replaced by a number is a specialized dim (TENSOR_MATCH_STATIC, or
CONSTANT_MATCH for an int argument); replaced by another expression it is a
relation (SHAPE `x.size(0) == y.size(0)`); otherwise its value range is guarded
(`2 <= x.size(0)`, narrowed by predicates such as `x.size(0) > 16`).  Every
other recorded guard that the replacements do not make trivially true is a
SHAPE guard.  Soundness over brevity: ranges are always guarded.
"""
from __future__ import annotations

import sympy
from torch.utils._sympy.numbers import int_oo

from .kinds import Guard, is_true


def shape_guards(shapes) -> list[Guard]:
    se = shapes.shape_env
    out = []
    for sym, name in shapes.symbol_names.items():
        source, dim = shapes.symbol_dims[sym]
        resolved = se.simplify(sym)
        if resolved != sym:
            if resolved.is_number:
                kind = "TENSOR_MATCH_STATIC" if dim is not None else "CONSTANT_MATCH"
                out.append(Guard(kind, f"{name} == {int(resolved)}", f"{name} == {int(resolved)}", source,
                                 dims=(name,), actual=name))
            else:
                rhs = shapes.describe(resolved)
                out.append(Guard("SHAPE", f"{name} == {rhs}", f"{name} == {rhs}", source,
                                 dims=_dims(shapes, sym, resolved), actual=name))
            continue
        out.extend(_range_guard(shapes, sym, name, source))
    for g in se.guards:
        expr = se.simplify(g.expr)
        if is_true(expr) or _is_single_symbol_bound(expr):
            continue
        text = shapes.describe(expr)
        out.append(Guard("SHAPE", text, text, dims=_dims(shapes, *expr.free_symbols),
                         actual=_actuals(shapes, expr)))
    return _dedupe(out)


def _range_guard(shapes, sym, name, source):
    vr = shapes.shape_env.var_to_range.get(sym)
    if vr is None:
        return []
    lower, upper = vr.lower, vr.upper
    parts = []
    if lower not in (-int_oo, -sympy.oo) and lower.is_finite:
        parts.append(f"{int(lower)} <= {name}")
    if upper not in (int_oo, sympy.oo) and upper.is_finite:
        parts.append(f"{name} <= {int(upper)}")
    if not parts:
        return []
    code = " and ".join(parts)
    text = f"{int(lower)} <= {name}" + (f" <= {int(upper)}" if len(parts) == 2 else "") \
        if len(parts) == 2 or parts[0].startswith(str(int(lower)) if lower.is_finite else "~") else parts[0]
    return [Guard("SHAPE", code, text, source, dims=(name,), actual=name)]


def _is_single_symbol_bound(expr) -> bool:
    """`s > 16`-style guards are already expressed by the symbol's range guard."""
    if not isinstance(expr, (sympy.StrictGreaterThan, sympy.GreaterThan, sympy.StrictLessThan, sympy.LessThan)):
        return False
    lhs, rhs = expr.args
    return (isinstance(lhs, sympy.Symbol) and rhs.is_number) or (isinstance(rhs, sympy.Symbol) and lhs.is_number)


def _dims(shapes, *exprs):
    names = set()
    for e in exprs:
        for s in getattr(e, "free_symbols", {e}):
            if s in shapes.symbol_names:
                names.add(shapes.symbol_names[s])
    return tuple(sorted(names))


def _actuals(shapes, expr) -> str:
    names = _dims(shapes, expr)
    return "(" + ", ".join(names) + ",)" if names else ""


def _dedupe(guards):
    seen, out = set(), []
    for g in guards:
        if g.code not in seen:
            seen.add(g.code)
            out.append(g)
    return out
