"""Guards on attribute reads: a missing attribute is guarded absent, a method by the function it binds, and
a class attribute of an instance made in the trace through the class lookup itself."""
import pytest
import torch

from helpers import check, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


class Cfg:
    pass


def test_getattr_default_and_hasattr_recompile_when_the_attribute_appears():
    cfg = Cfg()

    def f(x):
        return x * getattr(cfg, "scale", 1) + (10 if hasattr(cfg, "scale") else 0)
    stats = check(f, [(r(2),), (r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: setattr(cfg, "scale", 3)}, recompiles=1)
    assert stats["cache_hits"] == 2


class Scaled:
    def scale(self):
        return 2


def test_a_method_shadowed_on_the_instance_recompiles():
    obj = Scaled()

    def f(x):
        return x * obj.scale()
    stats = check(f, [(r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: setattr(obj, "scale", lambda: 7)}, recompiles=1)
    assert stats["cache_hits"] == 1


def test_a_method_patched_on_the_class_recompiles():
    class Local:
        def scale(self):
            return 2
    obj = Local()

    def f(x):
        return x * obj.scale()
    check(f, [(r(2),), (r(2),)], before={1: lambda fn: setattr(Local, "scale", lambda self: 5)}, recompiles=1)


class WithDefault:
    bias = None
    K = 2

    def __init__(self, t):
        self.t = t


def test_a_class_attribute_of_none_is_a_value_not_a_missing_attribute():
    def f(x):
        c = WithDefault(x)
        return (x if c.bias is None else x + c.bias), getattr(c, "bias", 5), hasattr(c, "bias")
    stats = check(f, [(r(2),), (r(2),)])
    assert stats["cache_hits"] == 1


def test_a_class_attribute_changed_after_the_compile_is_seen_by_instances_made_in_the_trace():
    def f(x):
        return x * WithDefault(x).K
    try:
        check(f, [(r(2),), (r(2),)], before={1: lambda fn: setattr(WithDefault, "K", 5)}, recompiles=1)
    finally:
        WithDefault.K = 2


class Base:
    K = 2


class Child(Base):
    pass


def test_a_class_attribute_read_through_type_of_an_object_recompiles_when_a_base_class_changes_it():
    # found by the state fuzzer (objects.class_attr): type(obj) was a constant of the trace, so type(obj).K too
    obj = Child()

    def f(x):
        return x + type(obj).K
    stats = check(f, [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: setattr(Base, "K", 3)}, recompiles=1)
    assert stats["cache_hits"] == 1
    Base.K = 2


class Before:
    k = 2

    @property
    def p(self):
        return 1


class After:
    k = 3
    p = 5


class ForwardBefore(torch.nn.Module):
    def forward(self, t):
        return t + 1


class ForwardAfter(ForwardBefore):
    def forward(self, t):
        return t * 10


SWAPPED = {"isinstance": (Before(), After, lambda obj: lambda x: x + isinstance(obj, After)),
           "property": (Before(), After, lambda obj: lambda x: x * obj.p),
           "module forward": (ForwardBefore(), ForwardAfter, lambda obj: lambda x: obj(x))}


@pytest.mark.parametrize("use", list(SWAPPED))
def test_an_object_whose_class_is_reassigned_recompiles(use):
    # found by the state fuzzer (objects.class_swap, objects.submodules): the object was guarded by identity
    # only, which `obj.__class__ = Other` keeps
    obj, other, make = SWAPPED[use]
    original = type(obj)
    try:
        stats = check(make(obj), [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: setattr(obj, "__class__", other)},
                      recompiles=1)
        assert stats["cache_hits"] == 1
    finally:
        obj.__class__ = original


class Elsewhere:
    K = 7


def test_isinstance_and_issubclass_recompile_when_the_bases_of_a_class_are_reassigned():
    # found by the state fuzzer (objects.class_attr): the answer came from the class's MRO, which was not guarded
    class Mine(Base):
        pass
    obj = Mine()

    def f(x):
        return x + isinstance(obj, Base) * 2 + issubclass(Mine, Base)
    stats = check(f, [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: setattr(Mine, "__bases__", (Elsewhere,))},
                  recompiles=1)
    assert stats["cache_hits"] == 1


def test_a_class_attribute_a_classmethod_called_through_an_instance_reads_recompiles_when_it_changes():
    # found by the state fuzzer (objects.methods): the class the method is bound to was a constant of the trace,
    # so cls.factor was too
    class Meth:
        factor = 2

        @classmethod
        def cm(cls, t):
            return t * cls.factor
    obj = Meth()

    def f(x):
        return obj.cm(x)
    stats = check(f, [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: setattr(Meth, "factor", 3)}, recompiles=1)
    assert stats["cache_hits"] == 1


def _protocol_object():
    class Protocol:       # a class per test: the changes patch it
        def __init__(self):
            self.items = [1, 2]

        def __len__(self):
            return len(self.items)

        def __call__(self, t):
            return t * len(self.items)
    return Protocol()


def _set_bool(obj):
    type(obj).__bool__ = lambda self: False


def _del_call(obj):
    del type(obj).__call__


PROTOCOL_USES = {   # found by the state fuzzer (objects.protocols): the answer was a constant of the trace
    "truth from __len__ and the object's state": (lambda obj: lambda x: x + (1 if obj else 0),
                                                 lambda obj: setattr(obj, "items", [])),
    "truth from a __bool__ the class gains": (lambda obj: lambda x: x + (1 if obj else 0), _set_bool),
    "__call__ replaced on the class": (lambda obj: lambda x: obj(x),
                                       lambda obj: setattr(type(obj), "__call__", lambda self, t: t - 1)),
    "callable() after the class loses __call__": (lambda obj: lambda x: x * callable(obj), _del_call),
}


@pytest.mark.parametrize("use", list(PROTOCOL_USES))
def test_a_protocol_method_or_the_state_it_reads_changed_after_the_compile_recompiles(use):
    obj = _protocol_object()
    make, change = PROTOCOL_USES[use]
    stats = check(make(obj), [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: change(obj)}, recompiles=1)
    assert stats["cache_hits"] == 1
