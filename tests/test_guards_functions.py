"""Guards on functions the trace runs: an inlined callee's code, defaults and closure are read through the
callee's source, so changing any of them recompiles, and leaving them alone hits the cache."""
import functools
import inspect

import pytest
import torch

from helpers import Compiled, check, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def _scaled(t, k=2):
    return t * k


def _kw_scaled(t, *, k=2):
    return t * k


def _other(t, k=2):
    return t - k


def calls_scaled(x):
    return _scaled(x)


def calls_kw_scaled(x):
    return _kw_scaled(x)


def test_reassigned_defaults_of_an_inlined_helper_recompile():
    saved = _scaled.__defaults__
    try:
        stats = check(calls_scaled, [(r(3),), (r(3),), (r(3),), (r(3),)],
                      before={2: lambda fn: setattr(_scaled, "__defaults__", (5,))}, recompiles=1)
    finally:
        _scaled.__defaults__ = saved
    assert stats["cache_hits"] == 2


def test_reassigned_keyword_only_defaults_of_an_inlined_helper_recompile():
    saved = _kw_scaled.__kwdefaults__
    try:
        stats = check(calls_kw_scaled, [(r(3),), (r(3),), (r(3),)],
                      before={2: lambda fn: setattr(_kw_scaled, "__kwdefaults__", {"k": 7})}, recompiles=1)
    finally:
        _kw_scaled.__kwdefaults__ = saved
    assert stats["cache_hits"] == 1


def test_reassigned_code_of_an_inlined_helper_recompiles():
    saved = _scaled.__code__
    try:
        check(calls_scaled, [(r(3),), (r(3),)],
              before={1: lambda fn: setattr(_scaled, "__code__", _other.__code__)}, recompiles=1)
    finally:
        _scaled.__code__ = saved


def test_reassigned_code_of_the_optimized_function_itself_recompiles():
    def own(t, k=2):
        return t * k
    check(own, [(r(3),), (r(3),)], before={1: lambda fn: setattr(fn, "__code__", _other.__code__)}, recompiles=1)


def _tensor_default(t, a=1, *, w=torch.full((2,), 5.0)):
    return t * a + w


def calls_tensor_default(x):
    return _tensor_default(x)


def test_a_keyword_only_tensor_default_is_read_from_kwdefaults():
    stats = check(calls_tensor_default, [(r(2),), (r(2),)])
    assert stats["cache_hits"] == 1


def test_a_mutated_tensor_default_is_seen():
    check(calls_tensor_default, [(r(2),), (r(2),)],
          before={1: lambda fn: _tensor_default.__kwdefaults__["w"].fill_(-1.0)})
    _tensor_default.__kwdefaults__["w"].fill_(5.0)


