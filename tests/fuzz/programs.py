"""Generated programs for the state fuzzer: a function reading outside state, and the calls and mutations around it.

A `Program` is a list of `Atom`s and a list of `Step`s.  Each atom is one kind of outside state (a global, a
closure cell, an attribute, a module, a default, a container, torch global state) with the world code that creates
it, the lines of `f` that read (or write) it, and the mutations that can change it between calls.  `source()` is
the whole program as Python source; exec'd into a fresh globals dict it defines `f` and the world it reads.  A step
is one call of `f`: mutations to run first (in the world's globals), the input tensor, and the torch global state
(`Mode`) to call it under.

Generation goes through a `Chooser` (choice / integer / boolean), so the same generator runs on a seeded
`random.Random` (the long run) or on hypothesis draws (the tests, which shrink what they find).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .atom import Atom, block, indent
from .objects import OBJECT_KINDS

PRELUDE = '''\
import collections
import dataclasses
import enum
import functools
import math
import types

import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, t):
        return t * self.k


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Tag(str, enum.Enum):
    A = "a"
    B = "b"


_set = {}


@torch.compiler.disable
def _host():
    return None


def _through(t):
    print(end='')
    return t
'''


@dataclass(frozen=True)
class Mode:
    """Torch global state a call runs under; None leaves a setting as the process has it."""
    grad: bool | None = None
    dtype: str | None = None        # the default dtype
    deterministic: bool | None = None
    autocast: bool | None = None    # cpu autocast to bfloat16
    threads: int | None = None

    def settings(self) -> dict:
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class Step:
    mutations: tuple = ()
    shape: tuple = (2, 4)
    dtype: str = "float32"
    requires_grad: bool = False
    transposed: bool = False        # a non-contiguous input (a transposed 2-d tensor)
    mode: Mode = Mode()

    def input_source(self) -> str:
        numel = 1
        for size in self.shape:
            numel *= size
        shape = tuple(reversed(self.shape)) if self.transposed else self.shape
        text = f"torch.linspace(-1.5, 2.0, {numel}, dtype=torch.{self.dtype}).reshape{shape}"
        if self.transposed:
            text += ".t()"
        if self.requires_grad:
            text += ".requires_grad_()"
        return text


# graph breaks a program may place between the lines of f: a call the tracer cannot trace, a disabled function,
# a callee that breaks inside (f inlines it, so f breaks at the call)
BREAKS = {"breaks.print": "print(end='')", "breaks.disabled": "_host()", "breaks.callee": "out = _through(out)"}


@dataclass(frozen=True)
class Program:
    atoms: tuple
    steps: tuple
    breaks: tuple = ()              # (slot, feature): a BREAKS line before the slot-th place a line can go in f

    def kinds(self) -> list[str]:
        return sorted({atom.kind for atom in self.atoms} | {feature for _, feature in self.breaks})

    def source(self) -> str:
        world = "\n".join(atom.world for atom in self.atoms if atom.world)
        decls = [d for atom in self.atoms for d in atom.decls]
        params = [p for atom in self.atoms for p in atom.params]
        signature = "x, *, " + ", ".join(params) if params else "x"
        body = _with_breaks(["out = x * 1"] + [atom.body for atom in self.atoms if atom.body], self.breaks)
        body.append("return out")
        cells = [atom.cell for atom in self.atoms if atom.cell]
        setters = [f"def _set_{name}(value):\n    nonlocal {name}\n    {name} = value\n_set[{name!r}] = _set_{name}"
                   for atom in self.atoms for name in atom.cells]
        fn = f"def f({signature}):\n" + indent("\n".join(decls + body))
        make = "def _make():\n" + indent("\n".join(cells + [fn] + setters + ["return f"]))
        return "\n\n".join(part for part in (PRELUDE, world, make, "f = _make()\n") if part)

    def mutation_count(self) -> int:
        return sum(len(step.mutations) for step in self.steps)


def _with_breaks(parts, breaks) -> list[str]:
    """The lines of `parts` with each break's line inserted at its slot (taken modulo the number of slots): before
    any line after the first that does not continue a compound statement (else, elif, except, finally), with that
    line's indentation, or at the end."""
    lines = "\n".join(parts).split("\n")
    slots = [j for j in range(1, len(lines)) if not lines[j].lstrip().startswith(("else", "elif", "except", "finally"))]
    slots.append(len(lines))
    inserts = sorted(((slots[slot % len(slots)], BREAKS[feature]) for slot, feature in breaks), key=lambda p: -p[0])
    for j, line in inserts:
        depth = len(lines[j]) - len(lines[j].lstrip()) if j < len(lines) else 0
        lines.insert(j, " " * depth + line)
    return lines


# ----------------------------------------------------------------------------- choosers
class RandomChooser:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def choice(self, options):
        return options[self.rng.randrange(len(options))]

    def integer(self, low, high):
        return self.rng.randint(low, high)

    def boolean(self, p=0.5):
        return self.rng.random() < p


class HypothesisChooser:
    """Draws from hypothesis; sampled_from shrinks to the first option, so options are listed simplest first."""

    def __init__(self, draw):
        from hypothesis import strategies
        self.draw = draw
        self.strategies = strategies

    def choice(self, options):
        return self.draw(self.strategies.sampled_from(list(options)))

    def integer(self, low, high):
        return self.draw(self.strategies.integers(low, high))

    def boolean(self, p=0.5):
        return self.draw(self.strategies.booleans())


