"""Augmented assignment with a number on the left (`s = 0; s += x`): Python rebinds, nothing is in place."""

import partialdyn
from helpers import check, r


def setup_function():
    partialdyn.reset()


def accumulate_from_zero(x, y):
    s = 0
    s += x
    s *= 2
    s -= y
    return s


def test_accumulating_tensors_into_a_number_compiles_to_a_graph():
    check(accumulate_from_zero, [(r(2, 3), r(2, 3, seed=1)), (r(4, 3), r(4, 3, seed=1))])


def tensor_in_place(x):
    y = x * 1
    alias = y
    y += 1
    return alias


def test_augmented_assignment_on_a_tensor_stays_in_place():
    check(tensor_in_place, [(r(3),), (r(4),)])


def list_in_place(x):
    n = x.shape[0]
    grown, repeated = [n], [n]
    alias_grown, alias_repeated = grown, repeated
    grown += (n, 1)
    grown += x.shape
    repeated *= 2
    return x + 1, alias_grown, alias_repeated


def test_augmented_assignment_on_a_list_mutates_it_for_every_alias():
    """`l *= 2` repeats the list in place and `l += iterable` extends it with any iterable (a tuple, a Size),
    as list.extend does: an alias sees the change.  The rule made a new list for `*=` and raised TypeError for
    a tuple on the right of `+=`."""
    check(list_in_place, [(r(3),), (r(4),)])


def in_place_on_a_list_held_as_a_value(x):
    words = "a b".split()
    alias = words
    words += [x.shape[0]]
    words *= 2
    return x + 1, alias


def test_augmented_assignment_on_a_list_held_as_a_value_breaks_instead_of_changing_a_copy():
    """A list the trace holds as a value (str.split's) has no side-effect record: `+=` and `*=` on it break
    (Python runs them); the sequences rule extended a copy, and the alias stayed ['a', 'b']."""
    stats = check(in_place_on_a_list_held_as_a_value, [(r(3),), (r(3),), (r(3),)], breaks=None, rehit=False)
    assert stats["graph_breaks"] >= 1 and stats["cache_hits"] >= 1, stats
