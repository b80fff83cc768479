"""Attribute and object semantics in traced code, differential against eager: hasattr on
tensors, classes and containers, locals(), typing generics, data descriptors, operators
defined by user classes, plain attributes next to parameters on modules, torch.nn modules built in the
trace (a loss in a forward), and item assignment into a model output."""
import collections.abc
import dataclasses
import functools
import typing
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import torch

import partialdyn
from helpers import Compiled, assert_compiled, check, r


def setup_function():
    partialdyn.reset()


def hasattr_on_a_tensor(x):
    return x + hasattr(x, "shape") + 2 * hasattr(x, "no_such_attribute") + 4 * hasattr(x, "view")


def test_hasattr_on_a_tensor_answers_for_methods_and_missing_names():
    check(hasattr_on_a_tensor, [(r(3),)])


class WithClassAttribute:
    flag = 1

    def method(self):
        return 2


def hasattr_on_a_class(x):
    return x + hasattr(WithClassAttribute, "flag") + 2 * hasattr(WithClassAttribute, "nope") + \
        4 * hasattr(WithClassAttribute, "method")


def test_hasattr_on_a_class_sees_class_attributes_and_methods():
    check(hasattr_on_a_class, [(r(3),)])


def hasattr_on_containers(x):
    d, items, pair = {"a": 1}, [1], (1, 2)
    return (hasattr(d, "keys"), hasattr(d, "a"), hasattr(items, "append"), hasattr(items, "keys"),
            hasattr(pair, "count"), hasattr(pair, "append"), x + 1)


def test_hasattr_on_dicts_lists_and_tuples_does_not_confuse_keys_with_attributes():
    check(hasattr_on_containers, [(r(3),)])


def getattr_of_a_missing_dict_attribute(x):
    return getattr({"k": 1}, "k", "default"), x + 1


def test_getattr_default_on_a_dict_key_that_is_not_an_attribute():
    check(getattr_of_a_missing_dict_attribute, [(r(3),)])


def uses_locals(x, scale=2):
    y = x + 1
    names = sorted(locals())
    return locals()["y"] * scale, names


def test_locals_is_a_snapshot_of_the_bound_variables():
    check(uses_locals, [(r(3),)])


def typing_checks(x, xs):
    return (isinstance(xs, typing.Sequence), isinstance(xs, collections.abc.Mapping),
            isinstance(x, collections.abc.Sequence), isinstance({}, typing.Mapping),
            typing.get_origin(List[int]) is list, typing.get_args(Optional[torch.Tensor]), x + 1)


def test_isinstance_with_typing_and_abc_generics():
    check(typing_checks, [(r(3), [1, 2])])


def annotated(xs: List[int], y: Optional[torch.Tensor] = None, shape: Tuple[int, ...] = ()) -> Dict[str, torch.Tensor]:
    return {"out": y + sum(xs) + len(shape)}


def calls_annotated(x):
    return annotated([1, 2], x, (1, 2, 3))["out"]


def test_functions_annotated_with_typing_generics_are_inlined():
    check(calls_annotated, [(r(3),)])


class Positive:
    """A data descriptor: the stored value is always non-negative."""

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, obj, objtype=None):
        return getattr(obj, self.slot)

    def __set__(self, obj, value):
        setattr(obj, self.slot, abs(value))


class WithDescriptor:
    value = Positive()

    def __init__(self, value):
        self.value = value


def descriptor_on_an_object_made_in_the_trace(x):
    holder = WithDescriptor(-3)
    holder.value = holder.value - 10
    return x * holder.value


def test_data_descriptor_set_and_get_run_on_an_object_made_in_the_trace():
    check(descriptor_on_an_object_made_in_the_trace, [(r(3),)])


GLOBAL_HOLDER = WithDescriptor(2)


def descriptor_on_a_global_object(x):
    GLOBAL_HOLDER.value = -5
    return x * GLOBAL_HOLDER.value


def test_assignment_through_a_descriptor_of_a_global_object_reads_back_through_it():
    check(descriptor_on_a_global_object, [(r(3),)], breaks=1)


class WithProperty:
    def __init__(self):
        self._celsius = 0.0

    @property
    def fahrenheit(self):
        return self._celsius * 9 / 5 + 32

    @fahrenheit.setter
    def fahrenheit(self, value):
        self._celsius = (value - 32) * 5 / 9


def property_setter(x):
    t = WithProperty()
    t.fahrenheit = 212.0
    return x + t._celsius, t.fahrenheit


def test_property_setter_runs_on_an_object_made_in_the_trace():
    check(property_setter, [(r(3),)])


class Money:
    def __init__(self, cents):
        self.cents = cents

    def __add__(self, other):
        if isinstance(other, Money):
            return Money(self.cents + other.cents)
        return NotImplemented

    def __radd__(self, other):
        return Money(self.cents + other)

    def __eq__(self, other):
        return isinstance(other, Money) and self.cents == other.cents

    def __lt__(self, other):
        return self.cents < other.cents


def user_operators(x):
    a, b = Money(3), Money(4)
    total = a + b
    shifted = 10 + a
    return x * total.cents + shifted.cents, total == Money(7), a < b, a != b, sum([a, b], 0).cents


def test_operators_defined_by_a_user_class_are_inlined_with_reflection():
    check(user_operators, [(r(3),)])


class Opinionless:
    def __eq__(self, other):
        return NotImplemented


def comparisons_neither_side_answers(x):
    a, b = Opinionless(), Opinionless()
    return x + (a == b) + (a == a) * 2 + (a != b) * 4


def argument_comparison_neither_side_answers(x, p, q):
    return x + 1 if p == q else x - 1


def test_an_equality_neither_operand_answers_is_identity():
    """Both __eq__ return NotImplemented: Python falls back to identity (was an internal error, eager fallback)."""
    check(comparisons_neither_side_answers, [(r(3),)])
    p, q = Opinionless(), Opinionless()
    check(argument_comparison_neither_side_answers, [(r(3), p, q), (r(3), p, p)], shared=(p, q), recompiles=None)


