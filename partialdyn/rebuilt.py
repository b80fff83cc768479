"""Objects the generated runner code builds when it rebuilds traced values at a graph break.

They live below the frontend and the runtime because both know them: the runtime's
rebuilder names them in runner code, and the tracer recognizes them when they come
back as arguments of a resume function.
"""
from __future__ import annotations

import torch


class GradRestore:
    """The exit of a grad-mode `with` block, rebuilt when a graph breaks inside it."""

    def __init__(self, restore: bool):
        self.restore = restore

    def __call__(self, *exc_info):
        torch._C._set_grad_enabled(self.restore)
        return False


def rebuild_plain(cls, fields: dict):
    """An instance of a plain class with these attributes, without running __init__ again."""
    obj = cls.__new__(cls)
    obj.__dict__.update(fields)
    return obj
