"""Groups an event stream into one report per optimized function, ready to render.

A report is a fixed list of sections (tables of text cells) plus a summary. The
summary is the function's last `stats` snapshot, or, when the log has none, what
can be counted from the other events (calls and cache hits stay unknown).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .describe import (backoff_decision, code_entry, guard_text, guards_in_order, location, plural,
                       specialization_guard, specialization_use, value_of)

SUMMARY_KEYS = ("calls", "cache_hits", "compiles", "recompiles", "graphs", "graph_breaks",
                "eager_fallbacks")
SUMMARY_NOUNS = ("call", "cache hit", "compile", "recompile", "graph", "graph break", "eager fallback")
COUNTABLE_KEYS = ("compiles", "recompiles", "graphs", "graph_breaks", "eager_fallbacks")
NO_FUNCTION = "(no function)"
RAW_OMITTED = ("v", "kind", "time", "fn")  # fields an unknown kind's raw dump leaves out


@dataclass
class Section:
    title: str
    columns: tuple[str, ...]
    rows: list[list[str]] = field(default_factory=list)


def _new_sections() -> dict[str, Section]:
    return {
        "compile": Section("compiles", ("time", "event", "entry", "graphs", "breaks", "trace",
                                        "backend", "reason")),
        "guards": Section("guards", ("entry", "kind", "guard")),
        "specialization": Section("specializations", ("at", "use", "guard", "by", "line")),
        "backoff": Section("backoff", ("dim", "recompiles", "decision")),
        "graph_break": Section("graph breaks", ("at", "code", "reason", "hint")),
        "fallback": Section("fallbacks", ("event", "code", "at", "reason")),
        "other": Section("other events", ("kind", "fields")),
    }


@dataclass
class FunctionReport:
    fn: str
    start: float  # time of the stream's first event; compile times are relative to it
    sections: dict[str, Section] = field(default_factory=_new_sections)
    settings: str = ""  # "policy partial, backend eager", from the first compile
    stats: dict | None = None
    counted: dict = field(default_factory=lambda: dict.fromkeys(COUNTABLE_KEYS, 0))

    def add(self, event: dict) -> None:
        kind = event.get("kind")
        kind = kind if isinstance(kind, str) else None
        if kind == "stats":
            self.stats = event
            return
        self._count(kind, event)
        if kind == "compile":
            self.settings = self.settings or _policy_and_backend(event)
            section, rows = "compile", [_compile_row(event, self.start)]
        else:
            section, make_rows = _ROWS.get(kind, ("other", _other_rows))
            rows = make_rows(event)
        self.sections[section].rows += [[_one_line(cell) for cell in row] for row in rows]

    def shown_sections(self) -> list[Section]:
        return [s for s in self.sections.values() if s.rows]

    def summary(self) -> tuple[dict, bool]:
        """(counts, whether they come from a stats snapshot); unknown counts are None."""
        if self.stats is not None:
            return {key: self.stats.get(key) for key in SUMMARY_KEYS}, True
        return {"calls": None, "cache_hits": None, **self.counted}, False

    def _count(self, kind: str | None, event: dict) -> None:
        if kind == "compile":
            self.counted["compiles"] += 1
            self.counted["recompiles"] += bool(event.get("recompile"))
            graphs = event.get("graphs")
            self.counted["graphs"] += graphs if isinstance(graphs, int) else 0
        elif kind == "graph_break":
            self.counted["graph_breaks"] += 1
        elif kind == "eager_fallback":
            self.counted["eager_fallbacks"] += 1


def build_reports(events: list[dict]) -> list[FunctionReport]:
    """One report per `fn`, in order of first appearance."""
    start = min((e["time"] for e in events if isinstance(e.get("time"), (int, float))), default=0.0)
    reports: dict[str, FunctionReport] = {}
    for event in events:
        fn = str(event.get("fn") or NO_FUNCTION)
        reports.setdefault(fn, FunctionReport(fn, start)).add(event)
    return list(reports.values())


def overall_summary(reports: list[FunctionReport]) -> dict:
    """Sums over all functions; a count unknown for any function is unknown overall."""
    summaries = [r.summary()[0] for r in reports]
    return {key: _sum_or_none(s.get(key) for s in summaries) for key in SUMMARY_KEYS}


def summary_text(summary: dict) -> str:
    """`12 calls, 10 cache hits, 3 compiles (2 recompiles), 2 graphs, 1 graph break, 0 eager fallbacks`."""
    calls, hits, compiles, recompiles, graphs, breaks, fallbacks = (
        plural(summary.get(key), noun) for key, noun in zip(SUMMARY_KEYS, SUMMARY_NOUNS))
    return f"{calls}, {hits}, {compiles} ({recompiles}), {graphs}, {breaks}, {fallbacks}"


def stream_header(events: list[dict], reports: list[FunctionReport], skipped_lines: int) -> str:
    header = f"{plural(len(events), 'event')}, {plural(len(reports), 'function')}"
    if skipped_lines:
        header += f", {plural(skipped_lines, 'unreadable line')} skipped"
    return header


def _sum_or_none(values) -> int | None:
    values = list(values)
    if any(not isinstance(v, int) for v in values):
        return None
    return sum(values)


def _one_line(cell: str) -> str:
    """Multi-line values (exception messages) would break the text table's rows."""
    return " ".join(cell.splitlines())


