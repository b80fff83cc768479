"""partialdyn: partial shape specialization for PyTorch.

Under the default `partial` policy every dim starts dynamic; a dim is specialized
only where Python consumes its value; after `recompile_limit` recompiles caused by
a dim, consuming it becomes a graph break instead.  See README.md and docs/.
"""
import sys

SUPPORTED_PYTHON = ((3, 11), (3, 12), (3, 13))  # the CPython versions whose opcodes the frontend handles;
                                                # pyproject's requires-python says the same


def check_python_version(version_info=None) -> None:
    """Raise ImportError on a CPython the frontend does not handle (a real check: `python -O` strips asserts)."""
    found = tuple((version_info or sys.version_info)[:2])
    if found not in SUPPORTED_PYTHON:
        *first, last = [".".join(map(str, v)) for v in SUPPORTED_PYTHON]
        names = f"{', '.join(first)} and {last}" if first else last
        raise ImportError(f"partialdyn supports CPython {names} only (its opcode tables are those versions'); "
                          f"this is Python {'.'.join(map(str, found))}")


check_python_version()

from .api import (allow_in_graph, disable, mark_dynamic, mark_static, mark_unbacked, maybe_mark_dynamic, optimize,
                  reset, stats)
from .backends import register_backend
from .config import config
from .errors import PartialdynError
from .explain import explain
from .logs import events
from .stance import set_stance

__all__ = ["optimize", "stats", "reset", "mark_static", "mark_dynamic", "maybe_mark_dynamic", "mark_unbacked",
           "register_backend",
           "config", "events", "explain", "disable", "allow_in_graph", "set_stance", "PartialdynError"]