# ----------------------------------------------------------------------------- atoms, one function per kind
def _globals_number(ch, i):
    return Atom("globals.number", world=f"G{i} = {ch.choice([2, 3, 0.5])}",
                body=ch.choice([f"out = out * G{i}", f"out = out + G{i} * 2"]),
                mutations=(f"G{i} = 3", f"G{i} = 2.5", f"G{i} = -1", f"G{i} = True",
                           f"globals().pop('G{i}', None)"))


def _globals_tensor(ch, i):
    return Atom("globals.tensor", world=f"T{i} = torch.full((4,), 2.0)", body=f"out = out + T{i}",
                mutations=(f"T{i} = torch.full((4,), 3.0)", f"T{i}.mul_(2)", f"T{i} = torch.arange(4.0).double()",
                           f"T{i} = torch.ones(1, 4)", f"T{i} = torch.ones(4).requires_grad_()"))


def _globals_flag(ch, i):
    return Atom("globals.flag", world=f"FLAG{i} = True",
                body=block(f"""
                    if FLAG{i}:
                        out = out + 1
                    else:
                        out = out - 1"""),
                mutations=(f"FLAG{i} = False", f"FLAG{i} = True", f"FLAG{i} = None", f"FLAG{i} = 0", f"FLAG{i} = [1]"))


def _globals_str(ch, i):
    return Atom("globals.str", world=f"MODE{i} = 'a'",
                body=block(f"""
                    if MODE{i} == 'a':
                        out = out * 2
                    elif MODE{i} == 'b':
                        out = out + 3"""),
                mutations=(f"MODE{i} = 'b'", f"MODE{i} = 'c'", f"MODE{i} = 'a'", f"MODE{i} = Tag.A"))


def _globals_write(ch, i):
    return Atom("globals.write", world=f"COUNT{i} = 0", decls=(f"global COUNT{i}",),
                body=f"COUNT{i} = COUNT{i} + 1\nout = out + COUNT{i}",
                mutations=(f"COUNT{i} = 0", f"COUNT{i} = 10"))


def _globals_builtin(ch, i):
    return Atom("globals.builtin_shadow", body=ch.choice(["out = out * abs(-2)", "out = out + len([1, 2])"]),
                mutations=("abs = lambda value: 100", "len = lambda value: 7",
                           "globals().pop('abs', None)", "globals().pop('len', None)"))


def _cells_number(ch, i):
    return Atom("cells.number", cell=f"k{i} = {ch.choice([2, 3])}", cells=(f"k{i}",), body=f"out = out * k{i}",
                mutations=(f"_set['k{i}'](5)", f"_set['k{i}'](0.5)", f"_set['k{i}'](torch.full((4,), 2.0))"))


def _cells_container(ch, i):
    return Atom("cells.container", world=f"CELL{i} = [1, 2]", cell=f"c{i} = CELL{i}", cells=(f"c{i}",),
                body=ch.choice([block(f"""
                    for v in c{i}:
                        out = out + v"""), f"out = out * len(c{i})"]),
                mutations=(f"CELL{i}.append(3)", f"CELL{i}[0] = 5", f"_set['c{i}']([7])", f"CELL{i}.clear()"))


def _cells_write(ch, i):
    return Atom("cells.write", cell=f"n{i} = 0", cells=(f"n{i}",), decls=(f"nonlocal n{i}",),
                body=f"n{i} += 1\nout = out + n{i}", mutations=(f"_set['n{i}'](0)", f"_set['n{i}'](9)"))


def _cells_function(ch, i):
    return Atom("cells.function", cell=f"def h{i}(t):\n    return t * 2", cells=(f"h{i}",), body=f"out = h{i}(out)",
                mutations=(f"_set['h{i}'](lambda t: t + 5)", f"_set['h{i}'](torch.neg)"))


def _attributes_instance(ch, i):
    return Atom("attributes.instance", world=f"class Cfg{i}:\n    scale = 2\n\n\ncfg{i} = Cfg{i}()",
                body=f"out = out * cfg{i}.scale",
                mutations=(f"cfg{i}.scale = 3", f"Cfg{i}.scale = 5", f"cfg{i}.__dict__.pop('scale', None)",
                           f"cfg{i}.scale = 1.5", f"Cfg{i}.scale = None"))


def _attributes_optional(ch, i):
    return Atom("attributes.optional", world=f"class Opt{i}:\n    pass\n\n\nopt{i} = Opt{i}()",
                body=ch.choice([f"out = out * getattr(opt{i}, 'extra', 1)", block(f"""
                    if hasattr(opt{i}, 'extra'):
                        out = out + opt{i}.extra""")]),
                mutations=(f"opt{i}.extra = 4", f"opt{i}.__dict__.pop('extra', None)", f"Opt{i}.extra = 6",
                           f"if 'extra' in vars(Opt{i}):\n    del Opt{i}.extra"))


def _attributes_none(ch, i):
    return Atom("attributes.none", world=f"class Holder{i}:\n    bias = None\n\n\nh{i} = Holder{i}()",
                body=block(f"""
                    if h{i}.bias is not None:
                        out = out + h{i}.bias"""),
                mutations=(f"h{i}.bias = torch.ones(4)", f"h{i}.bias = None", f"Holder{i}.bias = torch.full((4,), 2.0)",
                           f"h{i}.__dict__.pop('bias', None)"))


