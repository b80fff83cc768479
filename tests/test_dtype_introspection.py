"""Dtypes in traced code: torch.finfo / torch.iinfo of a dtype the trace knows are answered at trace time (a dtype
is guarded); the Python types torch takes as dtypes (`dtype=int`, `x.to(float)`) are the dtypes they stand for."""
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


def python_types_as_dtypes(x):
    counter = torch.tensor(0, dtype=int)          # transformers' cache classes do this (int64)
    steps = torch.arange(x.size(0), dtype=float)  # float64
    return x.to(float) * steps + counter, torch.zeros(2, dtype=bool), torch.ones(1, dtype=complex)


def test_python_types_given_as_dtypes_compile_to_the_dtypes_torch_reads_them_as():
    """The graph code spells them as torch dtypes (fx cannot spell `<class 'int'>`: the frame fell back to
    eager with an internal error)."""
    check(python_types_as_dtypes, [(r(3),), (r(5),)])
