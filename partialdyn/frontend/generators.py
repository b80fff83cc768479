"""Lazy iteration: generator objects and iterators made in the trace, stepped one item at a time.

Calling a generator function in traced code does not run its body: the frame is created
suspended (`trackers.Generator`) and `step()` resumes it up to its next yield, so an endless
generator consumed by `zip` or a few `next()` calls traces as Python runs it.  `send()` is
modelled, and `throw()` / `close()` where no handler of the generator would run (through a `yield from` to
the generator it delegates to, with the same rule for that one); anything
else about a suspended generator (a handler that must run, a generator alive at a graph
break) ends the trace, and the frame runs eagerly: the tracer cannot rebuild a suspended frame.
`zip`, `enumerate`, `map`, `filter`, `itertools.count` / `repeat` / `islice` are lazy iterators
over other iterators (`trackers.LazyIterator`), rebuilt from their sources at a graph break.
"""
from __future__ import annotations

import itertools

from . import protocol
from .. import trackers
from ..errors import Unsupported, UserError

MAX_ITEMS = 10_000      # materializing more items than this (list(itertools.count())) ends the trace


# ---------------------------------------------------------------- what iter() gives
def is_iterator(vt) -> bool:
    return isinstance(vt, (trackers.Iterator, trackers.Generator, trackers.LazyIterator))


def make_iterator(f, vt):
    """iter(vt): iterators are their own iterators; anything else iterates over its items now."""
    if is_iterator(vt):
        return vt
    return trackers.Iterator(protocol.iterate(f, vt))


def step(f, it):
    """The next item of an iterator tracker, or None when it is exhausted."""
    return _STEPS[type(it)](f, it)


def drain(f, it) -> list:
    """The items left in an iterator tracker (bounded: an endless one ends the trace)."""
    items = []
    while True:
        item = step(f, it)
        if item is None:
            return items
        items.append(item)
        if len(items) > MAX_ITEMS:
            raise Unsupported(f"an iterator longer than {MAX_ITEMS} items is materialized (endless?)")


@protocol.register("iterate", trackers.Iterator)
def _items_left(f, it):
    items = it.items[it.pos:]
    f.trace.side_effects.step(it, "pos", len(it.items))
    return items


def _step_list(f, it):
    if it.pos >= len(it.items):
        return None
    f.trace.side_effects.step(it, "pos", it.pos + 1)
    return it.items[it.pos - 1]


# ---------------------------------------------------------------- generators
def start(frame):
    """RETURN_GENERATOR: the frame stays suspended until its first step."""
    gen = trackers.Generator(frame, frame.code.co_name)
    frame.trace.generators.append(gen)
    return gen


def resume(f, gen, sent):
    """Run `gen` from its last yield with `sent` as the yield's value: (True, yielded) or (False, returned)."""
    if gen.state == "finished":
        return False, trackers.Known(None)
    if gen.state == "running":
        raise UserError(ValueError("generator already executing"))
    if gen.state == "created" and not (isinstance(sent, trackers.Known) and sent.value is None):
        raise UserError(TypeError("can't send non-None value to a just-started generator"))
    frame = gen.frame
    frame.push(sent)
    gen.state = "running"
    f.child = frame
    try:
        value = frame.run()
    except UserError as e:
        gen.state = "finished"
        if isinstance(e.error, StopIteration):   # PEP 479
            raise UserError(RuntimeError("generator raised StopIteration")) from e
        raise
    f.child = None
    gen.state = "suspended" if frame.suspended else "finished"
    return frame.suspended, value


def _step_generator(f, gen):
    yielded, value = resume(f, gen, trackers.Known(None))
    return value if yielded else None


def send(f, gen, value):
    yielded, result = resume(f, gen, value)
    if not yielded:
        raise UserError(StopIteration(None))
    return result


def delegate(gen):
    """The iterator a generator suspended in `yield from` delegates to (below its yield, after SEND), or None."""
    frame = gen.frame
    if gen.state == "suspended" and frame.current > 0 and frame.decoded.instrs[frame.current - 1].name == "SEND":
        return frame.stack[-1]
    return None


