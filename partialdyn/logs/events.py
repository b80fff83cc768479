"""The structured event log: `emit` records an event in memory and passes it to the sinks.

Events are emitted on compiles, guard failures, graph breaks and the like, never
per call, so an emit may do a little I/O. Schema: {"v": 1, "kind": ..., "time":
unix seconds, **fields}; docs of each kind's fields: partialdyn/logs/README.md.
"""
from __future__ import annotations

import time
from collections import deque

from . import sinks

SCHEMA_VERSION = 1
MAX_EVENTS = 100_000  # memory keeps the most recent ones; the log file keeps all

_memory: deque[dict] = deque(maxlen=MAX_EVENTS)


def emit(kind: str, /, **fields) -> dict:
    """Record one event and write it to the configured sinks; never raises.

    `v`, `kind` and `time` are the envelope: fields with those names are dropped.
    """
    event = {"v": SCHEMA_VERSION, "kind": kind, "time": time.time()}
    event.update((name, value) for name, value in fields.items() if name not in event)
    _memory.append(event)
    sinks.write(event)
    return event


def events(kind: str | None = None) -> list[dict]:
    """The events still in memory, oldest first; only those of `kind` when given."""
    return [e for e in _memory if kind is None or e["kind"] == kind]


def clear_events() -> None:
    """Forget the in-memory events and close the log file (`partialdyn.reset()` calls this)."""
    _memory.clear()
    sinks.close()
