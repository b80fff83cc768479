"""Groups an event stream into one report per run and optimized function, ready to render.

A report is a fixed list of sections (tables of text cells), the cache entries of
each traced code with their events (for the HTML page), plus a summary. The summary
is the function's last `stats` snapshot in that run, or, when the log has none, what
can be counted from the other events (calls and cache hits stay unknown). Unless
`full`, guard tables fold what never changes: guards on no input dim (parameters,
attributes, globals, global state) are counted per kind, and a later entry of the
same code lists only the guards its previous entry did not have.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .events import KNOWN_SCHEMA_VERSIONS
from .describe import (backoff_decision, code_entry, guard_text, guards_in_order, location, plural,
                       specialization_guard, specialization_use, value_of)

SUMMARY_KEYS = ("calls", "cache_hits", "compiles", "recompiles", "graphs", "graph_breaks",
                "eager_fallbacks")
SUMMARY_NOUNS = ("call", "cache hit", "compile", "recompile", "graph", "graph break", "eager fallback")
COUNTABLE_KEYS = ("compiles", "recompiles", "graphs", "graph_breaks", "eager_fallbacks")
NO_FUNCTION = "(no function)"
RAW_OMITTED = ("v", "kind", "time", "fn", "run", "pid")  # fields an unknown kind's raw dump leaves out
FOLDED = "(folded)"
NO_STATS_NOTE = "  (counted from events: no stats snapshot)"


class UnknownSchemaVersion(ValueError):
    """An event of a schema version this viewer cannot read (written by another partialdyn)."""


def check_schema(event: dict) -> None:
    """Raise UnknownSchemaVersion for an event whose `v` is not one this viewer reads (a missing `v` is
    tolerated as a malformed event)."""
    version = event.get("v")
    if "v" in event and (not isinstance(version, int) or version not in KNOWN_SCHEMA_VERSIONS):
        known = ", ".join(map(str, KNOWN_SCHEMA_VERSIONS))
        raise UnknownSchemaVersion(f"event schema version {version!r} is unknown to this viewer (it reads "
                                   f"versions {known}); view the log with the partialdyn that wrote it")


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
class Entry:
    """One cache entry of one traced code: its compile event and what was logged with it."""
    code: str
    index: object
    compile: dict
    guards: list = field(default_factory=list)
    specializations: list = field(default_factory=list)
    graph_break: dict | None = None


@dataclass
class FunctionReport:
    fn: str
    start: float  # time of the stream's first event; compile times are relative to it
    run: str | None = None
    pid: int | None = None
    full: bool = False  # every guard listed, nothing folded
    sections: dict[str, Section] = field(default_factory=_new_sections)
    settings: str = ""  # "policy partial, backend eager", from the first compile
    stats: dict | None = None
    counted: dict = field(default_factory=lambda: dict.fromkeys(COUNTABLE_KEYS, 0))
    entries: list[Entry] = field(default_factory=list)
    timeline: list[dict] = field(default_factory=list)

    def add(self, event: dict) -> None:
        kind = event.get("kind")
        kind = kind if isinstance(kind, str) else None
        if kind == "stats":
            self.stats = event
            return
        self.timeline.append(event)
        self._count(kind, event)
        self._attach(kind, event)
        if kind == "compile":
            self.settings = self.settings or _policy_and_backend(event)
            section, rows = "compile", [_compile_row(event, self.start)]
        elif kind == "guards":
            section, rows = "guards", _guard_rows(event, self._previous_guards(event), self.owner(), self.full)
        else:
            section, make_rows = _ROWS.get(kind, ("other", _other_rows))
            rows = make_rows(event)
        self.sections[section].rows += [[_one_line(cell) for cell in row] for row in rows]

    def owner(self) -> str:
        """The class of a module's forward (`TinyTransformer` of `TinyTransformer.forward`), else the function."""
        return self.fn.rsplit(".", 1)[0] if "." in self.fn else self.fn

    def entry_of(self, code, index) -> Entry | None:
        return next((e for e in self.entries if e.code == code and e.index == index), None)

    def shown_sections(self) -> list[Section]:
        return [s for s in self.sections.values() if s.rows]

    def summary(self) -> tuple[dict, bool]:
        """(counts, whether they come from a stats snapshot); unknown counts are None."""
        if self.stats is not None:
            return {key: self.stats.get(key) for key in SUMMARY_KEYS}, True
        return {"calls": None, "cache_hits": None, **self.counted}, False

    def _attach(self, kind: str | None, event: dict) -> None:
        """Files compile/guards/specialization/graph_break events under their cache entry (the engine logs an
        entry's events right after its compile event)."""
        code = event.get("code")
        if kind == "compile":
            self.entries.append(Entry(str(code), event.get("entry"), event))
            return
        entry = next((e for e in reversed(self.entries) if e.code == str(code)), None)
        if entry is None:
            return
        if kind == "guards":
            entry.guards = guards_in_order(event.get("guards"))
        elif kind == "specialization":
            entry.specializations.append(event)
        elif kind == "graph_break":
            entry.graph_break = event

    def _previous_guards(self, event: dict) -> tuple[str, list[dict]] | None:
        """(name, guards) of the entry compiled before this guards event's entry for the same code."""
        same_code = [e for e in self.entries if e.code == str(event.get("code"))]
        if len(same_code) < 2 or not same_code[-2].guards:
            return None
        previous = same_code[-2]
        return f"#{previous.index}", previous.guards

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


