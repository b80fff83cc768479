"""What backends get and ask for: an input resized in the function, aot_autograd's restart for float inputs
(regressions found in review: each gave a wrong result silently)."""
import torch

import partialdyn
from helpers import assert_compiled


def setup_function():
    partialdyn.reset()


def resize_input(x):
    x.resize_(6)
    x[2:].fill_(0)
    return x[:2] * 1


def test_resize_of_an_input_runs_in_python_on_every_backend():
    for policy in ("static", "automatic", "partial"):
        partialdyn.reset()
        opt = partialdyn.optimize(resize_input, backend="aot_eager", policy=policy)
        for n in (2, 3, 6):
            a = torch.arange(float(n))
            b = a.clone()
            torch.testing.assert_close(opt(a), resize_input(b))
            assert a.shape == b.shape
        assert_compiled(opt, hits=0, fallbacks=None)


def scalars_out(x, k, s):
    return x.sin().sum(0) * x.shape[0], k * 2, s / 2


def test_backend_restart_request_for_float_inputs_is_honoured():
    opt = partialdyn.optimize(scalars_out, backend="aot_eager")
    for i in range(1, 5):
        x, k, s = torch.randn(2 + i, 3), i - 2, i * 0.25
        got, want = opt(x, k, s), scalars_out(x, k, s)
        torch.testing.assert_close(got[0], want[0])
        assert got[1:] == want[1:] and type(got[1]) is int and type(got[2]) is float
    assert partialdyn.stats(opt)["graphs"] >= 1
