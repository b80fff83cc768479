"""Timing, memory and correctness measurements for one callable.

Everything here is engine-agnostic: it takes a callable and, where compiles must be
told apart from cache hits, a function returning the engine's compile count.
"""
from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch

# allclose tolerances: loose enough for a backend that reorders float reductions
# (inductor fusions), tight enough to catch a wrong specialization.
RTOL, ATOL = 1e-4, 1e-5


def leaves(value):
    """Flatten tensors out of nested tuples, lists, dicts and dict-like model outputs."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def outputs_match(got, expected) -> bool:
    a, b = list(leaves(got)), list(leaves(expected))
    return len(a) == len(b) and all(_leaf_match(x, y) for x, y in zip(a, b))


def _leaf_match(x, y) -> bool:
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        return x.shape == y.shape and torch.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True)
    return type(x) is type(y) and x == y


def timed_call(fn: Callable, args: tuple):
    """One call, returning (seconds, result)."""
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def steady_call_time(fn: Callable, args: tuple, warmup: int, reps: int, blocks: int = 5) -> float:
    """Per-call time from `reps` individually timed calls, after `warmup` untimed ones.

    The machine is shared: a median ignores the odd stalled call, and taking the least
    of several block medians ignores a stretch during which the other core was busy."""
    for _ in range(warmup):
        fn(*args)
    per_block = max(1, reps // blocks)
    return min(statistics.median(timed_call(fn, args)[0] for _ in range(per_block))
               for _ in range(blocks))


@dataclass
class Reference:
    """What eager execution does on a workload: the baseline for every engine."""
    outputs: list
    call_times: list      # per input, warm median: subtracted from compiling calls
    per_call_s: float     # steady state on the timing input


def eager_reference(fn: Callable, inputs: list, warmup: int, reps: int, per_input_reps: int = 3) -> Reference:
    outputs = [fn(*args) for args in inputs]         # also warms up lazy init
    call_times = [steady_call_time(fn, args, 0, per_input_reps, blocks=1) for args in inputs]
    return Reference(outputs, call_times, steady_call_time(fn, inputs[-1], warmup, reps))


@dataclass
class StreamResult:
    wall_time_s: float    # all calls, compiles included
    trace_time_s: float   # sum over compiling calls of (call time - eager time)
    outputs: list


def run_stream(opt: Callable, inputs: list, ref: Reference, compiles: Callable[[], int]) -> StreamResult:
    """Call `opt` on every input once, in order, attributing time to compiles."""
    wall = trace = 0.0
    outputs = []
    for args, eager_time in zip(inputs, ref.call_times):
        before = compiles()
        seconds, out = timed_call(opt, args)
        wall += seconds
        if compiles() > before:
            trace += seconds - eager_time
        outputs.append(out)
    return StreamResult(wall, trace, outputs)


def first_call_peak_bytes(opt: Callable, args: tuple) -> int:
    """tracemalloc peak over one call: Python-heap allocations only (tensor storage
    comes from torch's C allocator and is not seen), which is what tracing costs."""
    tracemalloc.start()
    try:
        opt(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
