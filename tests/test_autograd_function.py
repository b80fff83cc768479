"""torch.autograd.Function.apply in traced code: one call in the graph, differentiated by the Function's own
backward (through aot_autograd too), never inlined."""
import pytest
import torch

import partialdyn
from helpers import check, r


def setup_function():
    partialdyn.reset()


class ScaledSquare(torch.autograd.Function):
    """The backward is deliberately not the true gradient (3x instead of 2x): a test that the Function's own
    backward ran, not autograd through its forward."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * scale

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * 3 * x * ctx.scale, None


def square_of_sine(x):
    return ScaledSquare.apply(x.sin(), 2.0).sum()


def test_function_apply_compiles_into_one_graph():
    check(square_of_sine, [(r(3),), (r(5),)])


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_gradients_come_from_the_function_s_own_backward(backend):
    opt = partialdyn.optimize(square_of_sine, backend=backend)
    for n in (3, 5, 7):
        x = r(n, requires_grad=True)
        x_opt = x.detach().clone().requires_grad_()
        square_of_sine(x).backward()
        opt(x_opt).backward()
        torch.testing.assert_close(x_opt.grad, x.grad)
    stats = partialdyn.stats(opt)
    assert stats["compiles"] == 1 and stats["graph_breaks"] == 0 and stats["eager_fallbacks"] == 0, stats


class Holder:
    factor = 2.0


class WithObject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, holder):
        return x * holder.factor

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def apply_with_object(x):
    return WithObject.apply(x + 1, Holder()) - 1


def test_function_given_an_object_runs_in_python_between_graphs():
    stats = check(apply_with_object, [(r(3),), (r(4),)], breaks=None)
    assert stats["graph_breaks"] >= 1