class Accumulator:
    def __init__(self):
        self.base = 1

    def __add__(self, other):
        return self.base + other


ACC = Accumulator()


def operator_on_a_mutable_global(x):
    return x * (ACC + 1)


def test_user_operator_on_a_global_object_reads_its_current_state():
    def bump(_):
        ACC.base += 10
    ACC.base = 1
    check(operator_on_a_mutable_global, [(r(3),), (r(3),)], before={1: bump}, recompiles=None)


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)
        self.scale = 2.0
        self.mode = "double"
        self.register_buffer("offset", torch.ones(3))

    def forward(self, x):
        y = self.linear(x) * self.scale + self.offset
        if self.mode == "double":
            y = y * 2
        return y, hasattr(self, "scale"), hasattr(self, "linear"), hasattr(self, "missing"), \
            isinstance(self.linear.weight, torch.nn.Parameter)


def test_module_plain_attributes_parameters_and_buffers_side_by_side():
    check(Scaled(), [(r(2, 3),), (r(4, 3),)])


def module_attribute_changed(x):
    return MODULE(x)[0]


MODULE = Scaled()


def test_module_plain_attribute_change_between_calls_is_seen():
    def switch(_):
        MODULE.mode = "single"
    check(module_attribute_changed, [(r(2, 3),), (r(2, 3),)], before={1: switch}, recompiles=None)


def sequence_type_check(x, shape: Sequence[int]):
    if isinstance(shape, (list, tuple)) and all(isinstance(s, int) for s in shape):
        return x.reshape(*shape)
    return x


def test_library_style_isinstance_checks_on_sequences_of_ints():
    check(sequence_type_check, [(r(6), [2, 3]), (r(6), (3, 2))], recompiles=None)


class _Doubling(torch.nn.Module):
    factor = 2.0

    def forward(self, x):
        return x * self.factor


class _DoublingPlusOne(_Doubling):
    factor = 3.0

    def forward(self, x):
        # zero-argument super() calls a method; the two-argument form reads a class attribute past this class
        return super().forward(x) + super(_DoublingPlusOne, self).factor


def test_super_in_both_forms_reads_past_the_class_in_the_mro():
    check(_DoublingPlusOne(), [(r(2, 3),), (r(4, 3),)])


class HeadWithLoss(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.ignore = 1

    def forward(self, x, labels):
        logits = self.lin(x)
        loss_fct = torch.nn.CrossEntropyLoss(ignore_index=self.ignore, label_smoothing=0.1)
        mse = torch.nn.MSELoss(reduction="sum")
        act = torch.nn.GELU(approximate="tanh")
        return loss_fct(logits, labels) + mse(act(logits), logits.detach()), torch.nn.Flatten(0)(logits)


def labels(n, seed=0):
    return torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))


def test_a_loss_module_built_in_forward_is_traced_with_no_break_and_one_compile():
    stats = check(HeadWithLoss(), [(r(2, 4), labels(2)), (r(3, 4), labels(3, 1)), (r(5, 4), labels(5, 2))])
    assert stats["compiles"] == 1


def test_a_constructor_argument_read_from_the_module_is_guarded():
    def set_ignore(m):
        m.ignore = 2
    check(HeadWithLoss(), [(r(4, 4), labels(4)), (r(4, 4), labels(4))], before={1: set_ignore}, recompiles=1)


def test_a_symbolic_constructor_argument_is_specialized_and_guarded():
    def f(x, p):
        return torch.nn.Flatten(start_dim=p)(x) * 2
    check(f, [(r(2, 3, 4), 1), (r(2, 3, 4), 0)], recompiles=1)


def test_a_module_built_in_the_trace_is_a_fresh_object_per_call_with_its_attributes():
    def f(x):
        drop = torch.nn.Dropout(p=0.0)
        drop.extra = 3
        return drop(x) + drop.extra, drop
    opt = partialdyn.optimize(f)
    (a, first), (b, second) = opt(r(2)), opt(r(3))
    torch.testing.assert_close(a, r(2) + 3)
    torch.testing.assert_close(b, r(3) + 3)
    assert first is not second and isinstance(second, torch.nn.Dropout) and second.p == 0.0 and second.extra == 3
    stats = partialdyn.stats(opt)
    assert stats["graph_breaks"] == 0 and stats["compiles"] == 1 and stats["cache_hits"] == 1, stats


def test_a_module_with_parameters_built_in_the_trace_still_runs_in_python():
    def f(x):
        return torch.nn.LayerNorm(3)(x) + 1
    check(f, [(r(2, 3),), (r(4, 3),)], breaks=1)
    assert [e["reason"] for e in partialdyn.events("graph_break")] == [
        "call to torch.nn.modules.normalization.LayerNorm is not traceable: the module has parameters or buffers"]


class _SiluActivation(torch.nn.Module):
    """A subclass that only adds a forward (transformers' activation classes): built like torch.nn's own."""

    def forward(self, x):
        return torch.nn.functional.silu(x)


class _ScaledActivation(torch.nn.Module):
    def __init__(self, scale=2.0):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


class _Instantier(dict):
    """transformers' ClassInstantier: each lookup builds a new module from the class stored under the key."""

    def __getitem__(self, key):
        content = super().__getitem__(key)
        cls, kwargs = content if isinstance(content, tuple) else (content, {})
        return cls(**kwargs)


ACTIVATIONS = _Instantier({"silu": _SiluActivation, "relu": (torch.nn.ReLU, {"inplace": False})})


class _GatedByName(torch.nn.Module):
    def __init__(self, activation):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.activation = activation

    def forward(self, x):
        return self.lin(x) * ACTIVATIONS[self.activation](x)


