"""`partialdyn.explain`: what one call compiles, and why.

It runs the call once through a fresh optimized copy (backend eager, so no
backend compile cost) and reports, for the traced frame and every resume
function or callee it spawned: the fx graphs, the guards, the specializations
(which line consumed which dim) and the graph breaks with their lines.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field, replace

import torch


@dataclass
class FrameReport:
    name: str
    graph_code: str
    guards: list
    specializations: list
    graph_break: dict | None
    runs_eagerly: str | None = None     # why the entry runs its calls as plain Python (its trace raises)


@dataclass(repr=False)
class Explanation:
    """What `partialdyn.explain` found: `frames` (one FrameReport per compiled entry), `stats`, and the
    `graph_breaks` and `specializations` of all frames.  str() and repr() are the readable report."""
    frames: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def graph_breaks(self):
        return [f.graph_break for f in self.frames if f.graph_break]

    @property
    def specializations(self):
        return [s for f in self.frames for s in f.specializations]

    def __str__(self):
        lines = [f"partialdyn.explain: {self.stats['graphs']} graph(s), {self.stats['graph_breaks']} graph "
                 f"break(s), {self.stats['compiles']} compile(s)"]
        for fr in self.frames:
            lines.append(f"\n=== {fr.name}")
            lines.append("guards:")
            lines += [f"  {g.kind:22} {g.text}" for g in fr.guards]
            if fr.specializations:
                lines.append("specializations:")
                for s in fr.specializations:
                    what = (f"({s['expr']} = {s['value']})" if "expr" in s else f"= {s['value']}") \
                        if s["use"] == "value" else f"predicate {s['predicate']}"
                    lines.append(f"  {s['source']} {what} by {s['op']} at {s['file']}:{s['line']}  {s['text']}")
            if fr.graph_code:
                lines.append("graph:")
                lines += ["  " + ln for ln in fr.graph_code.strip().splitlines()]
            if fr.runs_eagerly:
                lines.append(f"runs eagerly: {fr.runs_eagerly}")
            if fr.graph_break:
                b = fr.graph_break
                lines.append(f"graph break at {b['file']}:{b['line']}: {b['reason']}")
                if b["hint"]:
                    lines.append(f"  hint: {b['hint']}")
        return "\n".join(lines)

    __repr__ = __str__          # a notebook cell shows the report, not a dataclass dump

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def explain(fn, *args, **kwargs) -> Explanation:
    """Trace one call of `fn(*args, **kwargs)` (with the eager backend, on a fresh copy: the real function's
    cache and counters are untouched) and report its graphs, guards, specializations (which line consumed
    which dim) and graph breaks, for the frame and every resume function or callee it spawned.

    `fn`: a function, an nn.Module, or what `optimize` returned (then its policy and limits are used).
    `print(partialdyn.explain(f, x))` prints the report; see docs/logs.md."""
    from .api import _options, _opt_of
    from .runtime.function import OptimizedFunction
    options = _options(None, None, None, None, None)
    if isinstance(fn, torch.nn.Module) and hasattr(fn, "_partialdyn"):
        options, fn = _opt_of(fn).options, fn._partialdyn_original
    elif not isinstance(fn, (types.FunctionType, torch.nn.Module)):
        options, fn = _opt_of(fn).options, _opt_of(fn).fn
    target, call_args = (type(fn).forward, (fn,) + args) if isinstance(fn, torch.nn.Module) else (fn, args)
    # not registered with the API: no stats event, no mixing with the real function's counters
    root = OptimizedFunction(target, replace(options, backend="eager"), name=f"explain {target.__qualname__}")
    root(*call_args, **kwargs)
    report = Explanation(stats=root.stats.as_dict())
    frames = [root] + [c for c in root.children.values() if hasattr(c, "entries")]
    for frame in frames:
        for entry in frame.entries:
            stop = entry.stop
            report.frames.append(FrameReport(
                frame.fn.__qualname__, entry.graph_code, list(entry.guard.guards),
                list(entry.specializations),
                None if stop is None else {"reason": stop.reason, "hint": stop.hint, "file": stop.file,
                                           "line": stop.line},
                None if entry.raised is None else f"the traced code raises here: {entry.raised}"))
    return report
