"""Atoms of non-tensor object state: instances, classes, descriptors, dataclasses, enums, partials, closures of
called functions, other modules' globals, submodules and torch flags, each mutated between calls in the ways
Python allows (`__class__` and `__bases__` reassigned, `__dict__` changed directly or replaced, methods
replaced on the instance or the class, descriptors made non-data, a partial's keywords changed, a cell's
contents set, another module's global rebound, a submodule swapped, a training flag set on one module).
"""
from __future__ import annotations

from .atom import Atom, block


def _class_swap(ch, i):
    return Atom("objects.class_swap",
                world=block(f"""
                    class SwapA{i}:
                        k = 2

                        def scale(self):
                            return self.k


                    class SwapB{i}:
                        k = 3

                        def scale(self):
                            return self.k * 10


                    sw{i} = SwapA{i}()"""),
                body=ch.choice([f"out = out * sw{i}.scale()", f"out = out + sw{i}.k", block(f"""
                    if isinstance(sw{i}, SwapB{i}):
                        out = out - 1"""), f"out = out * (2 if type(sw{i}) is SwapA{i} else 5)",
                    f"out = out + len(sw{i}.__class__.__name__)", f"m = sw{i}.scale\nout = out * m()",
                    f"o = sw{i}\nout = out * o.scale() + isinstance(o, SwapB{i})"]),
                mutations=(f"sw{i}.__class__ = SwapB{i}", f"sw{i}.__class__ = SwapA{i}", f"sw{i}.k = 7",
                           f"sw{i}.__dict__.pop('k', None)", f"SwapB{i}.k = 0.5",
                           f"SwapA{i}.scale = lambda self: -1", f"sw{i}.scale = lambda: 4"))


def _dict_direct(ch, i):
    return Atom("objects.dict_direct",
                world=block(f"""
                    class Bag{i}:
                        def __init__(self):
                            self.a = 2
                            self.b = 1


                    bag{i} = Bag{i}()"""),
                body=ch.choice([f"out = out * bag{i}.a + bag{i}.b", f"out = out * getattr(bag{i}, 'c', 3)",
                                f"out = out + vars(bag{i}).get('a', 0)", f"out = out + bag{i}.__dict__['b']",
                                f"out = out * len(vars(bag{i}))", block(f"""
                                    if 'c' in bag{i}.__dict__:
                                        out = out + bag{i}.c"""), block(f"""
                                    for key, v in vars(bag{i}).items():
                                        out = out + v"""), f"out = out * sum(bag{i}.__dict__.values())",
                                f"a = bag{i}.a\nout = out * a", f"o = bag{i}\nout = out * o.a + len(vars(o))"]),
                mutations=(f"bag{i}.__dict__['a'] = 5", f"vars(bag{i})['c'] = 4", f"bag{i}.__dict__.update(b=0.5, c=2)",
                           f"bag{i}.__dict__.clear()", f"bag{i}.__dict__ = {{'a': 3, 'b': 2}}", f"setattr(bag{i}, 'a', 9)",
                           f"bag{i}.__dict__.pop('c', None)", f"Bag{i}.c = 6", f"Bag{i}.a = 100",
                           f"bag{i}.__dict__.setdefault('c', 1)", f"delattr(bag{i}, 'b') if hasattr(bag{i}, 'b') else None"))


def _class_attr(ch, i):
    return Atom("objects.class_attr",
                world=block(f"""
                    class Base{i}:
                        K = 2

                        def twice(self, t):
                            return t * self.K


                    class Other{i}:
                        K = 7

                        def twice(self, t):
                            return t * 100


                    class Child{i}(Base{i}):
                        pass


                    ch{i} = Child{i}()"""),
                body=ch.choice([f"out = ch{i}.twice(out)", f"out = out * Child{i}.K", f"out = out + type(ch{i}).K",
                                f"out = out * ch{i}.K", block(f"""
                                    if isinstance(ch{i}, Base{i}):
                                        out = out + 1""")]),
                mutations=(f"Base{i}.K = 3", f"Child{i}.K = 5", f"if 'K' in vars(Child{i}):\n    del Child{i}.K",
                           f"setattr(Base{i}, 'K', 0.5)", f"Base{i}.twice = lambda self, t: t - self.K",
                           f"Child{i}.twice = lambda self, t: t + 1", f"Child{i}.__bases__ = (Other{i},)",
                           f"Child{i}.__bases__ = (Base{i},)", f"ch{i}.K = 11"))


