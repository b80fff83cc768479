"""Escape hatches and calling conventions: disabled functions, allow_in_graph, optimized callees,
functools.partial, callable objects, torch.compile'd functions and re-optimizing."""
import functools
import inspect
import warnings

import pytest
import torch

import partialdyn
from helpers import CountingBackend, assert_broke, assert_compiled, check, outcome, r

B = (2, 3, 5)


def setup_function():
    partialdyn.reset()


def host_side(x):
    # a disabled function runs as plain Python: never inside a trace
    return x + (100 if torch.compiler.is_compiling() else 1)


@pytest.mark.parametrize("disable", [torch.compiler.disable, torch._dynamo.disable, partialdyn.disable],
                         ids=["torch.compiler.disable", "torch._dynamo.disable", "partialdyn.disable"])
def test_disabled_function_runs_as_plain_python_around_a_graph_break(disable):
    disabled = disable(host_side)

    def f(x):
        return disabled(x * 2).sin()
    check(f, [(r(b),) for b in B], breaks=1)


def test_optimize_of_a_disabled_function_runs_it_eagerly():
    opt = partialdyn.optimize(partialdyn.disable(host_side))
    torch.testing.assert_close(opt(torch.ones(2)), torch.full((2,), 2.0))
    s = partialdyn.stats(opt)
    assert s["compiles"] == 0 and s["eager_fallbacks"] == 1


RUNS = []


def scaled_add(a, b):
    RUNS.append(a.shape)          # a side effect: the graph calls the function itself on every run
    return a * 2 + b


partialdyn.allow_in_graph(scaled_add)


def test_allow_in_graph_function_is_one_graph_node_called_when_the_graph_runs():
    def f(x):
        return scaled_add(x, x.cos()).sin()
    RUNS.clear()
    s = check(f, [(r(b),) for b in B], breaks=0)
    assert scaled_add in s["backend"].ops()
    eager_runs = len(B)
    assert len(RUNS) >= eager_runs + len(B)      # eager calls plus one per compiled graph run


def test_optimized_function_called_from_optimized_code_is_inlined():
    inner = partialdyn.optimize(lambda x: x.cos() * 2)

    def f(x):
        return inner(x) + 1
    check(f, [(r(b),) for b in B], breaks=0)


def scale(x, k, shift=0.0):
    return x * k + shift


def test_optimize_accepts_a_functools_partial():
    check(functools.partial(scale, k=3, shift=0.5), [(r(b),) for b in B])


PARTIAL = functools.partial(scale, k=2)


def test_partial_called_from_traced_code_is_inlined_and_its_arguments_guarded():
    global PARTIAL

    def f(x):
        return PARTIAL(x).sin()

    def rebind(_):
        global PARTIAL
        PARTIAL = functools.partial(scale, k=5)
    try:
        check(f, [(r(b),) for b in B], breaks=0, recompiles=1, before={1: rebind})
    finally:
        PARTIAL = functools.partial(scale, k=2)


class Affine:
    def __init__(self, w):
        self.w = w

    def __call__(self, x):
        return x * self.w + 1


def test_optimize_accepts_a_callable_object():
    check(Affine(2.0), [(r(b),) for b in B])


def test_callable_object_called_from_traced_code_is_inlined_and_its_state_guarded():
    affine = Affine(2.0)

    def f(x):
        return affine(x).relu()
    check(f, [(r(b),) for b in B], breaks=0, recompiles=1, before={2: lambda _: setattr(affine, "w", -3.0)})


def cosine(x):
    return x.cos() + 1


def test_optimize_of_a_torch_compiled_function_warns_and_optimizes_the_original():
    with pytest.warns(UserWarning, match="torch.compile"):
        opt = partialdyn.optimize(torch.compile(cosine), backend=CountingBackend())
    torch.testing.assert_close(opt(torch.ones(3)), cosine(torch.ones(3)))
    assert outcome(opt, torch.ones(3))[1] == "hit"
    s = partialdyn.stats(opt)
    assert s["graphs"] == 1 and s["eager_fallbacks"] == 0


def test_reoptimizing_with_different_options_warns_and_keeps_the_first():
    opt = partialdyn.optimize(cosine, policy="static")
    with pytest.warns(UserWarning, match="already optimized"):
        again = partialdyn.optimize(opt, policy="dynamic")
    assert again is opt
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert partialdyn.optimize(opt) is opt and partialdyn.optimize(opt, policy="static") is opt


