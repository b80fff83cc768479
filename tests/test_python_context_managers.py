"""`with` blocks over user context managers in traced code, differential against eager.

Classes with `__enter__` / `__exit__` and `contextlib.contextmanager` generators are traced;
an exception inside the block (raised, suppressed by `__exit__`, or translated by the
generator) runs the call eagerly, so Python's own handling decides the result."""
import contextlib

import torch

import partialdyn
from helpers import assert_raises_like_eager, check, r


def setup_function():
    partialdyn.reset()


class Counter:
    def __init__(self):
        self.depth = 0
        self.events = []

    def __enter__(self):
        self.depth += 1
        self.events.append("enter")
        return self

    def __exit__(self, typ, value, traceback):
        self.depth -= 1
        self.events.append("exit")
        return False


def with_user_class(x):
    c = Counter()
    with c as inside:
        y = x * (inside.depth + 1)
    return y + c.depth, c.events


def test_user_class_context_manager_is_traced_around_its_block():
    check(with_user_class, [(r(3),), (r(5),)])


def nested_user_managers(x):
    outer, inner = Counter(), Counter()
    with outer, inner:
        y = x + outer.depth + inner.depth
    with outer:
        y = y * outer.depth
    return y, outer.events, inner.events


def test_nested_and_repeated_user_context_managers():
    check(nested_user_managers, [(r(3),)])


@contextlib.contextmanager
def pushed(stack, value):
    stack.append(value)
    try:
        yield len(stack)
    finally:
        stack.pop()


def with_contextmanager(x):
    stack = []
    with pushed(stack, "a") as depth:
        with pushed(stack, "b") as deeper:
            y = x * depth + deeper + len(stack)
    return y, stack


def test_contextmanager_generator_runs_its_setup_and_cleanup_around_the_block():
    check(with_contextmanager, [(r(3),), (r(4),)])


GLOBAL_LOG = []


@contextlib.contextmanager
def logged(name):
    GLOBAL_LOG.append(f"enter {name}")
    yield name.upper()
    GLOBAL_LOG.append(f"exit {name}")


def contextmanager_value(x):
    with logged("block") as label:
        y = x + len(label)
    return y, label


def test_contextmanager_yields_the_value_bound_by_as():
    check(contextmanager_value, [(r(3),)])


def with_nullcontext(x):
    with contextlib.nullcontext(x * 2) as doubled:
        return doubled + 1


def test_nullcontext_binds_its_enter_result():
    check(with_nullcontext, [(r(3),)])


def suppress_without_exception(x):
    with contextlib.suppress(KeyError):
        x = x + 1
    return x


def test_suppress_without_an_exception_is_traced():
    check(suppress_without_exception, [(r(3),)])


class Suppressing:
    def __enter__(self):
        return self

    def __exit__(self, typ, value, traceback):
        return typ is KeyError


def exception_suppressed_by_exit(x, d):
    with Suppressing():
        x = x + 1
        x = x + d["missing"]
    return x


def test_exception_suppressed_by_exit_gives_the_eager_result():
    # the second call raises KeyError at trace time: it runs eagerly, where __exit__ suppresses it
    check(exception_suppressed_by_exit, [(r(3), {"missing": 1}), (r(3), {})], fallbacks=1, graph_every_call=False)


@contextlib.contextmanager
def translating():
    try:
        yield
    except KeyError as e:
        raise ValueError("translated") from e


def exception_translated_by_contextmanager(x, d):
    with translating():
        y = x + d["k"]
    return y


def test_exception_translated_by_a_contextmanager_propagates_as_the_new_type():
    check(exception_translated_by_contextmanager, [(r(3), {"k": 2}), (r(3), {})], fallbacks=1)


def exception_through_exit(x, d):
    c = Counter()
    with c:
        y = x + d["k"]
    return y, c.events


def test_exception_propagating_through_exit_keeps_its_type():
    check(exception_through_exit, [(r(3), {"k": 1}), (r(3), {})], fallbacks=1)


def graph_break_inside_user_block(x):
    c = Counter()
    with c:
        print("inside")
        y = x * (c.depth + 1)
    return y, c.depth, c.events


def test_graph_break_inside_a_user_with_block_resumes_inside_it(capsys):
    # the Counter made before the break reaches the resume function (as `c` and as the bound `__exit__` on the
    # stack) guarded by what the resume reads of it: a new one per call hits the cache
    check(graph_break_inside_user_block, [(r(3),), (r(4),), (r(4),)], breaks=1)


class NoProtocol:
    pass


def with_non_manager(x):
    with NoProtocol():
        return x + 1


def test_with_over_an_object_without_the_protocol_raises_type_error():
    assert_raises_like_eager(with_non_manager, TypeError, r(3))


@contextlib.contextmanager
def no_yield():
    if False:
        yield


def contextmanager_that_never_yields(x):
    with no_yield():
        return x


def test_contextmanager_that_never_yields_raises_runtime_error():
    assert_raises_like_eager(contextmanager_that_never_yields, RuntimeError, r(3), match="didn't yield")


def grad_inside_user_manager(x):
    with Counter():
        with torch.no_grad():
            y = x * 2
    return y, y.requires_grad


def test_no_grad_inside_a_user_context_manager():
    check(grad_inside_user_manager, [(r(3, requires_grad=True),)])
