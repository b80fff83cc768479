"""The exit summary (`PARTIALDYN_LOGS=summary`): per optimized function, its calls, compiles, recompiles
grouped by the guard that failed and where it came from, graph breaks, eager fallbacks and the time spent
compiling, from the events in memory (since the last `partialdyn.reset()`)."""
from __future__ import annotations

import re
from collections import Counter, defaultdict

_NUMBER = re.compile(r"(?<![\w(.])-?\d+(?![\w).])")     # 8 in `x.size(0) == 8`, not the 0 of `size(0)`


def recompile_cause(reason: str) -> str:
    """`x.size(0) == 8 failed: got 12 (from range() at f.py:7)` -> `x.size(0) == N (from range() at f.py:7)`:
    recompiles of one guard group together whatever sizes it was specialized to or failed on."""
    guard, _, rest = reason.partition(" failed:")
    origin = rest.rfind(" (from ")
    return _NUMBER.sub("N", guard) + (rest[origin:] if origin >= 0 else "")


def summary(events: list[dict]) -> str:
    per_fn = defaultdict(lambda: {"compiles": 0, "seconds": 0.0, "breaks": 0, "fallbacks": 0, "calls": None,
                                  "causes": Counter()})
    for event in events:
        fn = event.get("fn")
        if fn is None:
            continue
        row, kind = per_fn[fn], event["kind"]
        if kind == "compile":
            row["compiles"] += 1
            row["seconds"] += (event.get("trace_seconds") or 0) + (event.get("backend_seconds") or 0)
            if event.get("recompile"):
                row["causes"][recompile_cause(str(event.get("reason", "")))] += 1
        elif kind == "graph_break":
            row["breaks"] += 1
        elif kind == "eager_fallback":
            row["fallbacks"] += 1
        elif kind == "stats":
            row["calls"] = event.get("calls")
    lines = ["partialdyn summary:"]
    if not per_fn:
        lines.append("  nothing was compiled")
    for fn, row in per_fn.items():
        recompiles = sum(row["causes"].values())
        calls = "" if row["calls"] is None else f"{row['calls']} calls, "
        lines.append(f"  {fn}: {calls}{row['compiles']} compiles ({recompiles} recompiles), {row['breaks']} graph "
                     f"breaks, {row['fallbacks']} eager fallbacks; {row['seconds']:.2f} s compiling")
        for cause, count in row["causes"].most_common():
            lines.append(f"    {count} x recompile on {cause}")
    return "\n".join(lines)
