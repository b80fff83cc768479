"""Reusing an op's fake result within one trace.

The N identical layers of a transformer run the same ops on tensors of the same sizes, strides and dtypes:
the fake propagation of layer k gives what layer 1's gave.  Under symbolic sizes that propagation is most
of a trace's cost (torch's decompositions do sympy arithmetic per size), so `FakeResults` remembers, per
(op, metadata of every argument, the torch state the op reads), the metadata of a result it may rebuild,
and a later identical call gets a fresh fake tensor with that metadata instead of a second propagation.
The torch state is read once and again after the trace changes it (`GraphBuilder.change_state`: grad mode,
autocast) or after an op that is not reused ran (a user function may change it); setters of other state
are graph breaks, so they never change it inside a trace.

Reuse is limited to what a second propagation cannot do differently:
- every argument is a fake tensor without a known constant value, a symbolic or plain scalar, or a
  structure of those (anything else is not remembered);
- the op made no new symbol (data-dependent sizes), drew no random numbers and wrote no tensor that existed
  before it ran;
- every result tensor does not require grad and is one of: an argument itself (`x.contiguous()`), a view of
  an argument's memory, a fresh tensor, or a view of a fresh tensor (one fresh tensor is never returned twice);
- the ShapeEnv already holds every guard the first run made, so a second run adds none.
The `fake_reuse` option turns it off, or ("check") propagates anyway and compares (tests).
"""
from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.multiprocessing.reductions import StorageWeakRef

from ..shapes.fake import SYM_TYPES

PLAIN_KEYS = (type(None), bool, int, float, complex, str, torch.dtype, torch.device, torch.layout,
              torch.memory_format, type(Ellipsis))


class NotReusable(Exception):
    """An argument or result outside what reuse handles."""


def _expr(value):
    return value.node.expr if isinstance(value, SYM_TYPES) else value


def tensor_key(t) -> tuple:
    if type(t) is not FakeTensor or t.constant is not None or t.layout is not torch.strided:
        raise NotReusable
    return ("tensor", tuple(map(_expr, t.size())), tuple(map(_expr, t.stride())), _expr(t.storage_offset()),
            t.dtype, t.fake_device, t.requires_grad, t.is_conj(), t.is_neg())


def key_of(value) -> tuple:
    """A hashable description of an op argument: what its fake propagation can read."""
    kind = type(value)
    if kind in PLAIN_KEYS:
        return (kind, value)
    if isinstance(value, torch.Tensor):
        return tensor_key(value)
    if isinstance(value, SYM_TYPES):
        return (kind, value.node.expr)
    if kind in (tuple, list, torch.Size):
        return (kind, tuple(map(key_of, value)))
    if kind is dict:
        return (dict, tuple((k, key_of(v)) for k, v in value.items()))
    if kind is slice:
        return (slice, key_of(value.start), key_of(value.stop), key_of(value.step))
    raise NotReusable


# torch state an op's fake propagation reads besides its arguments (dtype promotion, autocast, grad mode...)
STATE_READERS = (
    torch.is_grad_enabled, torch.is_inference_mode_enabled, torch.get_default_dtype, torch.get_default_device,
    lambda: torch.is_autocast_enabled("cpu"), lambda: torch.get_autocast_dtype("cpu"),
    lambda: torch.is_autocast_enabled("cuda"), lambda: torch.get_autocast_dtype("cuda"),
    torch.are_deterministic_algorithms_enabled, torch._C._len_torch_function_stack,
    torch._C._get_math_sdp_enabled, torch._C._get_flash_sdp_enabled, torch._C._get_mem_efficient_sdp_enabled,
    torch._C._get_cudnn_sdp_enabled,
)


def state_key() -> tuple:
    return tuple(read() for read in STATE_READERS)


