"""Structured event log of partialdyn: events in memory, a JSON Lines file, stderr topics, a viewer.

The engine calls `emit(kind, **fields)`; `partialdyn.reset()` calls `clear_events()`.
The viewer (`partialdyn.logs.viewer`) is imported on demand by the command line.
"""
from .events import clear_events, emit, events

__all__ = ["emit", "events", "clear_events"]
