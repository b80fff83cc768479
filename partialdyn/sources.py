"""Sources: where a traced value lives in the caller's world.

A source is a Python expression over the frame's arguments, the function's
globals, its closure and named constants.  Guards and runners evaluate these
expressions every call; logs print `text`, which reads like the user's own code
(`x.size(1)`, `self.lin.weight`, `G['FACTOR']`).

Source code never embeds the repr of a value: dict keys and other objects are
named (`refs`), and whoever compiles code over a source puts its refs in that
code's namespace.  Positions (`xs[0]`) are ints the tracer made itself, and
attribute names are identifiers, so both are spelled directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch._guards import GuardSource, Source

from .names import FUNCTION, GLOBALS, PREFIX


@dataclass(frozen=True)
class Src(Source):
    code: str                 # fast Python expression (guards and runners evaluate it every call)
    text: str = ""            # how users read it, when it differs from `code`
    refs: tuple = field(default=(), compare=False)    # (name, object) pairs `code` refers to

    @property
    def name(self) -> str:
        return self.text or self.code

    def guard_source(self):
        return GuardSource.LOCAL

    def __str__(self):
        return self.text or self.code


class _Keys:
    """One name per distinct key value (by type and value), for the whole process: equal keys read through
    the same source give the same code."""

    def __init__(self):
        self._names = {}

    def name_for(self, key) -> tuple[str, object]:
        try:
            hash(key)
        except TypeError:       # a slice: named by identity (the source's refs keep it alive)
            return f"{PREFIX}obj{id(key)}", key
        entry = self._names.get((type(key), key))
        if entry is None:
            entry = self._names[(type(key), key)] = (f"{PREFIX}key{len(self._names)}", key)
        return entry


KEYS = _Keys()


def argument(code_name: str, text: str) -> Src:
    return Src(code_name, text)


def global_(name: str) -> Src:
    return Src(f"{GLOBALS}[{_identifier(name)}]", f"G[{name!r}]")


def closure(index: int, name: str) -> Src:
    """Cell `index` of the traced function's closure (the free variable `name`)."""
    return Src(f"{FUNCTION}.__closure__[{index}].cell_contents", name)


def cell(function: Src, index: int, name: str) -> Src:
    """Cell `index` of another function's closure."""
    return Src(f"{function.code}.__closure__[{index}].cell_contents", f"{function}.<closure {name}>", function.refs)


def constant(name: str, text: str, value) -> Src:
    """An object named in the constant table (a class, a module, another module's globals)."""
    return Src(name, text, ((name, value),))


def attr(base: Src, name: str) -> Src:
    if name.isidentifier():
        return Src(f"{base.code}.{name}", f"{base}.{name}", base.refs)
    key, value = KEYS.name_for(name)
    return Src(f"getattr({base.code}, {key})", f"getattr({base}, {name!r})", base.refs + ((key, value),))


def module_entry(base: Src, table: str, name: str) -> Src:
    """A parameter, buffer or submodule: read from the module's table (nn.Module.__getattr__ is slow)."""
    text = f"{base}.{name}" if name.isidentifier() else f"{base}[{name}]"
    key, value = KEYS.name_for(name)
    return Src(f"{base.code}.{table}[{key}]", text, base.refs + ((key, value),))


def item(base: Src, key) -> Src:
    """`base[key]`: a position the tracer counted (an int) is spelled directly, any other key is named."""
    text = f"{base}[{key!r}]"
    if type(key) is int:
        return Src(f"{base.code}[{int.__repr__(key)}]", text, base.refs)
    name, value = KEYS.name_for(key)
    return Src(f"{base.code}[{name}]", text, base.refs + ((name, value),))


def derived(base: Src, template: str, text: str, *refs) -> Src:
    """Another expression over `base`: `template` has `{}` where base's code goes."""
    return Src(template.format(base.code), text, base.refs + tuple(refs))


def attr_name(name: str) -> str:
    """An attribute name from bytecode (an identifier), as generated code spells it in getattr/setattr."""
    return _identifier(name)


def _identifier(name: str) -> str:
    """A global or attribute name from bytecode as a string literal; names that are not identifiers (pytest's
    assertion rewriting reads the global '@pytest_ar') are spelled exactly, so they never collide."""
    if type(name) is not str:
        raise ValueError(f"not a name: {type(name).__name__}")
    return str.__repr__(name)


def size(base: Src, dim: int) -> str:
    """How a tensor dim prints in guards and logs."""
    return f"{base}.size({dim})"


def size_code(base: Src, dim: int) -> str:
    """The same dim as fast guard code."""
    return f"{base.code}.shape[{dim}]"
