"""Identity of tensors: in-place ops and no-op conversions return the input object itself, in the trace (`is`)
and in what the optimized call returns; tensor flags the tensor guard does not pin (`_is_view()`) are guarded
when traced code reads them on an input; storage queries leave the graph."""
import pytest
import torch

import partialdyn
from helpers import check, outcome, r


def setup_function():
    partialdyn.reset()


def identities(x):
    return x.add_(1) is x, x.contiguous() is x, x.to(torch.float32) is x, x.float() is x, x.to(x.dtype) is x


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_in_place_ops_and_no_op_conversions_are_the_input_itself_inside_the_trace(backend):
    stats = check(identities, [(r(3),), (r(4),)], backend=backend)
    assert stats["cache_hits"] == 1, stats


def intermediate_identity(x):
    y = x * 2
    z = y.mul_(3)
    w = z.relu_()
    return y is z, z is w, y.contiguous() is y, y.to(torch.float64) is y, w


def test_in_place_op_on_an_intermediate_returns_that_intermediate():
    check(intermediate_identity, [(r(3),), (r(5),)])


def returns_input_through_in_place(x):
    y = x.add_(1)
    z = x.contiguous()
    return y is z, y, z


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_optimized_call_returns_the_input_object_where_eager_does(backend):
    opt = partialdyn.optimize(returns_input_through_in_place, backend=backend)
    for n in (3, 4):
        x = torch.ones(n)
        same, y, z = opt(x)
        assert same and y is x and z is x
        assert x.tolist() == [2.0] * n
    assert partialdyn.stats(opt)["compiles"] == 1


def identity_across_a_break(x):
    y = x.add_(1)
    print(end="")
    return y is x, x.contiguous() is y


def test_identity_survives_a_graph_break():
    check(identity_across_a_break, [(r(3),), (r(4),)], breaks=1)


def is_view(x):
    return x._is_view(), x.contiguous()._is_view(), x.view(-1)._is_view()


def test_is_view_of_an_input_is_guarded():
    # not through check(): its clones of the arguments are never views
    opt = partialdyn.optimize(is_view)
    for x in (torch.ones(2, 3).view(6), torch.ones(6), torch.ones(2, 4).view(8), torch.ones(8)):
        assert opt(x) == is_view(x)
    stats = partialdyn.stats(opt)
    assert stats["compiles"] == 2 and stats["cache_hits"] == 2 and stats["eager_fallbacks"] == 0, stats


def is_shared(x):
    return x.is_shared(), x.view(-1).is_shared(), x + 1


def test_storage_queries_leave_the_graph():
    opt = partialdyn.optimize(is_shared)
    plain, shared = torch.ones(3), torch.ones(3).share_memory_()
    for x in (plain, shared, plain):
        got, want = opt(x), is_shared(x)
        assert got[:2] == want[:2]
        torch.testing.assert_close(got[2], want[2])
    assert partialdyn.stats(opt)["graph_breaks"] >= 1
    got, what = outcome(opt, plain)
    assert what == "hit" and got[:2] == (False, False)
