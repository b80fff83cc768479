"""CPython bytecode, decoded once per code object with the `bytecode` package.

This is the one place that knows the interpreter version's instruction set
layout: it flattens `bytecode.Bytecode` into a list of real instructions, maps
jump labels to indexes, and records which exception-table region covers each
instruction (3.11 `with` blocks and `try` blocks both use the table).  It
also says which CPython versions an opcode exists in (`applies`), what an
instruction does to the stack depth (`stack_effect`) and which 3.13
instructions on two locals fit their local numbers (`pair_fits`, `split_pair`).
"""
from __future__ import annotations

import dis
import functools
import sys
from dataclasses import dataclass
from types import CodeType

import bytecode
from bytecode import Instr, Label, TryBegin, TryEnd
from bytecode.instr import IS_INSTR_FINAL

CONDITIONAL_JUMPS = {      # opcode -> the truth value that jumps (3.11 names; 3.12 has one per direction)
    "POP_JUMP_FORWARD_IF_TRUE": True, "POP_JUMP_BACKWARD_IF_TRUE": True,
    "POP_JUMP_FORWARD_IF_FALSE": False, "POP_JUMP_BACKWARD_IF_FALSE": False,
} if sys.version_info < (3, 12) else {"POP_JUMP_IF_TRUE": True, "POP_JUMP_IF_FALSE": False}
NONE_JUMPS = {             # opcode -> whether it jumps on None
    "POP_JUMP_FORWARD_IF_NONE": True, "POP_JUMP_BACKWARD_IF_NONE": True,
    "POP_JUMP_FORWARD_IF_NOT_NONE": False, "POP_JUMP_BACKWARD_IF_NOT_NONE": False,
} if sys.version_info < (3, 12) else {"POP_JUMP_IF_NONE": True, "POP_JUMP_IF_NOT_NONE": False}
OR_POP_JUMPS = {"JUMP_IF_TRUE_OR_POP": True, "JUMP_IF_FALSE_OR_POP": False}
PROLOGUE = {"MAKE_CELL", "COPY_FREE_VARS", "RESUME"}
VERSION = sys.version_info[:2]
NULL_AFTER_CALLABLE = VERSION >= (3, 13)   # a call's NULL (or self) sits above the callable from 3.13, below before
DECODE_CACHE_SIZE = 1024         # code objects kept decoded (least recently used ones are decoded again)
# 3.13's instructions on two locals -> the two single-local instructions that do the same, in order
PAIR_HALVES = {"LOAD_FAST_LOAD_FAST": ("LOAD_FAST", "LOAD_FAST"), "STORE_FAST_STORE_FAST": ("STORE_FAST", "STORE_FAST"),
               "STORE_FAST_LOAD_FAST": ("STORE_FAST", "LOAD_FAST")}
PAIR_FIELD_LOCALS = 16           # each local number of a pair instruction has 4 bits


def applies(since: tuple[int, int], until: tuple[int, int] | None) -> bool:
    """Does an opcode that exists from CPython `since` up to (not including) `until` exist in this one?"""
    return since <= VERSION and (until is None or VERSION < until)


def method_call(name: str, lineno: int) -> list[Instr]:
    """Instructions that call method `name` with no arguments on the value on top of the stack, replacing it with
    the result (3.11: LOAD_METHOD, PRECALL, CALL; 3.12+: LOAD_ATTR with the method bit, CALL)."""
    if VERSION < (3, 12):
        load = [Instr("LOAD_METHOD", name, lineno=lineno), Instr("PRECALL", 0, lineno=lineno)]
    else:
        load = [Instr("LOAD_ATTR", (True, name), lineno=lineno)]
    return [*load, Instr("CALL", 0, lineno=lineno)]


def pair_fits(instr: Instr, numbers: dict[str, int]) -> bool:
    """Can `instr`, a pair instruction, hold its locals' `numbers` (name -> local number)?"""
    return all(numbers[name] < PAIR_FIELD_LOCALS for name in instr.arg)


def split_pair(instr: Instr) -> list[Instr]:
    """Pair instruction `instr` as two single-local instructions: `LOAD_FAST_LOAD_FAST (a, b)` pushes a then b,
    `STORE_FAST_STORE_FAST (a, b)` stores the top of the stack in a then the next value in b."""
    return [Instr(name, local, location=instr.location) for name, local in zip(PAIR_HALVES[instr.name], instr.arg)]


# Where the interpreter's real stack effect differs from the tables' (`dis.stack_effect`, which `bytecode` uses): a
# generator frame resumes after RETURN_GENERATOR with the sent value pushed; 3.11 charges a call's pops to the PRECALL
# before it, but a CALL reached at a break or by a resume function's jump pops them itself.
REAL_EFFECT = {"RETURN_GENERATOR": lambda arg: 1}
if VERSION == (3, 11):
    REAL_EFFECT.update({"PRECALL": lambda arg: 0, "CALL": lambda arg: -arg - 1})


def stack_effect(instr: Instr | dis.Instruction, jump: bool) -> int:
    """The change of stack depth when `instr` (decoded by `bytecode` or by `dis`) runs and takes (`jump`) or
    skips its jump."""
    if isinstance(instr, dis.Instruction):
        if instr.opname in REAL_EFFECT:
            return REAL_EFFECT[instr.opname](instr.arg)
        return dis.stack_effect(instr.opcode, instr.arg if instr.opcode >= dis.HAVE_ARGUMENT else None, jump=jump)
    if instr.name in REAL_EFFECT:
        return REAL_EFFECT[instr.name](instr.arg)
    return instr.stack_effect(jump=jump)


def ends_block(opcode: int) -> bool:
    """Does execution never go on to the next instruction (a return, a raise, an unconditional jump)?"""
    return opcode in IS_INSTR_FINAL