PROBES = []


@torch._dynamo.assume_constant_result
def install_probe():
    PROBES.append(1)        # a side effect shows how often the probe really ran
    return True


def test_a_function_marked_assume_constant_result_is_called_at_trace_time_and_its_answer_folded():
    PROBES.clear()

    def f(x):
        return x.sin() if install_probe() else x.cos()
    check(f, [(r(b),) for b in B])
    assert len(PROBES) == len(B) + 1      # once per eager call, once while tracing; compiled calls never


@functools.lru_cache
def cached_scale(n):
    return n * 3


@functools.lru_cache
@torch._dynamo.assume_constant_result
def cached_probe():
    return False


def test_an_lru_cache_wrapper_is_stepped_past_and_its_function_traced():
    def f(x):
        return x * cached_scale(x.dim()) + (1 if cached_probe() else 2)
    check(f, [(r(b),) for b in B])


@functools.lru_cache
@torch._dynamo.assume_constant_result
def version_at_least(wanted):
    return tuple(map(int, torch.__version__.split("+")[0].split(".")[:2])) >= tuple(map(int, wanted.split(".")))


class _State:
    seen = 0


def test_a_cached_function_marked_constant_is_folded_even_while_the_trace_has_writes_to_make():
    # transformers' mamba: `is_torch_greater_or_equal` (lru_cache over a function marked constant) is called after
    # the frame wrote to an object of the caller's world; an unmarked cached call breaks there, as it could read
    # the write the trace makes only after the graph (and that break made mamba's frame run eagerly)
    state = _State()

    def f(x, state):
        state.seen = state.seen + 1
        return x * 2 if version_at_least("2.9") else x * 3
    check(f, [(r(b), state) for b in B], shared=(state,), rehit=False)      # breaks=0, fallbacks=0
    assert state.seen == 2 * len(B)        # once per eager call and once per optimized call


class Scaler(torch.nn.Module):
    def forward(self, x, scale=2.0, *, shift=None):
        return x * scale


class CallableScaler:
    def __call__(self, x, scale=2.0):
        return x * scale


def test_what_optimize_returns_has_the_signature_of_what_it_was_given():
    """Callers read a forward's parameters (transformers' generate() passes position_ids only if forward
    names them): every optimized form keeps the original's signature."""
    module, callable_object, partial = Scaler(), CallableScaler(), functools.partial(scale, k=3.0)
    optimized_module = partialdyn.optimize(module)
    cases = ((module.forward, optimized_module.forward, optimized_module),
             (module.forward, partialdyn.optimize(module.forward), None),
             (callable_object, partialdyn.optimize(callable_object), None),
             (partial, partialdyn.optimize(partial), None))
    for original, optimized, owner in cases:
        assert inspect.signature(optimized) == inspect.signature(original), original
        for _ in range(2):
            torch.testing.assert_close(optimized(r(3)), original(r(3)))
        assert partialdyn.stats(owner or optimized)["cache_hits"] >= 1, original


# ---- functools.lru_cache: the cached function runs when eager would run it, no more

CACHED_RUNS = []
CACHED_CONFIG = {"scale": 2.0}


@functools.lru_cache(maxsize=None)
def counted_scale(name):
    CACHED_RUNS.append(name)
    return CACHED_CONFIG[name]


def scales_by_config(x):
    return x * counted_scale("scale")


def test_a_cached_function_runs_once_like_eager_not_on_every_compiled_call():
    CACHED_RUNS.clear()
    counted_scale.cache_clear()
    opt = partialdyn.optimize(scales_by_config, backend="eager")
    for _ in range(3):
        torch.testing.assert_close(opt(r(3)), r(3) * 2.0)
    assert CACHED_RUNS == ["scale"]
    assert partialdyn.stats(opt)["cache_hits"] == 2


