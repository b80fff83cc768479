"""`partialdyn log view FILE [--html OUT] [--full]`: renders an event log as text, or as one HTML page.

Per run and optimized function: compiles over time with their reasons, each entry's
guards by kind (what never changes folded unless `--full`), which line specialized
which dim, backoff decisions, graph breaks, fallbacks, and a summary; then an overall
summary. The HTML page adds, per function, the recompile chain (each failed guard
linked to what made it), every entry with its guards and graph code, and a
timeline. `render_text` / `render_html` also serve in-memory events
(`partialdyn.logs.events()`).
"""
from __future__ import annotations

import argparse
import html
import json
import sys

from .report import (FunctionReport, Section, UnknownSchemaVersion, build_reports, check_schema, overall_summary,
                     report_title, runs_of, stream_header, summary_text)

NO_STATS_NOTE = "  (counted from events: no stats snapshot)"


def main(argv: list[str]) -> int:
    """Entry point of `partialdyn log view`; returns the exit status (2: unreadable file or unknown schema)."""
    args = _parser().parse_args(argv)
    try:
        events, skipped_lines = read_jsonl(args.file)
    except OSError as error:
        print(f"partialdyn log view: cannot read {args.file}: {error.strerror or error}", file=sys.stderr)
        return 2
    except UnknownSchemaVersion as error:
        print(f"partialdyn log view: {args.file}: {error}", file=sys.stderr)
        return 2
    print(render_text(events, skipped_lines=skipped_lines, full=args.full), end="")
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as out:
                out.write(render_html(events, skipped_lines=skipped_lines))
        except OSError as error:
            print(f"partialdyn log view: cannot write {args.html}: {error.strerror or error}",
                  file=sys.stderr)
            return 2
        print(f"HTML report written to {args.html}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="partialdyn log", description="Read a partialdyn event log.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    view = actions.add_parser("view", help="render the log as text (and optionally HTML)")
    view.add_argument("file", metavar="FILE", help="JSON Lines log, as written via PARTIALDYN_LOG=FILE")
    view.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report to OUT")
    view.add_argument("--full", action="store_true", help="list every guard (by default what never changes "
                                                          "is folded)")
    return parser


def read_jsonl(path: str) -> tuple[list[dict], int]:
    """(events, number of non-blank lines that are not JSON objects); UnknownSchemaVersion names the first line
    whose event has a schema version this viewer does not read."""
    events, skipped = [], 0
    with open(path, encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if isinstance(event, dict):
                try:
                    check_schema(event)
                except UnknownSchemaVersion as error:
                    raise UnknownSchemaVersion(f"line {number}: {error}") from None
                events.append(event)
            else:
                skipped += 1
    return events, skipped


# ---- text ---------------------------------------------------------------------------------

def render_text(events: list[dict], *, skipped_lines: int = 0, full: bool = False) -> str:
    """The text report; `full` lists every guard instead of folding what never changes."""
    reports = build_reports(events, full=full)
    several_runs = len(runs_of(reports)) > 1
    lines = [f"partialdyn log: {stream_header(events, reports, skipped_lines)}"]
    for report in reports:
        lines += ["", *_function_text(report, several_runs)]
    lines += ["", f"overall: {summary_text(overall_summary(reports))}"]
    return "\n".join(lines) + "\n"


def _function_text(report: FunctionReport, several_runs: bool) -> list[str]:
    title, settings = f"== {report.fn} ==", report_title(report, several_runs)
    lines = [f"{title}  {settings}" if settings else title]
    for section in report.shown_sections():
        lines.append(section.title)
        lines += [f"  {row}" for row in _aligned([list(section.columns), *section.rows])]
    summary, from_stats = report.summary()
    lines.append(f"summary: {summary_text(summary)}{'' if from_stats else NO_STATS_NOTE}")
    return lines


def _aligned(rows: list[list[str]]) -> list[str]:
    """Pads every column but the last to its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
            for row in rows]


# ---- HTML ---------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; }
details { border: 1px solid #ccc; border-radius: 6px; margin: 1em 0; padding: .5em 1em; }
summary { cursor: pointer; font-weight: 600; }
summary .counts { font-weight: normal; color: #555; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 2px 10px 2px 0; vertical-align: top; }
th { color: #555; font-weight: 600; border-bottom: 1px solid #ddd; }
td { font-family: ui-monospace, monospace; font-size: 13px; }
.note { color: #777; }
"""


def render_html(events: list[dict], *, skipped_lines: int = 0) -> str:
    """One self-contained page: inline CSS, no scripts, no external resources."""
    reports = build_reports(events)
    body = [f"<h1>partialdyn log</h1>\n<p>{_e(stream_header(events, reports, skipped_lines))}</p>"]
    body += [_function_html(report) for report in reports]
    body.append(f"<h2>overall</h2>\n<p>{_e(summary_text(overall_summary(reports)))}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>partialdyn log</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _function_html(report: FunctionReport) -> str:
    summary, from_stats = report.summary()
    note = "" if from_stats else f" <span class=\"note\">{_e(NO_STATS_NOTE.strip())}</span>"
    settings = f" <span class=\"counts\">{_e(report.settings)}</span>" if report.settings else ""
    parts = [f"<details open>\n<summary>{_e(report.fn)}{settings} "
             f"<span class=\"counts\">— {_e(summary_text(summary))}</span></summary>"]
    parts += [_section_html(section) for section in report.shown_sections()]
    parts.append(f"<p>summary: {_e(summary_text(summary))}{note}</p>\n</details>")
    return "\n".join(parts)


def _section_html(section: Section) -> str:
    header = "".join(f"<th>{_e(c)}</th>" for c in section.columns)
    rows = "\n".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in section.rows)
    return f"<h3>{_e(section.title)}</h3>\n<table>\n<tr>{header}</tr>\n{rows}\n</table>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
