"""What a graph's ops do besides computing values.

While the tracer runs ops on fake values, `EffectRecorder` (a dispatch mode on top of the fake mode) sees
every aten op and notes whether any writes to the memory of a graph input (an argument, a parameter, a
buffer, or a view of one), which ones, and whether any draws random numbers.  A graph that does neither can be run again from the
start by plain Python when it raises: nothing it did is visible, so the re-run is exactly the eager call.
It also notes the storages the op running now writes (graph/reuse.py asks).
"""
from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode


class EffectRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self._input_storages: set = set()
        self.written_storages: set = set()      # the input storages some op writes
        self.draws_random = False
        self.op_writes: set = set()             # storages written since the last start_op()

    def add_input(self, fake: torch.Tensor) -> None:
        self._input_storages.add(StorageWeakRef(fake.untyped_storage()))

    @property
    def writes_inputs(self) -> bool:
        return bool(self.written_storages)

    def writes(self, fake: torch.Tensor) -> bool:
        """Does some recorded op write the memory of this input (or of a view of it)?"""
        return StorageWeakRef(fake.untyped_storage()) in self.written_storages

    def start_op(self) -> None:
        self.op_writes = set()

    @property
    def rerunnable(self) -> bool:
        return not (self.writes_inputs or self.draws_random)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if torch.Tag.nondeterministic_seeded in func.tags:
            self.draws_random = True
        if func._schema.is_mutable:
            for t in _written(func, args, kwargs):
                if not isinstance(t, torch.Tensor):
                    continue
                ref = StorageWeakRef(t.untyped_storage())
                self.op_writes.add(ref)
                if ref in self._input_storages:
                    self.written_storages.add(ref)
        return func(*args, **kwargs)


def _written(func, args, kwargs):
    """The tensors an op's schema marks as written (`Tensor(a!)`)."""
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is None or not arg.alias_info.is_write:
            continue
        value = kwargs.get(arg.name) if arg.kwarg_only or i >= len(args) else args[i]
        yield from (value if isinstance(value, (list, tuple)) else [value])
