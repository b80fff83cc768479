"""The C++ tensor check (guards/native.py, tensor_check.cpp): it builds on this machine, answers exactly as the
Python terms it replaces for every tensor and non-tensor a guard can meet, and guards use it once built, with
the same cache behaviour as with the Python terms."""
from __future__ import annotations

import time

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import partialdyn
from helpers import Compiled
from partialdyn.guards import kinds, native
from partialdyn.names import PREFIX

pytestmark = pytest.mark.usefixtures("fresh_partialdyn")


@pytest.fixture(scope="module")
def checker():
    native.ensure_built()
    return native.checker()


def test_a_first_guard_builds_the_library_in_the_background_and_later_guards_load_it(tmp_path, monkeypatch):
    monkeypatch.setattr(partialdyn.config, "native_dir", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_unusable", False)
    path = native.library_path()
    assert native.checker() is None                     # the build started, detached
    assert native.checker() is None                     # its lock keeps a second one from starting
    deadline = time.monotonic() + 300
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    failed = path.with_name(path.name + ".failed")
    assert path.exists(), failed.read_text() if failed.exists() else "the build did not finish in 300 s"
    loaded = native.checker()
    assert loaded is not None
    assert loaded.tensor_ok(torch.ones(3, 2), loaded.make_spec(torch.zeros(5, 2), native.CONTIGUOUS)) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]     # no lock, log or partial file left


def test_where_it_cannot_be_built_guards_check_tensors_in_python_and_no_build_is_tried_again(tmp_path, monkeypatch):
    monkeypatch.setattr(partialdyn.config, "native_dir", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_unusable", False)
    monkeypatch.setenv("CXX", "false")                  # a compiler that fails
    path = native.library_path()
    assert native.checker() is None
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + 60
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lock.exists() and not path.exists() and path.with_name(path.name + ".failed").exists()
    compiled = Compiled(lambda x: x * 2)
    for n in (3, 4, 5):
        torch.testing.assert_close(compiled(torch.ones(n)), torch.full((n,), 2.0))
    assert compiled.stats()["cache_hits"] == 2
    assert all(".is_cpu" in entry.guard.source for entry in compiled.opt.entries)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name + ".failed"]   # no second build started


def test_with_no_folder_to_build_in_guards_check_tensors_in_python(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setattr(partialdyn.config, "native_dir", str(not_a_folder / "native"))
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_unusable", False)
    compiled = Compiled(lambda x: x * 2)
    for n in (3, 4, 5):
        torch.testing.assert_close(compiled(torch.ones(n)), torch.full((n,), 2.0))
    assert compiled.stats()["cache_hits"] == 2
    assert all(".is_cpu" in entry.guard.source for entry in compiled.opt.entries)


def _tensors():
    """Tensors of every property a tensor guard reads: dtypes (complex with conj/neg bits), ranks with 0- and
    1-sized dims, views (transposes, slices, expands, offsets), grad, inference tensors, parameters, sparse and
    meta tensors."""
    dtypes = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.complex64])
    shapes = st.lists(st.sampled_from([0, 1, 2, 3]), min_size=0, max_size=3)

    @st.composite
    def build(draw):
        dtype, shape = draw(dtypes), draw(shapes)
        t = torch.zeros(shape, dtype=dtype)
        view = draw(st.sampled_from(["none", "transpose", "slice", "expand", "offset", "conj", "neg"]))
        if view == "transpose" and t.dim() >= 2:
            t = t.transpose(0, 1)
        elif view == "slice" and t.dim() >= 1:
            t = t[..., ::2]
        elif view == "expand" and t.dim() >= 1:
            t = t.unsqueeze(0).expand(2, *t.shape)
        elif view == "offset":
            t = torch.zeros(t.numel() + 1, dtype=dtype)[1:].view(t.shape)
        elif view == "conj" and dtype.is_complex:
            t = t.conj()
        elif view == "neg" and dtype.is_complex:
            t = torch._neg_view(t)
        wrap = draw(st.sampled_from(["plain", "grad", "parameter", "inference", "sparse", "meta"]))
        if wrap == "grad" and dtype.is_floating_point:
            t = t.detach().requires_grad_()
        elif wrap == "parameter" and dtype.is_floating_point:
            t = torch.nn.Parameter(t.detach())
        elif wrap == "inference":
            with torch.inference_mode():
                t = t.clone()
        elif wrap == "sparse" and t.dim() >= 1 and not dtype.is_complex:
            t = t.to_sparse()
        elif wrap == "meta":
            t = t.to("meta")
        return t

    return build()


