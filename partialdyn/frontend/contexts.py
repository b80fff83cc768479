"""`with` blocks over context managers other than grad modes and autocast: the `enter` rule every
other tracker falls back to.

BEFORE_WITH calls the manager's `__enter__` (inlined like any method) and leaves its
`__exit__` on the stack, which the block's normal exit calls with three Nones.  The tracer
does not handle exceptions: one raised inside the block at trace time makes the call run
eagerly, where `__exit__` sees it.  `contextlib.contextmanager` managers are modelled
(entering and a clean exit each step the generator once) instead of inlining their
methods, which catch StopIteration.
"""
from __future__ import annotations

import contextlib

from . import generators
from . import protocol
from .. import trackers
from ..errors import GraphBreak, Unsupported, UserError


@protocol.register("enter", trackers.VT)
def enter(f, manager):
    """`with manager:` -> (the `__exit__` callable, the value bound by `as`): any manager but grad modes and
    autocast, whose rules are in builtins_table.py and autocast.py."""
    try:
        exit_ = protocol.attribute(f, manager, "__exit__")
        enter_ = protocol.attribute(f, manager, "__enter__")
    except UserError as e:
        if isinstance(e.error, AttributeError):
            raise UserError(TypeError(f"'{manager.python_type().__name__}' object does not support the "
                                      f"context manager protocol")) from e
        raise
    return exit_, protocol.call(f, enter_, [], {})


def _generator_of(manager):
    if not isinstance(manager, trackers.DataObject) or not isinstance(manager.fields.get("gen"), trackers.Generator):
        raise GraphBreak("a contextmanager object made outside the trace")
    return manager.fields["gen"]


def contextmanager_enter(f, manager):
    value = generators.step(f, _generator_of(manager))
    if value is None:
        raise UserError(RuntimeError("generator didn't yield"))
    return value


def contextmanager_exit(f, manager, typ, value, traceback):
    if not (isinstance(typ, trackers.Known) and typ.value is None):
        raise Unsupported("an exception thrown into a contextmanager's generator")
    if generators.step(f, _generator_of(manager)) is not None:
        raise UserError(RuntimeError("generator didn't stop"))
    return trackers.Known(False)


MODELS = {contextlib._GeneratorContextManager.__enter__: contextmanager_enter,
          contextlib._GeneratorContextManager.__exit__: contextmanager_exit}
