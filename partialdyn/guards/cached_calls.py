"""One answer per `functools.lru_cache` call in one call of an optimized frame.

A cached function on constant arguments is called where eager calls it, at trace time, and its answer is
guarded by calling it again (frontend/calls.py).  Within one call of an optimized frame that call would be made
again by every evaluation of the guards (each entry tried, the re-check and the explanation of a miss), by the
trace of a recompile and where a tensor answer is read as a graph input: each a hit (or a miss and an eviction)
that eager's `cache_info()` does not count.  They all share the first answer through the memo of the current
scope, which an optimized frame opens around each of its calls once one of its traces made a cached call, and
around every miss (runtime/function.py).
"""
from __future__ import annotations

import threading

_scope = threading.local()


def answer(key: str, call):
    """`call()` the first time `key` is asked in the current scope, that answer afterwards; outside any scope,
    `call()` every time."""
    memo = getattr(_scope, "memo", None)
    if memo is None:
        return call()
    if key not in memo:
        memo[key] = call()
    return memo[key]


def open_scope():
    """A fresh memo for one call of a frame; returns the enclosing one, for `close_scope`."""
    enclosing = getattr(_scope, "memo", None)
    _scope.memo = {}
    return enclosing


def close_scope(enclosing) -> bool:
    """Back to the enclosing memo; whether the closed scope answered a cached call."""
    answered = bool(_scope.memo)
    _scope.memo = enclosing
    return answered
