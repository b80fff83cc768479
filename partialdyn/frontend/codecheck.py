"""Checks a generated code object before it is installed.

CPython trusts a code object's stack size and exception table: a wrong handler
depth or a stack deeper than `co_stacksize` crashes the interpreter instead of
raising.  `check_code` walks every instruction reachable from the entry and from
exception handlers, following the interpreter's stack effects (`instructions.py`, the
one place with those facts), and raises `BadCode` (an internal error: the frame then
runs eagerly) if the depths do not agree with the header.
"""
from __future__ import annotations

import dis
import types

from .instructions import ends_block, stack_effect

JUMPS = set(dis.hasjrel) | set(dis.hasjabs)


class BadCode(RuntimeError):
    """A generated code object that CPython could not run safely."""


def check_code(code: types.CodeType) -> None:
    """Raise BadCode unless every reachable instruction has one stack depth within `co_stacksize` and every
    exception handler's depth is at most the depth of the instructions it covers."""
    instrs = list(dis.get_instructions(code))
    at = {ins.offset: i for i, ins in enumerate(instrs)}
    entries = dis.Bytecode(code).exception_entries
    for e in entries:
        if e.target not in at or e.depth + e.lasti + 1 > code.co_stacksize:
            raise BadCode(f"{code.co_qualname}: exception handler at {e.target} with depth {e.depth} "
                          f"(stack size {code.co_stacksize})")
    depth_at: dict[int, int] = {}
    todo = [(0, 0)]

    def reach(offset, depth, why):
        if offset not in at:
            raise BadCode(f"{code.co_qualname}: {why} reaches offset {offset}, not an instruction")
        if depth < 0 or depth > code.co_stacksize:
            raise BadCode(f"{code.co_qualname}: stack depth {depth} at offset {offset} "
                          f"(stack size {code.co_stacksize})")
        known = depth_at.get(offset)
        if known is None:
            depth_at[offset] = depth
            todo.append((offset, depth))
        elif known != depth:
            raise BadCode(f"{code.co_qualname}: stack depths {known} and {depth} meet at offset {offset}")

    while todo:
        offset, depth = todo.pop()
        ins = instrs[at[offset]]
        for e in entries:
            if e.start <= offset < e.end:
                if depth < e.depth:
                    raise BadCode(f"{code.co_qualname}: offset {offset} has stack depth {depth} below its "
                                  f"handler's {e.depth}")
                reach(e.target, e.depth + e.lasti + 1, "an exception handler")
                break
        if ins.opcode in JUMPS:
            reach(ins.argval, depth + stack_effect(ins, jump=True), ins.opname)
        if not ends_block(ins.opcode):
            following = at[offset] + 1
            if following >= len(instrs):
                raise BadCode(f"{code.co_qualname}: execution runs off the end after {ins.opname}")
            reach(instrs[following].offset, depth + stack_effect(ins, jump=False), ins.opname)