@pytest.mark.parametrize("activation", ["silu", "relu"])
def test_a_lookup_that_builds_a_fresh_module_each_call_compiles_once(activation):
    """The dict subclass's own __getitem__ is traced (a lookup read and guarded by identity would recompile on
    every call: a new object each time)."""
    stats = check(_GatedByName(activation), [(r(2, 4),), (r(3, 4),), (r(5, 4),)])
    assert stats["compiles"] == 1 and stats["graph_breaks"] == 0, stats


def test_a_lookup_through_a_python_getitem_follows_the_stored_entry():
    def swap(m):
        ACTIVATIONS["silu"] = (torch.nn.ReLU, {})
    try:
        check(_GatedByName("silu"), [(r(2, 4),), (r(2, 4),)], before={1: swap}, recompiles=1)
    finally:
        ACTIVATIONS["silu"] = _SiluActivation


def test_a_python_getitem_replaced_on_the_class_between_calls_is_seen():
    """`table[key]` runs the class's __getitem__ as traced code; the class's entry was not guarded, so after
    `Table.__getitem__` was replaced the cache hit still ran the old one (x * 2 + 1 where eager gives x * 7 + 7)."""
    class Table:
        def __init__(self, entries):
            self.entries = entries

        def __getitem__(self, key):
            return self.entries[key]

    table = Table({"scale": 2, "shift": 1})

    def scale_and_shift(x):
        return x * table["scale"] + table["shift"]

    check(scale_and_shift, [(r(3),)] * 2, recompiles=1,
          before={1: lambda _: setattr(Table, "__getitem__", lambda self, key: 7)})


def test_indexing_a_model_output_of_the_caller_compiles_once_with_no_break():
    """A model output's items are its fields: read and guarded, its Python __getitem__ not traced (tracing it
    broke on OrderedDict.keys every call)."""
    outputs = pytest.importorskip("transformers.modeling_outputs")
    out = outputs.BaseModelOutput(last_hidden_state=r(2), hidden_states=(r(2),))

    def f(x, o):
        return x + o[0] + o["last_hidden_state"]
    stats = check(f, [(r(2), out), (r(2), out)], shared=(out,))
    assert stats["compiles"] == 1 and stats["graph_breaks"] == 0, stats


def test_a_module_subclass_with_its_own_init_built_in_the_trace_is_traced_without_a_break():
    """Its __init__ (super().__init__() and `self.scale = scale`) is traced on a module made in the trace: a graph
    break before ("call to ..._ScaledActivation is not traceable")."""
    def f(x):
        return _ScaledActivation(3.0)(x) + _ScaledActivation()(x)
    check(f, [(r(2, 3),), (r(4, 3),), (r(5, 3),)], breaks=0)


class _ScaledIdentity(torch.nn.Identity):
    factor = 2.0

    def forward(self, x):
        return x * self.factor


class _ReluWithPropertySetter(torch.nn.ReLU):
    SET = []

    @property
    def inplace(self):
        return self.__dict__.get("_inplace", False)

    @inplace.setter
    def inplace(self, value):
        _ReluWithPropertySetter.SET.append(value)
        self.__dict__["_inplace"] = value


class _ReluWithOwnCopy(torch.nn.ReLU):
    def __deepcopy__(self, memo):
        return "not a module"


def test_module_subclasses_with_class_attributes_properties_or_copy_hooks_are_built_in_python():
    """Built in the trace, a property setter would run once and a returned copy would come from the class's own
    __deepcopy__: such classes are built at a break, as eager.  A constant class attribute (`factor`) is traced
    and guarded: the patched class gives eager's result."""
    def scaled(x):
        return _ScaledIdentity()(x)

    def with_setter(x):
        return _ReluWithPropertySetter()(x) + 1

    def returned(x):
        m = _ReluWithOwnCopy()
        return m(x), m
    try:
        check(scaled, [(r(2),), (r(2),)], before={1: lambda fn: setattr(_ScaledIdentity, "factor", 3.0)}, breaks=None,
              recompiles=None)
    finally:
        _ScaledIdentity.factor = 2.0
    _ReluWithPropertySetter.SET.clear()
    opt = partialdyn.optimize(with_setter, backend="eager")
    for _ in range(3):
        torch.testing.assert_close(opt(r(3)), with_setter(r(3)))
    assert _ReluWithPropertySetter.SET == [False] * 6
    opt = partialdyn.optimize(returned, backend="eager")
    for _ in range(2):
        out, module = opt(r(3))
        assert type(module) is _ReluWithOwnCopy


_HOOK_CALLS = []


def _times_ten(module, args, output):
    _HOOK_CALLS.append(1)
    return output * 10


def test_a_hook_registered_on_a_module_built_in_the_trace_runs_like_eager():
    """The registration runs in Python on the module the rest of the frame uses (it was made on the
    trace-time module: the hook never ran)."""
    def f(x):
        m = torch.nn.ReLU()
        m.register_forward_hook(_times_ten)
        return m(x) + 1
    _HOOK_CALLS.clear()
    want = f(r(3))
    assert len(_HOOK_CALLS) == 1
    opt = partialdyn.optimize(f, backend="eager")
    for _ in range(2):
        _HOOK_CALLS.clear()
        torch.testing.assert_close(opt(r(3)), want)
        assert len(_HOOK_CALLS) == 1
    assert_compiled(opt, fallbacks=None)


def test_item_assignment_of_a_field_into_a_model_output_made_in_the_trace():
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=x + 1)
        out["hidden_states"] = (x, x * 2)
        out["last_hidden_state"] = out.last_hidden_state - 3
        return out, out.hidden_states[1] + out["last_hidden_state"], out.to_tuple()
    check(f, [(r(2),), (r(3),)])


