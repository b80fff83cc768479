"""Run generated programs eagerly and optimized, compare everything they can observe, reduce what differs.

Each program runs under every policy x recompile_limit (1, 2).  Two copies of its world are built from the same
source (same seed); before each call the step's mutations run in both, then `f` is called on equal inputs under the
step's torch global state, eagerly on one copy and through `partialdyn.optimize` on the other.  A mismatch is any
difference in the output (or the exception type raised), the input after the call, the world after the call
(globals, closure cells, class and instance attributes, module structure, parameters, buffers, hooks, defaults,
containers), or the torch global state after the call; an `eager_fallback` event caused by an internal error is a
mismatch too.  A mismatch is reduced (fewer atoms, steps, mutations, simpler inputs) to a standalone repro.

    python -m tests.fuzz.state --programs 2000 --seed 1            # the enabled features
    python -m tests.fuzz.state --programs 300 --features all       # everything, known bugs included
    python -m tests.fuzz.state --features containers.list,globals.number --programs 50
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import enum
import functools
import linecache
import sys
import time
import types
import warnings
from dataclasses import dataclass, replace

import torch

import partialdyn

from .programs import ALL_FEATURES, ENABLED, Program, RandomChooser, Step, generate

POLICIES = ("partial", "dynamic", "static", "automatic")
CONFIGS = tuple((policy, limit) for policy in POLICIES for limit in (1, 2))
FILENAME = "<fuzz-program>"

# Calling f under a step's torch global state.  The repros embed this same text, so they do what the runner does.
HARNESS = '''\
def run(fn, x, grad=None, dtype=None, deterministic=None, autocast=None, threads=None):
    """Call fn(x) under the given torch global state; return (result or exception, torch state after the call)."""
    saved = torch_state()
    with contextlib.ExitStack() as stack:
        if grad is not None:
            torch.set_grad_enabled(grad)
        if dtype is not None:
            torch.set_default_dtype(getattr(torch, dtype))
        if deterministic is not None:
            torch.use_deterministic_algorithms(deterministic)
        if threads is not None:
            torch.set_num_threads(threads)
        if autocast:
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        try:
            result = fn(x)
        except Exception as error:
            result = error
        after = torch_state()
    restore(saved)
    return result, after


def torch_state():
    return {"grad": torch.is_grad_enabled(), "dtype": str(torch.get_default_dtype()).replace("torch.", ""),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "autocast": torch.is_autocast_enabled("cpu"), "threads": torch.get_num_threads(),
            "matmul_precision": torch.get_float32_matmul_precision(), "anomaly": torch.is_anomaly_enabled(),
            "mkldnn": torch.backends.mkldnn.enabled, "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "warn_always": torch.is_warn_always_enabled()}


def restore(state):
    torch.set_grad_enabled(state["grad"])
    torch.set_default_dtype(getattr(torch, state["dtype"]))
    torch.use_deterministic_algorithms(state["deterministic"])
    torch.set_num_threads(state["threads"])
    torch.set_float32_matmul_precision(state["matmul_precision"])
    torch.autograd.set_detect_anomaly(state["anomaly"])
    torch.backends.mkldnn.enabled = state["mkldnn"]
    torch.backends.cudnn.deterministic = state["cudnn_deterministic"]
    torch.set_warn_always(state["warn_always"])


def shown(value):
    """How a repro prints a world value: an lru_cache function with its cache_info()."""
    return (value, value.cache_info()) if hasattr(value, "cache_info") else value


def mutate(worlds, code, seed):
    """Run a mutation in every world, with the same seed; return the exception type each raised, or None."""
    raised = []
    for world in worlds:
        torch.manual_seed(seed)
        try:
            exec(code, world)
            raised.append(None)
        except Exception as error:
            raised.append(type(error).__name__)
    return raised
'''
_harness = {"torch": torch, "contextlib": contextlib}
exec(HARNESS, _harness)
run_call, torch_state, restore, mutate = (_harness[name] for name in ("run", "torch_state", "restore", "mutate"))


@dataclass(frozen=True)
class Mismatch:
    kind: str          # output, exception, inputs, world, torch_state, mutation, internal_error
    step: int
    detail: str
    policy: str
    limit: int

    def summary(self) -> str:
        detail = self.detail if len(self.detail) < 300 else self.detail[:300] + " ..."
        return f"{self.kind} at call {self.step} ({self.policy}, recompile_limit={self.limit}): {detail}"


@dataclass
class Coverage:
    """What the engine did over a run, to show the programs ran compiled."""
    programs: int = 0
    configs: int = 0
    calls: int = 0
    cache_hits: int = 0
    compiles: int = 0
    graph_runs: int = 0
    graph_breaks: int = 0
    eager_fallbacks: int = 0

    def add(self, stats, graph_runs):
        self.configs += 1
        self.calls += stats["calls"]
        self.cache_hits += stats["cache_hits"]
        self.compiles += stats["compiles"]
        self.graph_runs += graph_runs
        self.graph_breaks += stats["graph_breaks"]
        self.eager_fallbacks += stats["eager_fallbacks"]


class CountingBackend:
    """The eager backend, counting the runs of compiled graphs."""

    def __init__(self):
        self.runs = 0

    def __call__(self, gm, example_inputs):
        def run(*args):
            self.runs += 1
            return gm.forward(*args)
        return run


# ----------------------------------------------------------------------------- observing values
def describe(value, seen=None):
    """A comparable picture of a value and everything reachable from it that a program can observe."""
    seen = set() if seen is None else seen
    if isinstance(value, enum.Enum):          # before str: a str-Enum member is a str
        return ("enum", type(value).__name__, value.name)
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, _SCALARS):             # a subclass: each world defines its own class
        return ("scalar subclass", type(value).__name__, next(t for t in _SCALARS if isinstance(value, t))(value))
    if isinstance(value, torch.utils.hooks.RemovableHandle):   # its id is a process-wide counter
        return ("hook handle",)
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone(), value.requires_grad)
    if id(value) in seen:
        return ("seen", type(value).__name__)
    seen.add(id(value))
    for kinds, picture in _PICTURES:
        if isinstance(value, kinds):
            return picture(value, seen)
    if hasattr(value, "__dict__"):
        return ("object", type(value).__name__, _describe_items(vars(value).items(), seen))
    slots = [name for klass in type(value).__mro__ for name in vars(klass).get("__slots__", ())]
    if slots:
        return ("slots", type(value).__name__, _describe_items(
            [(name, getattr(value, name)) for name in slots if hasattr(value, name)], seen))
    return ("opaque", type(value).__name__)


_SCALARS = (bool, int, float, complex, str, bytes, torch.dtype, torch.device)


def _describe_items(items, seen):
    return tuple((key if type(key) in (str, int) else describe(key), describe(v, seen)) for key, v in items)


def _describe_module(module, seen):
    public = [(k, v) for k, v in vars(module).items() if not k.startswith("_") and k != "training"]
    return ("module", type(module).__name__, module.training, _describe_items(module._parameters.items(), seen),
            _describe_items(module._buffers.items(), seen), _describe_items(module._modules.items(), seen),
            len(module._forward_hooks), len(module._forward_pre_hooks), _describe_items(public, seen))


def _describe_function(fn, seen):
    cells = tuple(describe(cell.cell_contents, seen) if _cell_full(cell) else "<empty>"
                  for cell in fn.__closure__ or ())
    return ("function", fn.__name__, describe(fn.__defaults__, seen), describe(fn.__kwdefaults__, seen), cells)


def _cell_full(cell):
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _describe_class(cls, seen):
    items = [(k, v) for k, v in vars(cls).items() if not k.startswith("__")]
    return ("class", cls.__name__, _describe_items(items, seen))


_PICTURES = (   # (types, picture); the first match wins
    (torch.nn.Module, _describe_module),
    (types.FunctionType, _describe_function),
    (type, _describe_class),
    (collections.deque, lambda v, seen: ("deque", v.maxlen, tuple(describe(i, seen) for i in v))),
    ((set, frozenset), lambda v, seen: (type(v).__name__, tuple(sorted(repr(describe(i, seen)) for i in v)))),
    (functools._lru_cache_wrapper, lambda v, seen: ("lru_cache", tuple(v.cache_info()), describe(v.__wrapped__, seen))),
    (dict, lambda v, seen: (type(v).__name__, _describe_items(v.items(), seen),           # a subclass's attributes too
                            _describe_items(vars(v).items(), seen) if hasattr(v, "__dict__") else ())),
    ((list, tuple), lambda v, seen: (type(v).__name__, tuple(describe(i, seen) for i in v))),
    (property, lambda v, seen: ("property", describe(v.fget, seen))),
    (functools.partial, lambda v, seen: ("partial", describe(v.func, seen), describe(v.args, seen),
                                         describe(v.keywords, seen))),
    (types.MethodType, lambda v, seen: ("method", describe(v.__func__, seen), describe(v.__self__, seen))),
    ((staticmethod, classmethod), lambda v, seen: (type(v).__name__, describe(v.__func__, seen))),
)


def difference(a, b, path) -> str | None:
    """Where two pictures differ, or None."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{path}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        if not torch.allclose(a.double() if a.is_floating_point() else a, b.double() if b.is_floating_point() else b,
                              rtol=1e-4, atol=1e-5, equal_nan=True):
            return f"{path}: {a.tolist()} vs {b.tolist()}"
        return None
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) != len(b):
            return f"{path}: {_short(a)} vs {_short(b)}"
        for index, (x, y) in enumerate(zip(a, b)):
            found = difference(x, y, f"{path}.{index}")
            if found:
                return found
        return None
    if type(a) is not type(b) or a != b:
        return f"{path}: {a!r} vs {b!r}"
    return None


