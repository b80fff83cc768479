"""Guards on functions the trace runs: an inlined callee's code, defaults and closure are read through the
callee's source, so changing any of them recompiles, and leaving them alone hits the cache."""
import functools
import inspect

import pytest
import torch

from helpers import Compiled, check, entries, r


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


# ---- a functools.partial read from outside the frame: guarded by its parts unless the trace relies on its identity

def _shifted(a, x, k=1):
    return x * a + k


def calls_the_partial(x, p):
    return p(x) + 1


def _partial_calls(make, n=4):
    return [(r(3, seed=i), make(i)) for i in range(n)]


def _no_identity_guard_on_the_partial(fn):
    on_p = [g["text"] for entry in entries(fn) for g in entry if g["source"] == "p"]
    assert on_p == ["type(p) is partial"], on_p


def test_a_functools_partial_made_anew_on_every_call_hits_the_cache():
    """It was guarded by identity (and by its parts): each call made a new partial, so each call recompiled, 5
    compiles in 5 calls.  Now its exact type and its parts through `p.func`, `p.args[0]`, `p.keywords`."""
    stats = check(calls_the_partial, _partial_calls(lambda i: functools.partial(_shifted, 2)))
    assert stats["compiles"] == 1 and stats["cache_hits"] >= 3, stats
    _no_identity_guard_on_the_partial(calls_the_partial)


@pytest.mark.parametrize("make", [
    lambda i: functools.partial(functools.partial(_shifted, 2), k=3),     # CPython flattens it: one partial
    lambda i: functools.partial(_shifted, i + 2, k=i),                    # stored numbers: arguments of the call
    lambda i: functools.partial(_BOUND.scaled, 2.0),                     # of a bound method
    lambda i: functools.partial(_closure_over(3.0), 2.0),                # of a closure made anew, same code and cells
], ids=["a partial of a partial", "other stored numbers", "a partial of a bound method",
        "a partial of a fresh closure"])
def test_a_partial_made_anew_with_other_parts_of_the_same_kind_hits_the_cache(make):
    stats = check(calls_the_partial, _partial_calls(make))
    assert stats["compiles"] == 1 and stats["cache_hits"] >= 3, stats


class _Scaler:
    def __init__(self, s):
        self.s = s

    def scaled(self, a, x):
        return x * a * self.s


_BOUND = _Scaler(3.0)


def _closure_over(c):
    return lambda a, x: x * a + c


def test_a_partial_whose_keywords_or_function_change_recompiles():
    """The keyword names are guarded (`list(p.keywords)`), and so is the function it calls."""
    makes = [functools.partial(_shifted, 2), functools.partial(_shifted, 2, k=5), functools.partial(_other, k=5),
             functools.partial(_shifted, 2), functools.partial(_shifted, 2, k=5)]
    stats = check(lambda x, p: p(x) + 1, [(r(3), p) for p in makes], recompiles=2)
    assert stats["compiles"] == 3 and stats["cache_hits"] >= 2, stats


def test_a_partial_whose_closure_holds_another_constant_recompiles():
    """A closure made anew per call is guarded by its code and cell contents: a cell holding another float is
    another entry (docs/limitations.md)."""
    stats = check(calls_the_partial, _partial_calls(lambda i: functools.partial(_closure_over(float(i % 2)), 2.0)),
                  recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] >= 2, stats


_GLOBAL_PARTIAL = functools.partial(_shifted, 2)
_CACHE: dict = {}


def _as_key(x, p):
    return p(x), {p: 1}


def _with_id(x, p):
    return p(x), id(p)


def _compared_with_a_global(x, p):
    return p(x) + (1 if p is _GLOBAL_PARTIAL else 2)


def _used_in_a_global_dict(x, p):
    _CACHE[p] = True
    return p(x) + len(_CACHE)


@pytest.mark.parametrize("use", [_as_key, _with_id, _compared_with_a_global, _used_in_a_global_dict],
                         ids=["a dict key", "id()", "is a global", "a key of a global dict"])
def test_a_partial_whose_identity_the_trace_uses_is_guarded_by_identity_there_only(use):
    """Only the calls whose trace uses the identity guard it: the first two calls (no identity use) share an
    entry, then each new partial recompiles."""
    def f(x, p, identity):
        if identity:
            return use(x, p)
        return p(x) * 3
    opt = Compiled(f)
    partials = [functools.partial(_shifted, 2) for _ in range(4)]
    for p, identity in zip(partials, (False, False, True, True)):
        _CACHE.clear()
        expected = f(r(3), p, identity)
        _CACHE.clear()
        _same_result(expected, opt(r(3), p, identity))
    stats = opt.stats(recompiles=None)
    assert stats["compiles"] == 3 and stats["cache_hits"] == 1, stats