def _methods(ch, i):
    return Atom("objects.methods",
                world=block(f"""
                    class Meth{i}:
                        factor = 2

                        @staticmethod
                        def st(t):
                            return t + 1

                        @classmethod
                        def cm(cls, t):
                            return t * cls.factor

                        def im(self, t):
                            return t - self.factor

                        def brk(self, t):
                            print(end='')
                            return t * self.factor


                    me{i} = Meth{i}()
                    BOUND{i} = me{i}.im"""),
                body=ch.choice([f"out = me{i}.st(out)", f"out = Meth{i}.cm(out)", f"out = me{i}.cm(out)",
                                f"out = BOUND{i}(out)", f"fn = me{i}.im\nout = fn(out)", f"out = me{i}.im(out)",
                                f"out = me{i}.brk(out)", f"o = me{i}\nout = o.cm(out) + o.im(out)"]),
                mutations=(f"Meth{i}.factor = 3", f"Meth{i}.st = staticmethod(lambda t: t * 4)",
                           f"Meth{i}.cm = classmethod(lambda cls, t: t + cls.factor)", f"me{i}.im = lambda t: t * 0",
                           f"me{i}.factor = 5", f"BOUND{i} = Meth{i}().im", f"Meth{i}.im = lambda self, t: t + 10",
                           f"me{i}.st = lambda t: t - 100", f"me{i}.__dict__.pop('st', None)",
                           f"me{i}.__dict__.pop('im', None)"))


def _nested(ch, i):
    return Atom("objects.nested",
                world=block(f"""
                    class Node{i}:
                        def __init__(self, k, child=None):
                            self.k = k
                            self.child = child


                    TREE{i} = Node{i}(2, Node{i}(3))
                    ITEMS{i} = [Node{i}(1), Node{i}(2)]"""),
                body=ch.choice([f"out = out * TREE{i}.child.k", block(f"""
                    node = TREE{i}
                    while node is not None:
                        out = out + node.k
                        node = node.child"""), block(f"""
                    if TREE{i}.child.child is None:
                        out = out - 1"""), block(f"""
                    for item in ITEMS{i}:
                        out = out * item.k"""), f"out = out + ITEMS{i}[-1].k"]),
                mutations=(f"TREE{i}.child.k = 5", f"TREE{i}.child = Node{i}(7)", f"TREE{i}.child.child = Node{i}(1)",
                           f"TREE{i}.child = Node{i}(0.5, TREE{i}.child)", f"TREE{i} = Node{i}(4, Node{i}(4))",
                           f"TREE{i}.child.child = None", f"ITEMS{i}[0].k = 5", f"ITEMS{i}.append(Node{i}(3))",
                           f"ITEMS{i}.sort(key=lambda n: -n.k)", f"ITEMS{i}[0], ITEMS{i}[1] = ITEMS{i}[1], ITEMS{i}[0]",
                           f"ITEMS{i}[-1].__dict__['k'] = 0.5"))


def _slots(ch, i):
    return Atom("objects.slots",
                world=block(f"""
                    class Slot{i}:
                        __slots__ = ('a', 'b')

                        def __init__(self):
                            self.a = 2


                    sl{i} = Slot{i}()"""),
                body=ch.choice([f"out = out * sl{i}.a", f"out = out + getattr(sl{i}, 'b', 1)", block(f"""
                    if hasattr(sl{i}, 'b'):
                        out = out + sl{i}.b""")]),
                mutations=(f"sl{i}.a = 3", f"sl{i}.b = 4", f"if hasattr(sl{i}, 'b'):\n    del sl{i}.b",
                           f"if hasattr(sl{i}, 'a'):\n    del sl{i}.a", f"sl{i}.a = 0.5", f"sl{i} = Slot{i}()"))