def test_a_model_output_method_the_tracer_does_not_model_runs_on_the_output_at_its_break():
    """OrderedDict's methods are bound to an output made in the trace, so the break step calls them on the
    rebuilt output (the class's unbound method was called: TypeError)."""
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=x + 1, hidden_states=(x,))
        out.move_to_end("last_hidden_state")
        return list(out), out.last_hidden_state * 2
    check(f, [(r(2),), (r(3),)], breaks=1)


class _Lazy:
    def __init__(self, x):
        self.x = x

    @functools.cached_property
    def doubled(self):
        return self.x * 2


class _LazyChild(_Lazy):
    @property
    def doubled_by_parent(self):
        return super().doubled


def test_a_cached_property_of_an_object_made_in_the_trace_reads_its_value():
    """A non-data descriptor of the class goes through its __get__, read directly or through super() (the
    descriptor object itself was the value)."""
    def f(x):
        return _Lazy(x).doubled + 1, _LazyChild(x).doubled_by_parent
    check(f, [(r(2),), (r(3),)], breaks=2)


class _Registry(dict):
    def add(self, x, name):
        return x + 1, super().setdefault(name, 0)


def test_a_builtin_method_found_through_super_runs_on_its_receiver_at_a_break():
    """`super().setdefault` of a dict subclass is dict's method bound to the object at the break (rebuilt as an
    attribute named `dict.setdefault`: AttributeError)."""
    registry = _Registry()
    check(registry.add, [(r(2), "a"), (r(2), "b"), (r(2), "a")], breaks=2, recompiles=2)


def test_views_of_a_model_output_made_in_the_trace_are_live_and_traced_without_a_break():
    """keys(), values() and items() are OrderedDict views of the output's dict part: the fields that are not None,
    in the order they were set, a field set after the view was taken included (they were lists, taken once)."""
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=x + 1, attentions=(x * 3,))
        keys, values, items = out.keys(), out.values(), out.items()
        out.hidden_states = (x * 2,)
        return (list(keys), [v for v in values], list(items)[-1][1][0], len(values), type(values).__name__,
                "hidden_states" in keys, list(reversed(keys)))
    check(f, [(r(2),), (r(3),)], breaks=0)


def test_iteration_len_in_and_get_on_a_model_output_follow_its_dict_part():
    """Iterating a model output yields its keys (it was a graph break); `in` and get() run ModelOutput's own
    methods, the old cache names included, down to the dict part."""
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=x + 1, hidden_states=(x,))
        names = [k for k in out]
        return (names, len(out), "hidden_states" in out, "attentions" in out, "past_key_values" in out,
                out.get("hidden_states")[0] * 2, out.get("attentions", 5), out.to_tuple()[0])
    check(f, [(r(2),), (r(3),)], breaks=0)


def test_a_model_output_subclass_that_overrides_keys_is_traced_through_its_own_method():
    """The class's keys() runs, reaching OrderedDict's through super() (the tracer answered every output's
    keys() itself)."""
    utils = pytest.importorskip("transformers.utils")

    @dataclasses.dataclass
    class Visible(utils.ModelOutput):
        logits: torch.Tensor = None
        hidden: torch.Tensor = None

        def keys(self):
            return [k for k in super().keys() if k != "hidden"]

    def f(x):
        out = Visible(logits=x + 1, hidden=x * 2)
        return out.keys(), [out[k] for k in out.keys()]
    check(f, [(r(2),), (r(3),)], breaks=0)


def test_a_returned_model_output_keeps_its_keys_in_the_order_eager_sets_them():
    """The dict part follows the fields' order whatever the order of the arguments, then the order fields were
    set in; a rebuilt output gets that order back (it was the arguments' order, then the fields' order)."""
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(hidden_states=(x,), last_hidden_state=x + 1)
        late = outputs.BaseModelOutput(last_hidden_state=x + 1, attentions=(x * 3,))
        late.hidden_states = (x * 2,)
        later = outputs.BaseModelOutput(attentions=(x * 3,))
        later["last_hidden_state"] = x - 1
        return list(out), out, late, later
    check(f, [(r(2),), (r(3),)])


def test_an_attribute_of_a_model_output_that_is_not_a_field_stays_out_of_its_dict_part():
    """ModelOutput.__setattr__ puts only fields into the dict part: another name runs in Python (it entered the
    dict part, and the rebuild passed it to the constructor: TypeError)."""
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=x + 1)
        out.note = x * 2
        return list(out), out.note, out
    check(f, [(r(2),), (r(3),)], breaks=1)


@dataclasses.dataclass(eq=False)      # compared by its attributes
class _Tagged:
    value: torch.Tensor
    scale: float = 1.0


def test_a_dataclass_made_in_the_trace_keeps_an_attribute_that_is_not_a_field():
    """The rebuild sets it after calling the class (it was passed to the constructor: TypeError)."""
    def f(x):
        point = _Tagged(x + 1)
        point.tag = "first"
        return point
    check(f, [(r(2),), (r(3),)])


@dataclasses.dataclass(frozen=True)
class _Frozen:
    value: torch.Tensor


@dataclasses.dataclass(slots=True)
class _Slotted:
    value: torch.Tensor


def test_assignments_eager_refuses_on_a_dataclass_made_in_the_trace_raise_as_in_eager():
    """A frozen dataclass's own __setattr__ and an instance without __dict__ run in Python (the trace assigned)."""
    def frozen(x):
        point = _Frozen(x + 1)
        point.value = x
        return point.value

    def slotted(x):
        point = _Slotted(x + 1)
        point.extra = x
        return point.extra
    check(frozen, [(r(2),)], breaks=None)
    check(slotted, [(r(2),)], breaks=None)
    assert len(partialdyn.events("graph_break")) >= 2      # the assignments ran at breaks, not as traced


@dataclasses.dataclass(init=False)
class _OwnInit:
    a: int

    def __init__(self, x):
        self.a = x * 2


