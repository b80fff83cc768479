"""Sources: where a traced value lives in the caller's world.

A source is a Python expression over the frame's arguments (by name), the
function's globals `G` and its closure `F`.  Guards and the runtime evaluate
these expressions; logs print them, so they read like the user's own code
(`x.size(1)`, `self.lin.weight`, `G['FACTOR']`).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch._guards import GuardSource, Source


@dataclass(frozen=True)
class Src(Source):
    code: str

    @property
    def name(self) -> str:
        return self.code

    def guard_source(self):
        return GuardSource.LOCAL

    def __str__(self):
        return self.code


def local(name: str) -> Src:
    return Src(name)


def global_(name: str) -> Src:
    return Src(f"G[{name!r}]")


def closure(index: int) -> Src:
    return Src(f"F.__closure__[{index}].cell_contents")


def attr(base: Src, name: str) -> Src:
    if name.isidentifier():
        return Src(f"{base.code}.{name}")
    return Src(f"getattr({base.code}, {name!r})")


def item(base: Src, key) -> Src:
    return Src(f"{base.code}[{key!r}]")


def size(base: Src, dim: int) -> str:
    """How a tensor dim prints in guards and logs."""
    return f"{base.code}.size({dim})"