def _getattr_hook(ch, i):
    return Atom("objects.getattr_hook",
                world=block(f"""
                    class Lazy{i}:
                        TABLE = {{'k': 2}}

                        def __getattr__(self, name):
                            if name in Lazy{i}.TABLE:
                                return Lazy{i}.TABLE[name]
                            raise AttributeError(name)


                    lz{i} = Lazy{i}()"""),
                body=ch.choice([f"out = out * lz{i}.k", f"out = out + getattr(lz{i}, 'm', 1)", block(f"""
                    if hasattr(lz{i}, 'm'):
                        out = out + 1""")]),
                mutations=(f"Lazy{i}.TABLE['k'] = 3", f"Lazy{i}.TABLE['m'] = 5", f"Lazy{i}.TABLE.pop('m', None)",
                           f"lz{i}.k = 9", f"lz{i}.__dict__.pop('k', None)",
                           f"Lazy{i}.__getattr__ = lambda self, name: 4", f"Lazy{i}.k = 6"))


def _dataclass(ch, i):
    return Atom("objects.dataclass",
                world=block(f"""
                    @dataclasses.dataclass
                    class Conf{i}:
                        scale: float = 2
                        shift: int = 1
                        names: list = dataclasses.field(default_factory=lambda: ['a'])


                    @dataclasses.dataclass(frozen=True)
                    class Frozen{i}:
                        k: int = 2


                    CONF{i} = Conf{i}()
                    FROZEN{i} = Frozen{i}()"""),
                body=ch.choice([f"out = out * CONF{i}.scale + CONF{i}.shift", f"out = out + len(CONF{i}.names)",
                                f"out = out * FROZEN{i}.k", block(f"""
                                    for field in dataclasses.fields(CONF{i}):
                                        if field.name == 'scale':
                                            out = out * getattr(CONF{i}, field.name)"""),
                                f"out = out + (CONF{i} == Conf{i}())",
                                f"c2 = dataclasses.replace(CONF{i}, shift=5)\nout = out * c2.scale + c2.shift",
                                f"out = out * (FROZEN{i}.k + len(CONF{i}.names))",
                                f"c = CONF{i}\nout = out * c.scale + len(c.names)"]),
                mutations=(f"CONF{i}.scale = 3", f"CONF{i}.names.append('b')", f"CONF{i} = Conf{i}(scale=0.5)",
                           f"object.__setattr__(FROZEN{i}, 'k', 5)", f"FROZEN{i} = Frozen{i}(k=3)", f"CONF{i}.shift = -1",
                           f"CONF{i}.names = []", f"Conf{i}.__eq__ = lambda self, other: False"))


def _enums(ch, i):
    return Atom("objects.enums",
                world=block(f"""
                    class Speed{i}(enum.Enum):
                        FAST = 1
                        SLOW = 2

                        def factor(self):
                            return self.value * 2


                    class Lvl{i}(enum.IntEnum):
                        LO = 1
                        HI = 3


                    CUR{i} = Speed{i}.FAST
                    LVL{i} = Lvl{i}.LO"""),
                body=ch.choice([block(f"""
                    if CUR{i} is Speed{i}.FAST:
                        out = out * 2
                    else:
                        out = out + 1"""), f"out = out * CUR{i}.value", f"out = out * CUR{i}.factor()",
                    f"out = out + LVL{i}", f"out = out * (LVL{i} + 1)", f"out = out + len(CUR{i}.name)",
                    f"out = out * {{Speed{i}.FAST: 2, Speed{i}.SLOW: 3}}.get(CUR{i}, 5)", block(f"""
                    if CUR{i} == Speed{i}.SLOW:
                        out = out - 2"""), f"out = out * Speed{i}(2).value + Speed{i}['FAST'].value"]),
                mutations=(f"CUR{i} = Speed{i}.SLOW", f"CUR{i} = Speed{i}.FAST", f"LVL{i} = Lvl{i}.HI", f"LVL{i} = 3",
                           f"Speed{i}.factor = lambda self: -1", f"CUR{i} = Color.RED"))


