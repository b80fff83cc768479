"""OptimizedFunction: the cache of compiled entries for one code object.

The hot path is `__call__`: bind arguments, try each entry's guard, run the
first that matches.  Everything else (tracing, recompile accounting, backoff,
cache limits, eager fallback) happens on a miss, under a lock.

A root OptimizedFunction is what `optimize` returns.  Resume functions (the
rest of a frame after a graph break) and callees compiled separately are child
OptimizedFunctions; they share the root's options, statistics, backoff state
(recompiles per dim, unstable dims) and compile budget (runtime/budget.py).
"""
from __future__ import annotations

import functools
import threading
import types
import warnings
import weakref
from dataclasses import dataclass, fields

import torch

from ..errors import GraphBreak, PartialdynError, Unsupported, UserError
from ..frontend.escapes import runs_in_python
from ..frontend.resume import break_line, make_resume_function
from ..guards import cached_calls
from ..guards.kinds import global_module_hooks, in_log_order
from ..logs import emit
from ..shapes.policy import POLICIES, FrameShapeState
from ..names import argument_name
from ..stance import current_stance
from .binding import DefaultsChanged, frame_argnames, make_binder
from .budget import CompileBudget
from .steps import GraphRaised, RunsEagerly
from .userframes import substitute, warn_at_user_caller, without_engine_frames


@dataclass(slots=True)     # without slots, `stats.calls += 1` takes 70 ns on CPython 3.12+ (25 ns on 3.11)
class Stats:
    calls: int = 0
    cache_hits: int = 0
    compiles: int = 0
    recompiles: int = 0
    graphs: int = 0
    graph_breaks: int = 0
    eager_fallbacks: int = 0
    internal_errors: int = 0        # partialdyn itself failed on a frame (a bug), which then ran eagerly

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Options:
    backend: object
    policy: str
    recompile_limit: int
    cache_size_limit: int
    fullgraph: bool


MAX_CHILDREN = 1024        # resume functions and callees kept per optimized function
_WARNED: "weakref.WeakSet[types.CodeType]" = weakref.WeakSet()   # code objects whose internal error was reported


def forget_warnings() -> None:
    """partialdyn.reset(): internal errors are reported again."""
    _WARNED.clear()


def _plain_module_call(module) -> bool:
    """Calling `module` runs just `type(module).forward`: no hooks (its own or global), no forward set on the
    instance, no __call__ of its own class."""
    return not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks or any(global_module_hooks())) and \
        "forward" not in module.__dict__ and type(module).__call__ is torch.nn.Module.__call__


