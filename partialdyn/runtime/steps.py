"""The step a compiled frame runs in real Python at a graph break.

After the graph before the break has run and the stack and locals are rebuilt,
the step performs the one instruction the tracer could not (a call, a branch on
a runtime value, a loop step, a raise, a stack operation), then calls the
resume function for wherever execution continues (it takes the live locals, then
the stack values: `frontend/resume.py`).  Every broken call goes through one of
these `__call__`s, so they stay short.
"""
from __future__ import annotations

import types

import torch

from ..frontend.instructions import NULL_AFTER_CALLABLE
from ..guards.kinds import AUTOCAST_DEVICES

NULL = type("NULL", (), {"__repr__": lambda self: "NULL"})()


def without_nulls(stack):
    return [v for v in stack if v is not NULL]


class CallStep:
    """CALL n: the callee runs in Python (optimized separately if the break was inside it).  `resolve` maps
    the callee to what runs (its optimized version); `call` makes the call from a frame at the user's line."""

    def __init__(self, argc, kw_names, resume, resolve, call, names_on_stack=False):
        self.argc, self.kw_names, self.resume = argc, kw_names or (), resume
        self.resolve, self.call, self.names_on_stack = resolve, call, names_on_stack

    def __call__(self, stack, locals_):
        kw_names = self.kw_names
        if self.names_on_stack:          # 3.13's CALL_KW
            kw_names, stack = stack[-1], stack[:-1]
        n = self.argc
        args = stack[len(stack) - n:]
        lower, upper = stack[-n - 2], stack[-n - 1]
        if NULL_AFTER_CALLABLE:
            fn, args = (lower, args) if upper is NULL else (lower, [upper] + args)
        else:
            fn, args = (upper, args) if lower is NULL else (lower, [upper] + args)
        k = len(kw_names)
        kwargs = dict(zip(kw_names, args[len(args) - k:])) if k else {}
        result = self.call(self.resolve(fn), args[:len(args) - k], kwargs)
        return self.resume(*locals_, *without_nulls(stack[:-n - 2]), result)


class CallExStep:
    """CALL_FUNCTION_EX: f(*args, **kwargs) in Python."""

    def __init__(self, has_kwargs, resume, resolve, call):
        self.has_kwargs, self.resume, self.resolve, self.call = has_kwargs, resume, resolve, call

    def __call__(self, stack, locals_):
        kwargs = stack.pop() if self.has_kwargs else {}
        args = stack.pop()
        fn = stack.pop()
        if fn is NULL:                   # from 3.13 the NULL is above the callable
            fn = stack.pop()
        elif stack and stack[-1] is NULL:
            stack.pop()
        result = self.call(self.resolve(fn), list(args), dict(kwargs))
        return self.resume(*locals_, *without_nulls(stack), result)


class BranchStep:
    """A conditional jump on a runtime value (tensor truth, data-dependent size, unstable dim)."""

    def __init__(self, jump_if, pop_always, test, resume_jump, resume_next):
        self.jump_if, self.pop_always, self.test = jump_if, pop_always, test
        self.resume_jump, self.resume_next = resume_jump, resume_next

    def __call__(self, stack, locals_):
        value = stack[-1]
        jump = self.test(value) == self.jump_if
        if jump:
            rest = stack[:-1] if self.pop_always else stack
            return self.resume_jump(*locals_, *without_nulls(rest))
        return self.resume_next(*locals_, *without_nulls(stack[:-1]))


class ForIterStep:
    """FOR_ITER over an iterator the tracer cannot see into: one `next()` in Python.  The loop's exit takes
    `exit_pops` values and pushes `exit_pushes` (3.11 pops the iterator; 3.12 jumps to an END_FOR that pops
    it and a value, pushed here as None)."""

    def __init__(self, resume_body, resume_exit, exit_pops, exit_pushes):
        self.resume_body, self.resume_exit = resume_body, resume_exit
        self.exit_pops, self.exit_pushes = exit_pops, exit_pushes

    def __call__(self, stack, locals_):
        try:
            value = next(stack[-1])
        except StopIteration:
            rest = stack[:len(stack) - self.exit_pops] + [None] * self.exit_pushes
            return self.resume_exit(*locals_, *without_nulls(rest))
        return self.resume_body(*locals_, *without_nulls(stack), value)


