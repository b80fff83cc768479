"""numpy functions on Python constants, evaluated at trace time.

`np.sqrt(4.0)`, `np.prod((2, 3))`, `np.float32(0.5)`: ufuncs, numpy scalar types and a
few pure reductions called with constant numbers (or tuples / lists of them) are run
while tracing; the numpy scalar they return is a constant of the trace.  Anything
else (an array argument or result, a tensor, another numpy function) is a graph
break, and the call runs in Python.  numpy is never imported by partialdyn: these
only apply once user code has imported it.
"""
from __future__ import annotations

import numbers
import sys

from .. import trackers
from ..errors import GraphBreak, UserError
from . import protocol

PURE_FUNCTIONS = ("sum", "prod", "mean", "amax", "amin", "max", "min", "round", "clip", "isclose", "hypot",
                  "sign", "abs", "absolute")


def is_numpy_function(fn) -> bool:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return False
    if isinstance(fn, numpy.ufunc) or (isinstance(fn, type) and issubclass(fn, numpy.generic)):
        return True
    return any(fn is getattr(numpy, name, None) for name in PURE_FUNCTIONS)


def call_numpy(f, fn, args, kwargs):
    """Run `fn` now if every argument is a constant number (or a tuple / list of them) and it returns a scalar."""
    numpy = sys.modules["numpy"]
    name = getattr(fn, "__name__", "numpy function")
    values = [_constant(f, a, name) for a in args]
    keywords = {k: _constant(f, v, name) for k, v in kwargs.items()}
    try:
        result = fn(*values, **keywords)
    except Exception as e:  # noqa: BLE001 -- the user's own numpy error, raised where eager raises it
        raise UserError(e) from e
    if not isinstance(result, (numbers.Number, numpy.generic)) or isinstance(result, numpy.ndarray):
        raise GraphBreak(f"numpy.{name} returned a {type(result).__name__}", hint="it runs in Python")
    return trackers.Known(result)


def _constant(f, vt, name):
    if not isinstance(vt, (trackers.Known, trackers.Sym, trackers.Tuple, trackers.List)):
        raise GraphBreak(f"numpy.{name} of a {vt.python_type().__name__}", hint="it runs in Python")
    value = protocol.python_value(f, vt, f"numpy.{name}")
    if not _numbers_only(value):
        raise GraphBreak(f"numpy.{name} of a {type(value).__name__}", hint="it runs in Python")
    return value


def _numbers_only(value) -> bool:
    numpy = sys.modules["numpy"]
    if isinstance(value, (tuple, list)):
        return all(_numbers_only(v) for v in value)
    return value is None or isinstance(value, (numbers.Number, numpy.generic)) and not isinstance(value,
                                                                                                  numpy.ndarray)
