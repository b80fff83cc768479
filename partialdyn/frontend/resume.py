"""Resume functions: the rest of a code object after a graph break.

A resume function is the original bytecode with a new prologue: it takes the
live locals and then the stack values as arguments, pushes the stack back (NULL
markers included), and jumps to the instruction where execution continues.  A local
that holds a dict view is passed as its dict, and the prologue takes the view again
(`v = v.values()`), so the resume function's guards read the dict, not a view object
made anew on every call.  The
locals come first, the original's first parameter first when it is live:
zero-argument `super()` reads the frame's first argument slot.  Filename
names and line numbers are the original's, so tracebacks point at the user's code.  The
result is checked (stack depths, exception table) before anyone can run it.

Numbering the live locals first can push a local of a 3.13 pair instruction
(`LOAD_FAST_LOAD_FAST` and kin, 4 bits per local) past 15: such a pair is split
into two single-local instructions.  That shifts instruction indexes, so the code
comes with the original's index of each of its instructions: a resume function of
a resume function is built from the original code at the original's index.
"""
from __future__ import annotations

import types

import bytecode
from bytecode import CellVar, Instr, Label, TryBegin

from .codecheck import BadCode, check_code
from .instructions import PAIR_HALVES, PROLOGUE, flat_instructions, method_call, pair_fits, split_pair

STACK_PREFIX = "__stack"


def stack_names(layout: tuple) -> list[str]:
    """Argument names of the non-NULL stack slots (layout: True marks a NULL slot)."""
    return [f"{STACK_PREFIX}{i}" for i, is_null in enumerate(layout) if not is_null]


def _view_again(name: str, kind: str, cell: bool, lineno: int) -> list:
    """`name = name.kind()`: the local gets its dict view back from the dict it was passed as."""
    var = CellVar(name) if cell else name
    load, store = ("LOAD_DEREF", "STORE_DEREF") if cell else ("LOAD_FAST", "STORE_FAST")
    return [Instr(load, var, lineno=lineno), *method_call(kind, lineno), Instr(store, var, lineno=lineno)]


def make_resume_code(code: types.CodeType, index: int, layout: tuple, local_names: tuple,
                     views: tuple = ()) -> tuple[types.CodeType, tuple]:
    """Code that continues `code` at real instruction `index` with the given stack layout and locals, and for each
    of its instructions the index of the original's instruction it is (None: one it added, in its prologue or as
    the second half of a split pair), which a resume function of it needs: that one is built from `code` too.
    `views`: (local name, `keys` / `values` / `items`) of the locals passed as the dict of their view."""
    bc = bytecode.Bytecode.from_code(code)
    instructions = flat_instructions(bc)
    origins = {id(instr): i for i, instr in enumerate(instructions)}
    target = instructions[index]
    start = Label()
    body, prologue_done = [], False
    prologue = []
    for item in bc:
        if isinstance(item, Instr) and item is target:
            body.append(start)
        if not prologue_done and isinstance(item, Instr) and item.name in PROLOGUE:
            prologue.append(item)
            continue
        prologue_done = prologue_done or isinstance(item, Instr)
        body.append(item)
    lineno = target.lineno or code.co_firstlineno
    push = [instr for name, kind in views for instr in _view_again(name, kind, name in bc.cellvars, lineno)]
    names = iter(stack_names(layout))
    for is_null in layout:
        push.append(Instr("PUSH_NULL", lineno=lineno) if is_null else Instr("LOAD_FAST", next(names), lineno=lineno))
    new = bytecode.Bytecode(prologue + push + [Instr("JUMP_FORWARD", start, lineno=lineno)] + body)
    _copy_header(bc, new, code, index, layout, local_names)
    # The jump skips the original entry, so `bytecode` cannot work out handler depths by following the code
    # (it would leave them unset): keep the original's, right because the stack at `index` is the original's.
    _keep_handler_depths(code, bc)
    stacksize = max(code.co_stacksize, len(layout))
    resumed = new.to_code(stacksize=stacksize, compute_exception_stack_depths=False)
    while _split_wide_pairs(new, origins, resumed.co_varnames):
        resumed = new.to_code(stacksize=stacksize, compute_exception_stack_depths=False)
    check_code(resumed)
    return resumed, tuple(origins.get(id(instr)) for instr in flat_instructions(new))


