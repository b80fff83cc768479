"""Guards on non-tensor arguments: dataclass, plain-object and set arguments are guarded by what the trace
read of them (fields, membership), not by identity, so a fresh equal object per call hits the cache; a use
that needs the object itself (identity, `==`) still guards it; inputs the trace assumed distinct are."""
import dataclasses
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import partialdyn
from helpers import check, clone, outcome, r, same


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


@dataclasses.dataclass
class Cfg:
    scale: float
    shift: float
    mode: str = "add"


class Plain:
    def __init__(self, k, name):
        self.k = k
        self.name = name


def uses_cfg(x, cfg):
    y = x * cfg.scale
    return y + cfg.shift if cfg.mode == "add" else y - cfg.shift


def test_a_fresh_dataclass_argument_per_call_compiles_once():
    stats = check(uses_cfg, [(r(3, 4), Cfg(1.0 + i, 0.5)) for i in range(5)])
    assert stats["compiles"] == 1 and stats["cache_hits"] == 4


def test_a_dataclass_argument_whose_read_field_changes_recompiles():
    check(uses_cfg, [(r(3), Cfg(2.0, 0.5)), (r(3), Cfg(2.0, 0.5, "sub"))], recompiles=1)


def test_a_fresh_plain_object_argument_per_call_compiles_once():
    def f(x, obj):
        return x * obj.k if obj.name == "mul" else x + obj.k
    stats = check(f, [(r(2), Plain(i + 2, "mul")) for i in range(4)] + [(r(2), Plain(2, "add"))], recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 3


def test_a_fresh_set_argument_per_call_compiles_once_and_membership_is_guarded():
    def f(x, allowed):
        return x + 1 if x.dim() in allowed else x - 1
    stats = check(f, [(r(2), {1, 2}), (r(2), {1, 2}), (r(2), {1, 3}), (r(2), {2})], recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 2


SENTINEL = Cfg(0.0, 0.0)


def test_identity_of_an_argument_is_guarded_when_the_trace_tests_it():
    def f(x, cfg):
        return x if cfg is SENTINEL else x * cfg.scale
    check(f, [(r(2), Cfg(0.0, 0.0)), (r(2), SENTINEL)], recompiles=1, shared=(SENTINEL,))


def test_equality_of_two_arguments_is_guarded():
    def f(x, a, b):
        return x + 1 if a == b else x - 1
    check(f, [(r(2), Cfg(1.0, 0.0), Cfg(1.0, 0.0)), (r(2), Cfg(1.0, 0.0), Cfg(2.0, 0.0))], recompiles=1)


def test_identity_test_of_two_arguments_guards_whether_they_alias_not_each_object():
    def f(x, a, b):
        return x + 1 if a is b else x - 1
    # fresh distinct objects reuse the entry (an ID_MATCH on each would recompile for every new pair)
    check(f, [(r(2), Cfg(1.0, 0.0), Cfg(1.0, 0.0)), (r(2), Cfg(2.0, 0.0), Cfg(3.0, 0.0))], recompiles=0)


def test_an_entry_traced_with_distinct_lists_rejects_aliased_ones():
    def f(a, b, x):
        a.append(1)
        return x * len(b)
    calls = [([0], [0], r(2)), ([0], [0], r(2))]
    stats = check(f, calls)
    assert stats["cache_hits"] == 1
    partialdyn.reset()
    opt = partialdyn.optimize(f, backend="eager")
    opt([0], [0], r(2))
    shared, eager_shared = [0], [0]
    torch.testing.assert_close(opt(shared, shared, r(2)), f(eager_shared, eager_shared, r(2)))
    assert shared == eager_shared


class Slotted:
    __slots__ = ("value", "tag")

    def __init__(self, value, tag):
        self.value = value
        self.tag = tag


def leave_the_graph():
    print(end="")       # a graph break inside a callee: the caller's objects cross it


def test_an_object_with_slots_made_before_a_break_does_not_recompile_the_resume_function_per_call():
    def f(x):
        out = Slotted(x + 1, "first")       # the class cannot be built in the trace: made by a break step
        leave_the_graph()
        return out.value * 2 if out.tag == "first" else out.value
    check(f, [(r(b),) for b in (2, 3, 4, 5, 6)], breaks=None, recompiles=0)


def test_a_model_output_made_before_a_break_does_not_recompile_the_resume_function_per_call():
    outputs = pytest.importorskip("transformers.modeling_outputs")

    def f(x):
        out = outputs.BaseModelOutput(last_hidden_state=x + 1, hidden_states=(x,))
        leave_the_graph()
        return out.last_hidden_state * 2 + out[0] + out["hidden_states"][0], out
    check(f, [(r(b),) for b in (2, 3, 4, 5, 6)], breaks=None, recompiles=0)


# Defaults of the optimized function itself: the binder reads a default only when the call leaves it out,
# so a call passing every argument reads nothing of the function, and reassigned defaults are honoured.

def scaled(x, s=2.0, *, shift=1.0):
    return x * s + shift


def with_defaults_restored(fn, test):
    saved = fn.__defaults__, fn.__kwdefaults__
    try:
        test()
    finally:
        fn.__defaults__, fn.__kwdefaults__ = saved[0], dict(saved[1]) if saved[1] is not None else None


def test_a_keyword_only_default_changed_in_place_is_honoured():
    def test():
        x = r(3)
        opt = partialdyn.optimize(scaled)
        torch.testing.assert_close(opt(x), scaled(x))
        out, what = outcome(opt, x)
        assert what == "hit"
        scaled.__kwdefaults__["shift"] = 5.0          # the same dict, a new value: Python uses it
        torch.testing.assert_close(opt(x), scaled(x))
    with_defaults_restored(scaled, test)


def test_removed_defaults_raise_python_s_type_error():
    def test():
        x = r(3)
        opt = partialdyn.optimize(scaled)
        torch.testing.assert_close(opt(x), scaled(x))
        out, what = outcome(opt, x)
        assert what == "hit"
        scaled.__defaults__ = None
        scaled.__kwdefaults__ = None
        for call in (lambda f: f(x), lambda f: f(x, 3.0)):
            with pytest.raises(TypeError) as eager:
                call(scaled)
            with pytest.raises(TypeError) as optimized:
                call(opt)
            assert str(optimized.value) == str(eager.value)
    with_defaults_restored(scaled, test)


def test_a_parameter_that_gains_a_default_can_be_left_out_like_in_python():
    def needs_two(x, y):
        return x + y
    x, y = r(3), r(3, seed=1)
    opt = partialdyn.optimize(needs_two)
    torch.testing.assert_close(opt(x, y), needs_two(x, y))
    needs_two.__defaults__ = (y,)
    torch.testing.assert_close(opt(x), needs_two(x))
    out, what = outcome(opt, x)
    assert what == "hit"
    torch.testing.assert_close(out, needs_two(x))


def test_a_call_passing_every_argument_hits_and_a_call_using_the_defaults_hits_its_own_entry():
    x = r(3)
    opt = partialdyn.optimize(scaled)
    for args, kwargs in [((x, 3.0), {"shift": 2.0}), ((x,), {})]:
        torch.testing.assert_close(opt(*args, **kwargs), scaled(*args, **kwargs))
        out, what = outcome(opt, *args, **kwargs)
        assert what == "hit"
        torch.testing.assert_close(out, scaled(*args, **kwargs))


def test_parameters_named_like_the_binder_s_own_names_bind_correctly():
    def odd_names(__pd_missing, __pd_fn=2.0, *, __pd_positional_default=1.0):
        return __pd_missing * __pd_fn + __pd_positional_default
    check(odd_names, [(r(3),), (r(3), 4.0)])


@pytest.mark.parametrize("call", [lambda f: f(), lambda f: f(r(3), 1.0, 2.0), lambda f: f(r(3), bad=1)],
                         ids=["missing", "too_many", "unknown_keyword"])
def test_a_wrong_call_raises_the_type_error_python_raises_naming_the_function(call):
    opt = partialdyn.optimize(scaled)
    with pytest.raises(TypeError) as eager:
        call(scaled)
    with pytest.raises(TypeError) as optimized:
        call(opt)
    assert str(optimized.value) == str(eager.value)


def _transposed(b, n, seed=0):
    return r(b, n, 4, seed=seed).transpose(0, 1)


def transposed_across_a_break(x):
    h = x.transpose(0, 1) * 2          # a permuted view of a contiguous result: non-contiguous
    print("b")                         # h reaches the resume function as an input
    return h.sum(0) + h[0] * h.stride(1)


def test_a_transposed_tensor_live_at_a_break_keeps_symbolic_sizes_in_the_resume_function(capsys):
    sizes = [(2, 8), (3, 12), (4, 7), (2, 13), (5, 9)]
    stats = check(transposed_across_a_break, [(r(b, n, 4),) for b, n in sizes], breaks=1)
    # the frame and its resume function: one graph each, every later call a hit (static resume inputs: 6)
    assert stats["compiles"] == 2 and stats["backend_graphs"] == 2 and stats["cache_hits"] >= 8


def uses_permuted_layout(x):
    return x * 2 + x.sum(-1, keepdim=True), x.stride(), x.is_contiguous(), x.size(0) * x.stride(0)


def test_a_permuted_input_has_symbolic_sizes_and_a_new_permutation_recompiles():
    calls = [(_transposed(2, 8),), (_transposed(3, 5, seed=1),), (_transposed(4, 6, seed=2),),
             (r(3, 6, 5).permute(2, 0, 1),),                    # another permutation: recompiles
             (r(4, 7, 5, seed=3).permute(2, 0, 1),),            # hits it
             (r(6, 4),),                                        # contiguous: recompiles
             (r(2, 8, 4)[:, 1:],)]                              # a storage offset: strided, recompiles
    stats = check(uses_permuted_layout, calls, recompiles=3)
    assert stats["compiles"] == 4 and stats["cache_hits"] >= 3


def views_a_permuted_input(x):
    return x.reshape(-1) + 1, x.view(x.size(0), -1)            # view of a transposed tensor raises


def test_a_view_that_a_permuted_layout_forbids_raises_like_python():
    check(views_a_permuted_input, [(r(4, 3),), (r(5, 3),), (_transposed(2, 3),), (_transposed(3, 5),)],
          fallbacks=None)


def computes_on_a_permuted_layout(x):
    return x * 2 + x.sum(-1, keepdim=True), x.contiguous().view(-1)[: x.size(0)]


def test_a_permuted_input_with_a_dim_of_size_one_is_traced_with_the_others_symbolic():
    calls = [(r(1, 5, 3).transpose(0, 2),), (r(1, 6, 3).transpose(0, 2),), (r(1, 7, 2).transpose(0, 2),),
             (r(2, 7, 3).transpose(0, 2),)]                     # the size-1 dim grows: recompiles
    stats = check(computes_on_a_permuted_layout, calls, recompiles=1)
    assert stats["cache_hits"] >= 2


# ---------------------------------------------------------------- strided layouts: slices, indexing, expands
# A tensor that is not a dense block (a view like `x[:, 0]`, `x[:, 1:]`, `x.expand(...)`), as an argument or
# live at a graph break, has symbolic sizes, strides and storage offset; each stride is guarded as the trace
# wrote it (a number, a relation to the sizes, or a symbol of its own), and its elements must not overlap.
STRIDED_VIEWS = {
    "column": lambda x: x[:, 0],
    "offset": lambda x: x[:, 1:],
    "last_dim_slice": lambda x: x[..., :2],
    "step": lambda x: x[:, ::2],
    "sliced_transpose": lambda x: x[:, 1:].transpose(1, 2),
    "expanded": lambda x: x[:, :1].expand(-1, 5, -1),
    "narrow": lambda x: x.narrow(1, 1, 3),
    "last_index": lambda x: x[..., 1],
    "diagonal": lambda x: x.diagonal(0, 1, 2),
    "broadcast_column": lambda x: x[:, 1, None, :].expand(-1, 3, -1),      # stride 0 and a storage offset
}
LENGTHS = (8, 12, 16, 20, 24, 28, 32, 36, 40, 44)


def same_layouts(eager, optimized, where="output"):
    """The results Python sees have eager's values (helpers.same) and, tensor by tensor, its strides,
    storage offset relative to their inputs' and contiguity."""
    same(eager, optimized, where)
    if isinstance(eager, torch.Tensor):
        assert eager.stride() == optimized.stride(), f"{where}: strides {eager.stride()} vs {optimized.stride()}"
        assert eager.is_contiguous() == optimized.is_contiguous(), where
    elif isinstance(eager, (tuple, list)):
        for i, (a, b) in enumerate(zip(eager, optimized)):
            same_layouts(a, b, f"{where}[{i}]")


def run_layouts(fn, calls, **opts):
    """Each call on copies of its arguments (layout and aliasing kept: helpers.clone), eagerly and optimized;
    the results compared by `same_layouts`, the arguments after the call by value.  Returns the stats."""
    opt = partialdyn.optimize(fn, backend=opts.pop("backend", "eager"), **opts)
    for i, args in enumerate(calls):
        a_ref, a_opt = clone(args), clone(args)
        same_layouts(fn(*a_ref), opt(*a_opt), f"call {i}")
        same(a_ref, a_opt, f"call {i} inputs after call")
    return partialdyn.stats(opt)


def takes_a_column_across_a_break(x):
    t = x[:, 0]
    print(end="")                   # t reaches the resume function as an input: a strided view of x
    return t * 2


def test_a_column_taken_before_a_break_compiles_twice_over_ten_sequence_lengths():
    stats = check(takes_a_column_across_a_break, [(r(2, n, 4),) for n in LENGTHS], breaks=1)
    assert stats["compiles"] == 2 and stats["recompiles"] == 0


def computes_on_a_view(x):
    return x * 2 + x.sum(-1, keepdim=True), x.contiguous(), x.softmax(-1), x.transpose(0, -1) + 1, x[1:]


@pytest.mark.parametrize("view", STRIDED_VIEWS.values(), ids=STRIDED_VIEWS)
def test_a_strided_argument_has_symbolic_sizes_and_results_with_eager_strides(view):
    stats = run_layouts(computes_on_a_view, [(view(r(b, n, 4, seed=n)),) for b, n in zip((2, 3, 2, 4), LENGTHS)])
    # x[:, ::2] of an even length: its first stride is size(1) * stride(1) the first time only
    assert stats["compiles"] <= 2 and stats["cache_hits"] >= 2, stats


def views_then_computes_across_a_break(x, kind):
    t = STRIDED_VIEWS[kind](x)
    print(end="")
    return computes_on_a_view(t)


@pytest.mark.parametrize("kind", STRIDED_VIEWS)
def test_a_strided_view_live_at_a_break_has_symbolic_sizes_in_the_resume_function(kind):
    stats = run_layouts(views_then_computes_across_a_break,
                        [(r(b, n, 4, seed=n), kind) for b, n in zip((2, 3, 2, 4, 3), LENGTHS)])
    assert stats["compiles"] <= 3 and stats["cache_hits"] >= 4, stats


def writes_a_view(x):
    x.mul_(2)
    x[:, :1] += 1
    return x + 1


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_a_strided_argument_written_in_place_matches_eager(backend):
    for view in ("column", "offset", "step", "sliced_transpose"):
        partialdyn.reset()
        calls = [(STRIDED_VIEWS[view](r(2, n, 4, seed=n)),) for n in LENGTHS[:4]]
        stats = run_layouts(writes_a_view, calls, backend=backend)
        assert 1 <= stats["compiles"] <= 2 and stats["cache_hits"] >= 2 and not stats["eager_fallbacks"], (view, stats)


def recompile_reasons():
    return [e["reason"] for e in partialdyn.events("compile") if e["recompile"]]


def test_an_expanded_entry_rejects_the_same_values_materialized():
    calls = [(r(1, 5, 4).expand(3, 5, 4),), (r(1, 7, 3).expand(2, 7, 3),),   # rows share memory: stride 0
             (r(3, 5, 4),)]
    stats = check(computes_on_a_view, calls, recompiles=1)
    assert stats["cache_hits"] >= 1
    assert recompile_reasons()[0].startswith("x.stride(0) == 0 failed: got 20"), recompile_reasons()


def test_a_strided_entry_rejects_a_transposed_input_and_a_contiguous_entry_a_strided_one():
    calls = [(r(3, 6, 4)[:, 0],), (r(4, 9, 5)[:, 0],),            # a column, then another length: hit
             (r(6, 4).t(),),                                      # transposed: its last stride is not 1
             (r(5, 4),), (r(2, 9, 4)[:, 0],)]                     # contiguous, then a column again: hit
    stats = check(computes_on_a_view, calls, recompiles=2)
    assert stats["cache_hits"] >= 2
    assert recompile_reasons()[0].startswith("2 <= x.stride(0) failed: got 1"), recompile_reasons()


def test_a_strided_entry_rejects_an_input_whose_elements_overlap():
    overlapping = torch.arange(12.0).as_strided((3, 4), (2, 1))      # rows 2 apart, 4 long
    calls = [(r(3, 6, 4)[:, 0],), (r(4, 9, 4)[:, 0],), (overlapping,)]
    check(computes_on_a_view, calls, recompiles=1)
    assert recompile_reasons()[0].startswith("x has no overlapping elements: x.stride(0) > (-1) + x.size(1) "
                                             "failed: got x.size(1)=4, x.stride(0)=2"), recompile_reasons()
    check(writes_a_view, calls, recompiles=1)            # writes through overlapping rows add twice, as eagerly


def test_a_strided_argument_is_guarded_on_what_python_read_of_its_layout():
    def reads_layout(x):
        return (x * 2 if x.is_contiguous() else x - 1) + (1 if x.storage_offset() > 3 else 0)
    calls = [(r(2, n, 4)[:, 0],) for n in (5, 7)] + [(r(2, 1, 4)[:, 0],)] \
        + [(r(2, n, 4)[:, 1:],) for n in (3, 9)] + [(r(2, 9, 2)[:, 1:],)]
    check(reads_layout, calls, recompiles=3)


WEIGHTS = [1.0 + i / 100 for i in range(100)]


def scales_by_a_stride(x):
    return x * WEIGHTS[x.stride(0)]      # Python needs the stride's value: specialized, as a size would be


def test_a_stride_python_consumes_backs_off_like_a_size():
    stats = check(scales_by_a_stride, [(r(2, n, 2)[:, 0],) for n in LENGTHS], breaks=None, recompiles=None)
    backoff = [e["dim"] for e in partialdyn.events("backoff")]
    assert backoff == ["x.stride(0)"], backoff
    assert stats["graph_breaks"] >= 1 and stats["compiles"] < len(LENGTHS), stats


def test_an_overlapping_window_view_is_static_and_matches_eager():
    calls = [(r(2, n).unfold(1, 4, 2),) for n in (8, 8, 10)]     # windows share elements: static
    stats = check(computes_on_a_view, calls, recompiles=1)
    assert stats["cache_hits"] >= 1


VIEW_OPS = {
    "pointwise": lambda t: t * 2 + 1,
    "reductions": lambda t: (t.sum(0), t.mean(-1, keepdim=True)),
    "softmax": lambda t: t.softmax(-1),
    "contiguous": lambda t: t.contiguous(),
    "reshape": lambda t: t.reshape(-1),
    "transpose": lambda t: t.transpose(0, -1) * t.transpose(0, -1),
    "matmul": lambda t: t @ t.transpose(-1, -2),
    "like": lambda t: (torch.zeros_like(t), torch.empty_like(t).fill_(2.0)),
    "slice_result": lambda t: t[1:] + 0,
    "written": lambda t: t.mul_(3).add_(1),          # in place on the (view) argument; an expand raises
}


def views_and_computes(x, view, op, across):
    t = STRIDED_VIEWS[view](x)
    if across:
        print(end="")                   # t reaches the resume function as an input
    return VIEW_OPS[op](t)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(view=st.sampled_from(sorted(STRIDED_VIEWS)), op=st.sampled_from(sorted(VIEW_OPS)), across=st.booleans(),
       shapes=st.lists(st.tuples(st.integers(1, 4), st.integers(4, 12), st.integers(2, 5)), min_size=1, max_size=8))
def test_random_views_and_shape_streams_match_eager_values_and_strides(view, op, across, shapes):
    """Values, strides and contiguity of what Python sees, and the argument after the call, equal eager's for
    any view kind, op and stream of shapes (sizes 1 included), as an argument or across a break; the last
    call made again hits."""
    partialdyn.reset()
    fn = views_and_computes if across else (lambda t, view, op, across: VIEW_OPS[op](t))
    opt = partialdyn.optimize(fn, backend="eager", cache_size_limit=4)
    calls = [(r(*shape, seed=i), view, op, across) for i, shape in enumerate(shapes)]
    if not across:
        calls = [(STRIDED_VIEWS[view](x), *rest) for x, *rest in calls]
    raised = ran = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # cache_size_limit reached
        for i, args in enumerate(calls):
            a_ref, a_opt = clone(args), clone(args)
            try:
                expected, raised = fn(*a_ref), False
            except RuntimeError as error:       # writing an expanded view
                with pytest.raises(type(error)):
                    opt(*a_opt)
                raised = True
                continue
            same_layouts(expected, opt(*a_opt), f"call {i}")
            same(a_ref, a_opt, f"call {i} inputs after call")
            ran = True
        stats = partialdyn.stats(opt)
        assert stats["internal_errors"] == 0, stats
        assert stats["compiles"] >= 1 or not ran, (shapes, stats)     # a call that ran was compiled
        if not raised and not stats["eager_fallbacks"]:
            assert outcome(opt, *clone(calls[-1]))[1] == "hit", (shapes, stats)
