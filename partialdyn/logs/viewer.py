"""`partialdyn log view FILE [--html OUT] [--full]`: renders an event log as text, or as one HTML page.

Per run and optimized function: compiles over time with their reasons, each entry's
guards by kind (what never changes folded unless `--full`), which line specialized
which dim, backoff decisions, graph breaks, fallbacks, and a summary; then an overall
summary. The HTML page (logs/page.py) adds, per function, the recompile chain (each
failed guard linked to what made it), every entry with its guards and graph code,
and a timeline. `render_text` here and `page.render_html` also serve in-memory events
(`partialdyn.logs.events()`).
"""
from __future__ import annotations

import argparse
import json
import sys

from . import page
from .report import (NO_STATS_NOTE, FunctionReport, UnknownSchemaVersion, build_reports, check_schema,
                     overall_summary, report_title, runs_of, stream_header, summary_text)

__all__ = ["main", "read_jsonl", "render_text"]


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
                out.write(page.render_html(events, skipped_lines=skipped_lines))
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