def _split_wide_pairs(new: bytecode.Bytecode, origins: dict, varnames: tuple) -> bool:
    """Numbering the live locals first can give a local of a 3.13 pair instruction a number past 15, which its
    4-bit field cannot hold (`bytecode` 0.19 encodes such a pair as a pair of other locals).  Split each pair of
    `new` whose locals have such numbers in `varnames` (its code's locals) into two single-local instructions, the
    first standing for the original's pair in `origins` (id of an instruction -> the original's index).  Returns
    whether it split any: then the code is made again, and checked again, as `bytecode` may number the locals
    otherwise (it numbers the locals of the pairs left right after the arguments)."""
    numbers = {name: i for i, name in enumerate(varnames)}
    items, split = [], False
    for item in new:
        if isinstance(item, Instr) and item.name in PAIR_HALVES and not pair_fits(item, numbers):
            halves = split_pair(item)
            origins[id(halves[0])] = origins[id(item)]
            items += halves
            split = True
        else:
            items.append(item)
    new[:] = items
    return split


def _keep_handler_depths(code, bc):
    """Give each try region of `bc` (decoded from `code`) its handler depth from `code`'s exception table."""
    entries = bytecode.ConcreteBytecode.from_code(code).exception_table
    begins = [item for item in bc if isinstance(item, TryBegin)]
    if len(begins) != len(entries):
        raise BadCode(f"{code.co_qualname}: {len(begins)} try regions decoded from {len(entries)} table entries")
    for begin, entry in zip(begins, entries):
        begin.stack_depth = entry.stack_depth


def _copy_header(bc, new, code, index, layout, local_names):
    new.name = code.co_name             # a traceback through the resume function shows the user's function
    new.qualname = code.co_qualname
    new.filename = bc.filename
    new.first_lineno = bc.first_lineno
    new.cellvars = list(bc.cellvars)
    new.freevars = list(bc.freevars)
    new.argnames = list(local_names) + stack_names(layout)
    new.argcount = len(new.argnames)
    new.posonlyargcount = 0
    new.kwonlyargcount = 0
    flags = bc.flags & ~(bytecode.CompilerFlags.VARARGS | bytecode.CompilerFlags.VARKEYWORDS)
    new.flags = flags
    new.docstring = None


def make_resume_function(fn: types.FunctionType, index: int, layout: tuple, local_names: tuple,
                         line: int, nth_break: int = 1, nth_branch: int = 1, views: tuple = ()):
    """The resume function, named for users after the `line` of the break: `f (after line 10)`; the
    `nth_break` other break on that line adds `, 2nd break`, the `nth_branch` continuation of one break
    (a branch on a traced value) adds `, 2nd branch`.  Its code keeps `f`'s names, for tracebacks.  Returns it
    and the original's index of each of its instructions (see `make_resume_code`)."""
    code, origins = make_resume_code(fn.__code__, index, layout, local_names, views)
    ordinals = [f"{ordinal(n)} {what}" for n, what in ((nth_break, "break"), (nth_branch, "branch")) if n > 1]
    after = f" ({', '.join([f'after line {line}'] + ordinals)})"
    resumed = types.FunctionType(code, fn.__globals__, code.co_name + after, None, fn.__closure__)
    resumed.__qualname__ = code.co_qualname + after
    return resumed, origins


def ordinal(n: int) -> str:
    """`2nd`, `3rd`, `11th`, `22nd`."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def break_line(code: types.CodeType, index: int) -> int:
    """The line of the instruction before `index` (the one that broke), else the resumed one's."""
    instructions = flat_instructions(bytecode.Bytecode.from_code(code))
    for instr in reversed(instructions[:index + 1][-2:]):
        if instr.lineno:
            return instr.lineno
    return code.co_firstlineno