def _attributes_method(ch, i):
    return Atom("attributes.method",
                world=f"class Obj{i}:\n    def scale(self):\n        return 2\n\n\nobj{i} = Obj{i}()",
                body=f"out = out * obj{i}.scale()",
                mutations=(f"obj{i}.scale = lambda: 7", f"Obj{i}.scale = lambda self: 5",
                           f"obj{i}.__dict__.pop('scale', None)"))


def _attributes_property(ch, i):
    return Atom("attributes.property",
                world=block(f"""
                    class Prop{i}:
                        def __init__(self):
                            self._k = 2

                        @property
                        def k(self):
                            return self._k


                    prop{i} = Prop{i}()"""),
                body=f"out = out * prop{i}.k",
                mutations=(f"prop{i}._k = 3", f"Prop{i}.k = property(lambda self: 11)", f"prop{i}._k = 0.5"))


def _attributes_write(ch, i):
    return Atom("attributes.write", world=f"class Ctr{i}:\n    n = 0\n\n\nctr{i} = Ctr{i}()",
                body=f"ctr{i}.n = ctr{i}.n + 1\nout = out + ctr{i}.n",
                mutations=(f"ctr{i}.n = 0", f"Ctr{i}.n = 5", f"ctr{i}.__dict__.pop('n', None)"))


def _attributes_new_instance(ch, i):
    return Atom("attributes.new_instance",
                world=block(f"""
                    class Box{i}:
                        K = 2
                        bias = None

                        def __init__(self, t):
                            self.t = t"""),
                body=block(f"""
                    box = Box{i}(out)
                    out = box.t * box.K if box.bias is None else box.t + box.bias"""),
                mutations=(f"Box{i}.K = 3", f"Box{i}.bias = torch.ones(4)", f"Box{i}.bias = None"))


def _attributes_getitem(ch, i):
    if ch.boolean():
        return Atom("attributes.getitem",
                    world=block(f"""
                        class Registry{i}:
                            def __init__(self, table):
                                self.table = table

                            def __getitem__(self, key):
                                return self.table[key]


                        REG{i} = Registry{i}({{'scale': 2, 'shift': 1}})"""),
                    body=f"out = out * REG{i}['scale'] + REG{i}['shift']",
                    mutations=(f"REG{i}.table['scale'] = 3", f"REG{i}.table = {{'scale': 0.5, 'shift': 2}}",
                               f"Registry{i}.__getitem__ = lambda self, key: 7", f"REG{i}.table.pop('shift', None)"))
    return Atom("attributes.getitem",       # like transformers' ACT2FN: a new module per lookup
                world=block(f"""
                    class Acts{i}(dict):
                        def __getitem__(self, key):
                            content = super().__getitem__(key)
                            cls, kwargs = content if isinstance(content, tuple) else (content, {{}})
                            return cls(**kwargs)


                    ACT{i} = Acts{i}({{'relu': nn.ReLU, 'tanh': nn.Tanh, 'scale': (Scale, {{'k': 3}})}})"""),
                body=ch.choice([f"out = ACT{i}['relu'](out)", f"out = ACT{i}['scale'](out)",
                                f"act = ACT{i}['tanh']\nout = act(out) + act(out)"]),
                mutations=(f"ACT{i}['relu'] = nn.Sigmoid", f"ACT{i}['scale'] = (Scale, {{'k': 0.5}})",
                           f"ACT{i}['tanh'] = (nn.LeakyReLU, {{'negative_slope': 0.2}})", f"ACT{i}.pop('relu', None)",
                           f"Acts{i}.__getitem__ = lambda self, key: nn.Identity()"))


def _modules_sequential(ch, i):
    return Atom("modules.sequential", world=f"seq{i} = nn.Sequential(nn.Linear(4, 4), nn.Tanh())",
                body=f"out = seq{i}(out)",
                mutations=(f"seq{i}.append(Scale(2))", f"seq{i}[0] = nn.Linear(4, 4)",
                           f"if len(seq{i}) > 1:\n    del seq{i}[-1]",
                           f"with torch.no_grad():\n    seq{i}[0].weight.mul_(2)",
                           f"seq{i}[0].weight = nn.Parameter(torch.ones(4, 4))",
                           f"seq{i}[0].bias = None", f"seq{i}[0].bias = nn.Parameter(torch.full((4,), 0.5))",
                           f"seq{i}[0].weight.requires_grad_(False)", f"seq{i}.train(False)", f"seq{i}.train(True)"))


def _modules_modulelist(ch, i):
    return Atom("modules.modulelist", world=f"ml{i} = nn.ModuleList([Scale(2), nn.ReLU()])",
                body=ch.choice([block(f"""
                    for layer in ml{i}:
                        out = layer(out)"""), f"out = ml{i}[0](out) * len(ml{i})"]),
                mutations=(f"ml{i}.append(Scale(3))", f"if len(ml{i}) > 1:\n    del ml{i}[0]", f"ml{i}[0] = Scale(5)",
                           f"ml{i}[0].k = 4", f"ml{i}.insert(0, nn.Identity())"))


