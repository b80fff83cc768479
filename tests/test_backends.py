"""Backends: eager, aot_eager, user callables, registration, option validation, inductor (slow)."""
import pytest
import torch

import partialdyn
from helpers import guards, outcome


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def rand(*shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).requires_grad_(requires_grad)


def mlp(x, w1, w2):
    return torch.relu(x @ w1).tanh() @ w2


def scaled(x):
    return (x * 2 + x.size(0)).sin()


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_named_backends_match_eager_over_batch_sizes(backend):
    opt = partialdyn.optimize(mlp, backend=backend)
    w1, w2 = rand(4, 8, seed=1), rand(8, 3, seed=2)
    for b in (2, 3, 5, 9):
        x = rand(b, 4, seed=b)
        torch.testing.assert_close(opt(x, w1, w2), mlp(x, w1, w2))
    s = partialdyn.stats(opt)
    assert s["compiles"] == 1 and s["graphs"] == 1 and s["cache_hits"] == 3


def test_aot_eager_gradients_equal_eager():
    opt = partialdyn.optimize(mlp, backend="aot_eager")
    for b in (2, 3, 6):
        x, w1, w2 = rand(b, 4, seed=b, requires_grad=True), rand(4, 8, seed=1, requires_grad=True), \
            rand(8, 3, seed=2, requires_grad=True)
        xe, w1e, w2e = (t.detach().clone().requires_grad_() for t in (x, w1, w2))
        out, ref = opt(x, w1, w2), mlp(xe, w1e, w2e)
        torch.testing.assert_close(out, ref)
        out.pow(2).sum().backward()
        ref.pow(2).sum().backward()
        for got, want in ((x, xe), (w1, w1e), (w2, w2e)):
            torch.testing.assert_close(got.grad, want.grad)
    assert partialdyn.stats(opt)["compiles"] == 1


def test_user_backend_gets_a_graph_module_and_fake_inputs_with_symbolic_sizes():
    seen = []

    def backend(gm, example_inputs):
        assert isinstance(gm, torch.fx.GraphModule)
        seen.append(example_inputs)
        return gm.forward
    opt = partialdyn.optimize(scaled, backend=backend)
    for b in (3, 4, 7):
        x = rand(b, 2, seed=b)
        torch.testing.assert_close(opt(x), scaled(x))
    assert len(seen) == 1
    (inputs,) = seen
    assert isinstance(inputs[0], torch._subclasses.fake_tensor.FakeTensor)
    assert isinstance(inputs[0].size(0), torch.SymInt)
    assert isinstance(inputs[0].size(1), torch.SymInt)


def test_user_backend_size_guard_bubbles_into_the_entry():
    """A backend that branches on a size must get a guard for it: the other side recompiles."""
    built = []
    used = []

    def backend(gm, example_inputs):
        side = "big" if example_inputs[0].size(0) > 4 else "small"
        built.append(side)

        def run(*args):
            used.append(side)
            return gm.forward(*args)
        return run
    opt = partialdyn.optimize(scaled, backend=backend)
    for b in (2, 3, 8, 9, 4, 16):
        x = rand(b, 2, seed=b)
        torch.testing.assert_close(opt(x), scaled(x))
    assert built == ["small", "big"]
    assert used == ["small", "small", "big", "big", "small", "big"]
    s = partialdyn.stats(opt)
    assert s["compiles"] == 2 and s["recompiles"] == 1
    texts = [g["text"] for g in guards(scaled)]
    assert any("x.size(0)" in t and "4" in t for t in texts), texts


def test_register_backend_by_name():
    calls = []

    def counting(gm, example_inputs):
        calls.append(len(example_inputs))
        return gm.forward
    partialdyn.register_backend("test_backends_counting", counting)
    opt = partialdyn.optimize(scaled, backend="test_backends_counting")
    x = rand(3, 2)
    torch.testing.assert_close(opt(x), scaled(x))
    assert outcome(opt, x)[1] == "hit"
    assert calls == [1]
    # a registered name is accepted as the config default, too
    saved = partialdyn.config.backend
    try:
        partialdyn.config.backend = "test_backends_counting"
        opt2 = partialdyn.optimize(lambda x: x - 1)
        torch.testing.assert_close(opt2(x), x - 1)
        assert calls == [1, 1]
    finally:
        partialdyn.config.backend = saved


def test_unknown_backend_name_fails_at_decoration_listing_valid_names():
    with pytest.raises(ValueError) as info:
        partialdyn.optimize(scaled, backend="no_such_backend")
    msg = str(info.value)
    assert "no_such_backend" in msg
    for name in ("eager", "aot_eager", "inductor"):
        assert name in msg
    with pytest.raises(ValueError, match="no_such_backend"):
        partialdyn.optimize(backend="no_such_backend")      # the decorator-factory form, too


@pytest.mark.parametrize("kwargs,error,snippet", [
    (dict(policy="sometimes"), ValueError, "valid policies"),
    (dict(recompile_limit=-1), ValueError, "recompile_limit"),
    (dict(recompile_limit=1.5), ValueError, "recompile_limit"),
    (dict(cache_size_limit=0), ValueError, "cache_size_limit"),
    (dict(cache_size_limit=-3), ValueError, "cache_size_limit"),
    (dict(fullgraph="yes"), ValueError, "fullgraph"),
    (dict(backend=42), ValueError, "valid backends"),
], ids=["policy", "negative_recompile_limit", "float_recompile_limit", "zero_cache", "negative_cache",
        "fullgraph", "non_callable_backend"])
def test_bad_options_fail_at_decoration(kwargs, error, snippet):
    with pytest.raises(error, match=snippet):
        partialdyn.optimize(scaled, **kwargs)
    with pytest.raises(error, match=snippet):
        partialdyn.optimize(**kwargs)


def test_non_callable_targets_fail_clearly():
    with pytest.raises(TypeError, match="expects a Python function or an nn.Module"):
        partialdyn.optimize(42)
    with pytest.raises(TypeError, match="must be callable"):
        partialdyn.register_backend("test_backends_bad", 42)
    with pytest.raises(ValueError):
        partialdyn.register_backend("", lambda gm, ex: gm.forward)


def test_backend_error_does_not_reach_the_user():
    def broken(gm, example_inputs):
        raise RuntimeError("backend exploded")
    opt = partialdyn.optimize(scaled, backend=broken)
    x = rand(3, 2)
    torch.testing.assert_close(opt(x), scaled(x))
    assert partialdyn.stats(opt)["eager_fallbacks"] >= 1
    assert partialdyn.stats(opt)["internal_errors"] == 1
    assert any("backend exploded" in e["reason"] for e in partialdyn.events("eager_fallback"))


# ---------------------------------------------------------------- inductor (slow)
class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.slow
def test_inductor_mlp_over_three_batch_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    model = MLP()
    opt = partialdyn.optimize(model, backend="inductor")
    with torch.no_grad():
        for b in (2, 5, 11):
            x = rand(b, 8, seed=b)
            torch.testing.assert_close(opt(x), model(x), rtol=1e-4, atol=1e-5)
    s = partialdyn.stats(opt)
    assert s["compiles"] == 1 and s["eager_fallbacks"] == 0