def build_reports(events: list[dict], *, full: bool = False) -> list[FunctionReport]:
    """One report per (run, `fn`), in order of first appearance; UnknownSchemaVersion for an event of a schema
    version this viewer does not read."""
    start = min((e["time"] for e in events if isinstance(e.get("time"), (int, float))), default=0.0)
    reports: dict[tuple, FunctionReport] = {}
    for event in events:
        check_schema(event)
        fn, run = str(event.get("fn") or NO_FUNCTION), event.get("run")
        run = run if isinstance(run, str) else None
        report = reports.get((run, fn))
        if report is None:
            report = reports[(run, fn)] = FunctionReport(fn, start, run, event.get("pid"), full)
        report.add(event)
    return list(reports.values())


def runs_of(reports: list[FunctionReport]) -> list[str | None]:
    return list(dict.fromkeys(r.run for r in reports))


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
    runs = runs_of(reports)
    if len(runs) > 1:
        header += f" in {plural(len(runs), 'run')}"
    if skipped_lines:
        header += f", {plural(skipped_lines, 'unreadable line')} skipped"
    return header


def report_title(report: FunctionReport, several_runs: bool) -> str:
    """`f  run 3f2a9c1b.0 (pid 4242), policy partial, backend eager`: the run only when the log has several."""
    parts = [f"run {report.run or '?'} (pid {report.pid if report.pid is not None else '?'})"] if several_runs else []
    parts += [report.settings] if report.settings else []
    return ", ".join(parts)


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


def _guard_rows(event: dict, previous: tuple[str, list[dict]] | None, owner: str, full: bool) -> list[list[str]]:
    """One row per guard; the entry and each kind are named on their first row only. Unless `full`, guards the
    previous entry of the same code had are one row, and fixed guards (no input dim) one row per kind."""
    guards = guards_in_order(event.get("guards"))
    if not guards:
        return [[code_entry(event), "", "(no guards)"]]
    shown, folds = (guards, []) if full else fold_guards(guards, previous, owner)
    rows, previous_kind = [], None
    for guard in shown:
        kind = str(guard.get("kind", "?"))
        rows.append(["", kind if kind != previous_kind else "", guard_text(guard)])
        previous_kind = kind
    rows += [["", FOLDED if i == 0 else "", label] for i, (label, _) in enumerate(folds)]
    rows[0][0] = code_entry(event)
    return rows


def fold_guards(guards: list[dict], previous: tuple[str, list[dict]] | None,
                owner: str) -> tuple[list[dict], list[tuple[str, list[dict]]]]:
    """(the guards to list, [(label, guards) of each fold]): guards the previous entry `(name, guards)` of the
    same code had fold into `10 guards as in #0`; of the others, guards on no input dim fold per
    `fixed_guard_folds`."""
    known = {_guard_key(g) for g in previous[1]} if previous else set()
    repeated = [g for g in guards if _guard_key(g) in known]
    fresh = [g for g in guards if _guard_key(g) not in known]
    folds = [(f"{plural(len(repeated), 'guard')} as in {previous[0]}", repeated)] if repeated else []
    folds += fixed_guard_folds([g for g in fresh if _is_fixed(g)], owner)
    return [g for g in fresh if not _is_fixed(g)], folds


def _guard_key(guard: dict) -> tuple[str, str]:
    return str(guard.get("kind")), guard_text(guard)


def is_parameter(guard: dict) -> bool:
    return str(guard.get("kind", "")).startswith("TENSOR_MATCH") and ": Parameter " in guard_text(guard)


def _is_fixed(guard: dict) -> bool:
    """A guard on no input dim: a parameter's shape, an attribute, a global, the global state. Input tensors
    (their dtype, device, ndim) and guards logged without `dims` (old logs) are never folded."""
    if "dims" not in guard or guard.get("dims"):
        return False
    return is_parameter(guard) or not str(guard.get("kind", "")).startswith("TENSOR_MATCH")


def fixed_guard_folds(guards: list[dict], owner: str) -> list[tuple[str, list[dict]]]:
    """`26 parameters of TinyTransformer: static shapes` and `87 guards on no input dim: 5 TYPE_MATCH, ...`,
    each with its guards."""
    parameters = [g for g in guards if is_parameter(g)]
    others = [g for g in guards if not is_parameter(g)]
    counts: dict[str, int] = {}
    for guard in others:
        counts[str(guard.get("kind", "?"))] = counts.get(str(guard.get("kind", "?")), 0) + 1
    folds = [(f"{plural(len(parameters), 'parameter')} of {owner}: static shapes", parameters)] if parameters else []
    if others:
        by_kind = ", ".join(f"{count} {kind}" for kind, count in counts.items())
        folds.append((f"{plural(len(others), 'guard')} on no input dim: {by_kind}", others))
    return folds


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
    "specialization": ("specialization", _specialization_rows),
    "backoff": ("backoff", _backoff_rows),
    "graph_break": ("graph_break", _graph_break_rows),
    "eager_fallback": ("fallback", _eager_fallback_rows),
    "cache_limit": ("fallback", _cache_limit_rows),
}
