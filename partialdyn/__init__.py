"""partialdyn: partial shape specialization for PyTorch.

Every dim starts dynamic; a dim is specialized only where Python consumes its
value; after `recompile_limit` recompiles caused by a dim, consuming it becomes
a graph break instead.  See docs/ and DESIGN.md.
"""
from .api import mark_dynamic, mark_static, optimize, reset, stats
from .backends import register_backend
from .config import config
from .explain import explain
from .logs import events

__all__ = ["optimize", "stats", "reset", "mark_static", "mark_dynamic", "register_backend", "config", "events",
           "explain"]
