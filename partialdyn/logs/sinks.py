"""Where events go besides memory: a JSON Lines file and short lines on stderr.

Both are configured by the live `partialdyn.config` (`log_file`, `logs`), read at
every event so a change takes effect at once. A sink that fails warns once on
stderr and is then ignored (retried silently on later events): logging must
never break the user's program.
"""
from __future__ import annotations

import json
import sys
import threading

from .describe import describe

# Which `config.logs` topics print an event of each kind.
TOPICS_BY_KIND = {
    "compile": ("compiles",),
    "guards": ("guards",),
    "specialization": ("specializations",),
    "backoff": ("recompiles",),
    "graph_break": ("graph_breaks",),
    "eager_fallback": ("fallbacks",),
    "cache_limit": ("fallbacks", "recompiles"),
}


def topics_of(event: dict) -> tuple[str, ...]:
    topics = TOPICS_BY_KIND.get(event["kind"], ())
    if event["kind"] == "compile" and event.get("recompile"):
        topics += ("recompiles",)
    return topics


class JsonlFile:
    """Appends one JSON object per line; opened lazily, reopened when the path changes."""

    def __init__(self):
        self._path = None
        self._file = None
        self._lock = threading.Lock()

    def write(self, event: dict, path) -> None:
        line = json.dumps(event, default=str) + "\n"
        with self._lock:
            if path != self._path:
                self._close_file()
                self._path = path
            if path is None:
                return
            if self._file is None:
                self._file = open(path, "a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


_jsonl = JsonlFile()
_warned: set[str] = set()


def write(event: dict) -> None:
    """Hand `event` to every sink the config switches on."""
    log_file, topics = _guarded("config", _read_config) or (None, ())
    _guarded("log file", _jsonl.write, event, log_file)
    _guarded("stderr", _print_if_wanted, event, topics)


def close() -> None:
    """Close the log file (reopened, appending, by the next event) and re-arm the failure warnings."""
    _guarded("log file", _jsonl.close)
    _warned.clear()


def _read_config():
    # Imported here so the logs work (in memory) even while the rest of partialdyn is broken.
    from partialdyn.config import config
    return config.log_file, tuple(config.logs)


def _print_if_wanted(event: dict, topics: tuple[str, ...]) -> None:
    if not any(topic in topics for topic in topics_of(event)):
        return
    print("\n".join(f"[partialdyn] {line}" for line in describe(event)), file=sys.stderr)


def _guarded(sink: str, action, *args):
    """Run `action`; on any failure warn once for this sink and return None."""
    try:
        return action(*args)
    except Exception as error:
        if sink not in _warned:
            _warned.add(sink)
            _warn(f"{sink} logging failed ({error!r}); further failures are not reported")
        return None


def _warn(message: str) -> None:
    try:
        print(f"[partialdyn] warning: {message}", file=sys.stderr)
    except Exception:  # stderr itself is gone; there is nowhere left to report to
        pass