def _modules_moduledict(ch, i):
    return Atom("modules.moduledict", world=f"md{i} = nn.ModuleDict({{'a': Scale(2)}})",
                body=ch.choice([block(f"""
                    for key, layer in md{i}.items():
                        out = layer(out)"""), block(f"""
                    if 'b' in md{i}:
                        out = md{i}['b'](out)""")]),
                mutations=(f"md{i}['b'] = Scale(3)", f"if 'b' in md{i}:\n    del md{i}['b']",
                           f"md{i}['a'] = nn.Identity()", f"md{i}['c'] = nn.ReLU()"))


def _modules_params(ch, i):
    return Atom("modules.params",
                world=block(f"""
                    pm{i} = nn.Module()
                    pm{i}.w = nn.Parameter(torch.ones(4))
                    pm{i}.register_buffer('buf', torch.zeros(4))"""),
                body=ch.choice([block(f"""
                    for p in pm{i}.parameters():
                        out = out + p"""), block(f"""
                    out = out * pm{i}.w
                    if pm{i}.buf is not None:
                        out = out + pm{i}.buf"""), block(f"""
                    for name, b in pm{i}.named_buffers():
                        out = out + b""")]),
                mutations=(f"pm{i}.v = nn.Parameter(torch.full((4,), 3.0))", f"pm{i}.buf = None",
                           f"pm{i}.buf = torch.ones(4)", f"pm{i}.register_buffer('buf2', torch.full((4,), 2.0))",
                           f"with torch.no_grad():\n    pm{i}.w.add_(1)", f"pm{i}.w.requires_grad_(False)",
                           f"pm{i}.w = nn.Parameter(torch.full((4,), 5.0))"))


def _modules_hooks(ch, i):
    return Atom("modules.hooks", world=f"hm{i} = Scale(2)\nHANDLES{i} = []", body=f"out = hm{i}(out)",
                mutations=(f"HANDLES{i}.append(hm{i}.register_forward_hook(lambda mod, inp, res: res * 3))",
                           f"HANDLES{i}.append(hm{i}.register_forward_pre_hook(lambda mod, inp: (inp[0] + 1,)))",
                           f"if HANDLES{i}:\n    HANDLES{i}.pop().remove()"))


def _modules_forward(ch, i):
    return Atom("modules.forward_override",
                world=f"class Fwd{i}(nn.Module):\n    def forward(self, t):\n        return t + 1\n\n\nfm{i} = Fwd{i}()",
                body=f"out = fm{i}(out)",
                mutations=(f"fm{i}.forward = lambda t: t * 100", f"fm{i}.__dict__.pop('forward', None)",
                           f"Fwd{i}.forward = lambda self, t: t - 1"))


def _modules_training(ch, i):
    return Atom("modules.training",
                world=block(f"""
                    class Train{i}(nn.Module):
                        def forward(self, t):
                            return t * 2 if self.training else t


                    tm{i} = Train{i}()"""),
                body=f"out = tm{i}(out)", mutations=(f"tm{i}.eval()", f"tm{i}.train()"))


def _modules_attr(ch, i):
    return Atom("modules.attr", world=f"sc{i} = Scale({ch.choice([2, 3])})", body=f"out = sc{i}(out)",
                mutations=(f"sc{i}.k = 3", f"sc{i}.k = 0.5", f"sc{i}.k = torch.full((4,), 2.0)", f"sc{i}.k = 2"))


def _defaults_positional(ch, i):
    return Atom("defaults.positional", world=f"def helper{i}(t, k=2):\n    return t * k", body=f"out = helper{i}(out)",
                mutations=(f"helper{i}.__defaults__ = (5,)", f"helper{i}.__defaults__ = (0.5,)",
                           f"helper{i}.__defaults__ = (torch.full((4,), 3.0),)"))


def _defaults_kwonly(ch, i):
    return Atom("defaults.kwonly", world=f"def kw{i}(t, *, k=2):\n    return t + k", body=f"out = kw{i}(out)",
                mutations=(f"kw{i}.__kwdefaults__ = {{'k': 7}}", f"kw{i}.__kwdefaults__['k'] = 3"))


def _defaults_mutable(ch, i):
    if ch.boolean():
        return Atom("defaults.mutable", world=f"def acc{i}(t, seen=[]):\n    seen.append(1)\n    return t * len(seen)",
                    body=f"out = acc{i}(out)",
                    mutations=(f"acc{i}.__defaults__[0].clear()", f"acc{i}.__defaults__ = ([1, 1, 1],)"))
    return Atom("defaults.mutable", world=f"def acc{i}(t, opts={{'k': 2}}):\n    return t * opts['k']",
                body=f"out = acc{i}(out)",
                mutations=(f"acc{i}.__defaults__[0]['k'] = 5", f"acc{i}.__defaults__ = ({{'k': 3}},)"))


def _defaults_tensor(ch, i):
    return Atom("defaults.tensor",
                world=ch.choice([f"def tdef{i}(t, w=torch.full((4,), 2.0)):\n    return t * w",
                                 f"def tdef{i}(t, *, w=torch.full((4,), 2.0)):\n    return t * w"]),
                body=f"out = tdef{i}(out)",
                mutations=(f"(tdef{i}.__defaults__ or tuple(tdef{i}.__kwdefaults__.values()))[0].add_(1)",))