def test_a_dataclass_with_an_init_of_its_own_runs_it():
    """dataclasses keeps an __init__ the class defines; the trace built the instance from the fields instead, a
    wrong result (`x * _OwnInit(3).a` was x * 3, eager x * 6).  Its __init__ is traced now."""
    def f(x):
        return x * _OwnInit(3).a, _OwnInit(x.shape[0]), _OwnInit(5)
    check(f, [(r(2),), (r(3),), (r(4),)], breaks=0)


@dataclasses.dataclass(init=False, frozen=True, slots=True)
class _Spec:
    """The shape of torch.utils._pytree.TreeSpec: frozen, slots, an __init__ of its own setting the fields with
    object.__setattr__ and calling __post_init__, which computes the rest."""
    kind: str
    children: list
    count: int = dataclasses.field(init=False)

    def __init__(self, kind, children):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "children", children)
        self.__post_init__()

    def __post_init__(self):
        object.__setattr__(self, "count", 1 + sum(child.count for child in self.children))


def test_a_frozen_slotted_dataclass_built_by_its_own_init_is_traced_and_rebuilt():
    """`_Spec(...)` was a graph break; now its __init__ is traced (object.__setattr__ fills its slots) and the
    instance outliving the trace is rebuilt through its slots, past the frozen __setattr__."""
    def f(x):
        leaf = _Spec("leaf", [])
        root = _Spec("node", [leaf, _Spec("leaf", [])])
        return x * root.count, root, root.children[0] is leaf, root == _Spec("node", [leaf, leaf])
    check(f, [(r(2),), (r(3),), (r(4),)], breaks=0)


def test_assigning_or_deleting_a_field_of_a_frozen_dataclass_built_by_its_own_init_raises_as_in_eager():
    def assign(x):
        spec = _Spec("leaf", [])
        spec.kind = "node"
        return x

    def delete(x):
        spec = _Spec("leaf", [])
        del spec.kind
        return x
    for fn in (assign, delete):     # at the break (a `del` there runs the rest of the frame in Python)
        check(fn, [(r(2),)], breaks=1, fallbacks=None, graph_every_call=False)
        with pytest.raises(dataclasses.FrozenInstanceError):
            partialdyn.optimize(fn)(r(2))


@dataclasses.dataclass(init=False, slots=True)
class _Counter:
    value: int

    def __init__(self):
        try:
            self.value += 1         # the slot is not set yet: AttributeError, as in eager
        except AttributeError:
            self.value = 0


def test_an_unset_slot_of_a_dataclass_made_in_the_trace_raises_attribute_error():
    def f(x):
        return x + _Counter().value, _Counter()
    check(f, [(r(2),), (r(3),)], breaks=0)


@dataclasses.dataclass(eq=False)      # compared by its attributes
class _Checked:
    value: torch.Tensor
    scale: float = 2.0
    tags: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.tags.append("checked")
        self.value = self.value * self.scale


def test_a_dataclass_with_a_post_init_is_built_by_its_generated_init():
    """A __post_init__ was a graph break at the construction (the fields alone cannot say what it does); the
    generated __init__ is traced, __post_init__ with it."""
    def f(x):
        made = _Checked(x + 1)
        return made.value, made.tags, made, _Checked(x, scale=3.0)
    check(f, [(r(2),), (r(3),), (r(4),)], breaks=0)


def test_a_model_output_built_from_pairs_in_its_first_field_runs_in_python():
    """ModelOutput.__post_init__ sets the fields a first field of (name, value) pairs names when the others are
    None (the trace kept the list as the first field)."""
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=[("hidden_states", (x + 1,))])
        return list(out), len(out), x * 2
    check(f, [(r(2),), (r(3),)], breaks=1)


class Base:
    def __add__(self, other):
        return "Base.__add__"

    def __eq__(self, other):
        return "Base.__eq__"

    def __lt__(self, other):
        return "Base.__lt__"

    __hash__ = object.__hash__


class Derived(Base):
    def __radd__(self, other):
        return "Derived.__radd__"

    def __eq__(self, other):
        return "Derived.__eq__"

    def __gt__(self, other):
        return "Derived.__gt__"


BASE, DERIVED = Base(), Derived()


def subclass_on_the_right(x):
    made = Base() + Derived(), Derived() + Base(), Base() == Derived(), Base() < Derived(), Base() != Derived()
    held = BASE + DERIVED, BASE == DERIVED, BASE < DERIVED, DERIVED > BASE
    return x + 1, made, held


def test_a_subclass_on_the_right_answers_first_with_its_reflected_method():
    """The data model: the right operand's reflected method comes first when its type is a proper subclass of the
    left's that overrides it (for comparisons, any proper subclass); the rule always asked the left first."""
    check(subclass_on_the_right, [(r(3),)])


class DeclinesItself:
    def __add__(self, other):
        return NotImplemented

    def __radd__(self, other):
        return "DeclinesItself.__radd__"

    def __gt__(self, other):
        return "DeclinesItself.__gt__"


def same_type_operands(x):
    try:
        added = DeclinesItself() + DeclinesItself()
    except TypeError:
        added = "TypeError"
    return x + 1, added, DeclinesItself() < DeclinesItself()


def test_operands_of_the_same_type_skip_the_reflected_method_except_for_comparisons():
    """`a + b` of one type never calls __radd__ (TypeError when __add__ declines), but `a < b` does ask b's __gt__;
    the rule called __radd__."""
    check(same_type_operands, [(r(3),)])


class InPlaceDeclines:
    def __init__(self, v):
        self.v = v

    def __iadd__(self, other):
        return NotImplemented

    def __add__(self, other):
        return InPlaceDeclines(self.v + 100 * other) if isinstance(other, int) else NotImplemented


class AddsOnTheRight:
    def __radd__(self, other):
        return InPlaceDeclines(other.v + 7)


def in_place_falls_back(x):
    held = kept = InPlaceDeclines(1)
    other = InPlaceDeclines(1)
    try:
        held += 2
        other += AddsOnTheRight()
    except TypeError:
        return x, "TypeError"
    return x + held.v + other.v, kept.v


