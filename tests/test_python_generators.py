"""Generators and lazy iterators in traced code, differential against eager.

Generators made in the trace run only as far as they are consumed (an endless one is fine),
`send` reaches the yield, StopIteration inside a generator becomes RuntimeError (PEP 479),
and zip / enumerate / map / filter / itertools.count / repeat / islice pull one item at a
time.  Where the tracer cannot follow (a generator alive at a graph break, a thrown exception
a generator's handler would catch) the function runs eagerly with eager's result."""
import itertools

import torch

import partialdyn
from helpers import assert_fell_back, check, r


def setup_function():
    partialdyn.reset()


def naturals(log=None):
    n = 0
    while True:
        if log is not None:
            log.append(n)
        yield n
        n += 1


def three_nexts_of_an_endless_generator(x):
    numbers = naturals()
    a, b, c = next(numbers), next(numbers), next(numbers)
    return x * a + x * b + x * c


def test_endless_generator_consumed_by_next_runs_only_as_far_as_taken():
    check(three_nexts_of_an_endless_generator, [(r(3),), (r(5),)])


def endless_generator_zipped_with_a_list(x):
    return [x * i for i, _ in zip(naturals(), ["a", "b", "c"])]


def test_endless_generator_zipped_with_a_list_stops_with_the_list():
    check(endless_generator_zipped_with_a_list, [(r(3),), (r(4),)])


def count_zipped_with_tensors(x):
    out = x
    for i, t in zip(itertools.count(1), [x, x * 2, x * 3]):
        out = out + t * i
    return out


def test_itertools_count_zipped_with_a_list_of_tensors():
    check(count_zipped_with_tensors, [(r(3),), (r(6),)])


def islice_of_a_stepped_count(x):
    return [x + i for i in itertools.islice(itertools.count(5, 2), 1, 7, 2)]


def test_islice_of_a_stepped_itertools_count():
    check(islice_of_a_stepped_count, [(r(2),)])


def repeat_zipped(x):
    return sum(a * b for a, b in zip(itertools.repeat(x, 3), [1, 2, 3, 4]))


def test_itertools_repeat_with_a_count_zipped_with_a_longer_list():
    check(repeat_zipped, [(r(3),)])


def body_runs_lazily(x):
    log = []
    numbers = naturals(log)
    first = next(numbers)
    logged_after_first = len(log)
    second = next(numbers)
    return x + first + second, logged_after_first, log


def test_generator_body_runs_only_up_to_the_yield_consumed():
    check(body_runs_lazily, [(r(3),)])


def producer(log, xs):
    for i, x in enumerate(xs):
        log.append(("produce", i))
        yield x * 2


def consumer_interleaving(x):
    log = []
    out = []
    for y in producer(log, [x, x + 1, x + 2]):
        log.append(("consume", len(out)))
        out.append(y)
    return out, log


def test_generator_steps_interleave_with_the_consuming_loop():
    check(consumer_interleaving, [(r(3),)])


def takes_two(it):
    yield next(it)
    yield next(it)


def stop_iteration_inside_generator(x, xs):
    return [x + t for t in takes_two(iter(xs))]


def test_stop_iteration_inside_a_generator_becomes_runtime_error_as_in_python():
    # two items: traced; one item: next() raises StopIteration in the generator, which Python turns into
    # RuntimeError (the call runs eagerly and raises that)
    stats = check(stop_iteration_inside_generator, [(r(3), [1, 2]), (r(3), [1])], fallbacks=1)
    assert stats["compiles"] == 1


def running_total():
    total = 0
    while True:
        value = yield total
        if value is None:
            return
        total = total + value


def send_values(x):
    acc = running_total()
    next(acc)
    a = acc.send(x)
    b = acc.send(x * 2)
    return a, b


def test_send_delivers_the_value_to_the_suspended_yield():
    check(send_values, [(r(3),), (r(4),)])


def close_then_next(x):
    numbers = naturals()
    first = next(numbers)
    numbers.close()
    return x + first, next(numbers, "finished")


def test_close_of_a_generator_outside_try_finishes_it():
    check(close_then_next, [(r(3),)])


def inner_with_return():
    yield 1
    yield 2
    return 10


def outer_delegating():
    result = yield from inner_with_return()
    yield result
    yield from [20, 30]


def yield_from_delegation(x):
    return [x * v for v in outer_delegating()]


def test_yield_from_delegates_and_receives_the_return_value():
    check(yield_from_delegation, [(r(3),)])


