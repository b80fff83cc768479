"""The engines a workload runs through, behind one interface.

An engine wraps a callable for a backend and reads back the same five counters
(compiles, recompiles, graphs, graph_breaks, eager_fallbacks) whatever produced
them, so the runner and the report never special-case an engine.

torch.compile's counters come from Dynamo's own bookkeeping:
- compiles        = cache entries over every code object Dynamo saw (its per-code
                    caches, `_debug_get_cache_entry_list`), the DESIGN definition of a
                    compile. Not counters["frames"]["ok"]: that also counts frames Dynamo
                    converted and then skipped (4 "ok" frames for 2 entries on gpt2).
- recompiles      = compiles - distinct code objects holding an entry; exact while
                    no entry is evicted, which the raised recompile limit ensures
- graphs          = counters["stats"]["unique_graphs"]
- graph_breaks    = sum(counters["graph_break"].values()): a break is counted once per
                    compile of the frame that hit it
- eager_fallbacks = counters["frames"]["total"] - counters["frames"]["ok"]: frames
                    Dynamo failed to convert (a recompile limit hit included)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

COUNTERS = ("compiles", "recompiles", "graphs", "graph_breaks", "eager_fallbacks")

# Dynamo's default recompile_limit (8) would make torch-static silently run eagerly
# on long streams; the runner raises it to this for every torch engine.
TORCH_RECOMPILE_LIMIT = 64


@dataclass(frozen=True)
class Engine:
    name: str
    optimize: Callable[[Callable, str], Callable]   # (fn, backend) -> optimized callable
    counts: Callable[[Callable], dict]              # optimized callable -> COUNTERS dict


def reset_all() -> None:
    """Drop every compile cache and counter, so each engine starts as in a new process."""
    import torch._dynamo
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    partialdyn = _partialdyn_or_none()
    if partialdyn is not None:
        partialdyn.reset()


def _partialdyn_or_none():
    try:
        import partialdyn
    except ImportError:
        return None
    return partialdyn if hasattr(partialdyn, "reset") else None


def _eager_counts(_opt) -> dict:
    return dict.fromkeys(COUNTERS, 0)


def _torch_cache_entries() -> list:
    """Number of cache entries of each code object Dynamo compiled."""
    from torch._dynamo.convert_frame import input_codes
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    codes = (ref() for ref in input_codes.seen)
    sizes = (len(_debug_get_cache_entry_list(code)) for code in codes if code is not None)
    return [n for n in sizes if n]


def _torch_counts(_opt) -> dict:
    from torch._dynamo.utils import counters
    entries = _torch_cache_entries()
    return {
        "compiles": sum(entries),
        "recompiles": sum(entries) - len(entries),
        "graphs": counters["stats"]["unique_graphs"],
        "graph_breaks": sum(counters["graph_break"].values()),
        "eager_fallbacks": counters["frames"]["total"] - counters["frames"]["ok"],
    }


def _torch_engine(name: str, dynamic) -> Engine:
    return Engine(name, lambda fn, backend: torch.compile(fn, backend=backend, dynamic=dynamic), _torch_counts)


def _partialdyn_engine(policy: str) -> Engine:
    def optimize(fn, backend):
        from partialdyn import optimize as pd_optimize   # the engine may not exist yet
        return pd_optimize(fn, backend=backend, policy=policy)

    def counts(opt):
        from partialdyn import stats
        s = stats(opt)
        return {k: s[k] for k in COUNTERS}

    return Engine(f"partialdyn-{policy}", optimize, counts)


ENGINES = {e.name: e for e in (
    Engine("eager", lambda fn, backend: fn, _eager_counts),
    _partialdyn_engine("partial"),
    _partialdyn_engine("dynamic"),
    _partialdyn_engine("static"),
    _partialdyn_engine("automatic"),
    _torch_engine("torch-default", None),
    _torch_engine("torch-dynamic", True),
    _torch_engine("torch-static", False),
)}

BASELINE = "torch-default"
