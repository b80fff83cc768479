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
    code: str                 # fast Python expression (guards and runners evaluate it every call)
    text: str = ""            # how users read it, when it differs from `code`

    @property
    def name(self) -> str:
        return self.text or self.code

    def guard_source(self):
        return GuardSource.LOCAL

    def __str__(self):
        return self.text or self.code


def global_(name: str) -> Src:
    return Src(f"G[{name!r}]")


def closure(index: int) -> Src:
    return Src(f"F.__closure__[{index}].cell_contents")


def attr(base: Src, name: str) -> Src:
    text = f"{base}.{name}" if name.isidentifier() else f"getattr({base}, {name!r})"
    code = f"{base.code}.{name}" if name.isidentifier() else f"getattr({base.code}, {name!r})"
    return Src(code, text if text != code else "")


def module_entry(base: Src, table: str, name: str) -> Src:
    """A parameter, buffer or submodule: read from the module's table (nn.Module.__getattr__ is slow)."""
    text = f"{base}.{name}" if name.isidentifier() else f"{base}[{name}]"
    return Src(f"{base.code}.{table}[{name!r}]", text)


def item(base: Src, key) -> Src:
    text = f"{base}[{key!r}]"
    code = f"{base.code}[{key!r}]"
    return Src(code, text if text != code else "")


def size(base: Src, dim: int) -> str:
    """How a tensor dim prints in guards and logs."""
    return f"{base}.size({dim})"


def size_code(base: Src, dim: int) -> str:
    """The same dim as fast guard code."""
    return f"{base.code}.shape[{dim}]"