class Recipe:
    """How to rebuild a result from the arguments of a later identical call: per result tensor, either that
    argument itself (`x.contiguous()` returns `x`), a view of an argument's memory, a fresh tensor, or a view
    of a fresh tensor (`sdpa` returns a transposed buffer), with its sizes, strides and offset."""

    def __init__(self, result, arg_tensors: list):
        self.kind = type(result)
        if self.kind is FakeTensor:
            tensors = [result]
        elif self.kind in (tuple, list) or self.kind.__module__ == "torch.return_types":
            tensors = list(result)
        else:
            raise NotReusable
        arg_index = {id(t): i for i, t in enumerate(arg_tensors)}
        arg_storage = {}
        for i, t in enumerate(arg_tensors):
            arg_storage.setdefault(StorageWeakRef(t.untyped_storage()), i)
        fresh_storage: dict = {}            # storage -> index in self.bases
        self.bases = []                     # (size, stride, dtype, device) of each fresh storage's tensor
        self.outputs = []                   # ("arg", i) | ("fresh", b) | ("view", "arg"/"base", i, size, stride, offset)
        for t in tensors:
            if type(t) is not FakeTensor or t.requires_grad or t.constant is not None \
                    or t.layout is not torch.strided or t.is_conj() or t.is_neg():
                raise NotReusable
            if id(t) in arg_index:
                self.outputs.append(("arg", arg_index[id(t)]))
                continue
            storage = StorageWeakRef(t.untyped_storage())
            if storage in arg_storage:
                source = arg_tensors[arg_storage[storage]]
                if not t._is_view() or t.dtype != source.dtype or source.requires_grad:
                    raise NotReusable       # (a no-grad view of a tensor that requires grad carries autograd state)
                self.outputs.append(("view", "arg", arg_storage[storage], t.size(), t.stride(), t.storage_offset()))
                continue
            base = t._base if t._is_view() else t
            if base._is_view() or base.storage_offset() != 0 or base.dtype != t.dtype or base.requires_grad:
                raise NotReusable
            if storage not in fresh_storage:
                fresh_storage[storage] = len(self.bases)
                self.bases.append((base.size(), base.stride(), base.dtype, base.fake_device))
            elif not t._is_view():
                raise NotReusable           # one fresh tensor returned twice
            b = fresh_storage[storage]
            self.outputs.append(("view", "base", b, t.size(), t.stride(), t.storage_offset()) if t._is_view()
                                else ("fresh", b))

    def describe(self) -> list:
        """The recipe with symbolic sizes as expressions (what check mode compares)."""
        def exprs(entry):
            return tuple(tuple(map(_expr, part)) if isinstance(part, (tuple, list)) else _expr(part)
                         for part in entry)
        return [self.kind, [exprs(b) for b in self.bases], [exprs(o) for o in self.outputs]]

    def check_same(self, result, arg_tensors, state_before, state_after) -> None:
        """Check mode: a fresh propagation gave `result`; the rebuilt one must match it exactly."""
        rebuilt = self.describe()
        fresh = Recipe(result, arg_tensors).describe()
        if fresh != rebuilt or state_before != state_after:
            raise AssertionError(f"reused fake result differs from a fresh propagation: {rebuilt} vs {fresh}, "
                                 f"ShapeEnv {state_before} -> {state_after}")

    def rebuild(self, fake_mode, arg_tensors: list):
        with fake_mode:
            bases = [torch.empty_strided(size, stride, dtype=dtype, device=device)
                     for size, stride, dtype, device in self.bases]
            results = []
            for entry in self.outputs:
                if entry[0] == "arg":
                    results.append(arg_tensors[entry[1]])
                elif entry[0] == "fresh":
                    results.append(bases[entry[1]])
                else:
                    _, where, i, size, stride, offset = entry
                    source = arg_tensors[i] if where == "arg" else bases[i]
                    results.append(torch.as_strided(source, size, stride, offset))
        return results[0] if self.kind is FakeTensor else self.kind(results)


def tensors_in(value, found: list) -> list:
    """The tensors of an argument structure, in the order key_of visits them."""
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            tensors_in(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            tensors_in(item, found)
    return found


def reusable_target(target) -> bool:
    """torch's own ops and Python's operators read only their arguments and torch's state; a user function
    allowed in the graph (or an autograd.Function) may read anything."""
    if isinstance(target, str):                 # a Tensor method
        return True
    module = getattr(target, "__module__", None) or ""
    return module == "_operator" or module == "torch" or module.startswith("torch.")


class FakeResults:
    """The reusable results of one trace's ops (`fake_reuse`: "on", "off" or "check")."""

    def __init__(self, shapes, effects, mode: str):
        self.shapes, self.effects, self.mode = shapes, effects, mode
        self._recipes: dict = {}
        self._state = None                  # state_key() until the trace changes torch's state
        self.hits = 0

    def state_changed(self) -> None:
        """The trace changed torch's global state (grad mode, autocast): the next op reads it again."""
        self._state = None

    def _current_state(self) -> tuple:
        if self._state is None:
            self._state = state_key()
        elif self.mode == "check" and self._state != state_key():
            raise AssertionError(f"torch state changed without state_changed(): {self._state} -> {state_key()}")
        return self._state

    def key(self, kind, target, args, kwargs):
        if self.mode == "off" or not reusable_target(target):
            return None
        try:
            return (kind, target, key_of(args), key_of(kwargs), self._current_state())
        except (NotReusable, TypeError):     # TypeError: an unhashable constant
            return None

    def run(self, kind, target, args, kwargs, propagate):
        """`propagate(kind, target, args, kwargs)`'s result, or a rebuilt copy of an identical op's result."""
        key = self.key(kind, target, args, kwargs)
        if key is None:
            result = propagate(kind, target, args, kwargs)
            if not reusable_target(target):
                self.state_changed()        # a user function in the graph may have changed torch's state
            return result
        arg_tensors = tensors_in((args, kwargs), [])
        recipe = self._recipes.get(key)
        if recipe is not None and self.mode == "on":
            self.hits += 1
            return recipe.rebuild(self.shapes.fake_mode, arg_tensors)
        shape_env = self.shapes.shape_env
        before = _shape_env_state(shape_env)
        self.effects.start_op()
        result = propagate(kind, target, args, kwargs)
        if recipe is not None:
            recipe.check_same(result, arg_tensors, before, _shape_env_state(shape_env))
        elif len(shape_env.var_to_range) == before[0] \
                and not self.effects.op_writes & {StorageWeakRef(t.untyped_storage()) for t in arg_tensors}:
            if len(shape_env.replacements) != before[2]:
                # the op proved sizes equal (`s1 == s2`): later ops see its arguments' sizes with that replacement
                key = self.key(kind, target, args, kwargs)
            try:
                self._recipes[key] = Recipe(result, arg_tensors)
            except NotReusable:
                pass
        return result


def _shape_env_state(shape_env) -> tuple:
    """What a propagation adds to the ShapeEnv: symbols, guards, replacements, runtime asserts."""
    return (len(shape_env.var_to_range), len(shape_env.guards), len(shape_env.replacements),
            sum(map(len, shape_env.deferred_runtime_asserts.values())))