def test_clearing_the_cache_runs_the_function_again_and_its_new_answer_is_used():
    CACHED_RUNS.clear()
    counted_scale.cache_clear()
    opt = partialdyn.optimize(scales_by_config, backend="eager")
    opt(r(3))
    try:
        CACHED_CONFIG["scale"] = 5.0
        torch.testing.assert_close(opt(r(3)), r(3) * 2.0)      # still cached: eager answers 2.0 too
        counted_scale.cache_clear()
        torch.testing.assert_close(opt(r(3)), r(3) * 5.0)
        torch.testing.assert_close(opt(r(3)), r(3) * 5.0)
    finally:
        CACHED_CONFIG["scale"] = 2.0
        counted_scale.cache_clear()
    assert CACHED_RUNS == ["scale", "scale"]
    assert_compiled(opt)


@functools.lru_cache(maxsize=None)
def cached_by_tensor(t):
    return t * 2


def test_a_cached_function_of_a_tensor_answers_from_its_cache_like_eager():
    """The cache is keyed by the tensor's identity: after an in-place change eager still returns the old
    answer, so the call runs in Python."""
    cached_by_tensor.cache_clear()
    t = torch.ones(3)

    def f(x):
        return x + cached_by_tensor(t)
    opt = partialdyn.optimize(f, backend="eager")
    torch.testing.assert_close(opt(r(3)), r(3) + 2)
    t.add_(10)
    torch.testing.assert_close(opt(r(3)), r(3) + 2)
    assert partialdyn.stats(opt)["graph_breaks"] >= 1
    assert_compiled(opt)
    cached_by_tensor.cache_clear()


# ---- where the guard could not repeat a cached call faithfully, the call runs in Python (review findings)

MODE = 1


@functools.lru_cache(maxsize=None)
def mode_times(n):
    return MODE * n


def writes_the_mode_then_calls(x):
    global MODE
    MODE = 7
    return x + mode_times(2)


def test_a_cached_function_called_after_a_traced_global_write_sees_the_write():
    global MODE
    opt = partialdyn.optimize(writes_the_mode_then_calls, backend="eager")
    for fn in (writes_the_mode_then_calls, opt, opt):
        MODE = 1
        mode_times.cache_clear()
        torch.testing.assert_close(fn(torch.zeros(1)), torch.full((1,), 14.0))
        assert mode_times(2) == 14
    MODE = 1
    mode_times.cache_clear()
    assert_compiled(opt)


NOT_READY = [True]


@functools.lru_cache(maxsize=None)
def ready_value(n):
    if NOT_READY[0]:
        raise ValueError("not ready")
    return n


def catches_the_cached_error(x):
    try:
        value = ready_value(1)
    except ValueError:
        value = -1
    return x + value


def test_a_cached_function_that_raised_is_called_again_like_eager():
    """lru_cache does not cache exceptions: a later call that succeeds gives its answer."""
    opt = partialdyn.optimize(catches_the_cached_error, backend="eager")
    ready_value.cache_clear()
    NOT_READY[0] = True
    try:
        torch.testing.assert_close(opt(torch.zeros(1)), torch.full((1,), -1.0))
        NOT_READY[0] = False
        torch.testing.assert_close(opt(torch.zeros(1)), torch.full((1,), 1.0))
        torch.testing.assert_close(opt(torch.zeros(1)), torch.full((1,), 1.0))
        assert_compiled(opt, fallbacks=None)        # a break inside `try`: the rest runs as plain Python
    finally:
        NOT_READY[0] = True
        ready_value.cache_clear()


BOUNDED_RUNS = []


@functools.lru_cache(maxsize=1)
def bounded(n):
    BOUNDED_RUNS.append(n)
    return [n]


def alternates(x):
    a, b, c = bounded(1), bounded(2), bounded(1)
    return x + a[0] + b[0] + c[0], a is c


def test_a_bounded_cache_evicts_as_in_eager():
    results = {}
    opt = partialdyn.optimize(alternates, backend="eager")
    for name, fn in (("eager", alternates), ("optimized", opt)):
        bounded.cache_clear()
        BOUNDED_RUNS.clear()
        results[name] = ([fn(torch.ones(1))[1] for _ in range(3)], list(BOUNDED_RUNS))
    assert results["optimized"] == results["eager"]
    assert_compiled(opt)
    bounded.cache_clear()


HEAVY_RUNS = []


@functools.lru_cache(maxsize=None)
def heavy(n):
    HEAVY_RUNS.append(n)
    return n * 2


def maybe_heavy(x, flag):
    return x + heavy(5) if flag else x - 1