def _same_result(expected, got):
    """A tensor, or a tensor and the id or the one-key dict of the partial (its key the same object)."""
    if not isinstance(expected, tuple):
        torch.testing.assert_close(got, expected)
        return
    torch.testing.assert_close(got[0], expected[0])
    assert type(got[1]) is type(expected[1])
    assert (list(got[1]) == list(expected[1])) if isinstance(got[1], dict) else got[1] == expected[1]


def test_two_partials_compared_with_is_are_guarded_by_their_aliasing():
    def f(x, p, q):
        return p(x) + (1 if p is q else 0)
    opt = Compiled(f)
    for p, q in [(functools.partial(_shifted, 2), functools.partial(_shifted, 2)),
                 (functools.partial(_shifted, 2), functools.partial(_shifted, 2))]:
        torch.testing.assert_close(opt(r(3), p, q), f(r(3), p, q))
    p = functools.partial(_shifted, 2)
    torch.testing.assert_close(opt(r(3), p, p), f(r(3), p, p))
    stats = opt.stats(recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 1, stats


_SEEN: list = []


def _returned(x, p):
    return p(x), p


def _stored(x, p):
    _SEEN.append(p)
    return p(x), p


def _tagged(x, p):
    p.tag = 5
    return p(x) * p.tag, p


@pytest.mark.parametrize("use", [_returned, _stored, _tagged], ids=["returned", "stored in a global list",
                                                                  "its attribute assigned"])
def test_a_partial_returned_stored_or_written_is_the_callers_own_object(use):
    """Re-read from its source after the graph, as an argument read by contents is: each call's own object,
    without an identity guard."""
    _SEEN.clear()
    opt = Compiled(use)
    for n in (3, 4, 5):
        expected, eager_p = use(r(n), functools.partial(_shifted, 2))
        p = functools.partial(_shifted, 2)
        out, back = opt(r(n), p)
        torch.testing.assert_close(out, expected)
        assert back is p and vars(p) == vars(eager_p)
        assert _SEEN[-1] is p if use is _stored else not _SEEN
    _SEEN.clear()
    assert opt.stats()["cache_hits"] == 2


class _PartialActivation(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = functools.partial(torch.nn.functional.gelu, approximate="tanh")

    def forward(self, x):
        return self.act(x)


def builds_a_partial_holding_module_then_breaks(x):
    m = _PartialActivation()
    y = x * 2
    print("", end="")
    return m(y) + 1


def test_a_module_built_in_forward_holding_a_partial_alive_at_a_break_hits_the_cache():
    """The resume function gets a new copy of the module, with a new partial, on every call: 9 compiles and
    then eager in 10 calls.  The partial is read by contents as its module is."""
    stats = check(builds_a_partial_holding_module_then_breaks, [(r(3),) for _ in range(5)], breaks=1)
    assert stats["compiles"] == 2 and stats["backend_graphs"] == 2, stats


class _LayerWithPartial(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.act = functools.partial(torch.nn.functional.gelu, approximate="tanh")
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        y = self.lin(x)
        print("", end="")
        return self.act(y)


def test_layers_each_holding_their_own_partial_share_the_entries_of_a_break_inside_them():
    """The function after the break takes each layer as `self`, guarded by its type and what the trace reads:
    its partial was guarded by identity, one recompile per layer."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[_LayerWithPartial() for _ in range(4)]).requires_grad_(False)
    stats = check(model, [(r(2, 3),), (r(5, 3),)], breaks=None)
    assert stats["recompiles"] == 0 and stats["graph_breaks"] == 4, stats


class _TenfoldPartial(functools.partial):
    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs) * 10


def test_a_partial_subclass_with_its_own_call_runs_that_call():
    """It was called as a plain partial (x * 2 + 1 where eager gives x * 20 + 1).  Its own __call__ is inlined;
    partial's, reached through super(), runs in Python at a break."""
    p = _TenfoldPartial(_shifted, 2, k=0)
    stats = check(calls_the_partial, [(r(3), p), (r(4), p)], breaks=1, shared=(p,))
    assert stats["compiles"] == 2, stats