def test_an_in_place_method_that_declines_falls_back_to_add_then_radd():
    """`a += b` with __iadd__ returning NotImplemented is `a = a + b` (__add__, then b's __radd__): the rule
    raised TypeError."""
    check(in_place_falls_back, [(r(3),)])


class Half(float):
    def __radd__(self, other):
        return "Half.__radd__"


HALF = Half(0.5)


def float_subclass_operand(x):
    n = x.shape[0]
    return x + HALF, HALF + x, x * HALF, x < HALF, n + HALF, 1.0 + HALF, 1 + HALF


def test_a_tensor_takes_a_float_subclass_where_an_int_declines_it():
    """Tensor.__add__ takes a float subclass (no __radd__ of it); int.__add__ declines a float, so `n + HALF`
    and `1 + HALF` call its __radd__, and so does `1.0 + HALF` (a float subclass on the right comes first).
    The rule called __radd__ for the tensor too."""
    check(float_subclass_operand, [(r(3),), (r(4),)])


def test_an_operator_method_patched_or_deleted_on_the_class_between_calls_is_seen():
    """`3 + half` runs Half.__radd__ (int declines a float); replaced on the class, then deleted (float's own
    __radd__ takes over), it must give the new answers: the lookups of operator methods were not guarded, so
    the cache hit kept calling the old method (x * 30.5 after the patch; eager x * 7)."""
    class Half(float):
        def __radd__(self, other):
            return other * 10 + float(self)

    half = Half(0.5)

    def int_plus_float_subclass(x):
        return x * (3 + half)

    check(int_plus_float_subclass, [(r(3),)] * 3, recompiles=2,
          before={1: lambda _: setattr(Half, "__radd__", lambda self, other: 7.0),
                  2: lambda _: delattr(Half, "__radd__")})


def test_a_size_plus_a_float_subclass_with_no_methods_of_its_own_is_traced_like_a_float():
    """int.__add__ declines a float and float.__radd__ adds the values: `x.size(0) + half` is n + 0.5.  A
    symbolic size refused the subclass (TypeError at trace time, so every call fell back to eager)."""
    class Plain(float):
        pass

    half = Plain(0.5)

    def size_plus_float_subclass(x):
        return x + (x.size(0) + half)

    check(size_plus_float_subclass, [(r(2),), (r(3),), (r(4),)], policy="dynamic")


class DeclinesInequality:
    def __ne__(self, other):
        return NotImplemented


class Equality:
    def __eq__(self, other):
        return "Equality.__eq__"

    __hash__ = object.__hash__


def inequality_falls_back_to_equality(x):
    return x + 1, DeclinesInequality() != Equality(), Equality() != DeclinesInequality()


def test_inequality_a_side_declines_is_the_inverted_equality_of_the_other():
    """object.__ne__ inverts __eq__: `a != b` with a's __ne__ declining is `not (b == a)`; the rule returned
    b's __eq__ uninverted."""
    check(inequality_falls_back_to_equality, [(r(3),)])


class Pair(tuple):
    def __radd__(self, other):
        return "Pair.__radd__"


PAIR = Pair((1, 2))


def tuple_subclass_operands(x):
    try:
        concatenated = PAIR + DERIVED
    except TypeError:
        concatenated = "TypeError"
    return x + 1, x.shape + PAIR, (1,) + PAIR, concatenated


def tuple_subclass_and_an_object_made_in_the_trace(x):
    return x + 1, PAIR + Derived()


def test_a_tuple_subclass_with_a_reflected_method_concatenates_at_once_as_its_number_method():
    """A tuple subclass defining __radd__ has a number method: `PAIR + obj` concatenates at once (TypeError,
    before obj's __radd__), and torch.Size's own __add__ takes it (`x.shape + PAIR` is a Size); a plain tuple
    has none, so `(1,) + PAIR` asks Pair.__radd__.  The rule called the right operand's __radd__ for both.
    The shape's + breaks: the trace does not tell which tuple subclasses Size.__add__ takes."""
    check(tuple_subclass_operands, [(r(3),)], breaks=1)


def test_a_tuple_subclass_concatenating_an_object_made_in_the_trace_breaks_rather_than_asking_its_radd():
    """Tuple concatenation raises TypeError for a non-tuple (before the object's __radd__): the trace does not
    decline it for an object it holds as fields, so it breaks; it called Derived.__radd__."""
    check(tuple_subclass_and_an_object_made_in_the_trace, [(r(3),)], breaks=1)


class _KernelTaggedSiLU(torch.nn.Module):
    """Like transformers' activations under their kernel decorator: a forward and constant class attributes."""
    kernel_layer_name = "SiLU"
    kernel_condition = staticmethod(lambda: False)

    def forward(self, x):
        return torch.nn.functional.silu(x)


class _ScaledByClass(torch.nn.Module):
    factor = 2.0
    name = "scaled"

    def forward(self, x):
        return x * self.factor if self.name == "scaled" else x


def test_an_activation_with_constant_class_attributes_built_in_forward_is_traced_without_a_break():
    """`ACT2FN[config.hidden_act](x)` in transformers' heads builds SiLUActivation & co in forward; their class
    carries `kernel_layer_name`: a graph break before ("call to ... is not traceable")."""
    def head(x):
        return _KernelTaggedSiLU()(x * 2) + 1
    check(head, [(r(2, 3),), (r(4, 3),), (r(5, 3),)], breaks=0)