def test_a_closure_cell_of_an_inlined_method_is_guarded():
    def make(k):
        class Scaler:
            def apply(self, t):
                return t * k
        return Scaler()
    scaler = make(3)

    def f(x):
        return scaler.apply(x)
    cell = type(scaler).apply.__closure__[0]
    stats = check(f, [(r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: setattr(cell, "cell_contents", 9)}, recompiles=1)
    assert stats["cache_hits"] == 1


def _make_device_check(devices):
    """transformers' hub_kernels wrapper in miniature: a closure over a variable that may hold None."""
    supported = devices

    def scale(t):
        return t * (3 if supported is not None else 2)
    return scale


def test_a_closure_cell_holding_none_is_a_value_not_an_empty_cell():
    helper = _make_device_check(None)

    def f(x):
        return helper(x) + 1
    cell = helper.__closure__[0]
    # None traces like any value: one graph, no break; None -> a tuple recompiles; the cell emptied raises
    # NameError, as eagerly
    stats = check(f, [(r(2),), (r(3),), (r(2),), (r(2),)], breaks=None, fallbacks=None, rehit=False,
                  before={2: lambda fn: setattr(cell, "cell_contents", ("cpu",)),
                          3: lambda fn: delattr(cell, "cell_contents")})
    assert stats["recompiles"] >= 2 and stats["internal_errors"] == 0
    cell.cell_contents = None
    stats = check(f, [(r(2),), (r(3),)], breaks=0)
    assert stats["backend_graphs"] == 1 and stats["cache_hits"] >= 1


def test_an_inlined_function_whose_closure_holds_none_compiles_to_one_graph():
    helper = _make_device_check(None)

    def f(x):
        return helper(x) * 2
    stats = check(f, [(r(2),), (r(3),), (r(4),)], breaks=0)
    assert stats["backend_graphs"] <= 2


def _first(x):
    return x + 1


def _second(x):
    return x * 10


def test_reassigning_the_code_of_the_optimized_function_itself_recompiles():
    saved = _first.__code__
    try:
        stats = check(_first, [(r(2),), (r(2),), (r(2),)],
                      before={2: lambda fn: setattr(_first, "__code__", _second.__code__)}, recompiles=1)
    finally:
        _first.__code__ = saved
    assert stats["cache_hits"] == 1


def _exposes_extra_keyword(fn):
    """A decorator in the style of transformers' deprecate_kwarg(expose_in_signature=True): the wrapper runs
    `(*args, **kwargs)` code but advertises the wrapped function's parameters plus one through `__signature__`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        kwargs.pop("old_name", None)
        return fn(*args, **kwargs)
    signature = inspect.signature(fn)
    wrapper.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(),
        inspect.Parameter("old_name", inspect.Parameter.KEYWORD_ONLY, default=None)])
    return wrapper


@_exposes_extra_keyword
def _scaled_with_defaults(x, scale=2.0, shift=None):
    return x * scale if shift is None else x * scale + shift


def test_a_called_function_whose_signature_attribute_differs_from_its_code_is_inlined_by_its_code():
    def f(x):
        return _scaled_with_defaults(x) + _scaled_with_defaults(x, 3.0, shift=x)

    check(f, [(r(3),), (r(5),)])


# ---- the code and defaults of functions the guard holds are compared without audited reads (guards/function_fields.py)

def _doubled(t):
    return t * 2


def calls_doubled(x):
    return _doubled(x) + 1


@pytest.mark.parametrize("fn", [calls_doubled, _doubled], ids=["an inlined helper", "the optimized function"])
def test_a_cache_hit_makes_no_audited_read_of_function_code_or_defaults(fn):
    """The fields' offsets are confirmed on CPython 3.11-3.13 (were they not, guards would read the audited
    attributes again, each an audit-hook call on 3.12+ once filelock is imported)."""
    import sys
    import partialdyn
    from partialdyn.guards import function_fields
    assert function_fields.OFFSETS is not None and set(function_fields.OFFSETS) == set(function_fields.FIELDS)
    opt = partialdyn.optimize(fn, backend="eager")
    x = r(3)
    opt(x)
    events = []
    recording = [True]

    def hook(event, args):
        if recording[0] and event == "object.__getattr__":
            events.append(args[1])
    sys.addaudithook(hook)          # hooks cannot be removed: it stops recording instead
    try:
        result = opt(x)
    finally:
        recording[0] = False
    assert torch.equal(result, fn(x))
    assert opt.stats.cache_hits == 1
    assert events == []


def _make_scaler(k):
    def scale(t):
        return t * k
    return scale


def applies(x, fn):
    return fn(x) + 1


def test_a_new_function_object_with_the_same_code_still_hits_the_cache():
    """The identity fast path fails for another function object; its attributes are checked instead."""
    stats = check(applies, [(r(3), _make_scaler(2.0)), (r(3), _make_scaler(2.0)), (r(3), _make_scaler(2.0))])
    assert stats["cache_hits"] == 2


def test_the_guard_keeps_the_code_it_compares_against_alive():
    """The field check compares addresses: the code object traced must outlive a reassignment of `__code__`,
    or a new object at its address would pass for it."""
    import gc
    import partialdyn
    from partialdyn.guards.function_fields import FieldSnapshot

    def own(t):
        return t + 1

    def replacement(t):
        return t - 2
    traced_code = own.__code__
    opt = partialdyn.optimize(own, backend="eager")
    opt(r(2))
    opt(r(2))
    own.__code__ = replacement.__code__
    gc.collect()
    held = [value for value in opt.entries[0].guard.namespace.values() if isinstance(value, FieldSnapshot)]
    assert any(traced_code in snapshot.pointees for snapshot in held)
    torch.testing.assert_close(opt(r(2)), r(2) - 2)
    assert partialdyn.stats(opt)["cache_hits"] == 1


def _counter():
    count = 0

    def step():
        nonlocal count
        count += 1
        return count
    return step


def scales_by_a_passed_closure(x, step):
    return x * step()


def test_a_local_function_passed_in_that_assigns_its_own_cell_changes_it_as_in_eager():
    """A closure passed as an argument is guarded by its code and cells, not its identity; its `nonlocal`
    assignment changed a copy of its cell in the trace and was lost: x * 1 on every call where eager counts
    1, 2, 3.  The assignment now breaks, and the call runs on the caller's own function."""
    eager_step, step = _counter(), _counter()
    opt = Compiled(scales_by_a_passed_closure)
    for n in (3, 4, 5):
        torch.testing.assert_close(opt(r(n), step), scales_by_a_passed_closure(r(n), eager_step))
    assert opt.stats(breaks=None, fallbacks=None, recompiles=None)["graph_breaks"] >= 1


def returns_the_passed_function(x, fn):
    return x * 2, fn


def test_a_local_function_passed_in_comes_back_as_the_same_object():
    """It came back as a function rebuilt from its code and a copy of its cells: not `is` the argument, and
    a counter in it counted apart from the caller's."""
    opt = Compiled(returns_the_passed_function)
    for n in (3, 4, 5):
        step = _counter()
        out, back = opt(r(n), step)
        torch.testing.assert_close(out, r(n) * 2)
        assert back is step
        assert (back(), step()) == (1, 2)
    assert opt.stats()["cache_hits"] == 2


def test_reading_a_partials_attributes_leaves_it_flattened_by_a_partial_of_it():
    # found by the state fuzzer (objects.partials): the trace read the partial's __dict__, which made one, and
    # functools.partial(p, ...) flattens p only while it has none: P.keywords lost k after the rebinding
    scope = {"P": functools.partial(_kw_scaled, k=2)}

    def f(x):
        return x * scope["P"].keywords.get("k", 1) + len(scope["P"].args)
    stats = check(f, [(r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: scope.update(P=functools.partial(scope["P"], shift=3))}, recompiles=1)
    assert stats["cache_hits"] == 1
    assert scope["P"].func is _kw_scaled and scope["P"].keywords == {"k": 2, "shift": 3}