def _python_answer(example, kind, value) -> bool:
    constants = {}

    def constant(v):
        name = f"{PREFIX}k{len(constants)}"
        constants[name] = v
        return name

    order = tuple(range(example.dim())) if kind == "contiguous" else None
    code = " and ".join(kinds.tensor_terms("value", example, kind, order, constant))
    namespace = {PREFIX + "is_contiguous": torch._C.TensorBase.is_contiguous,
                 PREFIX + "storage_offset": torch._C.TensorBase.storage_offset,
                 PREFIX + "is_inference": torch._C.TensorBase.is_inference, "value": value, **constants}
    try:
        return bool(eval(code, namespace))
    except Exception:       # a raising guard fails
        return False


def _near(example: torch.Tensor, change: str):
    """`example` with one property changed (or none): the values a guard most often has to tell apart."""
    if change == "clone":
        return example.clone()
    if change == "detach":
        return example.detach()
    if change == "double":
        return example.double()
    if change == "grad" and example.dtype.is_floating_point:
        return example.detach().clone().requires_grad_()
    if change == "inference":
        with torch.inference_mode():
            return example.clone()
    if change == "transpose" and example.dim() >= 2:
        return example.transpose(0, 1)
    if change == "unsqueeze":
        return example.unsqueeze(0)
    if change == "grow" and example.dim() >= 1:
        return torch.cat([example, example])
    if change == "resolve":
        return example.resolve_conj().resolve_neg()
    return example


@settings(max_examples=400, deadline=None)
@given(example=_tensors(), other=st.one_of(_tensors(), st.sampled_from([None, 3, 2.5, "t", (1, 2)])),
       change=st.sampled_from(["other", "same", "clone", "detach", "double", "grad", "inference", "transpose",
                               "unsqueeze", "grow", "resolve"]),
       kind=st.sampled_from(sorted(kinds.NATIVE_KINDS)))
def test_the_cpp_check_answers_as_the_python_terms_for_any_tensor_or_value(checker, example, other, change, kind):
    if type(example) not in native.PLAIN_TENSOR_TYPES or example.layout != torch.strided:
        return      # guards check such tensors with the Python terms only
    spec = checker.make_spec(example, kinds.NATIVE_KINDS[kind])
    value = other if change == "other" else _near(example, change)
    assert checker.tensor_ok(value, spec) is _python_answer(example, kind, value)


def _run_stream(compiled):
    """A parameter (static guard), a contiguous input (dynamic), then a slice (strided), a transposed copy
    (permuted: Python terms either way), another dtype, and a tensor that requires grad."""
    weight = torch.nn.Parameter(torch.ones(2, 2))
    calls = [torch.ones(3, 2), torch.ones(5, 2), torch.ones(6, 2)[1:], torch.ones(7, 2)[1:],
             torch.ones(5, 2).t().contiguous().t(), torch.ones(5, 2, dtype=torch.float64),
             torch.ones(6, 2, requires_grad=True), torch.ones(4, 2)]
    for x in calls:
        w = weight if x.dtype == torch.float32 else weight.double()
        torch.testing.assert_close(compiled(x, w), x @ w)
    return [entry.guard.source for entry in compiled.opt.entries]


def test_guards_check_plain_tensors_in_cpp_once_it_is_built(checker):
    compiled = Compiled(lambda x, w: x @ w)
    sources = _run_stream(compiled)
    stats = compiled.stats(recompiles=None)
    assert (stats["compiles"], stats["cache_hits"]) == (5, 3), stats
    in_python = [source for source in sources if ".is_cpu" in source]
    assert len(in_python) == 1 and ".permute(" in in_python[0]     # only the permuted layout's check


@pytest.mark.parametrize("native_guards", [True, False])
def test_cache_behaviour_is_the_same_with_the_cpp_check_and_the_python_terms(checker, monkeypatch, native_guards):
    monkeypatch.setattr(partialdyn.config, "native_guards", native_guards)
    compiled = Compiled(lambda x, w: x @ w)
    sources = _run_stream(compiled)
    stats = compiled.stats(recompiles=None)
    assert (stats["compiles"], stats["cache_hits"]) == (5, 3), stats
    assert sum(".is_cpu" in source for source in sources) == (1 if native_guards else 5)