def test_a_class_attribute_read_from_a_module_built_in_forward_is_guarded_and_a_patched_class_is_seen():
    def scaled(x):
        return _ScaledByClass()(x) + 1
    compiled = Compiled(scaled)
    try:
        torch.testing.assert_close(compiled(r(3)), r(3) * 2.0 + 1)
        _ScaledByClass.factor = 3.0
        torch.testing.assert_close(compiled(r(3)), r(3) * 3.0 + 1)
        _ScaledByClass.name = "other"
        torch.testing.assert_close(compiled(r(3)), r(3) + 1)
    finally:
        _ScaledByClass.factor, _ScaledByClass.name = 2.0, "scaled"
    compiled.stats(breaks=0, recompiles=None)


class GeluWithInit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = torch.nn.functional.gelu

    def forward(self, x):
        return self.act(x)


def test_a_module_whose_init_sets_its_activation_function_compiles_with_no_break_when_built_in_forward():
    """transformers' heads call `ACT2FN[config.hidden_act](x)`, which builds GELUActivation (its own __init__:
    `self.act = nn.functional.gelu`) on every call: a graph break before."""
    def f(x):
        return GeluWithInit()(x * 2) + 1
    stats = check(f, [(r(2, 3),), (r(4, 3),), (r(5, 3),)], breaks=0)
    assert stats["compiles"] == 1, stats


@pytest.mark.parametrize("name", ["gelu", "gelu_python", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_10",
                                  "gelu_accurate", "mish"])
def test_a_transformers_activation_with_its_own_init_from_act2fn_compiles_fully(name):
    """GELUActivation binds `self._gelu_python` or `nn.functional.gelu`, GELUTanh a functools.partial, the clipped
    one its bounds, MishActivation `nn.functional.mish`: all set by their __init__, all traced."""
    activations = pytest.importorskip("transformers.activations")

    def head(x):
        return activations.ACT2FN[name](x - 0.5) * 2
    check(head, [(r(2, 3),), (r(4, 3),), (r(5, 3),)], breaks=0)


class _ScaledByClassInInit(torch.nn.Module):
    scale = 2.0

    def __init__(self):
        super().__init__()
        self.factor = self.scale

    def forward(self, x):
        return x * self.factor


def test_a_class_attribute_read_by_init_of_a_module_built_in_forward_is_guarded():
    def f(x):
        return _ScaledByClassInInit()(x) + 1
    try:
        check(f, [(r(3),), (r(3),)], before={1: lambda _: setattr(_ScaledByClassInInit, "scale", 5.0)},
              recompiles=1)
    finally:
        _ScaledByClassInInit.scale = 2.0


