"""torch.finfo / torch.iinfo of a dtype the trace knows: answered at trace time (a dtype is guarded)."""
import torch

import partialdyn
from helpers import check, r


def setup_function():
    partialdyn.reset()


def mask_with_lowest(x, mask):
    return x.masked_fill(mask, torch.finfo(x.dtype).min) + torch.finfo(x.dtype).eps


def test_finfo_of_a_tensor_dtype_is_a_constant_in_the_graph():
    check(mask_with_lowest, [(r(2, 3), r(2, 3) > 0), (r(4, 3), r(4, 3) > 0)])


def test_finfo_follows_the_dtype_through_its_guard():
    x16 = r(3, dtype=torch.float16)
    check(mask_with_lowest, [(r(3), r(3) > 0), (x16, x16 > 0)], recompiles=1)


def clamp_to_int_range(x):
    info = torch.iinfo(x.dtype)
    return x.clamp(info.min + 1, info.max - 1)


def test_iinfo_of_an_integer_dtype_is_traced():
    check(clamp_to_int_range, [(torch.arange(4, dtype=torch.int8),), (torch.arange(6, dtype=torch.int8),)])


def default_float_eps(x):
    return x + torch.finfo().eps


def test_finfo_without_a_dtype_reads_the_guarded_default_dtype():
    check(default_float_eps, [(r(3),), (r(5),)])
