"""From one trace to one cache entry.

`compile_entry` traces the frame, finishes the fx graph (outputs, dead size
nodes removed), lowers it with the backend inside the trace's fake mode, reads
the guards (after lowering, so guards the backend added are included), and
generates the entry's runner: graph call + rebuilding of the result, or of the
stack and locals at a graph break followed by the break step.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch._guards import TracingContext, tracing

from ..backends import lookup
from .. import sources
from .. import trackers
from ..errors import Unsupported, UserError
from ..frontend import autocast, breaks
from ..frontend.autocast import AutocastRestart
from ..frontend.breaks import BreakKind
from ..frontend.instructions import NULL_AFTER_CALLABLE, stack_effect, cell_writes_from
from ..frontend.opcodes import AT_BREAK
from ..frontend.resume import STACK_PREFIX
from ..frontend.side_effects import SideEffects
from ..frontend.tracer import BreakBefore, Frame, Result, Trace, shared_storages
from ..graph.passes import remove_unused_size_arithmetic, share_equal_sizes
from .rebuild import OUTPUTS
from ..guards.codegen import GuardFunction
from ..guards.hoisting import read_once
from ..guards.shape import shape_guards
from ..names import FUNCTION, GLOBALS, PREFIX
from .binding import frame_argnames, param_name
from .rebuild import Rebuilder
from .userframes import caller_at
from .steps import (NULL, BranchStep, CallExStep, CallStep, EagerRest, ForIterStep, GraphRaised, RaiseStep,
                    RunsEagerly, StackOpStep, restore_autocast_on_error, restore_grad_mode)


@dataclass
class Entry:
    guard: GuardFunction
    run: object                      # callable(*frame args)
    graph_code: str = ""
    has_graph: bool = False
    stop: object = None              # tracer.Stop at a graph break
    specializations: list = field(default_factory=list)
    trace_seconds: float = 0.0
    backend_seconds: float = 0.0
    fake_results_reused: int = 0     # ops whose fake result was rebuilt from an identical earlier op's
    raised: object = None            # errors.UserError: the traced code raises; `run` raises RunsEagerly


def trace_frame(opt, bound: tuple, break_allowed: bool = True, shared: set = frozenset(),
                breaks_before: dict | None = None) -> tuple[Trace, object]:
    """`shared`: memory blocks whose tensors are made static (argument tensors sharing memory); `breaks_before`:
    the instructions to break before (tracer.BreakBefore)."""
    fn = opt.fn
    trace = Trace(fn, opt.options, opt.shape_state, breaks_before)
    trace.consumer.break_allowed = break_allowed
    trace.shared_storages = shared
    code = fn.__code__
    locals_ = {name: trace.wrap(value, sources.argument(param, opt.arg_texts.get(name, param_name(name))), frame_input=True)
               for name, param, value in zip(frame_argnames(code), opt.argnames, bound)}
    for name in _star_names(code):
        # *args / **kwargs are fresh per call: the frame may mutate them like any local container
        vt = locals_[name]
        locals_[name] = trackers.Tuple(list(vt.items)) if isinstance(vt, trackers.Tuple) else trackers.Dict(dict(vt.items))
    cells = {}
    for i, name in enumerate(code.co_freevars):
        cell = fn.__closure__[i]
        src = sources.closure(i, name)
        cells[name] = trackers.Cell(trace.wrap(cell.cell_contents, src) if trackers.cell_filled(cell) else None, src)
    frame = Frame(trace, code, fn.__globals__, locals_, cells)
    trace.frame = frame
    grad = torch.is_grad_enabled()
    try:
        result = frame.run_root()
    except UserError as raised:
        result = Result(raised=raised)
    finally:
        autocast.close_all(trace)
        torch._C._set_grad_enabled(grad)
    return trace, result


def _star_names(code):
    names = frame_argnames(code)
    n = code.co_argcount + code.co_kwonlyargcount
    return names[n:]


def compile_entry(opt, bound: tuple, break_allowed: bool = True) -> Entry:
    """`break_allowed`: an unstable dim may graph-break (else it is specialized)."""
    t0 = time.perf_counter()
    breaks_before = {}
    trace, result = _trace(opt, bound, break_allowed, breaks_before)
    if result.raised is not None:
        if not result.raised.traceable:     # found by a fake kernel, whose checks need not all be guards
            raise result.raised
        return _raising_entry(opt, trace, result.raised, time.perf_counter() - t0)
    if trace.builder.effects.writes_inputs and (shared := shared_storages(bound)):
        # the graph writes an input and some argument tensors share memory: aot_autograd rebuilds those from
        # one base, which needs their sizes static; trace again with them static
        trace, result = _trace(opt, bound, break_allowed, breaks_before, shared)
    trace.check_strict_dynamic()
    rebuilder = Rebuilder(trace.owned)
    if result.stop is None:
        rebuilder.tensors_from_graph = True     # a returned input tensor still comes out of the graph
        result_expr, stop_step = rebuilder.expr(result.value), None
    else:
        stop_step, result_expr = _break_body(opt, trace, result.stop, rebuilder)
    body = _runner_body(rebuilder, result_expr, _side_effects(trace, rebuilder), stop_step is not None)
    gm, has_graph = _finish_graph(trace, rebuilder.outputs)
    t1 = time.perf_counter()
    compiled = _lower(opt, trace, gm) if has_graph else None
    t2 = time.perf_counter()
    trace.assume_distinct()
    trace.guard_tensor_aliasing()
    guard = GuardFunction(list(trace.guards) + shape_guards(trace.builder.shapes), opt.argnames,
                          {**trace.guards.constants, **trace.source_constants}, opt.fn.__globals__, opt.fn)
    if compiled is not None and (trace.grad_mode_changed or trace.grad_enabled != torch.is_grad_enabled()):
        compiled = restore_grad_mode(compiled, torch.is_grad_enabled(), trace.grad_enabled)
    if compiled is not None and trace.autocast_regions:
        compiled = restore_autocast_on_error(compiled)
    run = _make_runner(opt, trace, rebuilder, compiled, body, stop_step)
    return Entry(guard, run, gm.code if has_graph else "", has_graph, result.stop,
                 trace.consumer.specializations, t1 - t0, t2 - t1, trace.builder.reuse.hits)


def _trace(opt, bound, break_allowed, breaks_before: dict, shared=frozenset()):
    """trace_frame, traced again on a restart: with autocast calls as graph breaks (AutocastRestart), or with a
    break before an instruction that had mutated what the rest of the frame reaches (BreakBefore, added to
    `breaks_before`)."""
    while True:
        try:
            return trace_frame(opt, bound, break_allowed, shared, breaks_before)
        except AutocastRestart:
            if opt.shape_state.autocast_breaks:
                raise
            opt.shape_state.autocast_breaks = True      # a region could not be traced: autocast calls break
        except BreakBefore as restart:
            breaks_before[restart.index, restart.visit] = restart


def _runs_eagerly(*frame_args):
    raise RunsEagerly


def _raising_entry(opt, trace, raised: UserError, seconds: float) -> Entry:
    """The entry for inputs on which the traced code raises.  Every value the trace read up to the exception is
    guarded, so it raises there on any input the guards accept: those calls run as plain Python (eager raises
    the user's exception, or does not where tracing differs, as under `torch.compiler.is_compiling()`) without
    tracing the frame again on every call."""
    trace.assume_distinct()
    trace.guard_tensor_aliasing()
    guard = GuardFunction(list(trace.guards) + shape_guards(trace.builder.shapes), opt.argnames,
                          {**trace.guards.constants, **trace.source_constants}, opt.fn.__globals__, opt.fn)
    return Entry(guard, _runs_eagerly, raised=raised, trace_seconds=seconds)


def _side_effects(trace, rebuilder) -> list[tuple[str, str]]:
    """(statement template, value expression) pairs replaying the trace's effects on the caller's world:
    mutated lists and dicts synced in place, attribute and global assignments.  A write of the value that
    was read from the same place is skipped."""
    effects, seen = [], set()
    for c in trace.side_effects.mutated():
        if c.source is None or id(c) in seen or not isinstance(c, (trackers.List, trackers.Dict)):
            continue
        seen.add(id(c))
        if isinstance(c, trackers.CallerList) and not c.loaded:
            effects.append((f"{c.source.code}.extend({{}})", f"[{', '.join(rebuilder.expr(i) for i in c.appended)}]"))
        elif isinstance(c, trackers.List):
            effects.append((f"{c.source.code}[:] = {{}}", f"[{', '.join(rebuilder.expr(i) for i in c.items)}]"))
        else:
            items = ", ".join(f"{rebuilder.constant(k)}: {rebuilder.expr(v)}" for k, v in c.items.items())
            effects.append((f"{PREFIX}sync_dict({c.source.code}, {{}})", f"{{{items}}}"))
    for owner, name, value in trace.side_effects.writes():
        if owner is trace.globals_owner:
            effects.append((f"{sources.global_(name).code} = {{}}", rebuilder.expr(value)))
        elif value is SideEffects.DELETED:
            effects.append((f"delattr({owner.source.code}, {sources.attr_name(name)})", ""))
        elif getattr(value, "source", None) is None or value.source.code != sources.attr(owner.source, name).code:
            effects.append((f"setattr({owner.source.code}, {sources.attr_name(name)}, {{}})", rebuilder.expr(value)))
    return effects


def _runner_body(rebuilder, result_expr: str, effects, step: bool) -> str:
    """Every value is read before any effect is applied (`y = xs[0]; xs[0] = x; return y` must return the old
    value), then the effects run, then the result is returned or handed to the break step."""
    result, effect = PREFIX + "result", PREFIX + "e"
    lines = list(rebuilder.statements) + [f"{result} = {result_expr}"]
    lines += [f"{effect}{i} = {value}" for i, (_, value) in enumerate(effects) if value]
    lines += [template.format(f"{effect}{i}") if value else template for i, (template, value) in enumerate(effects)]
    lines.append(f"return {PREFIX}step(*{result})" if step else f"return {result}")
    return "\n    ".join(lines)


# ---------------------------------------------------------------- graph
def _finish_graph(trace, outputs):
    graph = trace.builder.graph
    graph.output(tuple(outputs))
    share_equal_sizes(graph)
    remove_unused_size_arithmetic(graph)
    has_graph = any(n.op not in ("placeholder", "output") for n in graph.nodes) or bool(outputs)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return gm, has_graph


def _lower(opt, trace, gm):
    backend = lookup(opt.options.backend)
    fake_inputs = [node.meta["val"] for _, node in trace.builder.inputs]
    with tracing(TracingContext(trace.builder.shapes.fake_mode)):
        compiled = backend(gm, fake_inputs)
    return compiled


# ---------------------------------------------------------------- runner
def _sync_dict(target: dict, contents: dict) -> None:
    target.clear()
    target.update(contents)


def _make_runner(opt, trace, rebuilder, compiled, body, step):
    args = ", ".join(opt.argnames)
    inputs = ", ".join(read_once([src for src, _ in trace.builder.inputs]))
    call = f"    {OUTPUTS} = {PREFIX}graph({inputs})\n" if compiled is not None else ""
    if compiled is not None and trace.builder.effects.rerunnable:
        # nothing the graph did is visible if it raises: the call re-runs as plain Python (GraphRaised)
        call = (f"    try:\n    {call}    except Exception as {PREFIX}error:\n"
                f"        raise {PREFIX}GraphRaised({PREFIX}error) from None\n")
    source = f"def run({args}):\n{call}    {body}\n"
    namespace = {GLOBALS: opt.fn.__globals__, FUNCTION: opt.fn, PREFIX + "graph": compiled, PREFIX + "step": step,
                 PREFIX + "sync_dict": _sync_dict, PREFIX + "GraphRaised": GraphRaised,
                 **trace.source_constants}
    namespace.update(rebuilder.constants)
    exec(compile(source, f"<partialdyn runner {opt.fn.__code__.co_name}>", "exec"), namespace)
    run = namespace["run"]
    run.source = source
    return run


def _break_body(opt, trace, stop, rebuilder):
    if trace.frame.captured & cell_writes_from(opt.fn.__code__, stop.index):
        # a closure made before the break and the resume function hold different cells (each gets the value at
        # the break): a write on one side after the break would be lost to the other
        raise Unsupported(f"graph break ({stop.reason}, line {stop.line}) after creating a closure over "
                          f"this function's variables")
    stack_expr = "[" + ", ".join(rebuilder.expr(v) for v in stop.stack) + "]"
    code = opt.fn.__code__
    live = {n: v for n, v in stop.locals.items() if n in code.co_varnames and not n.startswith(STACK_PREFIX)}
    live.update({n: c.contents for n, c in trace.frame.cells.items()
                 if n in code.co_cellvars and c.contents is not None})
    names = tuple(sorted(live, key=lambda name: name != _first_parameter(code)))   # super() reads slot 0
    trace.consumer.hand_on([*_handed_sizes(live), *_handed_sizes(stop.callee_arguments)])
    passed = [rebuilder.passed(live[n]) for n in names]
    locals_expr = "[" + ", ".join(expr for expr, _ in passed) + "]"
    views = tuple((n, kind) for n, (_, kind) in zip(names, passed) if kind is not None)
    stack_values = [v for v in stop.stack if v is not trackers.NULL]
    texts = {f"{STACK_PREFIX}{i}": str(v.source) for i, v in enumerate(stack_values)
             if getattr(v, "source", None) is not None and isinstance(v, (trackers.Tensor, trackers.Sym))}
    step = _make_step(opt, trace, stop, names, texts, views)
    return step, f"({stack_expr}, {locals_expr})"


def _handed_sizes(named: dict):
    """(the name a size gets in the frame that receives it, the size here) for the tensors and numbers a break
    hands on by name: the resume function's locals, the parameters of a callee that broke inside (it is
    optimized separately, and names its inputs after its parameters)."""
    for name, value in named.items():
        if isinstance(value, trackers.Tensor):
            yield from ((sources.size(name, d), s) for d, s in enumerate(value.fake.shape) if isinstance(s, torch.SymInt))
        elif isinstance(value, trackers.Sym):
            yield name, value.value
        elif isinstance(value, trackers.Tuple):      # *args: the receiving frame reads `args[0]`
            yield from _handed_sizes({f"{name}[{i}]": item for i, item in enumerate(value.items)})


def _first_parameter(code) -> str | None:
    star_parameters = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    has_parameters = code.co_argcount or code.co_kwonlyargcount or star_parameters
    return code.co_varnames[0] if has_parameters else None


def _make_step(opt, trace, stop, names, texts, views):
    """The step for the instruction the trace stopped at, built from the break behaviour its opcode declares
    (`opcodes.AT_BREAK`)."""
    site = BreakSite(opt, trace, stop, names, texts, views)
    if site.decoded.is_user_try(stop.index):
        # the rest runs as plain Python (the try keeps its handlers); a callee that broke inside is still
        # optimized: the callable on the stack is swapped for its optimized version
        callee_slot = None
        if site.at_break.kind in (BreakKind.CALL, BreakKind.CALL_KW, BreakKind.CALL_EX) and stop.inside_callee:
            base = site.base()
            callee_slot = base + 1 if site.layout[base] and not NULL_AFTER_CALLABLE else base
        return EagerRest(site.plain_python(), site.eager_recorder(), callee_slot, site.callee_resolver(True))
    return BREAK_STEPS[site.at_break.kind](site)


class BreakSite:
    """The instruction a trace stopped at, and the resume functions for where it continues (`views`: the live
    locals passed as the dict of their view)."""

    def __init__(self, opt, trace, stop, names, texts, views):
        self.opt, self.stop, self.names, self.texts, self.views = opt, stop, names, texts, views
        self.decoded = trace.frame.decoded
        self.instr = self.decoded.instrs[stop.index]
        self.at_break = AT_BREAK.get(self.instr.name, breaks.EAGER)
        self.layout = tuple(v is trackers.NULL for v in stop.stack)      # True where the stack holds NULL
        self.paid = trace.consumer.backoff_break       # the resume functions of a backoff break are budgeted

    def pops(self, jump: bool) -> int:
        """Values the instruction takes from the stack: declared, else what its stack effect removes."""
        if self.at_break.pops is not None:
            return self.at_break.pops(self.instr.arg)
        return max(0, -stack_effect(self.instr, jump))

    def pushes(self, jump: bool) -> int:
        return self.pops(jump) + stack_effect(self.instr, jump)

    def base(self, jump: bool = False) -> int:
        """The stack position of the first value the instruction pops (past an absent optional NULL)."""
        base = len(self.layout) - self.pops(jump)
        if self.at_break.null_optional and not self.layout[base]:
            base += 1
        return base

    def after(self, jump: bool):
        """The resume function for where the instruction continues, taking (`jump`) or skipping its jump."""
        pushes = self.pushes(jump)
        pushed = (False,) * pushes
        if self.at_break.pushes_null(self.instr.arg):
            pushed = pushed[:-1] + (True,) if NULL_AFTER_CALLABLE else (True,) + pushed[1:]
        index = self.decoded.targets[self.stop.index] if jump else self.stop.index + 1
        return self.opt.resume_function(index, self.layout[:self.base(jump)] + pushed, self.names,
                                        arg_texts=self.texts, paid=self.paid, after_line=self.stop.line,
                                        break_index=self.stop.index, views=self.views)

    def plain_python(self):
        """The resume function that runs the rest of the frame, this instruction included, as plain Python."""
        return self.opt.resume_function(self.stop.index, self.layout, self.names, optimized=False,
                                        after_line=self.stop.line, views=self.views)

    def callee_resolver(self, optimize_callee: bool):
        return self.opt.callee_resolver(optimize_callee, self.paid)

    def eager_recorder(self):
        return self.opt.eager_run_recorder(self.stop.reason, self.stop.file, self.stop.line)

    def call_site(self):
        """Makes a call from a frame at the user's line."""
        code = self.opt.fn.__code__
        return caller_at(code.co_filename, self.instr.lineno or code.co_firstlineno,
                         self.opt.origin[0].__code__.co_name, self.opt.fn.__globals__)


