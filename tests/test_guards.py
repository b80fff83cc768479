"""Guard soundness: a cache entry is reused only for inputs that would trace the same way.

For each function we compile on an input A and probe other inputs B.  Whatever the
entries' guards decide, the optimized result must equal eager; inputs that would
trace differently must be rejected by the existing entry; inputs that trace the same
way should be accepted (so the guard is not just "always recompile").
"""
import types

import pytest
import torch

import partialdyn
from helpers import CountingBackend, entries, outcome


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def rand(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


# ---------------------------------------------------------------- functions under test
def branch(x):
    if x.size(0) > 16:
        return x * 2
    return x - 1


def same_len(x, y):
    if x.size(0) == y.size(0):
        return x + y
    return x.sum() + y.sum()


def parity(x):
    if x.size(0) % 2 == 0:
        return x * 2
    return x * 3


def factorial_scale(x):
    import math
    return x / math.factorial(x.size(1))


def by_ndim(x):
    if x.dim() == 2:
        return x.sum(1)
    return x * 2


def by_dtype(x):
    if x.dtype == torch.float32:
        return x * 2
    return x - 1


def by_requires_grad(x):
    if x.requires_grad:
        return (x * 2).detach()
    return x - 1


def by_contiguity(x):
    if x.is_contiguous():
        return x.view(-1) * 2
    return x.reshape(-1) - 1


def list_input(xs):
    out = xs[0]
    for t in xs[1:]:
        out = out + t
    return out * len(xs)


def dict_input(d):
    return sum(v * (i + 1) for i, v in enumerate(d.values())) + len(d)


def string_mode(x, mode):
    if mode == "add":
        return x + 1
    return x * 3


def optional_arg(x, mask=None):
    if mask is None:
        return x * 2
    return x * mask


def first_dim_is_one(x):
    if x.size(0) == 1:
        return x.squeeze(0) * 2
    return x.sum(0)


def first_dim_gt_one(x):
    if x.size(0) > 1:
        return x * 2
    return x - 1


# (id, fn, A, [(B, must_be_accepted_by_entry_0)])
# True: A's entry must accept B (same trace); False: it must reject B (B traces differently).
CASES = [
    ("branch", branch, (rand(4, 3),),
     [((rand(8, 3),), True), ((rand(16, 3),), True), ((rand(17, 3),), False), ((rand(32, 3),), False)]),
    ("relation", same_len, (rand(3, 2), rand(3, 2)),
     [((rand(4, 2), rand(4, 2)), True), ((rand(3, 2), rand(5, 2)), False), ((rand(6, 2), rand(2, 2)), False)]),
    ("parity", parity, (rand(4),),
     [((rand(6),), True), ((rand(10),), True), ((rand(5),), False), ((rand(7),), False)]),
    ("specialized_dim", factorial_scale, (rand(2, 4),),
     [((rand(3, 4),), True), ((rand(9, 4),), True), ((rand(2, 5),), False), ((rand(2, 3),), False)]),
    ("ndim", by_ndim, (rand(3, 4),),
     [((rand(5, 6),), True), ((rand(3),), False), ((rand(3, 4, 2),), False)]),
    ("dtype", by_dtype, (rand(3),),
     [((rand(5),), True), ((rand(3, dtype=torch.float64),), False), ((rand(3, dtype=torch.float16),), False)]),
    ("requires_grad", by_requires_grad, (rand(3),),
     [((rand(4),), True), ((rand(3).requires_grad_(),), False)]),
    ("contiguity", by_contiguity, (rand(3, 4),),
     [((rand(5, 4),), True), ((rand(4, 3).t(),), False), ((rand(3, 8)[:, ::2],), False)]),
    ("list_length", list_input, ([rand(3), rand(3, seed=1)],),
     [(([rand(4), rand(4, seed=1)],), True), (([rand(3), rand(3, seed=1), rand(3, seed=2)],), False),
      (([rand(3)],), False)]),
    ("dict_keys", dict_input, ({"a": rand(2), "b": rand(2, seed=1)},),
     [(({"a": rand(5), "b": rand(5, seed=1)},), True), (({"b": rand(2), "a": rand(2, seed=1)},), False),
      (({"a": rand(2)},), False), (({"a": rand(2), "c": rand(2, seed=1)},), False)]),
    ("string_arg", string_mode, (rand(3), "add"),
     [((rand(4), "add"), True), ((rand(3), "mul"), False)]),
    ("optional_none", optional_arg, (rand(3),),
     [((rand(5),), True), ((rand(3), rand(3, seed=1)), False)]),
    ("optional_tensor", optional_arg, (rand(3), rand(3, seed=1)),
     [((rand(5), rand(5, seed=1)), True), ((rand(3),), False), ((rand(3), None), False)]),
]


def compiled_on(fn, a, **opts):
    """`fn` optimized (on a CountingBackend) after its first call on `a`, which must compile and match eager,
    and a second, which must hit."""
    opt = partialdyn.optimize(fn, backend=CountingBackend(), **opts)
    out, what = outcome(opt, *a)
    assert what == "compile", what
    torch.testing.assert_close(out, fn(*a))
    assert outcome(opt, *a)[1] == "hit", partialdyn.stats(opt)
    return opt


@pytest.mark.parametrize("fn,a,probes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_guards_are_sound(fn, a, probes):
    # the entry traced on A accepts exactly the probes that trace the same way, each probe on a fresh cache
    for b, should_accept in probes:
        partialdyn.reset()
        opt = compiled_on(fn, a)
        out, what = outcome(opt, *b)
        assert what == ("hit" if should_accept else "recompile"), (b, what, entries(fn)[0])
        torch.testing.assert_close(out, fn(*b))
    # one cache fed every probe in turn: each call, and each call made again (which must now hit an entry,
    # possibly one a recompile made), gives the eager result
    partialdyn.reset()
    opt = compiled_on(fn, a)
    for b, _ in probes:
        torch.testing.assert_close(opt(*b), fn(*b))
    for b, _ in list(probes) + [(a, True)]:
        out, what = outcome(opt, *b)
        assert what == "hit", (b, what, partialdyn.stats(opt))
        torch.testing.assert_close(out, fn(*b))


def test_size_one_dims_are_guarded():
    """0/1 sizes are constants in the ShapeEnv: the entry must still pin them."""
    for fn in (first_dim_is_one, first_dim_gt_one):
        for b in (rand(4, 3), rand(2, 3), rand(0, 3)):
            partialdyn.reset()
            opt = compiled_on(fn, (rand(1, 3),))
            out, what = outcome(opt, b)
            assert what == "recompile", (what, entries(fn)[0])
            torch.testing.assert_close(out, fn(b))


def test_size_zero_dims_are_guarded():
    def f(x):
        return x.view(-1) * 2 + x.numel()
    opt = compiled_on(f, (rand(0, 3),))
    b = rand(2, 3)
    out, what = outcome(opt, b)
    assert what == "recompile"
    torch.testing.assert_close(out, f(b))


# ---------------------------------------------------------------- state the trace read
SCALE = 2.0


def global_read(x):
    return x * SCALE


def test_global_variable_change_is_detected():
    global SCALE
    x = rand(3)
    opt = compiled_on(global_read, (x,))
    try:
        SCALE = 5.0
        out, what = outcome(opt, x)
        assert what == "recompile"
        torch.testing.assert_close(out, global_read(x))
        SCALE = 2.0
        out, what = outcome(opt, x)
        assert what == "hit"
        torch.testing.assert_close(out, global_read(x))
    finally:
        SCALE = 2.0


config_module = types.ModuleType("config_module")
config_module.FACTOR = 2.0


def module_attr_read(x):
    return x * config_module.FACTOR


def test_python_module_attribute_change_is_detected():
    x = rand(3)
    opt = compiled_on(module_attr_read, (x,))
    try:
        config_module.FACTOR = 4.0
        out, what = outcome(opt, x)
        assert what == "recompile"
        torch.testing.assert_close(out, module_attr_read(x))
    finally:
        config_module.FACTOR = 2.0


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.scale = 2.0
        self.use_relu = True

    def forward(self, x):
        y = self.lin(x) * self.scale
        if self.use_relu:
            y = y.relu()
        return y


def test_nn_module_attribute_changes_are_detected():
    m = Scaled()
    om = partialdyn.optimize(m, backend="eager")
    x = rand(3, 4)
    torch.testing.assert_close(om(x), m(x))
    m.scale = 3.0
    torch.testing.assert_close(om(x), m(x))
    m.use_relu = False
    torch.testing.assert_close(om(x), m(x))
    with torch.no_grad():
        m.lin.weight.mul_(2)     # in-place parameter updates need no recompile, but must be seen
    torch.testing.assert_close(om(x), m(x))
    assert partialdyn.stats(om)["recompiles"] == 2
    # a batch-size change alone reuses the entry
    torch.testing.assert_close(om(rand(7, 4)), m(rand(7, 4)))
    assert partialdyn.stats(om)["recompiles"] == 2


def make_closure():
    scale = 2.0

    def f(x):
        return x * scale

    def set_scale(v):
        nonlocal scale
        scale = v
    return f, set_scale


def test_closure_variable_change_is_detected():
    f, set_scale = make_closure()
    x = rand(3)
    opt = compiled_on(f, (x,))
    set_scale(5.0)
    out, what = outcome(opt, x)
    assert what == "recompile"
    torch.testing.assert_close(out, f(x))


def mutable_default(x, opts={"scale": 2.0, "mode": "mul"}):  # noqa: B006 - the point of the test
    return x * opts["scale"] if opts["mode"] == "mul" else x + opts["scale"]


def test_mutated_default_argument_is_detected():
    """A number inside the default follows the policy (symbolic: same entry, right result); a string the
    trace branched on is guarded, so changing it in place is caught."""
    x = rand(3)
    opt = compiled_on(mutable_default, (x,))
    try:
        mutable_default.__defaults__[0]["scale"] = 5.0
        out, what = outcome(opt, x)
        assert what == "hit"
        torch.testing.assert_close(out, mutable_default(x))
        mutable_default.__defaults__[0]["mode"] = "add"
        out, what = outcome(opt, x)
        assert what == "recompile"
        torch.testing.assert_close(out, mutable_default(x))
    finally:
        mutable_default.__defaults__[0].update(scale=2.0, mode="mul")


def default_scale(x, s=2.0):
    return x * s


def test_reassigned_defaults_are_honoured():
    x = rand(3)
    opt = compiled_on(default_scale, (x,))
    saved = default_scale.__defaults__
    try:
        default_scale.__defaults__ = (4.0,)
        out, what = outcome(opt, x)
        assert what in ("hit", "recompile"), what      # a symbolic float may be reused: the result decides
        torch.testing.assert_close(out, default_scale(x))
    finally:
        default_scale.__defaults__ = saved


def mutate_then_read(x, y):
    x.add_(1)
    return y * 2


def test_aliased_inputs_with_mutation_match_eager():
    opt = partialdyn.optimize(mutate_then_read, backend=CountingBackend())
    for aliased in (False, True, False, True):
        a, b = torch.zeros(3), torch.zeros(3)
        c, d = torch.zeros(3), torch.zeros(3)
        got = opt(a, a) if aliased else opt(a, b)
        want = mutate_then_read(c, c) if aliased else mutate_then_read(c, d)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(a, c)
    # a view of the same storage counts too
    base, ref = torch.ones(4), torch.ones(4)
    torch.testing.assert_close(opt(base[:2], base[:2]), mutate_then_read(ref[:2], ref[:2]))
    torch.testing.assert_close(base, ref)
    stats = partialdyn.stats(opt)
    assert stats["compiles"] >= 1 and stats["cache_hits"] >= 2 and stats["eager_fallbacks"] == 0, stats


def test_grad_mode_is_guarded():
    def f(x, w):
        return x @ w
    x, w = rand(2, 3), rand(3, 4).requires_grad_()
    opt = compiled_on(f, (x, w))
    assert opt(x, w).requires_grad
    with torch.no_grad():
        out, what = outcome(opt, x, w)
        assert what == "recompile"
        assert not out.requires_grad
        torch.testing.assert_close(out, f(x, w))


# ---------------------------------------------------------------- readable reasons, printable source
def add_one(x):
    return x + 1


def test_static_recompile_reason_names_the_dim_and_the_value():
    opt = partialdyn.optimize(add_one, backend="eager", policy="static")
    for b in (8, 10):
        x = rand(b, 3)
        torch.testing.assert_close(opt(x), add_one(x))
    reasons = [e["reason"] for e in partialdyn.events("compile")]
    assert reasons[0] == "first call" and reasons[1].startswith("x.size(0) == 8 failed: got 10")
    assert outcome(opt, rand(10, 3))[1] == "hit"


def test_predicate_recompile_reason_names_the_range_and_the_value():
    opt = partialdyn.optimize(branch, backend="eager")
    for b in (4, 20):
        torch.testing.assert_close(opt(rand(b, 3)), branch(rand(b, 3)))
    reason = partialdyn.events("compile")[-1]["reason"]
    assert "x.size(0)" in reason and "16" in reason and "got 20" in reason, reason
    assert outcome(opt, rand(20, 3))[1] == "hit"


def test_tensor_property_recompile_reason_names_the_property():
    opt = partialdyn.optimize(add_one, backend="eager")
    opt(rand(3))
    opt(rand(3, dtype=torch.float64))
    reason = partialdyn.events("compile")[-1]["reason"]
    assert "dtype" in reason and "float64" in reason, reason
    assert outcome(opt, rand(3, dtype=torch.float64))[1] == "hit"


def test_dict_keys_recompile_reason_names_the_keys():
    opt = partialdyn.optimize(dict_input, backend="eager")
    opt({"a": rand(2), "b": rand(2)})
    opt({"a": rand(2)})
    reason = partialdyn.events("compile")[-1]["reason"]
    assert "['a']" in reason, reason
    assert outcome(opt, {"a": rand(2)})[1] == "hit"


DOCUMENTED_KINDS = ("TYPE_MATCH", "ID_MATCH", "CONSTANT_MATCH", "TENSOR_MATCH_DYNAMIC", "TENSOR_MATCH_STATIC",
                    "SHAPE", "GLOBAL_STATE", "ABSENT", "CONTENTS_MATCH", "MODULE_STRUCTURE", "FUNCTION_MATCH",
                    "ALIASING")


@pytest.mark.parametrize("fn,a", [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_guards_event_names_documented_kinds_with_readable_text(fn, a):
    opt = compiled_on(fn, a)
    assert len(entries(fn)) == 1
    for g in entries(fn)[0]:
        assert g["kind"] in DOCUMENTED_KINDS, g
        assert g["text"] and isinstance(g["text"], str) and isinstance(g["source"], str), g
        assert all(isinstance(dim, str) and ".size(" in dim for dim in g["dims"]), g
    # the entry those guards describe accepts the call it was traced on
    assert outcome(opt, *a)[1] == "hit"


def test_inference_and_conj_tensors_do_not_reuse_a_plain_entry():
    """The cheap tensor check must still separate what the full dispatch-key set would."""
    def double(x):
        return x * 2
    opt = compiled_on(double, (torch.ones(3),))
    with torch.inference_mode():
        xi = torch.ones(3)
    out, what = outcome(opt, xi)
    assert what == "recompile"
    torch.testing.assert_close(out, double(xi))
    z = torch.randn(3, dtype=torch.complex64)
    torch.testing.assert_close(opt(z), double(z))
    zc = z.conj()
    assert zc.is_conj()
    out, what = outcome(opt, zc)
    assert what == "recompile"
    torch.testing.assert_close(out, double(zc))


def test_an_entry_traced_on_an_inference_tensor_serves_inference_tensors_only():
    def double(x):
        return x * 2
    with torch.inference_mode():
        xi, yi = torch.ones(3), torch.ones(3)
    opt = compiled_on(double, (xi,))
    out, what = outcome(opt, yi)
    assert what == "hit"
    torch.testing.assert_close(out, double(yi))
    assert outcome(opt, torch.ones(3))[1] == "recompile"


@pytest.mark.parametrize("make, says", [
    (lambda: _inference_tensor(3), "inference tensor False expected, got True"),
    (lambda: torch.ones(4)[1:], "storage offset 0 expected, got 1"),
])
def test_a_tensor_guard_miss_says_which_property_differs(make, says):
    def double(x):
        return x * 2
    opt = compiled_on(double, (torch.ones(3),))
    assert outcome(opt, make())[1] == "recompile"
    reason = [e["reason"] for e in partialdyn.events("compile")][-1]
    assert reason.startswith("x: Tensor float32 cpu ndim=1 failed: " + says), reason


def _inference_tensor(n):
    with torch.inference_mode():
        return torch.ones(n)


def test_tensor_metadata_is_checked_past_instance_attributes_that_shadow_its_methods():
    """Tensors take instance attributes; the guard asks TensorBase itself, not `x.is_contiguous`."""
    def double(x):
        return x * 2
    opt = compiled_on(double, (torch.ones(3, 4),))
    odd = torch.ones(4, 3).t()
    odd.is_contiguous = lambda *args, **kwargs: True
    odd.storage_offset = lambda: 0
    out, what = outcome(opt, odd)
    assert what == "recompile"
    torch.testing.assert_close(out, double(odd))
    shifted = torch.ones(13)[1:].view(3, 4)
    shifted.storage_offset = lambda: 0
    assert outcome(opt, shifted)[1] == "recompile"


def test_enum_constants_are_guarded_by_value_through_the_constant_table():
    import enum

    from helpers import check

    class Mode(str, enum.Enum):
        SCALE = "scale"
        SHIFT = "shift"

    def f(x, mode):
        return x * 2 if mode == Mode.SCALE else x + 1

    stats = check(f, [(rand(3), Mode.SCALE), (rand(3), Mode.SCALE), (rand(3), Mode.SHIFT)], recompiles=1)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 1