def _short(picture):
    text = repr(picture)
    return text if len(text) < 200 else text[:200] + "..."


def world_picture(world) -> dict:
    names = [name for name, value in world.items()
             if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in _PRELUDE_NAMES]
    seen = set()
    return {name: describe(world[name], seen) for name in sorted(names)}


def world_difference(eager, compiled) -> str | None:
    before, after = world_picture(eager), world_picture(compiled)
    if list(before) != list(after):
        return f"world names {sorted(set(before) ^ set(after))} exist on one side only"
    for name in before:
        found = difference(before[name], after[name], f"world[{name!r}]")
        if found:
            return found
    return None


_PRELUDE_NAMES = {"nn", "Scale", "Color", "Tag"}


def result_picture(result):
    if isinstance(result, Exception):
        return ("raised", type(result).__name__)
    return describe(result)


# ----------------------------------------------------------------------------- running
def build_world(source):
    linecache.cache[FILENAME] = (len(source), None, source.splitlines(True), FILENAME)
    torch.manual_seed(0)
    world = {"__name__": "fuzz_program"}
    exec(compile(source, FILENAME, "exec", dont_inherit=True), world)     # not this module's __future__ imports
    return world


def run_config(program: Program, policy: str, limit: int, coverage: Coverage | None = None) -> Mismatch | None:
    """Run `program` eagerly and optimized with one policy and recompile_limit; the first mismatch, if any."""
    partialdyn.reset()
    source = program.source()
    eager, compiled = build_world(source), build_world(source)
    backend = CountingBackend()
    optimized = partialdyn.optimize(compiled["f"], policy=policy, recompile_limit=limit, backend=backend)
    saved = torch_state()
    found = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for index, step in enumerate(program.steps):
                found = _run_step(step, index, eager, compiled, optimized)
                if found:
                    found = Mismatch(found[0], index, found[1], policy, limit)
                    break
    finally:
        restore(saved)
    if found is None:
        internal = [e for e in partialdyn.events("eager_fallback") if "internal error" in e["reason"]]
        if internal:
            found = Mismatch("internal_error", len(program.steps) - 1, internal[0]["reason"], policy, limit)
    if coverage is not None:
        coverage.add(partialdyn.stats(optimized), backend.runs)
    return found