def _defaults_own(ch, i):
    return Atom("defaults.own", params=(ch.choice([f"scale{i}=2", f"hist{i}=[]"]),),
                body="", mutations=())


def _finish_defaults_own(atom, i):
    name = atom.params[0].split("=")[0]
    if name.startswith("scale"):
        body = f"out = out * {name}"
        mutations = (f"f.__kwdefaults__ = {{**f.__kwdefaults__, '{name}': 5}}",
                     f"f.__kwdefaults__ = {{**f.__kwdefaults__, '{name}': 0.5}}")
    else:
        body = f"{name}.append(1)\nout = out + len({name})"
        mutations = (f"f.__kwdefaults__['{name}'].clear()",)
    return replace(atom, body=body, mutations=mutations)


def _functions_lru_cache(ch, i):
    decorator = ch.choice(["functools.lru_cache(maxsize=None)", "functools.lru_cache(maxsize=2)", "functools.cache",
                           "functools.lru_cache(maxsize=1)", "functools.lru_cache"])
    answer = ch.choice([f"n * K{i}", f"torch.full((4,), float(n * K{i}))"])
    return Atom("functions.lru_cache",
                world=f"K{i} = 2\n\n\n@{decorator}\ndef cached{i}(n):\n    return {answer}",
                body=ch.choice([f"out = out * cached{i}(3)", f"out = out + cached{i}(n=1)",
                                f"out = out * cached{i}(1) + cached{i}(2)"]),
                mutations=(f"cached{i}.cache_clear()", f"K{i} = 5", f"K{i} = 0.5", f"cached{i}(3)", f"cached{i}(7)"))


DICT_KEYS = {                       # key kind: (two present keys, one absent key)
    "str": ("'a'", "'b'", "'c'"),
    "int": ("1", "2", "3"),
    "dtype": ("torch.float32", "torch.float64", "torch.int64"),
    "enum": ("Color.RED", "Color.BLUE", "None"),
    "str_enum": ("Tag.A", "Tag.B", "'z'"),
}


def _containers_list(ch, i):
    return Atom("containers.list", world=f"L{i} = [1, 2]",
                body=ch.choice([block(f"""
                    for v in L{i}:
                        out = out + v"""), f"out = out * len(L{i})", f"out = out + sum(L{i})", f"out = out + L{i}[-1]"]),
                mutations=(f"L{i}.append(3)", f"L{i}[0] = 5", f"if len(L{i}) > 1:\n    L{i}.pop()", f"L{i}.clear()",
                           f"L{i} = [4]", f"L{i}.append(2.5)", f"L{i}.reverse()"))


def _containers_tuple(ch, i):
    return Atom("containers.tuple", world=f"TP{i} = (1, 2)",
                body=ch.choice([f"out = out * TP{i}[0] + len(TP{i})", block(f"""
                    for v in TP{i}:
                        out = out - v""")]),
                mutations=(f"TP{i} = (3, 4, 5)", f"TP{i} = (2.5,)", f"TP{i} = [1, 2]"))


def _containers_dict(key_kind):
    k1, k2, k3 = DICT_KEYS[key_kind]

    def make(ch, i):
        body = ch.choice([block(f"""
            for key, v in D{i}.items():
                out = out + v"""), f"out = out * D{i}.get({k3}, 1)", block(f"""
            if {k3} in D{i}:
                out = out - D{i}[{k3}]"""), f"out = out + len(D{i})", f"out = out * D{i}[{k1}]"]
                         + ([f"out = out * D{i}.get(out.dtype, 1.0)"] if key_kind == "dtype" else []))
        return Atom(f"containers.dict_{key_kind}", world=f"D{i} = {{{k1}: 1, {k2}: 2}}", body=body,
                    mutations=(f"D{i}[{k3}] = 4", f"D{i}.pop({k1}, None)", f"D{i}[{k1}] = 7",
                               f"D{i} = {{{k3}: 9, {k1}: 1}}", f"D{i}.update({{{k2}: 0.5}})"))
    return make


def _containers_set(ch, i):
    return Atom("containers.set", world=f"S{i} = {{1, 2}}",
                body=ch.choice([block(f"""
                    if out.dim() in S{i}:
                        out = out + 1"""), f"out = out * len(S{i})", block(f"""
                    if 3 in S{i}:
                        out = out - 3""")]),
                mutations=(f"S{i}.add(3)", f"S{i}.discard(1)", f"S{i}.discard(2)", f"S{i} = frozenset({{2}})"))


def _containers_deque(ch, i):
    return Atom("containers.deque", world=f"DQ{i} = collections.deque([1, 2], maxlen=3)",
                body=ch.choice([block(f"""
                    for v in DQ{i}:
                        out = out * v"""), f"out = out + DQ{i}[0] * len(DQ{i})"]),
                mutations=(f"DQ{i}.append(3)", f"DQ{i}.appendleft(5)", f"DQ{i}.rotate(1)",
                           f"if len(DQ{i}) > 1:\n    DQ{i}.pop()"))


def _containers_ordereddict(ch, i):
    return Atom("containers.ordereddict", world=f"OD{i} = collections.OrderedDict(a=1, b=2)",
                body=ch.choice([block(f"""
                    for key in OD{i}:
                        out = out * OD{i}[key]"""), f"out = out + next(iter(OD{i}.values()))"]),
                mutations=(f"OD{i}.move_to_end('a')", f"OD{i}['c'] = 3", f"OD{i}.pop('b', None)", f"OD{i}['a'] = 9"))