def test_explaining_a_recompile_does_not_call_a_cached_function_the_guard_would_not():
    opt = partialdyn.optimize(maybe_heavy, backend="eager")
    heavy.cache_clear()
    HEAVY_RUNS.clear()
    opt(r(2), True)
    heavy.cache_clear()
    opt(r(2), False)            # eager never calls heavy here; the old entry's guard fails on flag first
    opt(r(2), False)
    assert HEAVY_RUNS == [5]
    assert_compiled(opt)
    heavy.cache_clear()


def test_a_cached_function_counts_the_hits_and_misses_eager_counts_over_recompiles_and_tensor_answers():
    """Eager calls the cached function once per call of f; the optimized call made it again in every guard
    evaluation of a miss (each entry, the re-check, the explanation) and in the trace, and read a tensor answer
    again as the graph's input: cache_info() had 13 hits where eager has 2.  Now they share one answer per call."""
    @functools.lru_cache(maxsize=None)
    def scale(n):
        return torch.full((2,), 2.0 * n)

    table = [1]

    def f(x):
        return x * scale(3) + len(table)

    def three_calls(call):
        scale.cache_clear()
        table[:] = [1]
        results = [call(r(2))]
        table.append(2)                     # the next call recompiles
        return results + [call(r(2)), call(r(2))], scale.cache_info()

    expected, eager_info = three_calls(f)
    opt = partialdyn.optimize(f, backend="eager")
    results, info = three_calls(opt)
    assert info == eager_info, (info, eager_info)
    for got, want in zip(results, expected):
        torch.testing.assert_close(got, want)
    assert partialdyn.stats(opt)["recompiles"] == 1
    assert_compiled(opt)


@functools.lru_cache(maxsize=None)
def by_keyword(**kwargs):
    return len(kwargs)


def test_a_cached_call_with_a_keyword_that_is_not_an_identifier_runs_in_python():
    def f(x):
        return x + by_keyword(**{"a-b": 1})
    stats = check(f, [(r(2),), (r(3),)], breaks=1)
    assert stats["internal_errors"] == 0


class _TableModule(torch.nn.Module):
    def forward(self, x):
        return x + self.table(2)

    @functools.lru_cache(maxsize=None)
    def table(self, n):
        return n


def test_a_cached_method_of_a_module_built_in_the_trace_is_cached_per_module_like_eager():
    """Each call builds a new module, so eager's cache gains an entry (and runs the method) per call."""
    def f(x):
        return _TableModule()(x)
    opt = partialdyn.optimize(f, backend="eager")
    _TableModule.table.cache_clear()
    for _ in range(3):
        torch.testing.assert_close(opt(r(2)), r(2) + 2)
    assert _TableModule.table.cache_info().currsize == 3
    assert_compiled(opt)
    _TableModule.table.cache_clear()


def scan_with_associative_scan(a, b):
    """Mamba's scan under torch.compiler.is_compiling() (transformers' mamba_selective_scan)."""
    def combine(left, right):
        return left[0] * right[0], right[0] * left[1] + right[1]
    from torch._higher_order_ops.associative_scan import associative_scan
    _, states = associative_scan(combine, (a.exp(), b), dim=1, combine_mode="generic")
    return states.sum(1) * 2


def doubled_by_vmap(x):
    return torch.vmap(lambda t: t * 2)(x) + 1


def test_higher_order_ops_and_functorch_transforms_run_in_python_at_their_call():
    """torch's associative_scan (generic mode: torch.vmap over recursive local functions) and torch.vmap were traced
    into functorch's and pytree's internals: dozens of breaks inside per-call closures, compiles on every call,
    eager fallbacks (vmap's graph raised).  Their call is now one break in the user's frame, which compiles on
    either side of it."""
    stats = check(scan_with_associative_scan, [(r(2, n), r(2, n, seed=1)) for n in (5, 6, 7)], breaks=1)
    assert stats["compiles"] == 2, stats       # before and after the break, for every length
    assert_broke("associative_scan (torch._higher_order_ops.associative_scan) runs as plain Python")
    # the function vmap returns is made anew on every call: the resume function that calls it recompiles per call
    # (docs/limitations.md, closures created on every call), with no eager fallback
    check(doubled_by_vmap, [(r(n, 3),) for n in (2, 3, 4)], breaks=None, recompiles=None, rehit=False)
    assert_broke("vmap (torch._functorch.apis) runs as plain Python")
