"""Ratios against torch-default, and the markdown / JSON renderings of the rows."""
from __future__ import annotations

import json

from .engines import BASELINE

# (row field, ratio field): ratio = row value / the torch-default row's value
RATIOS = (
    ("compiles", "compiles_ratio"),
    ("trace_time_s", "trace_time_ratio"),
    ("overhead_us", "overhead_ratio"),
)

NOTES = [
    f"x td: engine / {BASELINE} on the same workload; '-' where either side is "
    f"missing or the {BASELINE} value is not positive.",
    "trace: time of the calls that compiled minus eager time of the same inputs "
    "(with a non-eager backend it includes the backend's compile time).",
    "wall: every call of the input stream, compiles included. per-call: the last input "
    "(a cache hit) called repeatedly after warm-up, least of 5 block medians; overhead = "
    "per-call - eager per-call.",
    "peak: tracemalloc peak during the first call (Python-heap allocations only; "
    "tensor storage is not counted), measured in a separate pass after a reset.",
    "torch compiles = Dynamo cache entries over all code objects; recompiles = compiles "
    "- code objects with an entry; torch recompile_limit raised to 64 so torch does not "
    "silently fall back to eager (benchmarks/engines.py says more).",
    "All calls run under torch.no_grad() with torch.set_num_threads(1).",
]


def add_ratios(rows: list) -> None:
    """Fill each row's ratio fields from the torch-default row of its workload."""
    baselines = {r.workload: r for r in rows if r.engine == BASELINE and r.status == "ok"}
    for row in rows:
        base = baselines.get(row.workload)
        for field, ratio in RATIOS:
            mine = getattr(row, field)
            theirs = getattr(base, field) if base else None
            if mine is not None and theirs is not None and theirs > 0:
                setattr(row, ratio, mine / theirs)


def _num(value, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _correct(row) -> str:
    if row.correct is None:
        return "-"
    return "yes" if row.correct else f"NO {row.mismatched_calls}"


def _note(row) -> str:
    text = row.note if row.status == "ok" else f"{row.status}: {row.note}"
    return text.replace("|", "/").replace("\n", " ")[:120]


COLUMNS = (
    ("workload", lambda r: r.workload),
    ("engine", lambda r: r.engine),
    ("compiles", lambda r: _num(r.compiles, digits=0)),
    ("x td", lambda r: _ratio(r.compiles_ratio)),
    ("recompiles", lambda r: _num(r.recompiles, digits=0)),
    ("graphs", lambda r: _num(r.graphs, digits=0)),
    ("breaks", lambda r: _num(r.graph_breaks, digits=0)),
    ("fallbacks", lambda r: _num(r.eager_fallbacks, digits=0)),
    ("trace ms", lambda r: _num(r.trace_time_s, 1e3)),
    ("x td", lambda r: _ratio(r.trace_time_ratio)),
    ("wall ms", lambda r: _num(r.wall_time_s, 1e3)),
    ("per-call us", lambda r: _num(r.per_call_us)),
    ("overhead us", lambda r: _num(r.overhead_us)),
    ("x td", lambda r: _ratio(r.overhead_ratio)),
    ("peak MiB", lambda r: _num(r.compile_peak_mib, digits=2)),
    ("correct", _correct),
    ("note", _note),
)


def to_markdown(rows: list, meta: dict) -> str:
    head = [f"Backend `{meta['backend']}`, torch {meta['torch']}, Python {meta['python']}"
            f"{', quick mode' if meta['quick'] else ''}.", ""]
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |" for r in rows]
    notes = [""] + [f"- {n}" for n in NOTES]
    return "\n".join(head + lines + notes) + "\n"


def to_json(rows: list, meta: dict) -> str:
    return json.dumps({"meta": {**meta, "notes": NOTES}, "rows": [vars(r) for r in rows]}, indent=2)