def _partials(ch, i):
    return Atom("objects.partials",
                world=block(f"""
                    def _scaled{i}(t, k=2, *, shift=0):
                        return t * k + shift


                    def _other{i}(t, k=2, *, shift=0):
                        return t - k - shift


                    P{i} = functools.partial(_scaled{i}, k=2)"""),
                body=ch.choice([f"out = P{i}(out)", f"out = P{i}(out, shift=1)", f"out = out * P{i}.keywords.get('k', 1)",
                                f"out = out + len(P{i}.args)", f"g = P{i}\nout = g(out)"]),
                mutations=(f"P{i} = functools.partial(_scaled{i}, k=3)", f"P{i}.keywords['k'] = 5",
                           f"P{i}.keywords['shift'] = 1", f"P{i}.keywords.pop('k', None)",
                           f"_scaled{i}.__defaults__ = (7,)", f"_scaled{i}.__kwdefaults__ = {{'shift': 2}}",
                           f"P{i} = functools.partial(P{i}, shift=3)",
                           f"P{i}.__setstate__((_other{i}, (), {{'k': 1}}, None))"))


def _descriptors(ch, i):
    return Atom("objects.descriptors",
                world=block(f"""
                    class Const{i}:
                        def __init__(self, v):
                            self.v = v

                        def __get__(self, obj, owner=None):
                            return self.v if obj is None else self.v * 2


                    class Typed{i}:
                        def __set_name__(self, owner, name):
                            self.name = '_' + name

                        def __get__(self, obj, owner=None):
                            return getattr(obj, self.name, 1)

                        def __set__(self, obj, value):
                            setattr(obj, self.name, value)


                    class Desc{i}:
                        c = Const{i}(2)
                        d = Typed{i}()


                    ds{i} = Desc{i}()"""),
                body=ch.choice([f"out = out * ds{i}.c", f"out = out + ds{i}.d", f"out = out * Desc{i}.c",
                                f"ds{i}.d = 3\nout = out + ds{i}.d", f"out = out * vars(Desc{i})['c'].v",
                                f"out = out + ds{i}.c * ds{i}.d", f"o = ds{i}\nout = out * o.c + o.d"]),
                mutations=(f"vars(Desc{i})['c'].v = 5", f"ds{i}.__dict__['c'] = 7", f"ds{i}.__dict__['d'] = 9",
                           f"ds{i}.d = 4", f"Desc{i}.c = Const{i}(0.5)", f"Const{i}.__get__ = lambda self, obj, owner=None: 3",
                           f"if '__set__' in vars(Typed{i}):\n    del Typed{i}.__set__", f"ds{i}.__dict__.pop('c', None)",
                           f"ds{i}.__dict__.pop('d', None)"))


def _properties(ch, i):
    return Atom("objects.properties",
                world=block(f"""
                    SCALE{i} = 1


                    class Pr{i}:
                        def __init__(self):
                            self._v = 2

                        @property
                        def v(self):
                            return self._v * SCALE{i}

                        @v.setter
                        def v(self, value):
                            self._v = value

                        @functools.cached_property
                        def cached(self):
                            return self._v + 1

                        @property
                        def slow(self):
                            print(end='')
                            return self._v * SCALE{i}


                    pr{i} = Pr{i}()"""),
                body=ch.choice([f"out = out * pr{i}.v", f"out = out + pr{i}.cached", f"pr{i}.v = 3\nout = out * pr{i}.v",
                                f"out = out * Pr{i}.v.fget(pr{i})", f"out = out + pr{i}.cached * pr{i}.v",
                                f"out = out * pr{i}.slow", f"o = pr{i}\nout = out * o.v + o.cached"]),
                mutations=(f"SCALE{i} = 3", f"pr{i}._v = 4", f"pr{i}.__dict__.pop('cached', None)",
                           f"pr{i}.__dict__['cached'] = 10", f"Pr{i}.v = property(lambda self: -1)",
                           f"pr{i}.__dict__['v'] = 100", f"Pr{i}.cached = 5", f"pr{i}._v = 0.5"))


def _helper_closure(ch, i):
    return Atom("objects.helper_closure",
                world=block(f"""
                    def _mk{i}():
                        k = 2

                        def inner(t):
                            return t * k

                        def alt(t):
                            return t + k

                        def setk(v):
                            nonlocal k
                            k = v
                        return inner, alt, setk


                    inner{i}, alt{i}, setk{i} = _mk{i}()
                    LAM{i} = lambda t, k=2: t * k"""),
                body=ch.choice([f"out = inner{i}(out)", f"out = LAM{i}(out)", f"out = alt{i}(inner{i}(out))"]),
                mutations=(f"setk{i}(3)", f"setk{i}(0.5)", f"inner{i}, alt{i}, setk{i} = _mk{i}()",
                           f"inner{i}.__closure__[0].cell_contents = 7", f"inner{i}.__code__ = alt{i}.__code__",
                           f"LAM{i}.__defaults__ = (3,)", f"LAM{i} = lambda t, k=2: t + k"))


