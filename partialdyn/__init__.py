"""partialdyn: partial shape specialization for PyTorch.

Under the default `partial` policy every dim starts dynamic; a dim is specialized
only where Python consumes its value; after `recompile_limit` recompiles caused by
a dim, consuming it becomes a graph break instead.  See README.md and docs/.
"""
import sys

SUPPORTED_PYTHON = (3, 11)      # the opcode tables are CPython 3.11's; pyproject's requires-python says the same


def check_python_version(version_info=None) -> None:
    """Raise ImportError on a CPython other than 3.11 (a real check: `python -O` strips asserts)."""
    found = tuple((version_info or sys.version_info)[:2])
    if found != SUPPORTED_PYTHON:
        raise ImportError(f"partialdyn supports CPython {'.'.join(map(str, SUPPORTED_PYTHON))} only "
                          f"(its opcode tables are that version's); this is Python "
                          f"{'.'.join(map(str, found))}")


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
