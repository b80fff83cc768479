"""An atom of a generated program: one kind of outside state, the code creating it, reading it, changing it."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Atom:
    kind: str                       # "feature.variant", the unit features are enabled by
    world: str = ""                 # module-level code creating the state
    cell: str = ""                  # code in the enclosing function: closure variables (each gets a setter)
    cells: tuple = ()               # names of the closure variables `cell` defines
    decls: tuple = ()               # `global X` / `nonlocal y` lines at the top of f
    params: tuple = ()              # keyword-only parameters of f, as "name=default"
    body: str = ""                  # lines of f; they read and update the tensor `out`
    mutations: tuple = ()           # module-level statements that change the state between calls


def block(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def indent(text: str) -> str:
    return textwrap.indent(text, "    ")