def next_with_default_after_return(x):
    g = inner_with_return()
    return [next(g, -1) for _ in range(4)], x + 1


def test_next_with_a_default_after_the_generator_returned():
    check(next_with_default_after_return, [(r(3),)])


def any_short_circuits(x):
    log = []

    def checked(v):
        log.append(v)
        return v > 1
    found = any(checked(v) for v in [0, 2, 5, 7])
    return x + found, log


def test_any_over_a_generator_expression_stops_at_the_first_true():
    check(any_short_circuits, [(r(3),)])


def zip_of_two_generators(x):
    first = naturals()
    pairs = list(zip(first, (x * k for k in range(2))))
    return pairs, next(first)


def test_zip_of_generators_drops_the_item_pulled_from_the_longer_one():
    # zip takes 0, 1 from `first`, then pulls 2 before finding the second exhausted: next() gives 3
    check(zip_of_two_generators, [(r(3),)])


def lazy_map_and_filter(x):
    calls = []

    def double(v):
        calls.append(v)
        return v * 2
    doubled = map(double, [1, 2, 3, 4])
    evens = filter(lambda v: v % 4 == 0, doubled)
    first = next(evens)
    return x * first, calls


def test_map_and_filter_call_their_functions_only_for_items_pulled():
    check(lazy_map_and_filter, [(r(3),)])


def enumerate_a_generator(x):
    return [(i, x + v) for i, v in enumerate((v * 10 for v in range(3)), start=5)]


def test_enumerate_over_a_generator_with_a_start():
    check(enumerate_a_generator, [(r(2),)])


def iter_of_generator_is_itself(x):
    g = naturals()
    same = iter(g) is g
    next(iter(g))
    return x + next(g), same


def test_iter_of_a_generator_is_the_generator_itself():
    check(iter_of_generator_is_itself, [(r(3),)])


def zip_strict(x, ys):
    return [x * y for _, y in zip([1, 2], ys, strict=True)]


def test_zip_strict_raises_value_error_on_a_length_mismatch():
    check(zip_strict, [(r(3), [3, 4]), (r(3), [3, 4, 5])], fallbacks=1)


def generator_alive_at_a_break(x):
    numbers = naturals()
    first = next(numbers)
    print("break")
    return x + first + next(numbers)


def test_generator_alive_at_a_graph_break_runs_eagerly_with_the_eager_result(capsys):
    opt = partialdyn.optimize(generator_alive_at_a_break)
    for n in (3, 4):
        x = r(n)
        torch.testing.assert_close(opt(x), generator_alive_at_a_break(x))
    assert partialdyn.stats(opt)["eager_fallbacks"] == 2
    assert_fell_back("alive at a graph break")


def guarded():
    try:
        yield 1
    except ValueError:
        yield 100


def throw_into_handler(x):
    g = guarded()
    next(g)
    return x + g.throw(ValueError("boom"))


def test_throw_into_a_generator_that_catches_it_gives_the_eager_result():
    opt = partialdyn.optimize(throw_into_handler)
    x = r(3)
    torch.testing.assert_close(opt(x), throw_into_handler(x))
    assert_fell_back("left suspended inside try/with")


def two_items():
    yield 1
    yield 2


def delegating(sub):
    got = yield from sub
    yield got


def close_of_a_delegating_generator(x):
    sub = two_items()
    outer = delegating(sub)
    first = next(outer)
    outer.close()
    return x * first + x * next(sub, 10) + x * next(outer, 20)


def test_close_of_a_generator_in_yield_from_closes_the_generator_it_delegates_to():
    check(close_of_a_delegating_generator, [(r(3),), (r(4),)])


def delegating_generator_left_suspended(x):
    outer = delegating(two_items())
    return x * next(outer)


def test_a_generator_left_suspended_in_yield_from_without_try_compiles():
    check(delegating_generator_left_suspended, [(r(3),), (r(4),)])


def throw_caught_by_the_sub_generator(x):
    outer = delegating(guarded())
    next(outer)
    return x + outer.throw(ValueError("boom"))


def test_throw_through_yield_from_into_a_sub_generator_that_catches_it_runs_eagerly():
    opt = partialdyn.optimize(throw_caught_by_the_sub_generator)
    x = r(3)
    torch.testing.assert_close(opt(x), throw_caught_by_the_sub_generator(x))
    assert_fell_back("inside try/with")
