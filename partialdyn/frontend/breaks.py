"""How an opcode behaves at a graph break, declared next to its handler in `opcodes.py`.

At a break the runtime rebuilds the stack and locals, performs the one
instruction the tracer stopped at in plain Python (a step of the declared
`BreakKind`) and resumes after it.  The declaration says what the runtime cannot
learn from the bytecode: which kind of step, how many values the instruction
takes from the stack (`pops`) and, for a stack operation, the Python operation.
What it leaves on the stack on each path comes from the instruction's stack
effect (`instructions.stack_effect`, the `bytecode` package's facts).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable


class BreakKind(enum.Enum):
    EAGER = "eager"          # the rest of the frame runs as plain Python
    CALL = "call"            # the call runs in Python (its callee optimized separately)
    CALL_KW = "call_kw"      # 3.13: the same, the keyword names a tuple on top of the stack
    CALL_EX = "call_ex"      # f(*args, **kwargs) in Python
    BRANCH = "branch"        # a conditional jump on a runtime value
    FOR_ITER = "for_iter"    # one next() in Python
    RAISE = "raise"          # the user's own raise re-executes as plain Python
    STACK_OP = "stack_op"    # pops `pops` values, pushes what `operation(arg)(*values)` returns


@dataclass(frozen=True)
class AtBreak:
    kind: BreakKind
    pops: Callable[[object], int] | None = None          # instruction arg -> values taken from the stack
    operation: Callable[[object], Callable] | None = None  # STACK_OP: instruction arg -> the Python operation
    jump_if: bool | None = None                         # BRANCH: the truth value that takes the jump
    pushes_null: Callable[[object], bool] = lambda arg: False   # STACK_OP: instruction arg -> a NULL goes next
                                                        # to the operation's result (below it until 3.13,
                                                        # above it from 3.13: instructions.NULL_AFTER_CALLABLE)
    null_optional: bool = False                         # CALL_EX: the NULL under the callable may be absent


EAGER = AtBreak(BreakKind.EAGER)
RAISE = AtBreak(BreakKind.RAISE)
FOR_ITER = AtBreak(BreakKind.FOR_ITER)


def branch(jump_if: bool) -> AtBreak:
    return AtBreak(BreakKind.BRANCH, jump_if=jump_if)


def stack_op(operation: Callable[[object], Callable], pops: int,
             pushes_null: Callable[[object], bool] = lambda arg: False) -> AtBreak:
    return AtBreak(BreakKind.STACK_OP, pops=lambda arg: pops, operation=operation, pushes_null=pushes_null)