def _containers_ordereddict_reads(ch, i):
    return Atom("containers.ordereddict_reads",
                world=f"ODR{i} = collections.OrderedDict([('a', 2), ('b', torch.full((4,), 0.5))])",
                body=ch.choice([f"out = out * ODR{i}['a']", block(f"""
                    for v in ODR{i}.values():
                        out = out + v"""), block(f"""
                    for k, v in ODR{i}.items():
                        out = out * v + len(k)"""), block(f"""
                    for k in ODR{i}:
                        out = out - ODR{i}[k]"""), f"out = out * len(ODR{i}) + list(ODR{i}.values())[-1]",
                    f"first = next(iter(ODR{i}.items()))\nout = out + first[1]"]),
                mutations=(f"ODR{i}['c'] = 3", f"ODR{i}.pop('a', None)", f"ODR{i}.pop('b', None)",
                           f"ODR{i}.move_to_end('a')", f"ODR{i}.move_to_end('b', last=False)", f"ODR{i}['a'] = 0.5",
                           f"ODR{i}['b'] = torch.ones(4)", f"ODR{i}.popitem(last=False)"))


def _model_output_class(ch, i):
    """A dataclass subclass of OrderedDict with fields a, b, c: transformers' ModelOutput, or one like it."""
    fields = "\n    a: object = None\n    b: object = None\n    c: object = None"
    if ch.boolean():
        return "from transformers.utils import ModelOutput\n\n\n" + f"@dataclasses.dataclass\nclass Out{i}(ModelOutput):" + fields
    return f"@dataclasses.dataclass\nclass Out{i}(collections.OrderedDict):" + fields + "\n\n" + indent(block("""
        def __post_init__(self):
            for field in dataclasses.fields(self):
                if getattr(self, field.name) is not None:
                    self[field.name] = getattr(self, field.name)"""))


def _containers_model_output(ch, i):
    world = _model_output_class(ch, i) + f"\n\n\nMO{i} = Out{i}(a=torch.full((4,), 2.0), b=3)"
    return Atom("containers.model_output", world=world,
                body=ch.choice([f"out = out * MO{i}['a']", f"out = out + MO{i}.b", block(f"""
                    for v in MO{i}.values():
                        out = out + v"""), block(f"""
                    for k, v in MO{i}.items():
                        out = out * v"""), block(f"""
                    for k in MO{i}:
                        out = out + MO{i}[k]"""), f"out = out * len(MO{i})"]),
                mutations=(f"MO{i}['c'] = torch.ones(4)", f"MO{i}['b'] = 0.5", f"MO{i}.move_to_end('a')",
                           f"MO{i}.c = 5", f"MO{i}.pop('b', None)", f"MO{i}.a = torch.full((4,), 3.0)"))


def _containers_nested(ch, i):
    return Atom("containers.nested", world=f"NEST{i} = {{'layers': [1, 2], 'scale': 2}}",
                body=block(f"""
                    for v in NEST{i}['layers']:
                        out = out * v
                    out = out + NEST{i}['scale']"""),
                mutations=(f"NEST{i}['layers'].append(3)", f"NEST{i}['scale'] = 0.5", f"NEST{i}['layers'] = (4,)"))


def _containers_write(ch, i):
    return Atom("containers.write", world=f"LOG{i} = []\nSEEN{i} = {{}}",
                body=ch.choice([f"LOG{i}.append(out.size(0))\nout = out + len(LOG{i})",
                                f"SEEN{i}['n'] = SEEN{i}.get('n', 0) + 1\nout = out * SEEN{i}['n']",
                                block(f"""
                                    key = tuple(out.shape)
                                    if key not in SEEN{i}:
                                        SEEN{i}[key] = len(SEEN{i})
                                    out = out + SEEN{i}[key]""")]),
                mutations=(f"LOG{i}.clear()", f"SEEN{i}.clear()"))


def _operators_sequences(ch, i):
    body = ch.choice([block(f"""
        if PAIR{i} == LST{i}:
            out = out + 1
        else:
            out = out - 1"""), f"out = out + (PAIR{i} != LST{i}) + (SUB{i} == [3]) * 2",
        f"acc = LST{i}\nacc *= 2\nout = out + len(acc)", f"LST{i} *= 2\nout = out + len(LST{i})",
        f"acc = LST{i}\nacc += PAIR{i}\nout = out + sum(acc)", f"LST{i} += SUB{i}\nout = out + sum(LST{i})",
        f"res = PAIR{i} + SUB{i}\nout = out * (res if isinstance(res, int) else len(res))",
        f"out = out * len(SUB{i} + PAIR{i}) + sum(SUB{i} * 2) + len(out.shape + SUB{i})",
        f"RES{i} = PAIR{i} + SUB{i}", f"RES{i} = LST{i} * 2 == list(PAIR{i}) * 2"])
    written = [name for name in (f"RES{i}", f"LST{i}") if body.startswith(name + " ")]
    return Atom("operators.sequences",
                world=block(f"""
                    PAIR{i} = (1, 2)
                    LST{i} = [1, 2]
                    RES{i} = None


                    class Pair{i}(tuple):
                        def __radd__(self, other):
                            return len(other) + 10


                    SUB{i} = Pair{i}((3,))"""),
                decls=tuple(f"global {name}" for name in written), body=body,
                mutations=(f"PAIR{i} = [1, 2]", f"PAIR{i} = (1, 2)", f"PAIR{i} = (5,)", f"LST{i} = [1, 2]",
                           f"LST{i}.append(4)", f"SUB{i} = (3,)", f"SUB{i} = Pair{i}((3, 4))",
                           f"Pair{i}.__radd__ = lambda self, other: 1"))