def inside_handler(gen) -> bool:
    """Would an exception raised at the suspended generator's yield reach a try or with block of its own (a
    handler would run on throw/close)?  3.12's CLEANUP_THROW around a `yield from` is no handler of the user's:
    what counts is the handler around it."""
    if gen.state != "suspended":
        return False
    decoded = gen.frame.decoded
    handler = decoded.handler[gen.frame.current]
    if handler is not None and decoded.instrs[handler].name == "CLEANUP_THROW":
        handler = decoded.handler[handler]
    return handler is not None


def _raise_out_of(gen, error):
    """`error` raised at the yield of a generator that has no handler there: it finishes, and the error leaves
    it (a StopIteration as RuntimeError, PEP 479)."""
    if gen.state == "finished":
        raise UserError(error)
    gen.state = "finished"
    if isinstance(error, StopIteration):
        raise UserError(RuntimeError("generator raised StopIteration")) from UserError(error)
    raise UserError(error)


def throw(f, gen, error):
    """gen.throw(error).  Suspended in `yield from`: the error goes to the inner generator first (closed
    instead for GeneratorExit; an inner iterator with no throw() passes it on), and what the inner one raises
    is raised at the `yield from`."""
    inner = delegate(gen)
    if inner is not None:
        try:
            if isinstance(error, GeneratorExit) and isinstance(inner, trackers.Generator):
                close(f, inner)
            elif isinstance(inner, trackers.Generator):
                return throw(f, inner, error)
        except UserError as e:
            error = e.error
    if inside_handler(gen):
        raise Unsupported("throw() into a generator suspended inside try/with: its handler would run")
    _raise_out_of(gen, error)


def close(f, gen):
    """gen.close(): GeneratorExit at the yield, after closing the generator it delegates to by `yield from`;
    an error that closing raises is raised at the `yield from` instead."""
    inner = delegate(gen)
    error = GeneratorExit()
    if isinstance(inner, trackers.Generator):
        try:
            close(f, inner)
        except UserError as e:
            error = e.error
    if inside_handler(gen):
        raise Unsupported("close() of a generator suspended inside try/with: its cleanup would run")
    gen.state = "finished"
    if not isinstance(error, (GeneratorExit, StopIteration)):
        raise UserError(error)
    return trackers.Known(None)


def check_dropped(trace):
    """A generator left suspended inside try/with runs its cleanup when Python drops it: not traced."""
    for gen in trace.generators:
        if inside_handler(gen):
            raise Unsupported(f"generator {gen.name} is left suspended inside try/with (its cleanup runs in Python)")


def _exception(f, args):
    error = protocol.python_value(f, args[0], "throw()") if args else None
    if isinstance(error, type) and issubclass(error, BaseException):
        value = protocol.python_value(f, args[1], "throw()") if len(args) > 1 else None
        error = error(*([] if value is None else [value]))
    if not isinstance(error, BaseException):
        raise UserError(TypeError("exceptions must be classes or instances deriving from BaseException"))
    return error


@protocol.register("call_method", trackers.Iterator, trackers.Generator, trackers.LazyIterator)
def call_method(f, it, name, args, kwargs):
    """Methods of iterator trackers: `__next__`, `__iter__`, and a generator's `send` / `throw` / `close`."""
    if name == "__iter__":
        return it
    if name == "__next__":
        item = step(f, it)
        if item is None:
            raise UserError(StopIteration())
        return item
    if isinstance(it, trackers.Generator):
        if name == "send":
            return send(f, it, args[0])
        if name == "throw":
            return throw(f, it, _exception(f, args))
        if name == "close":
            return close(f, it)
    raise UserError(AttributeError(f"'{it.python_type().__name__}' object has no attribute {name!r}"))


# ---------------------------------------------------------------- lazy builtins and itertools
def lazy(kind, sources, **state):
    return trackers.LazyIterator(kind, list(sources), state)


def _advance(f, it, **changes):
    """Change a lazy iterator's state; a graph break rolls it back like an iterator step."""
    f.trace.side_effects.step(it, "state", {**it.state, **changes})


