"""Several threads calling one optimized function: every result equals eager and the counters add up."""
import threading

import torch

import partialdyn
from helpers import CountingBackend, r

THREADS = 4
CALLS_PER_THREAD = 20


def branchy(x):
    if x.size(0) > 8:
        return x.sin() * 2
    return x.cos() - 1


def test_threads_sharing_one_optimized_function_get_eager_results_and_consistent_counters():
    backend = CountingBackend()
    opt = partialdyn.optimize(branchy, backend=backend)
    inputs = [r(b, 3, seed=b) for b in (4, 16, 5, 12)]      # two sides of the predicate: two entries
    expected = [branchy(x) for x in inputs]
    start = threading.Barrier(THREADS)
    mismatches, errors = [], []

    def worker(offset):
        try:
            start.wait()
            for i in range(CALLS_PER_THREAD):
                k = (i + offset) % len(inputs)
                if not torch.equal(opt(inputs[k]), expected[k]):
                    mismatches.append((offset, i))
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and mismatches == []
    total = THREADS * CALLS_PER_THREAD
    stats = partialdyn.stats(opt)
    assert stats["calls"] == total
    assert (stats["compiles"], stats["recompiles"], stats["eager_fallbacks"], stats["graph_breaks"]) == (2, 1, 0, 0)
    assert stats["cache_hits"] == total - stats["compiles"]
    assert backend.graphs == 2 and backend.runs == total