def _foreign_globals(ch, i):
    return Atom("objects.foreign_globals",
                world=block(f"""
                    OTHER{i} = types.ModuleType('other{i}')
                    exec('K = 2\\ndef scale(t):\\n    return t * K\\ndef size(t):\\n    return t * len([1, 2])\\n',
                         OTHER{i}.__dict__)"""),
                body=ch.choice([f"out = OTHER{i}.scale(out)", f"out = out * OTHER{i}.K",
                                f"out = out + getattr(OTHER{i}, 'M', 0)", f"out = OTHER{i}.size(out)",
                                f"fn = OTHER{i}.scale\nout = fn(out)"]),
                mutations=(f"OTHER{i}.K = 3", f"OTHER{i}.M = 4", f"OTHER{i}.__dict__.pop('M', None)",
                           f"OTHER{i}.scale = lambda t: t - 1", f"exec('def scale(t):\\n    return t + K', OTHER{i}.__dict__)",
                           f"OTHER{i}.__dict__['K'] = 0.5", f"OTHER{i}.len = lambda v: 7",
                           f"OTHER{i}.__dict__.pop('len', None)"))


def _submodules(ch, i):
    return Atom("objects.submodules",
                world=block(f"""
                    class Parent{i}(nn.Module):
                        def __init__(self):
                            super().__init__()
                            self.sub = Scale(2)
                            self.eps = 0.5
                            self.act = None

                        def forward(self, t):
                            t = self.sub(t) + self.eps
                            if self.act is not None:
                                t = self.act(t)
                            return t


                    class ParentB{i}(Parent{i}):
                        def forward(self, t):
                            return self.sub(t) * 3 if self.training else t


                    par{i} = Parent{i}()"""),
                body=ch.choice([f"out = par{i}(out)", f"out = par{i}.sub(out)", block(f"""
                    for m in par{i}.children():
                        out = m(out)"""), f"out = out * len(list(par{i}.modules()))", block(f"""
                    if par{i}.training:
                        out = out + 1"""), f"out = out + sum(1 for m in par{i}.modules() if m.training)"]),
                mutations=(f"par{i}.sub = Scale(3)", f"par{i}.sub = nn.Identity()", f"par{i}._modules['sub'] = nn.Tanh()",
                           f"par{i}.act = nn.ReLU()", f"par{i}.act = None", f"par{i}.eps = 2",
                           f"par{i}.__dict__['eps'] = 0.25", f"par{i}.sub.train(False)", f"par{i}.training = False",
                           f"par{i}.eval()", f"par{i}.train()", f"par{i}.sub.k = 5", f"par{i}.__class__ = ParentB{i}",
                           f"par{i}.__class__ = Parent{i}", f"par{i}.register_module('extra', Scale(4))"))


def _method_defaults(ch, i):
    return Atom("objects.method_defaults",
                world=block(f"""
                    class Dm{i}:
                        def go(self, t, k=2, *, s=1):
                            return t * k + s


                    dm{i} = Dm{i}()"""),
                body=ch.choice([f"out = dm{i}.go(out)", f"out = Dm{i}.go(dm{i}, out, 3)", f"g = dm{i}.go\nout = g(out, s=0)"]),
                mutations=(f"Dm{i}.go.__defaults__ = (3,)", f"Dm{i}.go.__kwdefaults__ = {{'s': 4}}",
                           f"Dm{i}.go.__kwdefaults__['s'] = 0.5", f"Dm{i}.go.__defaults__ = None"))


def _dispatch(ch, i):
    return Atom("objects.dispatch",
                world=f"OPS{i} = {{'a': lambda t: t * 2, 'b': torch.neg}}\nORDER{i} = ['a']",
                body=ch.choice([block(f"""
                    for name in ORDER{i}:
                        out = OPS{i}[name](out)"""), f"out = OPS{i}.get('c', torch.abs)(out)",
                    f"op = OPS{i}['a']\nout = op(out)"]),
                mutations=(f"OPS{i}['a'] = lambda t: t + 3", f"ORDER{i}.append('b')", f"OPS{i}['c'] = torch.sin",
                           f"ORDER{i}[:] = ['b', 'a']", f"OPS{i}.pop('c', None)", f"OPS{i}['a'] = torch.cos"))


