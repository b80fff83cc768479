#!/usr/bin/env python3
"""Cache-hit overhead above eager: partialdyn against torch.compile in one run (issue 9).

    OMP_NUM_THREADS=1 python benchmarks/cache_hit.py                 # x + y (4 elements) and 2-layer GPT-2
    OMP_NUM_THREADS=1 python benchmarks/cache_hit.py --rounds 3 --calls 50 --workloads tiny

Both engines use the eager backend, so the time above eager is the engine's own per-call work (argument
binding, guards, running the graph through fx, the frame hook).  Eager, partialdyn and torch.compile are
timed in interleaved rounds (each round: the median of `--calls` individually timed calls per engine), so
a busy stretch of the shared machine hits all three alike; a round's overhead is engine − eager of that
round, and the figures printed are medians over rounds.  The ratio is partialdyn's overhead over
torch.compile's ('-' when torch.compile's is not positive: on GPT-2 Dynamo's graph skips Python that eager
runs, so its time is below eager's); the last column compares the two engines directly.  One thread, `torch.no_grad()`, eval mode.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make `benchmarks` and `partialdyn` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.engines import reset_all  # noqa: E402
from benchmarks.measure import outputs_match, timed_call  # noqa: E402
from benchmarks.workloads import WORKLOADS, tiny_fn  # noqa: E402


def tiny4():
    """`x + y` on 4 elements, the issue's figure."""
    g = torch.Generator().manual_seed(0)
    return tiny_fn, (torch.randn(4, generator=g), torch.randn(4, generator=g))


def gpt2_2layer():
    """The 2-layer GPT-2 of benchmarks/workloads.py (random weights), batch 2, length 16."""
    model, inputs = WORKLOADS["gpt2"]()
    return model, inputs[2]


CASES = {"tiny": tiny4, "gpt2": gpt2_2layer}


def _partialdyn(fn):
    import partialdyn
    return partialdyn.optimize(fn, backend="eager")


def _torch_compile(fn):
    return torch.compile(fn, backend="eager")


@dataclass
class Result:
    case: str
    eager_us: float
    partialdyn_us: float
    torch_us: float
    partialdyn_overhead_us: float
    torch_overhead_us: float
    correct: bool

    @property
    def ratio(self) -> float | None:
        return self.partialdyn_overhead_us / self.torch_overhead_us if self.torch_overhead_us > 0 else None


def _block_median_us(fn, args, calls: int) -> float:
    return statistics.median(timed_call(fn, args)[0] for _ in range(calls)) * 1e6


def measure(case: str, rounds: int, calls: int, warmup: int) -> Result:
    reset_all()
    build = CASES[case]
    eager, args = build()
    expected = eager(*args)
    pd_fn = _partialdyn(build()[0])
    tc_fn = _torch_compile(build()[0])
    correct = outputs_match(pd_fn(*args), expected) and outputs_match(tc_fn(*args), expected)
    engines = {"eager": eager, "partialdyn": pd_fn, "torch": tc_fn}
    for fn in engines.values():
        for _ in range(warmup):
            fn(*args)
    per_round = {name: [] for name in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            per_round[name].append(_block_median_us(fn, args, calls))
    median = statistics.median
    overhead = {name: median(t - e for t, e in zip(per_round[name], per_round["eager"])) for name in engines}
    return Result(case, median(per_round["eager"]), median(per_round["partialdyn"]), median(per_round["torch"]),
                  overhead["partialdyn"], overhead["torch"], correct)


def to_markdown(results) -> str:
    lines = ["| case | eager us | partialdyn us | torch.compile us | partialdyn overhead us | "
             "torch.compile overhead us | ratio | partialdyn - torch.compile us | correct |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(f"| {r.case} | {r.eager_us:.1f} | {r.partialdyn_us:.1f} | {r.torch_us:.1f} | "
                     f"{r.partialdyn_overhead_us:.1f} | {r.torch_overhead_us:.1f} | {ratio} | "
                     f"{r.partialdyn_overhead_us - r.torch_overhead_us:+.1f} | {r.correct} |")
    return "\n".join(lines)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per engine per round")
    parser.add_argument("--warmup", type=int, default=50)
    opts = parser.parse_args(argv)
    cases = opts.workloads.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    torch.set_num_threads(1)
    with torch.no_grad():
        results = [measure(case, opts.rounds, opts.calls, opts.warmup) for case in cases]
    print(to_markdown(results))
    return results


if __name__ == "__main__":
    main()
