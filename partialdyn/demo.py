"""`python -m partialdyn demo`: partialdyn's shape policies next to torch.compile.

A small transformer (hand-written causal attention that reads `x.shape`, views into
heads and scales by `math.sqrt(head_dim)`, an MLP, layer norms) runs over a fixed-seed
stream of inputs whose batch (1..8) and sequence length (3..40) vary. Each engine sees
the same stream; its outputs are checked against eager and a table compares compiles,
recompiles, graph breaks, eager fallbacks and wall time. Then the `partial` run's
log file is rendered as `python -m partialdyn log view FILE` renders it.

Only the public API is used: `partialdyn.optimize`, `partialdyn.stats`,
`partialdyn.reset`, `partialdyn.config`, and the log viewer.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import random
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

POLICIES = ("partial", "dynamic", "static", "automatic")


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape                       # sizes flow into view/reshape: stay symbolic
        head_dim = C // self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.n_heads, head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_heads, head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_heads, head_dim).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)   # value use of C: specialized
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyTransformer(nn.Module):
    def __init__(self, d_model: int = 32, n_heads: int = 4, n_layers: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)


def make_inputs(n: int, d_model: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """A fixed stream of (batch, seq, d_model) inputs, batch in 1..8, seq in 3..40."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(rng.randint(1, 8), rng.randint(3, 40), d_model, generator=gen)
            for _ in range(n)]


def run_stream(fn, inputs):
    """Call fn on every input; return (outputs, seconds)."""
    start = time.perf_counter()
    with torch.no_grad():
        outs = [fn(x) for x in inputs]
    return outs, time.perf_counter() - start


def check(outs, expected) -> str:
    for i, (a, b) in enumerate(zip(outs, expected)):
        if not isinstance(a, torch.Tensor) or a.shape != b.shape or not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            return f"NO (call {i})"
    return "yes"


def run_partialdyn(model, inputs, expected, policy: str, log_file: str | None = None):
    """Run the stream under one policy; return (table row, the run's log events, read back from `log_file`
    after `partialdyn.reset()` wrote its stats snapshot; None without a log file)."""
    import partialdyn

    saved_log = partialdyn.config.log_file
    if log_file is not None:
        partialdyn.config.log_file = log_file
    try:
        partialdyn.reset()
        opt = partialdyn.optimize(copy.deepcopy(model), policy=policy, backend="eager")
        outs, seconds = run_stream(opt, inputs)
        s = partialdyn.stats(opt)
    finally:
        partialdyn.reset()      # writes the stats event and closes the log file
        partialdyn.config.log_file = saved_log
    run_events = recorded_events(log_file) if log_file is not None else None
    row = {"engine": f"partialdyn {policy}", "compiles": s["compiles"], "recompiles": s["recompiles"],
           "graph breaks": s["graph_breaks"], "eager fallbacks": s["eager_fallbacks"],
           "seconds": seconds, "correct": check(outs, expected)}
    return row, run_events


def recorded_events(log_file: str) -> list[dict] | None:
    try:
        from partialdyn.logs.viewer import read_jsonl
    except ImportError:
        return None
    return read_jsonl(log_file)[0]


def run_torch_compile(model, inputs, expected) -> dict:
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(copy.deepcopy(model), backend="eager")
    outs, seconds = run_stream(compiled, inputs)
    ok = counters["frames"]["ok"]
    breaks = sum(counters["graph_break"].values())
    torch._dynamo.reset()
    # Dynamo has no recompile counter here. Every compiled frame of this model is the one
    # module forward unless it graph-breaks, so recompiles ~= frames compiled - 1
    # (exact when there are no graph breaks: compiles minus distinct code objects).
    return {"engine": "torch.compile (default)", "compiles": ok, "recompiles": max(0, ok - 1),
            "graph breaks": breaks, "eager fallbacks": "n/a",
            "seconds": seconds, "correct": check(outs, expected)}


def format_table(rows: list[dict]) -> str:
    cols = ["engine", "compiles", "recompiles", "graph breaks", "eager fallbacks", "seconds", "correct"]
    cells = [[f"{r[c]:.2f}" if c == "seconds" and isinstance(r[c], float) else str(r[c]) for c in cols]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


def print_log(run_events: list[dict] | None) -> None:
    print("\nEvent log of the partialdyn partial run:")
    try:
        from partialdyn.logs.viewer import render_text
    except ImportError as e:  # the table above does not need the viewer
        print(f"  (log viewer not available: {e})")
        return
    if run_events is None:
        print("  (no event log available)")
        return
    print(render_text(run_events), end="")


def warm_up() -> None:
    """Pay both engines' one-time process costs (torch imports its compiler stack on first use) before timing."""
    import partialdyn
    tiny = torch.randn(3)
    partialdyn.optimize(lambda x: x + 1)(tiny)
    torch.compile(lambda x: x + 1, backend="eager")(tiny)
    partialdyn.reset()
    torch._dynamo.reset()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="partialdyn demo",
        description="Compare partialdyn's shape policies with torch.compile on a small transformer.")
    p.add_argument("--quick", action="store_true", help="fewer calls (6 instead of 12)")
    p.add_argument("--log", metavar="FILE", help="also write the partial run's event log to FILE (JSON Lines)")
    args = p.parse_args(argv)
    log_file = args.log or os.path.join(tempfile.mkdtemp(prefix="partialdyn-demo-"), "partial.jsonl")
    open(log_file, "w").close()     # the log sink appends: start this run's log afresh

    torch.set_num_threads(1)    # small graphs time far more stably on one thread
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    inputs = make_inputs(6 if args.quick else 12)
    print(f"{len(inputs)} calls, shapes (batch, seq, d_model): "
          + ", ".join(str(tuple(x.shape)) for x in inputs))

    expected, eager_seconds = run_stream(model, inputs)
    warm_up()
    rows = [{"engine": "eager", "compiles": 0, "recompiles": 0, "graph breaks": 0,
             "eager fallbacks": 0, "seconds": eager_seconds, "correct": "yes"}]

    partial_events = None
    for policy in POLICIES:
        try:
            row, run_events = run_partialdyn(model, inputs, expected, policy,
                                             log_file if policy == "partial" else None)
        except Exception as e:  # report and go on: the table is the point
            row, run_events = {"engine": f"partialdyn {policy}", "compiles": "-", "recompiles": "-",
                               "graph breaks": "-", "eager fallbacks": "-", "seconds": "-",
                               "correct": f"ERROR {type(e).__name__}: {e}"[:80]}, None
        rows.append(row)
        if policy == "partial":
            partial_events = run_events
    rows.append(run_torch_compile(model, inputs, expected))

    print()
    print(format_table(rows))
    print_log(partial_events)
    if args.log:
        print(f"\nThe partial run's log is in {args.log}: python -m partialdyn log view {args.log} --full "
              f"--html report.html")
    else:
        os.remove(log_file)
        os.rmdir(os.path.dirname(log_file))
        print("\nEvery guard, graph code and a timeline: python -m partialdyn demo --log run.jsonl")

    return 0 if all(r["correct"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
