"""What an opcode handler tells the dispatch loop besides "go on" (a handler that returns None).

RETURN: the frame returned, its value in `frame.return_value`.  YIELD: a generator frame stopped at a yield,
the yielded value in `frame.return_value`.  The markers live here, below both, so the handlers (opcodes.py)
need not import the loop that runs them (tracer.py), which imports their table.
"""
from __future__ import annotations

RETURN = object()
YIELD = object()
