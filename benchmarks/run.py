#!/usr/bin/env python3
"""Benchmark runner: every workload through every engine, in one process.

    python benchmarks/run.py                                   # everything, eager backend
    python benchmarks/run.py --quick --engines eager,torch-default,torch-dynamic,torch-static
    python benchmarks/run.py --workloads mlp,tiny --backend inductor --json out.json --md out.md

Prints a markdown table (ratios against torch-default side by side) and one progress
line per row on stderr. An engine that raises gets its error in its row; the run goes on.
From Python: `run(workloads=[...], engines=[...], backend="eager", quick=True)` -> rows.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make `benchmarks` and `partialdyn` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.engines import ENGINES, TORCH_RECOMPILE_LIMIT, Engine, reset_all  # noqa: E402
from benchmarks.measure import (Reference, eager_reference, first_call_peak_bytes,  # noqa: E402
                                outputs_match, run_stream, steady_call_time)
from benchmarks.report import add_ratios, to_json, to_markdown  # noqa: E402
from benchmarks.workloads import WORKLOADS, WorkloadUnavailable  # noqa: E402

BACKENDS = ("eager", "aot_eager", "inductor")


@dataclass(frozen=True)
class Settings:
    warmup: int            # untimed calls before a steady-state measurement
    reps: int              # timed calls behind the per-call time
    row_timeout_s: int     # a row (one workload x engine) running longer is an error


FULL = Settings(warmup=20, reps=200, row_timeout_s=900)
QUICK = Settings(warmup=5, reps=50, row_timeout_s=120)


@dataclass
class Row:
    workload: str
    engine: str
    backend: str
    status: str = "ok"                 # ok | error | skipped
    note: str = ""
    inputs: int | None = None
    compiles: int | None = None
    recompiles: int | None = None
    graphs: int | None = None
    graph_breaks: int | None = None
    eager_fallbacks: int | None = None
    trace_time_s: float | None = None
    wall_time_s: float | None = None
    per_call_us: float | None = None
    eager_per_call_us: float | None = None
    overhead_us: float | None = None
    compile_peak_mib: float | None = None
    correct: bool | None = None
    mismatched_calls: list = field(default_factory=list)
    compiles_ratio: float | None = None
    trace_time_ratio: float | None = None
    overhead_ratio: float | None = None


class RowTimeout(BaseException):
    """BaseException so that no engine's `except Exception` can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: int):
    """Interrupt a hung engine with SIGALRM; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise RowTimeout(f"row ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def benchmark_environment(backend: str):
    """One thread, no autograd, torch limits high enough that nothing silently
    runs eagerly, and no inductor graph caches so every compile is a real one."""
    import torch._dynamo
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(torch._dynamo.config.patch(recompile_limit=TORCH_RECOMPILE_LIMIT))
        if backend == "inductor":
            import torch._functorch.config
            import torch._inductor.config
            stack.enter_context(torch._inductor.config.patch(fx_graph_cache=False))
            stack.enter_context(torch._functorch.config.patch(enable_autograd_cache=False))
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            reset_all()


def _warm_up_fn(x):
    return x.sum(0) if x.size(0) > 4 else x * 2


def warm_up(engines: list, backend: str) -> None:
    """Pay one-time costs (lazy imports, sympy caches, the backend's toolchain start-up)
    before any row is timed, so they don't land on whichever engine runs first.
    Errors are ignored here: the engine's rows will record them."""
    for engine in engines:
        with contextlib.suppress(Exception):
            opt = engine.optimize(_warm_up_fn, backend)
            for n in (3, 6):
                opt(torch.ones(n, 2))
        with contextlib.suppress(Exception):
            reset_all()


def measure_stream(row: Row, build, engine: Engine, backend: str, ref: Reference, settings: Settings) -> None:
    """The input stream once, then the steady state on the last (already compiled) input."""
    reset_all()
    fn, inputs = build()
    opt = engine.optimize(fn, backend)
    stream = run_stream(opt, inputs, ref, lambda: engine.counts(opt)["compiles"])
    counts = engine.counts(opt)
    per_call_s = steady_call_time(opt, inputs[-1], settings.warmup, settings.reps)
    if engine.counts(opt)["compiles"] != counts["compiles"]:
        row.note = "steady-state calls compiled again"
    vars(row).update(counts)
    row.trace_time_s = stream.trace_time_s
    row.wall_time_s = stream.wall_time_s
    row.per_call_us = per_call_s * 1e6
    row.eager_per_call_us = ref.per_call_s * 1e6
    row.overhead_us = row.per_call_us - row.eager_per_call_us
    row.mismatched_calls = [i for i, (got, want) in enumerate(zip(stream.outputs, ref.outputs))
                            if not outputs_match(got, want)]
    row.correct = not row.mismatched_calls


def measure_peak(row: Row, build, engine: Engine, backend: str) -> None:
    """Compile memory in a pass of its own: tracemalloc slows Python down several
    times, which would distort the trace time if measured in the timed pass."""
    reset_all()
    fn, inputs = build()
    row.compile_peak_mib = first_call_peak_bytes(engine.optimize(fn, backend), inputs[0]) / 2**20
    reset_all()


def backend_caches(backend: str):
    """A fresh, empty inductor kernel cache for one row, so an engine never reuses
    kernels another engine compiled (or a previous run left on disk)."""
    if backend != "inductor":
        return contextlib.nullcontext()
    from torch._inductor.utils import fresh_cache
    return fresh_cache()


def run_engine(workload: str, build, engine: Engine, backend: str, ref: Reference, settings: Settings) -> Row:
    row = Row(workload, engine.name, backend, inputs=len(ref.outputs))
    try:
        with time_limit(settings.row_timeout_s), backend_caches(backend):
            measure_stream(row, build, engine, backend, ref, settings)
            measure_peak(row, build, engine, backend)
    except (Exception, RowTimeout) as e:
        row.status, row.note = "error", f"{type(e).__name__}: {e} (at {_raised_at(e)})"
    return row


def _raised_at(error: BaseException) -> str:
    """Innermost frame of the error, to tell an engine bug from a workload's own raise."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def run_workload(name: str, engines: list, backend: str, settings: Settings) -> list:
    build = WORKLOADS[name]
    try:
        fn, inputs = build()
    except WorkloadUnavailable as e:
        rows = [Row(name, engine.name, backend, status="skipped", note=str(e)) for engine in engines]
        progress(rows[0])
        return rows
    ref = eager_reference(fn, inputs, settings.warmup, settings.reps)
    rows = []
    for engine in engines:
        rows.append(run_engine(name, build, engine, backend, ref, settings))
        progress(rows[-1])
    return rows


def progress(row: Row) -> None:
    if row.status == "ok":
        what = (f"{row.compiles} compiles, trace {row.trace_time_s * 1e3:.0f} ms, "
                f"{row.per_call_us:.1f} us/call, correct={row.correct}")
    else:
        what = f"{row.status}: {row.note.splitlines()[0][:200]}"
    print(f"[{row.workload} / {row.engine}] {what}", file=sys.stderr, flush=True)


def _check_names(kind: str, names, known) -> list:
    names = list(names or known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; known: {', '.join(known)}")
    return names


def run(workloads=None, engines=None, backend: str = "eager", quick: bool = False) -> list:
    """Run workloads x engines (default: all) and return the rows, ratios filled in."""
    workloads = _check_names("workload(s)", workloads, WORKLOADS)
    engines = [ENGINES[n] for n in _check_names("engine(s)", engines, ENGINES)]
    _check_names("backend", [backend], BACKENDS)
    settings = QUICK if quick else FULL
    rows = []
    with benchmark_environment(backend):
        warm_up(engines, backend)
        for name in workloads:
            rows += run_workload(name, engines, backend, settings)
    add_ratios(rows)
    return rows


def metadata(backend: str, quick: bool) -> dict:
    return {"backend": backend, "quick": quick, "torch": torch.__version__,
            "python": platform.python_version(), "threads": 1}


def _csv_of(known):
    """argparse type for a comma list of names from `known`."""
    def parse(text: str) -> list:
        try:
            return _check_names("name(s)", [p.strip() for p in text.split(",") if p.strip()], known)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", type=_csv_of(WORKLOADS), help=f"comma list of: {', '.join(WORKLOADS)}")
    parser.add_argument("--engines", type=_csv_of(ENGINES), help=f"comma list of: {', '.join(ENGINES)}")
    parser.add_argument("--backend", default="eager", choices=BACKENDS)
    parser.add_argument("--json", metavar="OUT", type=Path, help="write rows and metadata as JSON")
    parser.add_argument("--md", metavar="OUT", type=Path, help="write the markdown table")
    parser.add_argument("--quick", action="store_true", help="fewer timing repetitions, shorter time limits")
    args = parser.parse_args(argv)
    rows = run(args.workloads, args.engines, args.backend, args.quick)
    meta = metadata(args.backend, args.quick)
    markdown = to_markdown(rows, meta)
    print(markdown)
    if args.md:
        args.md.write_text(markdown)
    if args.json:
        args.json.write_text(to_json(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
