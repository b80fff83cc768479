"""The structured event log: `emit` records an event in memory and passes it to the sinks.

Events are emitted on compiles, guard failures, graph breaks and the like, never
per call, so an emit may do a little I/O. Schema: {"v": 2, "kind": ..., "time":
unix seconds, "run": run id, "pid": process id, **fields}; docs of each kind's fields:
partialdyn/logs/README.md. A run is one process up to a `partialdyn.reset()`: the
stats events that reset emits close the run, and the next event starts a new one.
"""
from __future__ import annotations

import os
import time
import uuid
from collections import deque

from . import sinks

SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = (1, 2)  # 1: no run and pid (one run per file assumed)
MAX_EVENTS = 100_000  # memory keeps the most recent ones; the log file keeps all

_memory: deque[dict] = deque(maxlen=MAX_EVENTS)
_run = {"pid": None, "process": "", "number": 0}


def run_id() -> str:
    """`3f2a9c1b.0`: this process's random id and how many `partialdyn.reset()` calls preceded the run
    (a forked child gets its own process id)."""
    if _run["pid"] != os.getpid():  # the first event, or the first in a forked child
        _run.update(pid=os.getpid(), process=uuid.uuid4().hex[:8], number=0)
    return f"{_run['process']}.{_run['number']}"


def emit(kind: str, /, **fields) -> dict:
    """Record one event and write it to the configured sinks; never raises.

    `v`, `kind`, `time`, `run` and `pid` are the envelope: fields with those names are dropped.
    """
    event = {"v": SCHEMA_VERSION, "kind": kind, "time": time.time(), "run": run_id(), "pid": os.getpid()}
    event.update((name, value) for name, value in fields.items() if name not in event)
    _memory.append(event)
    sinks.write(event)
    return event


def events(kind: str | None = None) -> list[dict]:
    """The events still in memory, oldest first; only those of `kind` when given."""
    return [e for e in _memory if kind is None or e["kind"] == kind]


def clear_events() -> None:
    """Forget the in-memory events, close the log file and start a new run (`partialdyn.reset()` calls this)."""
    _memory.clear()
    sinks.close()
    run_id()
    _run["number"] += 1
