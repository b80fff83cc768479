"""CPython bytecode, decoded once per code object with the `bytecode` package.

This is the one place that knows the interpreter version's instruction set
layout: it flattens `bytecode.Bytecode` into a list of real instructions, maps
jump labels to indexes, and records which exception-table region covers each
instruction (3.11 `with` blocks and `try` blocks both use the table).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import CodeType

import bytecode
from bytecode import Instr, Label, TryBegin, TryEnd

CONDITIONAL_JUMPS = {
    "POP_JUMP_FORWARD_IF_TRUE": True, "POP_JUMP_BACKWARD_IF_TRUE": True,
    "POP_JUMP_FORWARD_IF_FALSE": False, "POP_JUMP_BACKWARD_IF_FALSE": False,
}
NONE_JUMPS = {
    "POP_JUMP_FORWARD_IF_NONE": True, "POP_JUMP_BACKWARD_IF_NONE": True,
    "POP_JUMP_FORWARD_IF_NOT_NONE": False, "POP_JUMP_BACKWARD_IF_NOT_NONE": False,
}
OR_POP_JUMPS = {"JUMP_IF_TRUE_OR_POP": True, "JUMP_IF_FALSE_OR_POP": False}
PROLOGUE = {"MAKE_CELL", "COPY_FREE_VARS", "RESUME"}


@dataclass
class Decoded:
    code: CodeType
    instrs: list[Instr]              # real instructions only, in order
    targets: dict[int, int]          # index of a jump instruction -> index of its target
    handler: list[int | None]        # index -> index of the covering exception handler
    with_handlers: set[int]          # handler indexes that are `with` cleanups, not user `try`

    def is_user_try(self, index: int) -> bool:
        h = self.handler[index]
        return h is not None and h not in self.with_handlers


_CACHE: dict[CodeType, Decoded] = {}


def decode(code: CodeType) -> Decoded:
    if code not in _CACHE:
        _CACHE[code] = _decode(code)
    return _CACHE[code]


def flat_instructions(bc: bytecode.Bytecode) -> list[Instr]:
    return [i for i in bc if isinstance(i, Instr)]


def _decode(code: CodeType) -> Decoded:
    bc = bytecode.Bytecode.from_code(code)
    instrs, label_at, handler = [], {}, []
    current_try = None
    pending_labels = []
    for item in bc:
        if isinstance(item, Label):
            pending_labels.append(item)
        elif isinstance(item, TryBegin):
            current_try = item
        elif isinstance(item, TryEnd):
            current_try = None
        else:
            for lab in pending_labels:
                label_at[id(lab)] = len(instrs)
            pending_labels.clear()
            instrs.append(item)
            handler.append(current_try.target if current_try else None)
    for lab in pending_labels:
        label_at[id(lab)] = len(instrs)
    handler_idx = [label_at[id(t)] if t is not None else None for t in handler]
    targets = {i: label_at[id(ins.arg)] for i, ins in enumerate(instrs) if isinstance(ins.arg, Label)}
    with_handlers = {h for h in set(handler_idx) if h is not None and _is_with_cleanup(instrs, h)}
    return Decoded(code, instrs, targets, handler_idx, with_handlers)


def _is_with_cleanup(instrs: list[Instr], h: int) -> bool:
    names = [i.name for i in instrs[h:h + 2]]
    if names == ["PUSH_EXC_INFO", "WITH_EXCEPT_START"]:
        return True
    # the cleanup's own nested regions (re-raise paths) are never traced into
    return names[:1] in (["COPY"], ["POP_TOP"], ["RERAISE"])