def _operators_number_subclass(ch, i):
    return Atom("operators.number_subclass",
                world=block(f"""
                    class Half{i}(float):
                        def __radd__(self, other):
                            return other * 10 + float(self)


                    HALF{i} = Half{i}(0.5)"""),
                body=ch.choice([f"out = out + HALF{i}", f"out = HALF{i} + out", f"out = out * (3 + HALF{i})",
                                f"out = out * sum([HALF{i}, 1])", f"out = out - (HALF{i} + HALF{i})",
                                f"out += HALF{i}", f"out = 2 * HALF{i} * out + (out > HALF{i})",
                                f"out = out + (out.size(0) + HALF{i})"]),
                mutations=(f"HALF{i} = 0.5", f"HALF{i} = Half{i}(2.0)", f"HALF{i} = 2",
                           f"Half{i}.__radd__ = lambda self, other: 7.0", f"Half{i}.__add__ = lambda self, other: 9.0",
                           f"if '__radd__' in vars(Half{i}):\n    del Half{i}.__radd__"))


def _torch_grad_mode(ch, i):
    return Atom("torch.grad_mode", body=ch.choice([block("""
        if torch.is_grad_enabled():
            out = out + 1"""), "out = out * 2", "out = out.sum(0) + out"]))


def _torch_default_dtype(ch, i):
    return Atom("torch.default_dtype", body=ch.choice(["out = out + torch.ones(4)", "out = out.to(torch.get_default_dtype())",
                                                       "out = out * torch.tensor(2.0)"]))


def _torch_deterministic(ch, i):
    return Atom("torch.deterministic", body=block("""
        if torch.are_deterministic_algorithms_enabled():
            out = out * 2"""))


def _torch_autocast(ch, i):
    return Atom("torch.autocast", body=ch.choice(["out = out @ torch.ones(4, 4)", block("""
        if torch.is_autocast_enabled('cpu'):
            out = out + 5""")]))


def _torch_autocast_region(ch, i):
    return Atom("torch.autocast_region", world=f"AC{i} = True", mutations=(f"AC{i} = not AC{i}",),
                body=ch.choice([
                    f"with torch.autocast('cpu', dtype=torch.bfloat16, enabled=AC{i}):\n"
                    "    out = (out @ torch.ones(4, 4)).float()",
                    "with torch.autocast('cpu'):\n    out = out @ torch.ones(4, 4)\nout = out.float()",
                    "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
                    "    if torch.is_autocast_enabled('cpu'):\n        out = out + 1"]))


def _torch_num_threads(ch, i):
    return Atom("torch.num_threads", body="out = out * torch.get_num_threads()")


def _torch_state_writes(ch, i):
    return Atom("torch.state_writes", body=ch.choice([
        "torch.set_default_dtype(torch.float64)\nout = out + torch.zeros(4)\ntorch.set_default_dtype(torch.float32)",
        "with torch.no_grad():\n    out = out * 2",
        "with torch.enable_grad():\n    out = out + 1"]))


def _shapes_predicate(ch, i):
    return Atom("shapes.predicate", body=block(f"""
        if out.size(0) > {ch.choice([2, 3])}:
            out = out * 2"""))


def _shapes_value(ch, i):
    return Atom("shapes.value", body=ch.choice([block("""
        for _ in range(out.size(0)):
            out = out + 1"""), "out = out * [1, 2, 3, 4, 5, 6, 7, 8][out.size(0)]", "out = out * len(str(out.size(0)))"]))


def _inputs_inplace(ch, i):
    return Atom("inputs.inplace", body=ch.choice(["x.add_(1)", "x.mul_(out.size(0))"]))