def _run_step(step: Step, index, eager, compiled, optimized):
    for number, code in enumerate(step.mutations):
        raised = mutate((eager, compiled), code, 1000 * index + number)
        if raised[0] != raised[1]:
            return "mutation", f"{code!r} raised {raised[0]} eagerly, {raised[1]} optimized"
    make_input = compile(step.input_source(), "<fuzz-input>", "eval")
    x_eager, x_compiled = eval(make_input, {"torch": torch}), eval(make_input, {"torch": torch})
    settings = step.mode.settings()
    out_eager, state_eager = run_call(eager["f"], x_eager, **settings)
    out_compiled, state_compiled = run_call(optimized, x_compiled, **settings)
    checks = (("exception" if isinstance(out_eager, Exception) or isinstance(out_compiled, Exception) else "output",
               lambda: difference(result_picture(out_eager), result_picture(out_compiled), "result")),
              ("inputs", lambda: difference(describe(x_eager), describe(x_compiled), "x")),
              ("world", lambda: world_difference(eager, compiled)),
              ("torch_state", lambda: None if state_eager == state_compiled else f"{state_eager} vs {state_compiled}"))
    for kind, check in checks:
        detail = check()
        if detail:
            if kind == "exception" and isinstance(out_compiled, Exception):
                detail += f" (optimized raised {type(out_compiled).__name__}: {str(out_compiled)[:300]})"
            return kind, detail
    return None