def _torch_flags(ch, i):
    return Atom("objects.torch_flags",
                body=ch.choice([block("""
                    if torch.get_float32_matmul_precision() == 'highest':
                        out = out + 1"""), block("""
                    if torch.is_anomaly_enabled():
                        out = out * 2"""), "out = out * (2 if torch.backends.mkldnn.enabled else 3)", block("""
                    if torch.backends.cudnn.deterministic:
                        out = out - 1"""), block("""
                    if torch.is_warn_always_enabled():
                        out = out + 3""")]),
                mutations=("torch.set_float32_matmul_precision('high')", "torch.set_float32_matmul_precision('highest')",
                           "torch.autograd.set_detect_anomaly(True)", "torch.autograd.set_detect_anomaly(False)",
                           "torch.backends.mkldnn.enabled = False", "torch.backends.mkldnn.enabled = True",
                           "torch.backends.cudnn.deterministic = True", "torch.backends.cudnn.deterministic = False",
                           "torch.set_warn_always(True)", "torch.set_warn_always(False)"))


def _protocols(ch, i):
    return Atom("objects.protocols",
                world=block(f"""
                    class Proto{i}:
                        def __init__(self):
                            self.items = [1, 2]

                        def __len__(self):
                            return len(self.items)

                        def __contains__(self, v):
                            return v in self.items

                        def __iter__(self):
                            return iter(self.items)

                        def __call__(self, t):
                            return t * len(self.items)

                        def __eq__(self, other):
                            return isinstance(other, Proto{i}) and self.items == other.items

                        __hash__ = None

                        def __enter__(self):
                            return len(self.items)

                        def __exit__(self, *exc):
                            return False


                    pt{i} = Proto{i}()"""),
                body=ch.choice([f"out = out * len(pt{i})", block(f"""
                    if pt{i}:
                        out = out + 1"""), block(f"""
                    if 3 in pt{i}:
                        out = out - 3"""), block(f"""
                    for v in pt{i}:
                        out = out + v"""), f"out = pt{i}(out)", f"out = out + (pt{i} == Proto{i}())", block(f"""
                    with pt{i} as n:
                        out = out * n"""), f"out = out + len(str(pt{i}.items))", f"out = out * callable(pt{i})",
                    f"o = pt{i}\nout = out * len(o) + (1 if o else 0)"]),
                mutations=(f"pt{i}.items.append(3)", f"pt{i}.items = []", f"pt{i}.items = [4]",
                           f"Proto{i}.__len__ = lambda self: 7", f"pt{i}.__len__ = lambda: 9",
                           f"Proto{i}.__bool__ = lambda self: False", f"Proto{i}.__contains__ = lambda self, v: True",
                           f"Proto{i}.__iter__ = lambda self: iter([5])", f"Proto{i}.__call__ = lambda self, t: t - 1",
                           f"pt{i}.__call__ = lambda t: t * 0", f"Proto{i}.__eq__ = lambda self, other: True",
                           f"Proto{i}.__enter__ = lambda self: 3", f"if '__bool__' in vars(Proto{i}):\n    del Proto{i}.__bool__"))


OBJECT_KINDS = {
    "objects.class_swap": _class_swap,
    "objects.dict_direct": _dict_direct,
    "objects.class_attr": _class_attr,
    "objects.methods": _methods,
    "objects.nested": _nested,
    "objects.slots": _slots,
    "objects.getattr_hook": _getattr_hook,
    "objects.dataclass": _dataclass,
    "objects.enums": _enums,
    "objects.partials": _partials,
    "objects.descriptors": _descriptors,
    "objects.properties": _properties,
    "objects.helper_closure": _helper_closure,
    "objects.foreign_globals": _foreign_globals,
    "objects.submodules": _submodules,
    "objects.method_defaults": _method_defaults,
    "objects.dispatch": _dispatch,
    "objects.torch_flags": _torch_flags,
    "objects.protocols": _protocols,
}
