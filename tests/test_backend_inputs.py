"""What backends get and ask for: an input resized in the function, aot_autograd's restart for float inputs
(regressions found in review: each gave a wrong result silently), and a graph that reads each symbolic size
once."""
import torch

import partialdyn
from helpers import assert_compiled, check, outcome


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
        for n in (2, 3, 6, 6):
            a = torch.arange(float(n))
            b = a.clone()
            got, what = outcome(opt, a)
            torch.testing.assert_close(got, resize_input(b))
            assert a.shape == b.shape
        assert what == "hit", f"{policy}: the last call made again did not hit: {partialdyn.stats(opt)}"
        assert_compiled(opt, hits=0, fallbacks=None)


def scalars_out(x, k, s):
    return x.sin().sum(0) * x.shape[0], k * 2, s / 2


def test_backend_restart_request_for_float_inputs_is_honoured():
    opt = partialdyn.optimize(scalars_out, backend="aot_eager")
    for i in (1, 2, 3, 4, 4):
        x, k, s = torch.randn(2 + i, 3), i - 2, i * 0.25
        (got, what), want = outcome(opt, x, k, s), scalars_out(x, k, s)
        torch.testing.assert_close(got[0], want[0])
        assert got[1:] == want[1:] and type(got[1]) is int and type(got[2]) is float
    assert partialdyn.stats(opt)["graphs"] >= 1
    assert what == "hit", f"the last call made again did not hit: {partialdyn.stats(opt)}"


def reshape_through_layers(x):
    a = torch.relu(x)
    b = a.view(a.size(0), 2, 2) * 2
    c = b.reshape(b.size(0), 4) + 1
    d = torch.cat([c, c])                  # size(0) is 2 * x.size(0): a different value, read on its own
    return d.view(d.size(0), -1).sum(1) + d.size(0) + c.view(c.size(0), 2, 2).sum()


def test_a_symbolic_size_asked_again_of_a_later_tensor_is_read_once_in_the_graph():
    stats = check(reshape_through_layers, [(torch.randn(3, 4),), (torch.randn(5, 4),), (torch.randn(7, 4),)])
    sizes = stats["backend"].ops().count("size")
    assert sizes == 2, f"{sizes} size reads: x.size(0) once, d.size(0) once"