def run_program(program: Program, configs=CONFIGS, coverage: Coverage | None = None) -> Mismatch | None:
    """The first mismatch of `program` over `configs`, or None."""
    if coverage is not None:
        coverage.programs += 1
    for policy, limit in configs:
        found = run_config(program, policy, limit, coverage)
        if found:
            return found
    return None


# ----------------------------------------------------------------------------- reducing
def reduce(program: Program, mismatch: Mismatch) -> tuple[Program, Mismatch]:
    """Greedily drop atoms, steps and mutations and simplify inputs while the same kind of mismatch remains."""
    def still(candidate):
        found = run_config(candidate, mismatch.policy, mismatch.limit)
        return found if found and found.kind == mismatch.kind else None

    changed = True
    while changed:
        changed = False
        for candidate in _smaller(program):
            found = still(candidate)
            if found:
                program, mismatch, changed = candidate, found, True
                break
    return program, mismatch


def _smaller(program: Program):
    steps, atoms = program.steps, program.atoms
    for b in range(len(program.breaks)):
        yield replace(program, breaks=program.breaks[:b] + program.breaks[b + 1:])
    for j in reversed(range(len(steps))):
        if len(steps) > 1:
            yield replace(program, steps=steps[:j] + steps[j + 1:])
    for a in range(len(atoms)):
        kept = atoms[:a] + atoms[a + 1:]
        allowed = {m for atom in kept for m in atom.mutations}
        yield replace(program, atoms=kept,
                      steps=tuple(replace(s, mutations=tuple(m for m in s.mutations if m in allowed)) for s in steps))
    for j, step in enumerate(steps):
        for k in range(len(step.mutations)):
            yield _with_step(program, j, replace(step, mutations=step.mutations[:k] + step.mutations[k + 1:]))
        simpler = (("shape", (2, 4)), ("dtype", "float32"), ("requires_grad", False), ("transposed", False))
        for name, value in simpler:
            if getattr(step, name) != value:
                yield _with_step(program, j, replace(step, **{name: value}))
        for name in step.mode.settings():
            yield _with_step(program, j, replace(step, mode=replace(step.mode, **{name: None})))


def _with_step(program, j, step):
    return replace(program, steps=program.steps[:j] + (step,) + program.steps[j + 1:])


def failing_configs(program: Program) -> list[str]:
    return [f"{policy}/{limit}" for policy, limit in CONFIGS if run_config(program, policy, limit)]