KINDS = {
    "globals.number": _globals_number,
    "globals.tensor": _globals_tensor,
    "globals.flag": _globals_flag,
    "globals.str": _globals_str,
    "globals.write": _globals_write,
    "globals.builtin_shadow": _globals_builtin,
    "cells.number": _cells_number,
    "cells.container": _cells_container,
    "cells.write": _cells_write,
    "cells.function": _cells_function,
    "attributes.instance": _attributes_instance,
    "attributes.optional": _attributes_optional,
    "attributes.none": _attributes_none,
    "attributes.method": _attributes_method,
    "attributes.property": _attributes_property,
    "attributes.write": _attributes_write,
    "attributes.new_instance": _attributes_new_instance,
    "attributes.getitem": _attributes_getitem,
    "modules.sequential": _modules_sequential,
    "modules.modulelist": _modules_modulelist,
    "modules.moduledict": _modules_moduledict,
    "modules.params": _modules_params,
    "modules.hooks": _modules_hooks,
    "modules.forward_override": _modules_forward,
    "modules.training": _modules_training,
    "modules.attr": _modules_attr,
    "defaults.positional": _defaults_positional,
    "defaults.kwonly": _defaults_kwonly,
    "defaults.mutable": _defaults_mutable,
    "defaults.tensor": _defaults_tensor,
    "defaults.own": _defaults_own,
    "functions.lru_cache": _functions_lru_cache,
    "containers.list": _containers_list,
    "containers.tuple": _containers_tuple,
    "containers.dict_str": _containers_dict("str"),
    "containers.dict_int": _containers_dict("int"),
    "containers.dict_dtype": _containers_dict("dtype"),
    "containers.dict_enum": _containers_dict("enum"),
    "containers.dict_str_enum": _containers_dict("str_enum"),
    "containers.set": _containers_set,
    "containers.deque": _containers_deque,
    "containers.ordereddict": _containers_ordereddict,
    "containers.ordereddict_reads": _containers_ordereddict_reads,
    "containers.model_output": _containers_model_output,
    "containers.nested": _containers_nested,
    "containers.write": _containers_write,
    "operators.sequences": _operators_sequences,
    "operators.number_subclass": _operators_number_subclass,
    "torch.grad_mode": _torch_grad_mode,
    "torch.default_dtype": _torch_default_dtype,
    "torch.deterministic": _torch_deterministic,
    "torch.autocast": _torch_autocast,
    "torch.autocast_region": _torch_autocast_region,
    "torch.num_threads": _torch_num_threads,
    "torch.state_writes": _torch_state_writes,
    "shapes.predicate": _shapes_predicate,
    "shapes.value": _shapes_value,
    "inputs.inplace": _inputs_inplace,
    **OBJECT_KINDS,
}

# features that are not atoms: what a step may vary
STEP_FEATURES = ("inputs.shapes", "inputs.dtype", "inputs.requires_grad", "inputs.transposed")
MODE_FEATURES = {"torch.grad_mode": "grad", "torch.default_dtype": "dtype", "torch.deterministic": "deterministic",
                 "torch.autocast": "autocast", "torch.num_threads": "threads"}
ALL_FEATURES = tuple(KINDS) + STEP_FEATURES + tuple(BREAKS)

# Features main does not yet handle soundly, with the repro that shows why (see /work/wt/fuzz-findings.md);
# the default run and the test suite leave them out.  Remove an entry when its fix lands.
DISABLED: dict[str, str] = {
    "functions.lru_cache":
        "cache_info() counts one more hit per cached call than eager where a call falls back to eager after "
        "its trace made the cached call and then raised (the eager run calls the function again; the answers "
        "match).  @functools.cache def cached(n): return n * 2; f(x) = x * cached(1) + G with G undefined "
        "(NameError), one call: eager hits=0 misses=1, optimized hits=1 misses=1",
}
ENABLED = tuple(name for name in ALL_FEATURES if name not in DISABLED)
SHAPES = ((2, 4), (3, 4), (5, 4), (1, 4), (2, 3, 4), (6, 4), (0, 4))
MODE_VALUES = {"grad": (True, False), "dtype": ("float32", "float64"), "deterministic": (False, True),
               "autocast": (False, True), "threads": (1, 2)}


def generate(ch, features) -> Program:
    """One program using only the enabled `features` (atom kinds and step features)."""
    kinds = [k for k in KINDS if k in features]
    atoms = []
    for i in range(ch.integer(1, 3) if kinds else 0):
        atom = KINDS[ch.choice(kinds)](ch, i)
        if atom.kind == "defaults.own":
            atom = _finish_defaults_own(atom, i)
        atoms.append(atom)
    mutations = [m for atom in atoms for m in atom.mutations]
    varied_modes = [name for feature, name in MODE_FEATURES.items() if feature in features]
    inputs = [_input(ch, features) for _ in range(ch.integer(1, 3))]     # calls reuse them, so caches get hits
    modes = [Mode()] + [Mode(**{name: ch.choice(MODE_VALUES[name]) for name in varied_modes if ch.boolean()})
                        for _ in range(ch.integer(0, 2) if varied_modes else 0)]
    steps = []
    for index in range(ch.integer(2, 6)):
        step_mutations = tuple(ch.choice(mutations) for _ in range(ch.integer(0, 2) if index and mutations else 0))
        steps.append(replace(ch.choice(inputs), mutations=step_mutations, mode=ch.choice(modes)))
    break_kinds = [name for name in BREAKS if name in features]
    breaks = tuple((ch.integer(0, 20), ch.choice(break_kinds)) for _ in range(ch.integer(0, 2) if break_kinds else 0))
    return Program(atoms=tuple(atoms), steps=tuple(steps), breaks=breaks)


def _input(ch, features) -> Step:
    shape = ch.choice(SHAPES) if "inputs.shapes" in features else (2, 4)
    return Step(shape=shape, dtype=ch.choice(["float32", "float64"]) if "inputs.dtype" in features else "float32",
                requires_grad="inputs.requires_grad" in features and ch.boolean(),
                transposed="inputs.transposed" in features and len(shape) == 2 and ch.boolean())


def hypothesis_programs(features):
    """A hypothesis strategy of programs using `features`."""
    from hypothesis import strategies
    return strategies.composite(lambda draw: generate(HypothesisChooser(draw), features))()
