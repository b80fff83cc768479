"""Tensor properties and float constants the trace read are guarded exactly (regressions found in review:
each gave a wrong result silently)."""
import math

import torch

import partialdyn
from helpers import assert_compiled


def setup_function():
    partialdyn.reset()


def offset_branch(x):
    return x * 2 if x.storage_offset() == 0 else x * 3


def leaf_branch(x):
    return x * 2 if x.is_leaf else x * 3


def channels_last_query(x):
    return x.is_contiguous(memory_format=torch.channels_last)


def test_tensor_properties_the_trace_reads_are_guarded():
    opt = partialdyn.optimize(offset_branch)
    base = torch.ones(10)
    for s in (1, 0, 2):
        torch.testing.assert_close(opt(base[s:s + 3]), offset_branch(base[s:s + 3]))
    assert assert_compiled(opt, hits=0)["recompiles"] >= 1
    opt = partialdyn.optimize(leaf_branch)
    a = torch.ones(3, requires_grad=True)
    for t in (a, a * 2):
        torch.testing.assert_close(opt(t), leaf_branch(t))
    assert assert_compiled(opt, hits=0)["recompiles"] == 1
    opt = partialdyn.optimize(channels_last_query)
    x = torch.randn(2, 3, 4, 5)
    for t in (x, x.to(memory_format=torch.channels_last)):
        assert opt(t) == channels_last_query(t)
    assert assert_compiled(opt, hits=0)["recompiles"] == 1


def strides_of(x):
    return x.stride(), x.contiguous().stride()


def test_strides_of_size_one_dims_are_guarded_when_read():
    for policy in ("partial", "dynamic", "static", "automatic"):
        partialdyn.reset()
        opt = partialdyn.optimize(strides_of, policy=policy)
        for t in (torch.randn(3, 1), torch.randn(1, 3).t(), torch.randn(1, 4), torch.randn(4, 1).t()):
            assert opt(t) == strides_of(t), policy
        assert assert_compiled(opt, hits=0)["recompiles"] >= 1, policy


def sign_text(f):
    return str(f), math.copysign(1.0, f)


def self_equal(t, f):
    return t + 1 if f == f else t - 1


def test_special_floats_are_constants_matched_bit_exactly():
    opt = partialdyn.optimize(sign_text)
    for v in (1.5, -0.0, 0.0, -0.0, 2.5, float("inf")):
        assert opt(v) == sign_text(v)
    assert assert_compiled(opt)["recompiles"] >= 2     # -0.0 and 0.0 are different constants
    opt = partialdyn.optimize(self_equal)
    for v in (1.5, float("nan"), 2.0, float("nan"), -0.0):
        torch.testing.assert_close(opt(torch.zeros(2), v), self_equal(torch.zeros(2), v))
    assert_compiled(opt, hits=0)
