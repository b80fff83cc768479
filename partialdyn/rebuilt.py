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


def rebuild_plain(cls, fields: dict, slots: dict | None = None):
    """An instance of a plain class (or of a dataclass built by its own __init__) with these attributes, without
    running __init__ again: `slots` set through the class's slot descriptors (past a frozen dataclass's
    __setattr__), `fields` into its __dict__."""
    obj = cls.__new__(cls)
    if fields:
        obj.__dict__.update(fields)
    for name, value in (slots or {}).items():
        object.__setattr__(obj, name, value)
    return obj


def completed(obj, attributes: dict, keys: tuple):
    """A dataclass instance rebuilt by calling its class, given the attributes the traced code set that are not
    constructor arguments and, for a model output, its dict part put back in the order the traced code set it."""
    for name, value in attributes.items():
        setattr(obj, name, value)
    for key in keys:
        obj.move_to_end(key)
    return obj