class _InitReplaced(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.shift = 1.0

    def forward(self, x):
        return x + self.shift


def test_an_init_replaced_on_the_class_after_compiling_is_seen():
    def other_init(self):
        torch.nn.Module.__init__(self)
        self.shift = -4.0

    def f(x):
        return _InitReplaced()(x) * 2
    original = _InitReplaced.__init__
    try:
        check(f, [(r(3),), (r(3),)], before={1: lambda _: setattr(_InitReplaced, "__init__", other_init)},
              recompiles=1)
    finally:
        _InitReplaced.__init__ = original


INIT_ACTIVATION = torch.nn.functional.gelu


class _ActivationFromGlobal(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = INIT_ACTIVATION

    def forward(self, x):
        return self.act(x)


def test_a_global_read_by_init_of_a_module_built_in_forward_is_guarded():
    def swap(_):
        global INIT_ACTIVATION
        INIT_ACTIVATION = torch.relu

    def f(x):
        return _ActivationFromGlobal()(x) + 1
    try:
        check(f, [(r(3),), (r(3),)], before={1: swap}, recompiles=1)
    finally:
        globals()["INIT_ACTIVATION"] = torch.nn.functional.gelu


class _BoundInInit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = self._python_version

    def _python_version(self, x):
        return x * 0.5

    def forward(self, x):
        return self.act(x)


def test_a_method_bound_by_init_and_patched_on_the_class_later_is_seen():
    """`self.act = self._gelu_python` in GELUActivation: the method is read through the class, guarded."""
    def f(x):
        return _BoundInInit()(x) - 1
    original = _BoundInInit._python_version
    try:
        check(f, [(r(3),), (r(3),)], recompiles=1,
              before={1: lambda _: setattr(_BoundInInit, "_python_version", lambda self, x: x * 7)})
    finally:
        _BoundInInit._python_version = original


def test_a_module_built_by_its_own_init_outlives_the_trace_as_a_fresh_module_per_call():
    """Returned, it is a copy of the module the trace built: its own type, its attributes, a method bound by
    __init__ bound to the copy; a new object on every call, as eager's."""
    def f(x):
        m = _BoundInInit()
        return m(x), m
    opt = partialdyn.optimize(f, backend="eager")
    (a, first), (b, second) = opt(r(3)), opt(r(3))
    torch.testing.assert_close(a, r(3) * 0.5)
    torch.testing.assert_close(b, r(3) * 0.5)
    assert first is not second and type(second) is _BoundInInit and second.act.__self__ is second
    assert second.training and not list(second.parameters())
    torch.testing.assert_close(second(r(3)), r(3) * 0.5)
    assert_compiled(opt)


_BUILT = []


class _CountsItsBuilds(torch.nn.Module):
    def __init__(self, tag):
        super().__init__()
        _BUILT.append(tag)
        self.tag = tag

    def forward(self, x):
        return x * len(self.tag)


def test_what_init_does_to_the_caller_world_happens_once_per_call_as_in_eager():
    def f(x):
        return _CountsItsBuilds("abc")(x) + _CountsItsBuilds("de")(x)
    _BUILT.clear()
    want = f(r(3))
    assert _BUILT == ["abc", "de"]
    opt = partialdyn.optimize(f, backend="eager")
    for _ in range(3):
        _BUILT.clear()
        torch.testing.assert_close(opt(r(3)), want)
        assert _BUILT == ["abc", "de"]
    assert_compiled(opt)


class _PrintsInInit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        print("built")
        self.k = 2.0

    def forward(self, x):
        return x * self.k


class _BufferInInit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("offset", torch.ones(3))

    def forward(self, x):
        return x + self.offset


class _ParameterInInit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.weight


class _TensorInInit(torch.nn.Module):
    def __init__(self, t):
        super().__init__()
        self.t = t

    def forward(self, x):
        return x * self.t


class _SubmoduleInInit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = torch.nn.GELU()

    def forward(self, x):
        return self.act(x)


@pytest.mark.parametrize("build, reason", [
    (lambda x: _PrintsInInit(), "print() has a side effect"),
    (lambda x: _BufferInInit(), "register_buffer on a module built in the trace"),
    (lambda x: _ParameterInInit(), "call to torch.nn.parameter.Parameter is not traceable"),
    (lambda x: _TensorInInit(x + 1), "assignment of a tensor (parameters and buffers are not traced) to an "
                                     "attribute of a _TensorInInit made in the trace"),
    (lambda x: _SubmoduleInInit(), "assignment of a module (submodules are not traced) to an attribute of a "
                                   "_SubmoduleInInit made in the trace"),
], ids=["print", "buffer", "parameter", "tensor", "submodule"])
def test_a_module_whose_init_cannot_be_traced_is_built_in_python_with_eager_result(build, reason):
    """The break is at the construction in `f` (the lambda that builds the module then compiles on its own and
    breaks there too)."""
    def f(x):
        return build(x)(x) + 1
    check(f, [(r(3),), (r(3),)], breaks=None)
    assert [e["reason"] for e in partialdyn.events("graph_break")][0] == reason


class _SkipsModuleInit(torch.nn.Module):
    def __init__(self):
        self.k = 2

    def forward(self, x):
        return x * self.k


class _ChecksItsBounds(torch.nn.Module):
    def __init__(self, low, high):
        if low > high:
            raise ValueError(f"low should be <= high (got {low}, {high})")
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x):
        return torch.clip(x, self.low, self.high)


def test_an_init_that_skips_nn_module_init_or_raises_gives_eager_exception():
    """Without nn.Module.__init__ the call raises AttributeError (it was an internal error of the engine, reading
    the hooks of the uninitialized module); a ValueError raised by __init__ reaches the caller."""
    def skips(x):
        return _SkipsModuleInit()(x)

    def bounded(x, high):
        return _ChecksItsBounds(-1, high)(x)
    assert check(skips, [(r(3),)], breaks=None)["internal_errors"] == 0
    check(bounded, [(r(3), 2), (r(3), 0), (r(3), -3)], breaks=None, recompiles=None)


def test_a_module_built_by_its_own_init_is_used_again_after_a_graph_break():
    def f(x):
        m = _ScaledActivation(4.0)
        y = m(x)
        print("break")
        return m(y) + m.scale
    check(f, [(r(3),), (r(4),)], breaks=1)


def test_a_module_built_by_its_own_init_holding_a_builtin_function_is_used_again_after_a_graph_break():
    """GELUActivation's `self.act = nn.functional.gelu` (a builtin function): rebuilding the values live at the
    break looked for them inside the module's copy, walking its attributes into the builtin with vars(), an
    internal error that sent the frame to eager for good."""
    def f(x):
        m = GeluWithInit()
        y = m(x)
        print(end="")
        return m(y) + 1
    check(f, [(r(3),), (r(4),)], breaks=1)


def test_eval_on_a_module_built_in_forward_is_traced():
    """`m.eval()` walks the module's children: none, for a module built in the trace (a break before, that made
    the frame run eagerly once the call had set `training`)."""
    def f(x):
        act, drop = _ScaledActivation(2.0), torch.nn.Dropout(0.5)
        act.eval()
        drop.eval()
        return drop(act(x)), act.training, drop.training
    check(f, [(r(3),), (r(4),)], breaks=0)


class _Record:
    def __init__(self):
        self.k = 2.0


def _through_dict_then_attribute(x, rec):
    rec.__dict__["k"] = 3.0
    return x * rec.k


def _through_vars_then_attribute(x, rec):
    d = vars(rec)
    d["k"] = 3.0
    return x * rec.k


def _attribute_then_through_dict(x, rec):
    rec.k = 4.0
    return x * rec.__dict__["k"]


def _dict_held_then_attribute_written(x, rec):
    d = rec.__dict__
    rec.k = 5.0
    return x * d["k"]


@pytest.mark.parametrize("fn", [_through_dict_then_attribute, _through_vars_then_attribute,
                                _attribute_then_through_dict, _dict_held_then_attribute_written])
def test_an_attribute_changed_through_the_instance_dict_or_read_through_it_after_a_write_is_eager(fn):
    """The trace replays attribute writes after the graph and syncs a dict it changed after the graph: a read
    through one after a change through the other read the old value (x * 2 where eager gives x * 3)."""
    check(fn, [(r(3), _Record()), (r(4), _Record())], breaks=None, recompiles=None)


class _RecordAndItsDict:
    """A record, and its instance dict kept under another name (a table of the record's fields)."""

    def __init__(self):
        self.rec = _Record()
        self.table = vars(self.rec)


def _attribute_then_its_dict_reached_another_way(x, holder):
    holder.rec.k = 4.0
    return x * holder.table["k"]


def test_an_attribute_write_then_a_read_of_the_instance_dict_reached_another_way_is_eager():
    """The write is replayed after the graph; the dict, reached as holder.table and not as rec.__dict__, was
    read with the old value (x * 2 where eager gives x * 4)."""
    opt = Compiled(_attribute_then_its_dict_reached_another_way)
    for n in (3, 4, 5):
        eager_holder, holder = _RecordAndItsDict(), _RecordAndItsDict()
        expected = _attribute_then_its_dict_reached_another_way(r(n), eager_holder)
        torch.testing.assert_close(opt(r(n), holder), expected)
        assert holder.rec.k == eager_holder.rec.k == 4.0
    opt.stats(breaks=1)