@dataclass
class Decoded:
    code: CodeType
    instrs: list[Instr]              # real instructions only, in order
    targets: dict[int, int]          # index of a jump instruction -> index of its target
    handler: list[int | None]        # index -> index of the covering exception handler
    with_handlers: set[int]          # handler indexes that are `with` cleanups, not user `try`
    entries: list["Entry | None"]    # index -> its exception-table entry (None: none, or the table not read)

    def is_user_try(self, index: int) -> bool:
        h = self.handler[index]
        return h is not None and h not in self.with_handlers


@dataclass(frozen=True)
class Entry:
    """An exception-table entry: where an exception raised by an instruction it covers goes."""
    target: int        # index of the handler's first instruction
    depth: int         # the value stack is popped to this depth
    lasti: bool        # the raising instruction's offset is pushed before the exception

    def traceable(self, instrs: list[Instr]) -> bool:
        """Can the tracer run this handler?  Not a `with` cleanup (it calls __exit__ with the exception), a
        generator's throw() cleanup or 3.12's StopIteration guard of a generator body."""
        first = instrs[self.target]
        names = [i.name for i in instrs[self.target:self.target + 2]]
        return (names != ["PUSH_EXC_INFO", "WITH_EXCEPT_START"] and first.name != "CLEANUP_THROW"
                and not _is_stop_iteration_guard(first))


@functools.lru_cache(maxsize=DECODE_CACHE_SIZE)
def decode(code: CodeType) -> Decoded:
    return _decode(code)


def flat_instructions(bc: bytecode.Bytecode) -> list[Instr]:
    return [i for i in bc if isinstance(i, Instr)]


def _decode(code: CodeType) -> Decoded:
    concrete = bytecode.ConcreteBytecode.from_code(code)
    bc = concrete.to_bytecode()
    instrs, label_at, handler, regions = [], {}, [], []
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
            regions.append(current_try)
    for lab in pending_labels:
        label_at[id(lab)] = len(instrs)
    handler_idx = [label_at[id(t)] if t is not None else None for t in handler]
    handler_idx = [None if h is not None and _is_stop_iteration_guard(instrs[h]) else h for h in handler_idx]
    targets = {i: label_at[id(ins.arg)] for i, ins in enumerate(instrs) if isinstance(ins.arg, Label)}
    with_handlers = {h for h in set(handler_idx) if h is not None and _is_with_cleanup(instrs, h)}
    return Decoded(code, instrs, targets, handler_idx, with_handlers, _entries(concrete.exception_table, bc, regions, label_at))


def _entries(table: list, bc: bytecode.Bytecode, regions: list, label_at: dict) -> list[Entry | None]:
    """Each instruction's exception-table entry; the depths and lasti bits come from the table itself (the
    `TryBegin`s of a decoded `Bytecode` leave the depth unset), matched to the regions in order."""
    begins = [item for item in bc if isinstance(item, TryBegin)]
    if len(begins) != len(table):
        return [None] * len(regions)
    facts = {id(begin): Entry(label_at[id(begin.target)], entry.stack_depth, entry.push_lasti)
             for begin, entry in zip(begins, table)}
    return [facts[id(r)] if r is not None else None for r in regions]


def _is_with_cleanup(instrs: list[Instr], h: int) -> bool:
    names = [i.name for i in instrs[h:h + 2]]
    if names == ["PUSH_EXC_INFO", "WITH_EXCEPT_START"]:
        return True
    # the cleanup's own nested regions (re-raise paths) are never traced into; from 3.12 an inlined
    # comprehension's handler (SWAP, POP_TOP, ...) restores the loop variable it hid, and CLEANUP_THROW
    # covers the yield of a `yield from` (generators.py looks past it for a throw() or close())
    return names[:1] in (["COPY"], ["POP_TOP"], ["RERAISE"], ["CLEANUP_THROW"]) or names == ["SWAP", "POP_TOP"]


def _is_stop_iteration_guard(instr: Instr) -> bool:
    """3.12 covers a generator's whole body with a handler that turns a StopIteration escaping it into a
    RuntimeError (PEP 479, which generators.resume models): no handler of the user's."""
    return instr.name == "CALL_INTRINSIC_1" and instr.arg.name == "INTRINSIC_STOPITERATION_ERROR"


CELL_WRITES = ("STORE_DEREF", "DELETE_DEREF")


def cell_writes_from(code: CodeType, index: int) -> set[str]:
    """The cell variables of `code` that can be assigned or deleted once execution is at instruction `index`
    (a decoded index): by `code` itself at an instruction reachable from there (jumps, fall-through and the
    exception handlers covering reached instructions), or at any time by a function nested in it (`nonlocal`)."""
    decoded = decode(code)
    instrs = decoded.instrs
    written, seen, todo = set(), set(), [index]
    while todo:
        i = todo.pop()
        if i in seen or i >= len(instrs):
            continue
        seen.add(i)
        ins = instrs[i]
        if ins.name in CELL_WRITES:
            written.add(ins.arg.name if hasattr(ins.arg, "name") else str(ins.arg))
        if i in decoded.targets:
            todo.append(decoded.targets[i])
        if decoded.handler[i] is not None:
            todo.append(decoded.handler[i])
        if not ins.is_final():
            todo.append(i + 1)
    return written | nested_cell_writes(code)


def nested_cell_writes(code: CodeType) -> set[str]:
    """The free variables of the functions nested in `code` that they (or functions nested in them) assign or
    delete: writes through a closure to cells of `code`."""
    written = set()
    for const in code.co_consts:
        if isinstance(const, CodeType):
            own = {i.argval for i in dis.get_instructions(const) if i.opname in CELL_WRITES}
            written |= (own | nested_cell_writes(const)) & set(const.co_freevars)
    return written
