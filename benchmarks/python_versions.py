#!/usr/bin/env python3
"""partialdyn on several CPython versions side by side: cache-hit overhead and GPT-2 first call (issue 11).

    OMP_NUM_THREADS=1 python benchmarks/python_versions.py \\
        --python /work/venv/bin/python --python /work/venv312/bin/python --python /work/venv313/bin/python

Each interpreter (it needs torch and transformers; partialdyn comes from this checkout) runs the same
child, in turn, `--repeats` times: `cache_hit.measure` of `x + y` and of the 2-layer GPT-2 (overhead above
eager per call, torch.compile beside it in the same process) and `first_call.measure` of GPT-2 under
`partialdyn-partial` (one fresh interpreter per first call: the trace time users wait for).  The table
gives medians over repeats and each figure's ratio to the first interpreter's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (("tiny_overhead_us", "x+y overhead us"), ("gpt2_overhead_us", "GPT-2 overhead us"),
           ("gpt2_first_call_s", "GPT-2 first call s"))


def _child(rounds: int, calls: int) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from benchmarks import cache_hit, first_call
    torch.set_num_threads(1)
    with torch.no_grad():
        hits = {case: cache_hit.measure(case, rounds, calls, warmup=50) for case in ("tiny", "gpt2")}
    first = first_call.measure(["gpt2"], ["partialdyn-partial"], "eager", repeats=1)
    print("RESULT " + json.dumps({
        "python": sys.version.split()[0],
        "tiny_overhead_us": hits["tiny"].partialdyn_overhead_us,
        "gpt2_overhead_us": hits["gpt2"].partialdyn_overhead_us,
        "gpt2_first_call_s": first[("gpt2", "partialdyn-partial")],
        "correct": all(result.correct for result in hits.values()),
    }))


def run_child(python: str, rounds: int, calls: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([python, __file__, "--child", str(rounds), str(calls)], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{python} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def to_markdown(medians: list[dict]) -> str:
    head = ["python", *[label for _, label in FIGURES], *[f"{label} vs first" for _, label in FIGURES], "correct"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = medians[0]
    for row in medians:
        values = [f"{row[key]:.3f}" if key.endswith("_s") else f"{row[key]:.1f}" for key, _ in FIGURES]
        ratios = [f"{row[key] / base[key]:.2f}x" if base[key] > 0 else "-" for key, _ in FIGURES]
        lines.append("| " + " | ".join([row["python"], *values, *ratios, str(row["correct"])]) + " |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="an interpreter to measure (repeatable; "
                        "default: this one). The first is the baseline of the ratios.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9, help="cache-hit rounds per child")
    parser.add_argument("--calls", type=int, default=150, help="timed calls per engine per round")
    opts = parser.parse_args(argv)
    pythons = opts.python or [sys.executable]
    samples: dict[str, list[dict]] = {python: [] for python in pythons}
    for _ in range(opts.repeats):
        for python in pythons:              # interleaved, so a busy stretch of the machine hits every version
            samples[python].append(run_child(python, opts.rounds, opts.calls))
            print(f"  {samples[python][-1]}", file=sys.stderr)
    medians = [{"python": runs[0]["python"], "correct": all(run["correct"] for run in runs),
                **{key: statistics.median(run[key] for run in runs) for key, _ in FIGURES}}
               for runs in samples.values()]
    print(to_markdown(medians))
    return medians


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