class OptimizedFunction:
    def __init__(self, fn: types.FunctionType, options: Options, root: "OptimizedFunction | None" = None,
                 name: str | None = None, origin=None):
        self.fn = fn
        self.origin = origin or (fn, None)  # (original function, its index of each instruction; None: the same)
        self.options = options
        self.root = root or self
        self.stats = self.root.stats if root else Stats()
        self.name = name or (root.name if root else fn.__qualname__)
        self.argnames = [argument_name(n) for n in frame_argnames(fn.__code__)]   # as generated code spells them
        self.arg_texts = {}                  # argument -> how users know it (a resume function's stack values)
        self.binder = make_binder(fn)
        self.entries = []
        self.shape_state = root.shape_state.shared_with() if root else FrameShapeState()
        self.lock = threading.RLock()
        self.always_eager = None             # reason, once tracing this code failed internally
        self.cache_limit_hit = False
        self.paid = False                    # created by a backoff break (or inside such a frame): budgeted
        self.fallbacks_logged = set()        # eager-fallback reasons already logged for this code object
        self.never_traced = runs_in_python(fn)   # partialdyn.disable / torch.compiler.disable: always eager
        self.reads_cached_calls = False      # an entry's guards call an lru_cache function (guards/cached_calls.py)
        if root is None:
            self.children = {}               # resume functions and callees, by key
            self.resume_breaks = {}          # (code, line) -> {break instruction: [resume indexes]}: names
            self.budget = CompileBudget(options.cache_size_limit)
        self.__wrapped__ = fn
        self._partialdyn_traced = fn         # traced code calling this object inlines fn (frontend.escapes)

    # ------------------------------------------------------------ hot path
    def __call__(self, *args, **kwargs):
        scoped = self.reads_cached_calls
        if scoped:
            enclosing = cached_calls.open_scope()   # its guards and inputs share each cached call's answer
        try:
            try:
                bound = self.binder(*args, **kwargs)
            except (TypeError, DefaultsChanged):
                bound = self._bind_again(args, kwargs)
            if self.root is self:
                self.stats.calls += 1
            for entry in self.entries:
                if entry.guard.check(*bound):
                    self.stats.cache_hits += 1
                    try:
                        return entry.run(*bound)
                    except GraphRaised as raised:
                        error = raised.error
                    except RunsEagerly:
                        error = None
                    return self._rerun_eagerly(entry, error, args, kwargs)  # outside the except: no chained traceback
            return self._miss(bound, args, kwargs)
        except PartialdynError:
            raise
        except Exception as error:      # the user's exception: its traceback shows the user's frames only
            raise without_engine_frames(error)
        finally:
            if scoped:
                cached_calls.close_scope(enclosing)

    def _bind_again(self, args, kwargs):
        """The binder failed: the defaults may have been reassigned since it was made (else the call is wrong
        and the new binder raises Python's TypeError for it)."""
        self.binder = make_binder(self.fn)
        return self.binder(*args, **kwargs)

    # ------------------------------------------------------------ miss
    def _miss(self, bound, args, kwargs):
        if self.reads_cached_calls:             # the call's scope is open
            return self._miss_in_scope(bound, args, kwargs)
        enclosing = cached_calls.open_scope()
        try:
            return self._miss_in_scope(bound, args, kwargs)
        finally:
            if cached_calls.close_scope(enclosing):
                self.reads_cached_calls = True  # a trace made a cached call: scope every call from now on

    def _miss_in_scope(self, bound, args, kwargs):
        with self.lock:
            for entry in self.entries:
                if entry.guard.check(*bound):
                    self.stats.cache_hits += 1
                    break
            else:
                entry = self._new_entry(bound)
        if entry is None:
            self.stats.eager_fallbacks += 1
            return self.fn(*args, **kwargs)
        try:
            return entry.run(*bound)
        except GraphRaised as raised:
            error = raised.error
        except RunsEagerly:
            error = None
        return self._rerun_eagerly(entry, error, args, kwargs)

    def _rerun_eagerly(self, entry, error, args, kwargs):
        """Run the call as plain Python: the entry's graph raised (`error`) before anything it did became visible,
        so eager does the Python side effects before the failing line and raises from the user's code; or the
        entry's trace raises (`entry.raised`, no `error`)."""
        self.stats.eager_fallbacks += 1
        reason = f"the traced code raises here: {entry.raised}" if entry.raised is not None else \
            f"the compiled graph raised {type(error).__name__}: {error}; the call re-ran as plain Python"
        self._log("eager_fallback", reason=reason, file=None, line=None)
        return self.fn(*args, **kwargs)

    def _new_entry(self, bound):
        if self.always_eager or self.never_traced:
            return None
        if len(self.entries) >= self.options.cache_size_limit:
            self._on_cache_limit(bound)
            return None
        if self.entries and not self._stance_allows_recompile(bound):
            return None
        budget = self.root.budget
        budgeted = self.paid or self.root is self
        if self.paid and not budget.affords(1):
            self._log_fallback_once(
                "budget", f"compile budget spent: {self.root.name} and the resume functions of its backoff "
                          f"breaks made {budget.spent} compiles (cache_size_limit={budget.limit}); this part "
                          f"runs eagerly")
            return None
        # a backoff break costs the resume function's compile on top of this one
        break_allowed = budget.affords(2 if budgeted else 1)
        from .compiler import compile_entry
        try:
            reason, failure = self._recompile_reason(bound)
            try:
                entry = compile_entry(self, bound, break_allowed)
            except Exception as e:
                if type(e).__name__ != "TensorifyScalarRestartAnalysis" or self.shape_state.constant_floats:
                    raise
                # aot_autograd asks for a retrace with float inputs made constants
                self.shape_state.constant_floats = True
                entry = compile_entry(self, bound, break_allowed)
        except UserError as e:
            self._log("eager_fallback", reason=f"the traced code raises here: {e}", file=None, line=None)
            return None
        except (Unsupported, GraphBreak) as e:
            return self._give_up(f"{e.reason}")
        except PartialdynError:
            raise
        except Exception as e:  # an internal tracer error must never reach the user's program
            return self._internal_error(e)
        if entry.raised is None:            # an entry that runs its calls eagerly is no compile
            self._record_compile(entry, reason, failure)
            if budgeted:
                budget.spend()
        self.entries.append(entry)
        return entry

    def _stance_allows_recompile(self, bound) -> bool:
        """partialdyn.set_stance: under `eager_on_recompile` the call runs as plain Python, under
        `fail_on_recompile` it raises; both name the guard that failed."""
        stance = current_stance()
        if stance == "default":
            return True
        _, reason, _, _ = self._closest_failure(bound)
        if stance == "fail_on_recompile":
            raise PartialdynError(f"{self.name} would recompile under partialdyn.set_stance('fail_on_recompile'): "
                                  f"{reason}")
        self._log_fallback_once("stance", f"set_stance('eager_on_recompile'): a recompile was needed ({reason}); "
                                          f"such calls run as plain Python")
        return False

    def _closest_failure(self, bound):
        """(first failed guard, sentence, every failed guard, its index) of the closest entry: fewest failing
        guards, the newest on a tie."""
        _, negative_index, closest = min((len(fs), -i, e) for i, e in enumerate(self.entries)
                                         for fs in [e.guard.failures(bound)])
        first, sentence = closest.guard.explain_failure(bound)
        return first, sentence, closest.guard.failures(bound), -negative_index

    def _recompile_reason(self, bound) -> tuple[str, dict]:
        """(the compile event's reason, its `failed_entry` and `failed_guard` fields: the closest entry's index
        and the text of its guard that failed, both None on a first call)."""
        if not self.entries:
            return "first call", {"failed_entry": None, "failed_guard": None}
        first, sentence, failed, index = self._closest_failure(bound)
        if first is not None:
            self._account_recompile(failed)
        return sentence, {"failed_entry": index, "failed_guard": first.text if first is not None else None}

    def _account_recompile(self, failed):
        """Backoff: the policy charges the recompile to the dims the failed guards name (Policy.charge_recompile);
        a dim that reaches the limit becomes unstable."""
        limit = self.options.recompile_limit
        for dim in POLICIES[self.options.policy].charge_recompile(self.shape_state, failed, limit):
            self._log("backoff", dim=dim, recompiles=self.shape_state.recompiles_by_dim[dim], limit=limit,
                      unstable=True)

    def _give_up(self, reason):
        if self.options.fullgraph:
            raise PartialdynError(f"fullgraph=True: cannot trace {self.name}: {reason}")
        self.always_eager = reason
        self._log("eager_fallback", reason=reason, file=self.fn.__code__.co_filename,
                  line=self.fn.__code__.co_firstlineno)
        return None

    def _internal_error(self, error: Exception):
        """partialdyn (or the backend) failed on this frame: count it, warn once per user code object and run
        the frame eagerly from now on; under `config.suppress_errors = False`, raise instead."""
        from ..config import config
        self.stats.internal_errors += 1
        what = f"{type(error).__name__}: {error}"
        if not config.suppress_errors:
            raise PartialdynError(f"internal error while compiling {self.name}: {what}") from error
        original = self.origin[0].__code__
        if original not in _WARNED and not self.options.fullgraph:
            _WARNED.add(original)
            warnings.warn_explicit(f"partialdyn: internal error while compiling {self.name} ({what}); it runs "
                                   f"eagerly from now on (partialdyn.config.suppress_errors = False raises it)",
                                   RuntimeWarning, original.co_filename, original.co_firstlineno,
                                   module=self.fn.__module__ or "partialdyn")
        return self._give_up(f"internal error while compiling: {what}")

    def _on_cache_limit(self, bound):
        if not self.cache_limit_hit:
            self.cache_limit_hit = True
            _, last_reason, _, _ = self._closest_failure(bound)
            warn_at_user_caller(f"partialdyn: {self.name} reached cache_size_limit={self.options.cache_size_limit}; "
                                f"new inputs run eagerly. Last reason: {last_reason}. "
                                f"PARTIALDYN_LOGS=recompiles shows every recompile and why")
            self._log("cache_limit", limit=self.options.cache_size_limit, reason=last_reason)
            self._log_fallback_once("cache_limit", f"cache_size_limit={self.options.cache_size_limit} reached "
                                                   f"(last recompile reason: {last_reason})")

    def _log_fallback_once(self, key, reason, file=None, line=None):
        """An eager_fallback event, the first time this code object falls back for `key` (stats count every
        run)."""
        if key not in self.fallbacks_logged:
            self.fallbacks_logged.add(key)
            self._log("eager_fallback", reason=reason, file=file, line=line)

    def _record_compile(self, entry, reason, failure):
        s = self.stats
        recompile = bool(self.entries)
        s.compiles += 1
        s.recompiles += recompile
        s.graphs += entry.has_graph
        stop = entry.stop
        if stop is not None:
            s.graph_breaks += 1
            if self.options.fullgraph:
                raise PartialdynError(f"fullgraph=True: graph break in {self.name} at "
                                      f"{stop.file}:{stop.line}: {stop.reason}")
        self._log("compile", entry=len(self.entries), recompile=recompile, reason=reason,
                  trace_seconds=round(entry.trace_seconds, 6), backend_seconds=round(entry.backend_seconds, 6),
                  graphs=int(entry.has_graph), graph_breaks=int(stop is not None), policy=self.options.policy,
                  backend=getattr(self.options.backend, "__name__", str(self.options.backend)),
                  graph_code=entry.graph_code, fake_results_reused=entry.fake_results_reused, **failure)
        self._log("guards", entry=len(self.entries),
                  guards=[{"kind": g.kind, "text": g.text, "source": g.source, "dims": list(g.dims),
                           "provenance": g.provenance.as_dict() if g.provenance else None}
                          for g in in_log_order(entry.guard.guards)])
        for spec in entry.specializations:
            self._log("specialization", **spec)
        if stop is not None:
            self._log("graph_break", reason=stop.reason, file=stop.file, line=stop.line, hint=stop.hint,
                      stack=stop.chain)

    def _log(self, kind, **fields_):
        """An event of this code; `call` is the optimized function's call count so far (the call it happened in)."""
        emit(kind, fn=self.root.name, code=self.display_name, call=self.stats.calls, **fields_)

    # ------------------------------------------------------------ children
    @property
    def display_name(self) -> str:
        """How events name the traced code: `f (model.py:3)`, or a resume function's `f (after line 10)`."""
        code = self.fn.__code__
        if self.fn.__name__ != code.co_name:
            return self.fn.__name__
        return f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"

    def resume_function(self, index, layout, local_names, optimized=True, arg_texts=None, paid=False,
                        after_line=None, break_index=None, views=()):
        """The continuation at `index` of this frame, always built from the original code (so loops reuse it).
        It shares the root's backoff state; `arg_texts` names its stack arguments as users know them, so
        those dims keep their names.  `paid`: it exists because of a backoff break (its compiles come out of
        the compile budget); so does everything a paid frame spawns.  `break_index`: the instruction that
        broke (default `index`), `after_line` its line: what the name says (`_resume_name_ordinals`).  `views`: the
        locals passed as the dict of their view (`resume.make_resume_code`)."""
        original = self.origin[0]
        break_index = self._original_index(index if break_index is None else break_index)
        index = self._original_index(index)
        if index is None:
            raise Unsupported("a graph break in a resume function's prologue (taking a dict view again from its dict) "
                              "or between the halves of a pair instruction it split")
        # a closure's resume function binds that closure's cells: key it by the function object itself
        owner = original if original.__closure__ else original.__code__
        key = ("resume", owner, index, layout, local_names, views, optimized)
        children = self.root.children
        if key not in children:
            self._bound_children()
            line = after_line or break_line(original.__code__, index)
            ordinals = self._resume_name_ordinals(owner, line, break_index, index) if optimized else ()
            fn, origins = make_resume_function(original, index, layout, local_names, line, *ordinals, views=views)
            children[key] = OptimizedFunction(fn, self.options, root=self.root,
                                              origin=(original, origins)) if optimized else fn
        child = children[key]
        if optimized:
            child.arg_texts.update(arg_texts or {})
            child.paid |= paid or self.paid
        return child

    def _original_index(self, index: int) -> int | None:
        """Instruction `index` of this frame's code as an index into the original's, which resume functions are
        built from: a resume function adds a prologue and may split a 3.13 pair instruction in two (None: an
        instruction it added)."""
        origins = self.origin[1]
        return index if origins is None else origins[index]

    def _resume_name_ordinals(self, owner, line, break_index, index):
        """(nth break on `line` of `owner`, nth continuation of that break), counted in the order they
        first appear, so two breaks on one line, or two branches of one break, get distinct names."""
        breaks = self.root.resume_breaks.setdefault((owner, line), {})
        continuations = breaks.setdefault(break_index, [])
        if index not in continuations:
            continuations.append(index)
        return list(breaks).index(break_index) + 1, continuations.index(index) + 1

    def callee(self, fn: types.FunctionType, paid=False) -> "OptimizedFunction":
        key = ("callee", fn)
        children = self.root.children
        if key not in children:
            self._bound_children()
            children[key] = OptimizedFunction(fn, self.options, root=self.root)
        child = children[key]
        child.paid |= paid or self.paid
        return child

    def callee_resolver(self, optimize_callee: bool, paid=False):
        """What a break step runs for the callable at a CALL: its separately optimized version if the break
        was inside it, else the callable itself (`warnings.warn` in its user-faithful form)."""
        if not optimize_callee:
            return substitute

        def optimized(fn):
            if isinstance(fn, torch.nn.Module) and _plain_module_call(fn):
                return functools.partial(self.callee(type(fn).forward, paid), fn)
            if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
                return functools.partial(self.callee(fn.__func__, paid), fn.__self__)
            if isinstance(fn, types.FunctionType):
                return self.callee(fn, paid)
            return substitute(fn)
        return optimized

    def _bound_children(self):
        """Closures made anew on every call each get their own children; forget them all past a bound."""
        if len(self.root.children) >= MAX_CHILDREN:
            self.root.children.clear()
            self.root.resume_breaks.clear()

    def eager_run_recorder(self, reason: str, file: str, line: int):
        """What a step that runs the rest of the frame as plain Python calls on each run: counted every
        time, an eager_fallback event (with `reason`) the first time."""
        def record():
            self.stats.eager_fallbacks += 1
            self._log_fallback_once(("rest", file, line), f"the rest of the frame runs in Python: {reason}",
                                    file, line)
        return record
