"""The HTML report of an event log: one self-contained page (inline CSS, no scripts, no external resources).

Per run and optimized function: the summary; the recompile chain, where each recompile links to the guard
that failed (in the entry it failed in) and to the specialization that made that guard; one section per
cache entry with its guards (folded as in the text report, the folds collapsible), the line that
specialized each dim, its graph break and its graph code (collapsible); a timeline of the calls and of the
events; and the text report's other tables (backoff, graph breaks, fallbacks, other events). Every text
from the log is escaped.
"""
from __future__ import annotations

import html

from .describe import (code_entry, guard_text, location, plural, specialization_guard, specialization_use,
                       value_of)
from .report import (NO_STATS_NOTE, Entry, FunctionReport, Section, build_reports, fold_guards,
                     overall_summary, report_title, runs_of, stream_header, summary_text)

TABLES_AFTER_ENTRIES = ("backoff", "graph_break", "fallback", "other")   # the text report's other sections
FALLBACK_KINDS = ("eager_fallback", "cache_limit")

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.15em; margin: 0; display: inline; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; border-bottom: 1px solid #e5e5e5; }
h4 { font-size: .95em; margin: .2em 0 .4em; font-family: ui-monospace, monospace; }
details.function { border: 1px solid #ccc; border-radius: 6px; margin: 1em 0; padding: .5em 1em; }
details.function > summary { cursor: pointer; }
.counts, .note, .meta { color: #666; font-weight: normal; }
section.entry { border-left: 3px solid #8ab; padding: .1em 0 .3em .8em; margin: .8em 0; }
section.entry:target, tr:target, li:target { background: #fff4c2; }
table { border-collapse: collapse; margin: .2em 0; }
th, td { text-align: left; padding: 1px 12px 1px 0; vertical-align: top; }
th { color: #555; font-weight: 600; border-bottom: 1px solid #ddd; }
td, code, pre { font-family: ui-monospace, monospace; font-size: 12.5px; }
td.made-by { color: #444; }
details.fold > summary, details.graph-code > summary { cursor: pointer; color: #246; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; margin: .3em 0; }
ol.chain { padding-left: 1.4em; margin: .3em 0; }
ol.chain li { margin: .15em 0; }
.recompile-tag { color: #a33; font-weight: 600; }
.calls { display: flex; flex-wrap: wrap; gap: 3px; margin: .3em 0 .6em; }
.calls span { padding: 1px 6px; border-radius: 3px; font-size: 12px; color: #fff; }
.calls .hit { background: #4a8f5a; } .calls .quiet { background: #8a9a8d; }
.calls .compile { background: #3b6fb6; } .calls .recompile { background: #c0392b; }
.calls .fallback { background: #d68910; }
"""


def render_html(events: list[dict], *, skipped_lines: int = 0) -> str:
    """The whole page for `events` (what `partialdyn log view FILE --html OUT` writes)."""
    reports = build_reports(events)
    several_runs = len(runs_of(reports)) > 1
    body = [f"<h1>partialdyn log</h1>\n<p class=\"meta\">{_e(stream_header(events, reports, skipped_lines))}</p>"]
    body += [_FunctionPage(report, f"f{number}", several_runs).html() for number, report in enumerate(reports)]
    body.append(f"<h3>overall</h3>\n<p class=\"overall\">{_e(summary_text(overall_summary(reports)))}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>partialdyn log</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


class _FunctionPage:
    """One function's part of the page; element ids start with `prefix` (`f0-e1` is its second entry,
    `f0-e1-g3` a guard of it, `f0-e1-s0` a specialization)."""

    def __init__(self, report: FunctionReport, prefix: str, several_runs: bool):
        self.report, self.prefix, self.several_runs = report, prefix, several_runs
        self.entry_ids = {id(entry): f"{prefix}-e{n}" for n, entry in enumerate(report.entries)}

    def html(self) -> str:
        report = self.report
        summary, from_stats = report.summary()
        note = "" if from_stats else f" <span class=\"note\">{_e(NO_STATS_NOTE.strip())}</span>"
        title = report_title(report, self.several_runs)
        parts = [f"<details open class=\"function\" id=\"{self.prefix}\">\n<summary><h2>{_e(report.fn)}</h2>"
                 + (f" <span class=\"counts\">{_e(title)}</span>" if title else "") + "</summary>",
                 f"<p class=\"summary\">summary: {_e(summary_text(summary))}{note}</p>"]
        if report.entries:
            parts += [self._chain(), "<h3>cache entries</h3>", *map(self._entry, report.entries)]
        if report.timeline:
            parts.append(self._timeline())
        parts += [_table(report.sections[name]) for name in TABLES_AFTER_ENTRIES if report.sections[name].rows]
        parts.append("</details>")
        return "\n".join(parts)

    # ---- the recompile chain

    def _chain(self) -> str:
        items = []
        for entry in self.report.entries:
            event = entry.compile
            tag = "<span class=\"recompile-tag\">recompile</span>" if event.get("recompile") else "compile"
            facts = [f"{_time(event, self.report.start)}"] + ([f"call {event['call']}"] if "call" in event else [])
            facts += [plural(event.get("graphs"), "graph"), f"trace {_seconds(event.get('trace_seconds'))}"]
            items.append(f"<li id=\"{self.entry_ids[id(entry)]}-chain\">{tag} "
                         f"<a href=\"#{self.entry_ids[id(entry)]}\">{_e(code_entry(event))}</a> "
                         f"<span class=\"meta\">({_e(', '.join(facts))})</span>: {self._reason(entry)}</li>")
        return "<h3>recompile chain</h3>\n<ol class=\"chain\">\n" + "\n".join(items) + "\n</ol>"

    def _reason(self, entry: Entry) -> str:
        """The compile's reason; for a recompile, links to the failed guard and to what made it."""
        event = entry.compile
        reason = _e(value_of(event, "reason"))
        failed = self._failed_entry(entry)
        if failed is None:
            return reason
        failed_id = self.entry_ids[id(failed)]
        links = [f"failed in <a class=\"failed-entry\" href=\"#{failed_id}\">#{_e(str(failed.index))}</a>"]
        position = _guard_position(failed, event.get("failed_guard"))
        if position is not None:
            links.append(f"<a class=\"failed-guard\" href=\"#{failed_id}-g{position}\">the guard</a>")
            made_by = _specialization_of(failed, failed.guards[position])
            if made_by is not None:
                spec = failed.specializations[made_by]
                links.append(f"made by <a class=\"made-by\" href=\"#{failed_id}-s{made_by}\">"
                             f"{_e(value_of(spec, 'op'))} at {_e(location(spec))}</a>")
            elif failed.guards[position].get("provenance"):
                links.append(f"made by {_e(_provenance_text(failed.guards[position]['provenance']))}")
        return f"{reason} <span class=\"meta\">— {'; '.join(links)}</span>"

    def _failed_entry(self, entry: Entry) -> Entry | None:
        index = entry.compile.get("failed_entry")
        if not entry.compile.get("recompile") or index is None:
            return None
        return next((e for e in self.report.entries if e.code == entry.code and e.index == index), None)

    # ---- one cache entry

    def _entry(self, entry: Entry) -> str:
        entry_id, event = self.entry_ids[id(entry)], entry.compile
        facts = [f"{'recompile' if event.get('recompile') else 'compile'}: {value_of(event, 'reason')}",
                 plural(event.get("graphs"), "graph"), plural(event.get("graph_breaks"), "graph break"),
                 f"trace {_seconds(event.get('trace_seconds'))}", f"backend {_seconds(event.get('backend_seconds'))}"]
        parts = [f"<section class=\"entry\" id=\"{entry_id}\">",
                 f"<h4>{_e(code_entry(event))}</h4>", f"<p class=\"meta\">{_e(' · '.join(facts))}</p>",
                 self._guards(entry, entry_id)]
        if entry.specializations:
            parts.append(self._specializations(entry, entry_id))
        if entry.graph_break:
            brk = entry.graph_break
            hint = f" (hint: {brk['hint']})" if brk.get("hint") else ""
            parts.append(f"<p class=\"graph-break\">graph break at {_e(location(brk))}: "
                         f"{_e(value_of(brk, 'reason'))}{_e(hint)}</p>")
        code = event.get("graph_code")
        if isinstance(code, str) and code.strip():
            code = code.strip("\n")
            parts.append(f"<details class=\"graph-code\"><summary>graph code ({plural(code.count(chr(10)) + 1, 'line')})"
                         f"</summary>\n<pre><code>{_e(code)}</code></pre>\n</details>")
        parts.append("</section>")
        return "\n".join(parts)

    def _guards(self, entry: Entry, entry_id: str) -> str:
        if not entry.guards:
            return "<p class=\"note\">(no guards logged)</p>"
        positions = {id(guard): n for n, guard in enumerate(entry.guards)}
        shown, folds = fold_guards(entry.guards, self._previous(entry), self.report.owner())
        rows = [_guard_rows(shown, positions, entry_id)] if shown else []
        for label, guards in folds:
            rows.append(f"<tr class=\"fold\"><td>(folded)</td><td colspan=\"3\"><details class=\"fold\">"
                        f"<summary>{_e(label)}</summary>\n<table>\n{_guard_rows(guards, positions, entry_id)}\n"
                        f"</table>\n</details></td></tr>")
        return ("<table class=\"guards\">\n<tr><th>kind</th><th>guard</th><th>dims</th><th>made by</th></tr>\n"
                + "\n".join(rows) + "\n</table>")

    def _previous(self, entry: Entry) -> tuple[str, list[dict]] | None:
        """(name, guards) of the entry of the same code compiled before `entry`."""
        same_code = [e for e in self.report.entries if e.code == entry.code]
        position = same_code.index(entry)
        if position == 0 or not same_code[position - 1].guards:
            return None
        previous = same_code[position - 1]
        return f"#{previous.index}", previous.guards

    def _specializations(self, entry: Entry, entry_id: str) -> str:
        rows = [f"<tr id=\"{entry_id}-s{n}\"><td>{_e(location(spec))}</td><td>{_e(specialization_use(spec))}</td>"
                f"<td>{_e(specialization_guard(spec))}</td><td>{_e(value_of(spec, 'op'))}</td>"
                f"<td>{_e(str(spec.get('text') or '').strip())}</td></tr>"
                for n, spec in enumerate(entry.specializations)]
        return ("<table class=\"specializations\">\n<tr><th>specialized at</th><th>use</th><th>assumes</th>"
                "<th>by</th><th>line</th></tr>\n" + "\n".join(rows) + "\n</table>")

    # ---- timeline

    def _timeline(self) -> str:
        parts = ["<h3>timeline</h3>"]
        strip = self._call_strip()
        if strip:
            parts.append(strip)
        rows = []
        for event in self.report.timeline:
            kind = value_of(event, "kind")
            entry = self._entry_of_compile(event)
            what = (f"<a href=\"#{self.entry_ids[id(entry)]}\">{_e(code_entry(event))}</a>" if entry
                    else _e(value_of(event, "code")))
            detail = event.get("reason") or event.get("dim") or event.get("source") or ""
            label = "recompile" if kind == "compile" and event.get("recompile") else kind
            rows.append(f"<tr class=\"{_e(label)}\"><td>{_e(_time(event, self.report.start))}</td>"
                        f"<td>{_e(value_of(event, 'call'))}</td><td>{_e(label)}</td><td>{what}</td>"
                        f"<td>{_e(str(detail))}</td></tr>")
        parts.append("<details class=\"events\"><summary>every event (" + plural(len(rows), "event") + ")</summary>\n"
                     "<table class=\"timeline\">\n<tr><th>time</th><th>call</th><th>event</th><th>code</th>"
                     "<th>detail</th></tr>\n" + "\n".join(rows) + "\n</table>\n</details>")
        return "\n".join(parts)

    def _entry_of_compile(self, event: dict) -> Entry | None:
        return next((e for e in self.report.entries if e.compile is event), None)

    def _call_strip(self) -> str:
        """The calls in order, runs of alike calls merged: which compiled (first compile / recompile), which
        fell back to eager, and the calls without an event (cache hits; after a fallback, possibly a fallback
        repeated). Empty when the events carry no call numbers (older logs)."""
        marks: dict[int, str] = {}
        for event in self.report.timeline:
            call = event.get("call")
            if not isinstance(call, int) or call < 1:
                continue
            if event.get("kind") == "compile":
                mark = "recompile" if event.get("recompile") else "compile"
                marks[call] = "recompile" if "recompile" in (mark, marks.get(call)) else mark
            elif event.get("kind") in FALLBACK_KINDS:
                marks.setdefault(call, "fallback")
        if not marks:
            return ""
        stats_calls = (self.report.stats or {}).get("calls")
        calls = max([*marks, stats_calls if isinstance(stats_calls, int) else 0])
        cells, fallen_back, call = [], False, 1
        while call <= calls:
            if call in marks:
                fallen_back |= marks[call] == "fallback"
                cells.append((marks[call], call, call))
                call += 1
                continue
            last = min([c for c in marks if c > call] + [calls + 1]) - 1
            cells.append(("quiet" if fallen_back else "hit", call, last))
            call = last + 1
        spans = [f"<span class=\"{kind}\" title=\"{_e(_call_title(kind, first, last))}\">"
                 f"{_e(_call_range(first, last))} {_CALL_WORDS[kind]}</span>" for kind, first, last in cells]
        return f"<div class=\"calls\">\n{''.join(spans)}\n</div>"


_CALL_WORDS = {"hit": "hit", "quiet": "no event", "compile": "compile", "recompile": "recompile",
               "fallback": "eager"}


def _call_range(first: int, last: int) -> str:
    return f"call {first}" if first == last else f"calls {first}–{last}"


def _call_title(kind: str, first: int, last: int) -> str:
    meaning = {"hit": "cache hits: a compiled entry ran", "quiet": "no new event: cache hits, or an eager "
               "fallback already reported", "compile": "first compile", "recompile": "a guard failed: recompiled",
               "fallback": "ran eagerly (see fallbacks)"}[kind]
    return f"{_call_range(first, last)}: {meaning}"


def _guard_rows(guards: list[dict], positions: dict[int, int], entry_id: str) -> str:
    rows, previous_kind = [], None
    for guard in guards:
        kind = str(guard.get("kind", "?"))
        dims = guard.get("dims")
        provenance = guard.get("provenance")
        rows.append(f"<tr id=\"{entry_id}-g{positions[id(guard)]}\"><td>{_e(kind if kind != previous_kind else '')}</td>"
                    f"<td>{_e(guard_text(guard))}</td><td>{_e(', '.join(map(str, dims)) if isinstance(dims, list) else '')}"
                    f"</td><td class=\"made-by\">{_e(_provenance_text(provenance) if provenance else '')}</td></tr>")
        previous_kind = kind
    return "\n".join(rows)


def _provenance_text(provenance) -> str:
    """`range() at model.py:7: for i in range(n):`, plus `(in torch/nn/...py:560: ...)` for library code."""
    if not isinstance(provenance, dict):
        return str(provenance)
    text = f"{value_of(provenance, 'op')} at {location(provenance)}"
    if provenance.get("text"):
        text += f": {str(provenance['text']).strip()}"
    library = provenance.get("library")
    if isinstance(library, dict):
        text += f" (in {location(library)}: {str(library.get('text') or '').strip()})"
    return text


def _guard_position(entry: Entry, text) -> int | None:
    return next((n for n, guard in enumerate(entry.guards) if text is not None and guard_text(guard) == text), None)


def _specialization_of(entry: Entry, guard: dict) -> int | None:
    """The specialization of `entry` that made `guard`: the one assuming the guard's text, else one on a dim the
    guard constrains at the guard's line."""
    text, dims = guard_text(guard), guard.get("dims") if isinstance(guard.get("dims"), list) else []
    line = (guard.get("provenance") or {}).get("line") if isinstance(guard.get("provenance"), dict) else None
    for n, spec in enumerate(entry.specializations):
        if specialization_guard(spec) == text:
            return n
    for n, spec in enumerate(entry.specializations):
        if spec.get("source") in dims and line is not None and spec.get("line") == line:
            return n
    return None


def _table(section: Section) -> str:
    header = "".join(f"<th>{_e(c)}</th>" for c in section.columns)
    rows = "\n".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in section.rows)
    return f"<h3>{_e(section.title)}</h3>\n<table>\n<tr>{header}</tr>\n{rows}\n</table>"


def _time(event: dict, start: float) -> str:
    time = event.get("time")
    return f"+{time - start:.3f}s" if isinstance(time, (int, float)) else "?"


def _seconds(value) -> str:
    return f"{value:.3f}s" if isinstance(value, (int, float)) else "?"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
