"""Passes over a finished fx graph (its output node added), run before the backend sees it."""
from __future__ import annotations

import operator

import torch

# Size arithmetic the graph may drop when nothing uses its result.
PURE_FUNCTIONS = {operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
                  operator.truediv, operator.mod, operator.neg, operator.lt, operator.le, operator.gt,
                  operator.ge, operator.eq, operator.ne, torch.sym_int, torch.sym_float, torch.sym_not,
                  torch._sym_sqrt}


def share_equal_sizes(graph) -> None:
    """A `t.size(d)` whose symbolic value an earlier `size` node already computed (every layer asks its input
    for the batch and sequence sizes again) reuses that node: the ShapeEnv proved them equal for every input the
    guards accept.  Each size read the graph keeps costs a call per run."""
    first: dict = {}
    for node in list(graph.nodes):
        value = node.meta.get("val") if node.op == "call_method" and node.target == "size" else None
        if isinstance(value, torch.SymInt):
            earlier = first.setdefault(value.node.expr, node)
            if earlier is not node:
                node.replace_all_uses_with(earlier)


def remove_unused_size_arithmetic(graph) -> None:
    """Erases `size()` calls and pure symbolic arithmetic whose results nothing uses (last to first, so a chain
    of them goes at once); every other node stays, used or not."""
    for node in reversed(list(graph.nodes)):
        if node.users or node.op in ("placeholder", "output"):
            continue
        if (node.op == "call_method" and node.target == "size") or (
                node.op == "call_function" and node.target in PURE_FUNCTIONS):
            graph.erase_node(node)