# ----------------------------------------------------------------------------- repros
def repro(program: Program, mismatch: Mismatch) -> str:
    """A standalone script showing the mismatch: it prints what eager and optimized did at each call."""
    lines = [f'"""partialdyn state fuzzer: {mismatch.summary()}', f"kinds: {', '.join(program.kinds())}", '"""',
             "import contextlib", "", "import torch", "", "import partialdyn", "", HARNESS, "",
             f"SOURCE = '''\\\n{program.source()}'''", "",
             "def world():",
             "    torch.manual_seed(0)",
             "    g = {'__name__': 'fuzz_program'}",
             "    exec(SOURCE, g)",
             "    return g", "", "",
             "eager, compiled = world(), world()",
             f"opt = partialdyn.optimize(compiled['f'], policy={mismatch.policy!r}, recompile_limit={mismatch.limit})"]
    for index, step in enumerate(program.steps):
        lines.append(f"\n# call {index}")
        for number, code in enumerate(step.mutations):
            lines.append(f"mutate((eager, compiled), {code!r}, {1000 * index + number})")
        settings = "".join(f", {name}={value!r}" for name, value in step.mode.settings().items())
        lines.append(f"print('eager:    ', run(eager['f'], {step.input_source()}{settings}))")
        lines.append(f"print('optimized:', run(opt, {step.input_source()}{settings}))")
    if mismatch.kind == "world" and mismatch.detail.startswith("world["):
        name = mismatch.detail[len("world["):].split("]")[0]
        lines.append(f"print('{name[1:-1]} after, eager:    ', shown(eager.get({name})))")
        lines.append(f"print('{name[1:-1]} after, optimized:', shown(compiled.get({name})))")
    lines.append("print(partialdyn.stats(opt))")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line
def campaign(programs: int, seed: int, features, reduce_found=True, out=sys.stdout, max_classes=50):
    """Generate and run `programs` programs from `seed`; reduce and print one repro per class of mismatch.

    A class is the mismatch kind plus the atom kinds of its reduced program.  Returns ({class: repro}, coverage)."""
    coverage = Coverage()
    classes = {}
    start = time.time()
    for number in range(programs):
        program = generate(RandomChooser(seed * 1_000_003 + number), features)
        found = run_program(program, coverage=coverage)
        if found:
            known = [key for key in classes if key[0] == found.kind and set(key[1]) <= set(program.kinds())]
            if known:       # most likely that class again: not worth a reduction
                print(f"[{number}] {found.kind} in {', '.join(program.kinds())}, like {', '.join(known[0][1])}",
                      file=out, flush=True)
                continue
            small, small_found = reduce(program, found) if reduce_found else (program, found)
            key = (small_found.kind, tuple(small.kinds()))
            first = key not in classes
            if first:
                classes[key] = (repro(small, small_found), number)
            print(f"[{number}] {'NEW ' if first else ''}{small_found.kind} in {', '.join(small.kinds()) or '-'}: "
                  f"{small_found.detail[:160]}", file=out, flush=True)
            if len(classes) >= max_classes:
                break
        if (number + 1) % 50 == 0:
            print(f"... {number + 1} programs, {len(classes)} classes, {time.time() - start:.0f}s", file=out,
                  flush=True)
    return classes, coverage


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.state", description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", default="enabled",
                        help="'enabled' (the features main handles), 'all', or a comma list of feature names")
    parser.add_argument("--no-reduce", action="store_true", help="report mismatches as found, unreduced")
    parser.add_argument("--repros", metavar="FILE", help="write every class's repro to FILE")
    parser.add_argument("--list", action="store_true", help="list the features and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in ALL_FEATURES:
            print(name, "" if name in ENABLED else "(disabled)")
        return 0
    features = {"enabled": ENABLED, "all": ALL_FEATURES}.get(args.features) or tuple(args.features.split(","))
    unknown = set(features) - set(ALL_FEATURES)
    if unknown:
        parser.error(f"unknown features {sorted(unknown)}; --list shows them")
    classes, coverage = campaign(args.programs, args.seed, features, reduce_found=not args.no_reduce)
    print(f"\n{coverage.programs} programs, {coverage.configs} runs, {coverage.calls} calls, "
          f"{coverage.cache_hits} cache hits, {coverage.compiles} compiles, {coverage.graph_runs} graph runs, "
          f"{coverage.graph_breaks} graph breaks, {coverage.eager_fallbacks} eager fallbacks; "
          f"{len(classes)} mismatch classes")
    text = "\n".join(f"# ==== {kind} in {', '.join(kinds)} (program {number})\n{script}"
                     for (kind, kinds), (script, number) in classes.items())
    if args.repros:
        with open(args.repros, "w") as handle:
            handle.write(text)
    else:
        print(text)
    return 1 if classes else 0


if __name__ == "__main__":
    sys.exit(main())