def _step_zip(f, it):
    if it.state.get("done"):
        return None
    items = []
    for i, source in enumerate(it.sources):
        item = step(f, source)
        if item is None:
            _advance(f, it, done=True)
            if it.state["strict"]:
                _strict_mismatch(f, it, i)
            return None
        items.append(item)
    return trackers.Tuple(items)


def _strict_mismatch(f, it, exhausted):
    if exhausted:
        raise UserError(ValueError(f"zip() argument {exhausted + 1} is shorter than argument"
                                   f"{'s 1-' if exhausted > 1 else ' '}{exhausted}"))
    for i, source in enumerate(it.sources[1:], start=1):
        if step(f, source) is not None:
            raise UserError(ValueError(f"zip() argument {i + 1} is longer than argument"
                                       f"{'s 1-' if i > 1 else ' '}{i}"))


def _step_enumerate(f, it):
    item = step(f, it.sources[0])
    if item is None:
        return None
    index = it.state["index"]
    _advance(f, it, index=index + 1)
    return trackers.Tuple([trackers.Known(index), item])


def _step_map(f, it):
    args = []
    for source in it.sources:
        item = step(f, source)
        if item is None:
            return None
        args.append(item)
    return protocol.call(f, it.state["fn"], args, {})


def _step_filter(f, it):
    fn = it.state["fn"]
    while True:
        item = step(f, it.sources[0])
        if item is None:
            return None
        keep = item if isinstance(fn, trackers.Known) and fn.value is None else protocol.call(f, fn, [item], {})
        if protocol.truth(f, keep, "filter()"):
            return item


def _step_count(f, it):
    value = it.state["next"]
    _advance(f, it, next=value + it.state["step"])
    return trackers.Known(value)


def _step_repeat(f, it):
    left = it.state["times"]
    if left is not None:
        if left <= 0:
            return None
        _advance(f, it, times=left - 1)
    return it.state["item"]


def _step_islice(f, it):
    """itertools.islice(source, start, stop, step) as positions in the source."""
    stop, stride = it.state["stop"], it.state["step"]
    while True:
        pos = it.state["pos"]
        if stop is not None and pos >= stop or it.state.get("done"):
            return None
        item = step(f, it.sources[0])
        _advance(f, it, pos=pos + 1)
        if item is None:
            _advance(f, it, done=True)
            return None
        if pos >= it.state["start"] and (pos - it.state["start"]) % stride == 0:
            return item


_LAZY_STEPS = {"zip": _step_zip, "enumerate": _step_enumerate, "map": _step_map, "filter": _step_filter,
               "count": _step_count, "repeat": _step_repeat, "islice": _step_islice}


def _step_lazy(f, it):
    return _LAZY_STEPS[it.kind](f, it)


_STEPS = {trackers.Iterator: _step_list, trackers.Generator: _step_generator, trackers.LazyIterator: _step_lazy}


def b_count(f, start=trackers.Known(0), stride=trackers.Known(1)):
    return lazy("count", [], next=protocol.python_value(f, start, "itertools.count"),
                step=protocol.python_value(f, stride, "itertools.count"))


def b_repeat(f, item, times=None):
    return lazy("repeat", [], item=item, times=None if times is None else protocol.python_value(f, times, "repeat"))


def b_islice(f, iterable, *bounds):
    values = [protocol.python_value(f, b, "itertools.islice") for b in bounds]
    start_, stop, stride = (0, values[0], 1) if len(values) == 1 else (list(values) + [None, None])[:3]
    source = make_iterator(f, iterable)
    return lazy("islice", [source], start=start_ or 0, stop=stop, step=stride or 1, pos=0)


ITERTOOLS = {itertools.count: b_count, itertools.repeat: b_repeat, itertools.islice: b_islice}


protocol.register("iterate", trackers.Generator, trackers.LazyIterator)(drain)
protocol.register("attribute", trackers.Generator, trackers.LazyIterator)(protocol.method_of_type)
