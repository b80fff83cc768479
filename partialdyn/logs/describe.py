"""Human-readable wording of events, shared by the stderr sink and the viewer.

Every helper tolerates missing or oddly typed fields (a log file may come from
another version of the engine): an unknown value reads as "?".
"""
from __future__ import annotations



def value_of(event: dict, name: str) -> str:
    """`event[name]` as text, "?" when absent."""
    value = event.get(name)
    return "?" if value is None else str(value)


def where(event: dict) -> str:
    """The traced code, plus the optimized function when they differ (resume functions, callees)."""
    fn, code = event.get("fn"), event.get("code")
    if not code:
        return value_of(event, "fn")
    code_name = str(code).split(" (")[0]
    if fn and code_name != str(fn).rsplit(".", 1)[-1]:
        return f"{code} in {fn}"
    return str(code)


def location(event: dict) -> str:
    """`file:line` of the event, "-" when the engine could not tell."""
    file, line = event.get("file"), event.get("line")
    if not file:
        return "-"
    return str(file) if line is None else f"{file}:{line}"


def at_location(event: dict) -> str:
    """` at file:line`, or nothing when the engine could not tell."""
    return "" if location(event) == "-" else f" at {location(event)}"


def plural(count, noun: str) -> str:
    """`1 graph`, `2 graphs`, `? graphs` for an unknown count."""
    if count is None:
        return f"? {noun}s"
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def code_entry(event: dict) -> str:
    """Names one cache entry: the code object and the entry's index in its cache."""
    return f"{value_of(event, 'code')} #{value_of(event, 'entry')}"


def specialization_use(event: dict) -> str:
    """"value" or "predicate"; inferred from the fields when `use` is absent."""
    use = event.get("use")
    if use in ("value", "predicate"):
        return use
    return "predicate" if "predicate" in event else "value"


def specialization_guard(event: dict) -> str:
    """What the trace now assumes: `x.size(1) == 64` for a value use, the predicate for a bool use."""
    if specialization_use(event) == "predicate":
        return value_of(event, "predicate")
    return f"{value_of(event, 'source')} == {value_of(event, 'value')}"


def backoff_decision(event: dict) -> str:
    return "unstable: consuming it now graph-breaks" if event.get("unstable") else "still specialized"


def guards_in_order(guards) -> list[dict]:
    """The guards of one entry grouped by kind, kinds in the order they first appear (the engine emits them in
    its GuardKind order); non-dict items become raw text."""
    items = [g if isinstance(g, dict) else {"kind": "?", "text": str(g)}
             for g in (guards if isinstance(guards, list) else [])]
    first = {}
    for g in items:
        first.setdefault(str(g.get("kind")), len(first))
    return sorted(items, key=lambda g: first[str(g.get("kind"))])


def guard_text(guard: dict) -> str:
    return str(guard.get("text") or guard.get("source") or "?")


def describe(event: dict) -> list[str]:
    """Short lines for a person watching stderr; [] for kinds that are never printed."""
    describe_kind = _DESCRIBERS.get(event.get("kind"))
    return describe_kind(event) if describe_kind else []


def _compile(event):
    verb = "recompile" if event.get("recompile") else "compile"
    return [f"{verb} {where(event)}: {value_of(event, 'reason')}"]


def _guards(event):
    header = f"guards {where(event)} entry {value_of(event, 'entry')}:"
    return [header] + [f"  {g.get('kind', '?')} {guard_text(g)}" for g in guards_in_order(event.get("guards"))]


def _specialization(event):
    use = specialization_use(event)
    return [f"specialize {where(event)}: {specialization_guard(event)} "
            f"({use} used by {value_of(event, 'op')}{at_location(event)})"]


def _backoff(event):
    return [f"backoff {where(event)}: {value_of(event, 'dim')} caused "
            f"{plural(event.get('recompiles'), 'recompile')}, limit {value_of(event, 'limit')}; "
            f"{backoff_decision(event)}"]


def _graph_break(event):
    hint = f"; hint: {event['hint']}" if event.get("hint") else ""
    return [f"graph break {where(event)}{at_location(event)}: {value_of(event, 'reason')}{hint}"]


def _eager_fallback(event):
    return [f"eager fallback {where(event)}{at_location(event)}: {value_of(event, 'reason')}"]


def _cache_limit(event):
    return [f"cache limit {where(event)}: {value_of(event, 'limit')} entries reached; running eagerly"]


_DESCRIBERS = {
    "compile": _compile,
    "guards": _guards,
    "specialization": _specialization,
    "backoff": _backoff,
    "graph_break": _graph_break,
    "eager_fallback": _eager_fallback,
    "cache_limit": _cache_limit,
}
