"""Sources: where a traced value lives in the caller's world.

A source is a Python expression over the frame's arguments, the function's
globals, its closure and named constants.  Guards and runners evaluate these
expressions every call; logs print `text`, which reads like the user's own code
(`x.size(1)`, `self.lin.weight`, `G['FACTOR']`).

Source code never embeds the repr of a value: dict keys and other objects are
named (`refs`), and whoever compiles code over a source puts its refs in that
code's namespace.  Positions (`xs[0]`) are ints the tracer made itself, and
attribute names are identifiers, so both are spelled directly.

A source built from another one keeps its structure (`path`): a name, or a call over
another source (`Over`), followed by attribute reads and subscripts whose code
concatenates to `code`.  Generated code uses it to read a shared prefix once
(guards/hoisting.py) without parsing `code` again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch._guards import GuardSource, Source

from .names import FUNCTION, GLOBALS, PREFIX


@dataclass(frozen=True)
class Over:
    """A call over another source (`template` has `{}` where the source's code goes): the first element of a
    path whose value is computed, not read, so it is never shared (its base is)."""
    template: str
    base: "Src"

    def code(self, base_code: str) -> str:
        return self.template.format(base_code)


@dataclass(frozen=True)
class Src(Source):
    code: str                 # fast Python expression (guards and runners evaluate it every call)
    text: str = ""            # how users read it, when it differs from `code`
    refs: tuple = field(default=(), compare=False)    # (name, object) pairs `code` refers to
    # (a name or an Over, then each attribute read or subscript as code: ".weight", "[0]") or None: opaque code
    path: tuple | None = field(default=None, compare=False)
    # reading it runs user code (a cached function's call): explanations of a miss do not read it where the
    # guard itself would not have (after an earlier check failed)
    runs_code: bool = field(default=False, compare=False)

    def __post_init__(self):
        if self.path is None and self.code.isidentifier():
            object.__setattr__(self, "path", (self.code,))

    def extended(self, step: str, text: str, *refs) -> "Src":
        """`self` followed by one attribute read or subscript (`step` is its code: ".weight", "[0]")."""
        path = self.path + (step,) if self.path is not None else None
        return Src(self.code + step, text, self.refs + refs, path, self.runs_code)

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
    return Src(GLOBALS).extended(f"[{_identifier(name)}]", f"G[{name!r}]")


def closure(index: int, name: str) -> Src:
    """Cell `index` of the traced function's closure (the free variable `name`)."""
    return _cell_contents(Src(FUNCTION), index, name)


def cell(function: Src, index: int, name: str) -> Src:
    """Cell `index` of another function's closure."""
    return _cell_contents(function, index, f"{function}.<closure {name}>")


def _cell_contents(function: Src, index: int, text: str) -> Src:
    return function.extended(".__closure__", "").extended(f"[{index}]", "").extended(".cell_contents", text)


def constant(name: str, text: str, value) -> Src:
    """An object named in the constant table (a class, a module, another module's globals)."""
    return Src(name, text, ((name, value),))


def attr(base: Src, name: str) -> Src:
    if name.isidentifier():
        return base.extended(f".{name}", f"{base}.{name}")
    key, value = KEYS.name_for(name)
    return derived(base, f"getattr({{}}, {key})", f"getattr({base}, {name!r})", (key, value))


def module_entry(base: Src, table: str, name: str) -> Src:
    """A parameter, buffer or submodule: read from the module's table (nn.Module.__getattr__ is slow)."""
    text = f"{base}.{name}" if name.isidentifier() else f"{base}[{name}]"
    key, value = KEYS.name_for(name)
    return base.extended(f".{table}", f"{base}.{table}").extended(f"[{key}]", text, (key, value))


def item(base: Src, key) -> Src:
    """`base[key]`: a position the tracer counted (an int) is spelled directly, any other key is named."""
    text = f"{base}[{key!r}]"
    if type(key) is int:
        return base.extended(f"[{int.__repr__(key)}]", text)
    name, value = KEYS.name_for(key)
    return base.extended(f"[{name}]", text, (name, value))


def derived(base: Src, template: str, text: str, *refs) -> Src:
    """Another expression over `base`: `template` has `{}` where base's code goes."""
    return Src(template.format(base.code), text, base.refs + tuple(refs), (Over(template, base),), base.runs_code)


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


def dim_source(base: Src, dim: int) -> Src:
    """The same dim as the source guards read it from (`x.shape[0]`: fast guard code)."""
    return base.extended(".shape", f"{base}.shape").extended(f"[{dim}]", size(base, dim))


def stride(base: Src, dim: int) -> str:
    """How a tensor's stride prints in guards and logs."""
    return f"{base}.stride({dim})"


def stride_source(base: Src, dim: int) -> Src:
    """A tensor's stride as guards read it (through TensorBase's own method: guards/codegen.py)."""
    return derived(base, f"{PREFIX}stride({{}}, {dim})", stride(base, dim))


def storage_offset(base: Src) -> str:
    return f"{base}.storage_offset()"


def storage_offset_source(base: Src) -> Src:
    return derived(base, f"{PREFIX}storage_offset({{}})", storage_offset(base))