def _policy_and_backend(event: dict) -> str:
    parts = [f"{name} {event[name]}" for name in ("policy", "backend") if event.get(name)]
    return ", ".join(parts)


def _seconds(value) -> str:
    return f"{value:.3f}s" if isinstance(value, (int, float)) else "?"


def _compile_row(event: dict, start: float) -> list[str]:
    time = event.get("time")
    since_start = f"+{time - start:.3f}s" if isinstance(time, (int, float)) else "?"
    return [since_start, "recompile" if event.get("recompile") else "compile", code_entry(event),
             value_of(event, "graphs"), value_of(event, "graph_breaks"),
             _seconds(event.get("trace_seconds")), _seconds(event.get("backend_seconds")),
             value_of(event, "reason")]


def _guard_rows(event: dict) -> list[list[str]]:
    """One row per guard; the entry and each kind are named on their first row only."""
    guards = guards_in_order(event.get("guards"))
    if not guards:
        return [[code_entry(event), "", "(no guards)"]]
    rows, previous_kind = [], None
    for i, guard in enumerate(guards):
        kind = str(guard.get("kind", "?"))
        rows.append([code_entry(event) if i == 0 else "", kind if kind != previous_kind else "",
                     guard_text(guard)])
        previous_kind = kind
    return rows


def _specialization_rows(event: dict) -> list[list[str]]:
    return [[location(event), specialization_use(event), specialization_guard(event),
             value_of(event, "op"), str(event.get("text") or "").strip()]]


def _backoff_rows(event: dict) -> list[list[str]]:
    return [[value_of(event, "dim"), f"{value_of(event, 'recompiles')}/{value_of(event, 'limit')}",
             backoff_decision(event)]]


def _graph_break_rows(event: dict) -> list[list[str]]:
    return [[location(event), value_of(event, "code"), value_of(event, "reason"),
             str(event.get("hint") or "")]]


def _eager_fallback_rows(event: dict) -> list[list[str]]:
    return [["eager fallback", value_of(event, "code"), location(event), value_of(event, "reason")]]


def _cache_limit_rows(event: dict) -> list[list[str]]:
    return [["cache limit", value_of(event, "code"), "-",
             f"{value_of(event, 'limit')} entries reached; running eagerly"]]


def _other_rows(event: dict) -> list[list[str]]:
    """Kinds this viewer does not know: shown raw rather than dropped."""
    fields = {k: v for k, v in event.items() if k not in RAW_OMITTED}
    return [[value_of(event, "kind"), json.dumps(fields, default=str, sort_keys=True)]]


_ROWS = {
    "guards": ("guards", _guard_rows),
    "specialization": ("specialization", _specialization_rows),
    "backoff": ("backoff", _backoff_rows),
    "graph_break": ("graph_break", _graph_break_rows),
    "eager_fallback": ("fallback", _eager_fallback_rows),
    "cache_limit": ("fallback", _cache_limit_rows),
}
