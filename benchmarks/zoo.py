#!/usr/bin/env python3
"""The model zoo benchmark: each zoo model's stream through partialdyn and torch.compile.

    python benchmarks/zoo.py                          # every model, partialdyn / torch default / dynamic=True
    python benchmarks/zoo.py --models gpt2,t5 --backend eager

Prints one markdown row per model and engine: compiles, graph breaks, eager fallbacks, the
first call's time (trace and backend compile included), the whole stream's time, and whether
every output matched eager. Same conditions as benchmarks/run.py: one thread, no_grad, caches
reset between engines, torch's recompile limit raised so it never silently runs eagerly.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make `benchmarks` and `partialdyn` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.engines import ENGINES, reset_all  # noqa: E402
from benchmarks.run import BACKENDS, benchmark_environment, warm_up  # noqa: E402
from benchmarks.zoo_models import BY_NAME, ZOO, tensors_of  # noqa: E402

ZOO_ENGINES = ("partialdyn-partial", "torch-default", "torch-dynamic")
COLUMNS = ("model", "engine", "compiles", "breaks", "fallbacks", "first call s", "stream s", "correct")


def matches(got, want) -> bool:
    a, b = tensors_of(got), tensors_of(want)
    return type(got) is type(want) and len(a) == len(b) and all(
        x.shape == y.shape and torch.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in zip(a, b))


def measure(model, engine, backend: str) -> dict:
    """One fresh model, its stream once through `engine`; times from the wall clock."""
    reset_all()
    module, calls = model.build(), model.calls()
    want = [module(**kwargs) for kwargs in calls]
    optimized = engine.optimize(module, backend)
    times, correct = [], True
    for kwargs, expected in zip(calls, want):
        start = time.perf_counter()
        got = optimized(**kwargs)
        times.append(time.perf_counter() - start)
        correct = correct and matches(got, expected)
    counts = engine.counts(optimized)
    return {"model": model.name, "engine": engine.name, "compiles": counts["compiles"],
            "breaks": counts["graph_breaks"], "fallbacks": counts["eager_fallbacks"],
            "first call s": f"{times[0]:.2f}", "stream s": f"{sum(times):.2f}", "correct": correct}


def run(models=None, engines=ZOO_ENGINES, backend: str = "eager") -> list[dict]:
    chosen = [BY_NAME[name] for name in models] if models else ZOO
    picked = [ENGINES[name] for name in engines]
    rows = []
    with benchmark_environment(backend):
        warm_up(picked, backend)
        for model in chosen:
            for engine in picked:
                try:
                    rows.append(measure(model, engine, backend))
                except Exception as e:          # an engine's error is a row, the run goes on
                    rows.append({"model": model.name, "engine": engine.name,
                                 "correct": f"error: {type(e).__name__}: {str(e)[:80]}"})
                print(" | ".join(str(rows[-1].get(c, "")) for c in COLUMNS), file=sys.stderr, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=lambda text: [m for m in text.split(",") if m],
                        help=f"comma list of: {', '.join(BY_NAME)}")
    parser.add_argument("--engines", type=lambda text: [e for e in text.split(",") if e], default=list(ZOO_ENGINES))
    parser.add_argument("--backend", default="eager", choices=BACKENDS)
    args = parser.parse_args(argv)
    for name in args.models or ():
        if name not in BY_NAME:
            parser.error(f"unknown model {name!r}; known: {', '.join(BY_NAME)}")
    print(f"torch {torch.__version__}, backend {args.backend}, one thread")
    print(to_markdown(run(args.models, args.engines, args.backend)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