def _stack_op_step(site):
    operation = site.at_break.operation(site.instr.arg)
    if site.at_break.pushes_null(site.instr.arg):
        operation = _with_null(operation)
    return StackOpStep(operation, site.pops(False), site.pushes(False), site.after(False))


def _with_null(operation):
    """The operation's result and the NULL a call expects next to it."""
    if NULL_AFTER_CALLABLE:
        return lambda *values: (operation(*values), NULL)
    return lambda *values: (NULL, operation(*values))


BREAK_STEPS = {
    BreakKind.CALL: lambda site: CallStep(site.instr.arg, site.stop.kw_names, site.after(False),
                                          site.callee_resolver(site.stop.inside_callee), site.call_site()),
    BreakKind.CALL_KW: lambda site: CallStep(site.instr.arg, None, site.after(False),
                                             site.callee_resolver(site.stop.inside_callee), site.call_site(),
                                             names_on_stack=True),
    BreakKind.CALL_EX: lambda site: CallExStep(bool(site.instr.arg & 1), site.after(False),
                                               site.callee_resolver(site.stop.inside_callee), site.call_site()),
    BreakKind.BRANCH: lambda site: BranchStep(site.at_break.jump_if, stack_effect(site.instr, True) < 0, bool,
                                              site.after(True), site.after(False)),
    BreakKind.FOR_ITER: lambda site: ForIterStep(site.after(False), site.after(True), site.pops(True),
                                                 site.pushes(True)),
    # the user's own code raises it (plain Python from the raise on), so the traceback ends at their line
    BreakKind.RAISE: lambda site: RaiseStep(site.plain_python()),
    BreakKind.STACK_OP: _stack_op_step,
    BreakKind.EAGER: lambda site: EagerRest(site.plain_python(), site.eager_recorder()),
}