class StackOpStep:
    """An instruction that pops `n` values and pushes `fn(*values)` (or nothing)."""

    def __init__(self, fn, n, pushes, resume):
        self.fn, self.n, self.pushes, self.resume = fn, n, pushes, resume

    def __call__(self, stack, locals_):
        values = stack[len(stack) - self.n:]
        result = self.fn(*values)
        rest = stack[:len(stack) - self.n]
        pushed = list(result) if self.pushes > 1 else [result] if self.pushes else []
        return self.resume(*locals_, *without_nulls(rest + pushed))


class RaiseStep:
    """A `raise`: the plain resume function re-executes it, so the traceback points at the user's line."""

    def __init__(self, resume):
        self.resume = resume

    def __call__(self, stack, locals_):
        return self.resume(*locals_, *without_nulls(stack))


class EagerRest:
    """The rest of the frame runs as plain Python (try blocks, unsupported opcodes).  `callee_slot`: the
    stack position of a callable to run optimized anyway (the break was inside it): `resolve` gives that."""

    def __init__(self, resume, on_run, callee_slot=None, resolve=None):
        self.resume, self.on_run = resume, on_run
        self.callee_slot, self.resolve = callee_slot, resolve

    def __call__(self, stack, locals_):
        self.on_run()
        if self.callee_slot is not None:
            stack[self.callee_slot] = self.resolve(stack[self.callee_slot])
        return self.resume(*locals_, *without_nulls(stack))


class RunsEagerly(Exception):
    """Raised by the runner of an entry whose trace raises: the optimized function runs the call as plain Python."""


class GraphRaised(Exception):
    """A graph with no visible effects raised: the optimized function re-runs the call as plain Python, so the
    Python side effects before the failing line happen and the exception comes from the user's own code."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


def restore_grad_mode(compiled, entry_mode: bool, exit_mode: bool):
    """Run a graph that changes grad mode; leave the mode as the traced code would."""
    def run(*args):
        try:
            out = compiled(*args)
        except BaseException:
            torch._C._set_grad_enabled(entry_mode)
            raise
        torch._C._set_grad_enabled(exit_mode)
        return out
    return run


def restore_autocast_on_error(compiled):
    """Run a graph with autocast regions; if it raises inside one, leave autocast as it was before the call."""
    def run(*args):
        saved = autocast_state()
        try:
            return compiled(*args)
        except BaseException:
            restore_autocast(saved)
            raise
    return run


def _autocast_nesting() -> int:
    depth = torch.autocast_increment_nesting() - 1
    torch.autocast_decrement_nesting()
    return depth


def autocast_state():
    return _autocast_nesting(), torch.is_autocast_cache_enabled(), [
        (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)) for device in AUTOCAST_DEVICES]


def restore_autocast(saved):
    nesting, cache, devices = saved
    for device, enabled, dtype in devices:
        torch.set_autocast_enabled(device, enabled)
        torch.set_autocast_dtype(device, dtype)
    torch.set_autocast_cache_enabled(cache)
    leaked = _autocast_nesting() - nesting
    for _ in range(leaked):
        torch.autocast_decrement_nesting()
    if leaked > 0 and nesting == 0:
        torch.clear_autocast_cache()


def make_function(code, globals_, name, defaults, kwdefaults, closure_values):
    fn = types.FunctionType(code, globals_, name, defaults or None,
                            tuple(types.CellType(v) for v in closure_values) or None)
    fn.__kwdefaults__ = kwdefaults or None
    return fn
