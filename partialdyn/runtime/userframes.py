"""Calls made at a graph break, from a frame that looks like the user's line.

A break step calls the user's callee itself.  Code that inspects its caller
(`logging` records the caller's file, line and function; `warnings.warn` the
caller's module, line and registry; tracebacks show the caller) must see the
user's line, not partialdyn's.  `caller_at` makes a tiny function whose code has
the user's file name, line number, function name and globals and that only does
`fn(*args, **kwargs)`.  `warn_as_user` is `warnings.warn` with `stacklevel`
counted over user-visible frames only; `warn_at_user_caller` attributes partialdyn's own warnings to the
user's calling line.  `without_engine_frames` drops partialdyn's
frames from a user exception's traceback, so it reads like eager's.
"""
from __future__ import annotations

import os
import sys
import types
import warnings

from ..guards.provenance import is_engine_file, user_frame


def _call(fn, args, kwargs): return fn(*args, **kwargs)  # noqa: E704 -- one line: every instruction on it


def _no_columns(code) -> bytes:
    """A line table putting every instruction on `co_firstlineno`, without column ranges (tracebacks then
    underline nothing, rather than the template's columns in the user's line)."""
    units = len(code.co_code) // 2
    table = bytearray()
    while units:
        n = min(units, 8)
        table += bytes([0x80 | (13 << 3) | (n - 1), 0])      # kind 13: line only, delta 0
        units -= n
    return bytes(table)


_CALLERS: dict = {}


def caller_at(filename: str, line: int, name: str, globals_: dict):
    """`call(fn, args, kwargs)` running in a frame at `filename:line` in `name`, with the user's globals."""
    key = (filename, line, name, id(globals_))
    caller = _CALLERS.get(key)
    if caller is None or caller.__globals__ is not globals_:
        code = _call.__code__.replace(co_filename=filename, co_name=name, co_qualname=name, co_firstlineno=line)
        code = code.replace(co_linetable=_no_columns(code))
        caller = _CALLERS[key] = type(_call)(code, globals_, name)
    return caller


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_internal(frame) -> bool:
    """A frame of partialdyn itself or of code it generated (runners, binders, guards)."""
    filename = frame.f_code.co_filename
    return filename.startswith(_PACKAGE) or filename.startswith("<partialdyn")


def warn_as_user(message, category=None, stacklevel=1, source=None):
    """warnings.warn as called from the user's frame: levels above it skip partialdyn's frames."""
    frame = sys._getframe(1)
    for _ in range(max(stacklevel, 1) - 1):
        frame = frame.f_back
        while frame is not None and is_internal(frame):
            frame = frame.f_back
        if frame is None:
            break
    _warn_from(frame, message, category, source)


def warn_at_user_caller(message, category=UserWarning):
    """A warning of partialdyn's own about a call (the cache limit), attributed to the user's line that made
    the call, through any nn.Module call machinery, so warning filters and registries see the user's module."""
    _warn_from(user_frame(sys._getframe(1)), message, category)


def _warn_from(frame, message, category, source=None):
    if isinstance(message, Warning):
        category = message.__class__
    category = category or UserWarning
    if frame is None:
        filename, line, globals_ = "sys", 1, sys.__dict__
    else:
        filename, line, globals_ = frame.f_code.co_filename, frame.f_lineno, frame.f_globals
    registry = globals_.setdefault("__warningregistry__", {})
    # no module_globals, as warnings.warn passes none: with them the source line is asked of the module's
    # loader, which raises ImportError for a `python -m` main module (its loader is named for the module)
    warnings.warn_explicit(message, category, filename, line, globals_.get("__name__", "<string>"), registry,
                           source=source)


SUBSTITUTES = {warnings.warn: warn_as_user}     # callables a break step runs in their user-faithful form


def substitute(fn):
    try:
        return SUBSTITUTES.get(fn, fn)
    except TypeError:          # unhashable callable
        return fn


def without_engine_frames(error: BaseException) -> BaseException:
    """`error` with the traceback entries of partialdyn's own code (runtime, runners, steps) removed: the
    user's frames, under the user's names, are what is left."""
    kept, entry = [], error.__traceback__
    while entry is not None:
        filename = entry.tb_frame.f_code.co_filename
        if not (filename.startswith("<partialdyn") or is_engine_file(filename)):
            kept.append(entry)
        entry = entry.tb_next
    rebuilt = None
    for entry in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return error.with_traceback(rebuilt)
