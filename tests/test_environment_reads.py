"""os.environ reads in traced code: answered at trace time, guarded by reading the variable again."""
import os

import torch

import partialdyn
from helpers import check, outcome, r

FLAG = "PARTIALDYN_TEST_ZOO_FLAG"


def setup_function():
    partialdyn.reset()
    os.environ.pop(FLAG, None)


def teardown_function():
    os.environ.pop(FLAG, None)


def flag_scaled(x):
    if os.environ.get(FLAG, "0") == "1":
        return x * 3
    return x - 1


def test_environ_get_of_an_unset_variable_compiles_without_a_break():
    check(flag_scaled, [(r(2, 3),), (r(4, 3),)])


def getenv_inside_library_style_helper(x):
    return x + len(os.getenv(FLAG) or "")


def test_getenv_goes_through_mapping_get_without_ending_the_trace_in_its_try_block():
    check(getenv_inside_library_style_helper, [(r(3),), (r(5),)])


def test_setting_the_variable_later_recompiles_with_its_new_value():
    opt = partialdyn.optimize(flag_scaled)
    x = r(3)
    torch.testing.assert_close(opt(x), x - 1)
    os.environ[FLAG] = "1"
    torch.testing.assert_close(opt(x), x * 3)
    os.environ[FLAG] = "2"
    torch.testing.assert_close(opt(x), x - 1)
    stats = partialdyn.stats(opt)
    assert stats["compiles"] == 3 and stats["graph_breaks"] == 0 and stats["eager_fallbacks"] == 0, stats
    assert [e["reason"] for e in partialdyn.events("compile")][1].startswith(f"os.environ.get({FLAG!r}) == None")


def membership_and_item(x):
    if FLAG in os.environ:
        return x * int(os.environ[FLAG])
    return x


def test_membership_and_item_reads_are_guarded_too():
    os.environ[FLAG] = "4"
    opt = partialdyn.optimize(membership_and_item)
    x = r(2)
    torch.testing.assert_close(opt(x), x * 4)
    os.environ[FLAG] = "5"
    torch.testing.assert_close(opt(x), x * 5)
    del os.environ[FLAG]
    torch.testing.assert_close(opt(x), x)
    assert partialdyn.stats(opt)["compiles"] == 3


def item_of_unset(x):
    return x * int(os.environ[FLAG])


def test_item_of_an_unset_variable_raises_key_error_and_its_value_once_set_is_guarded():
    opt = partialdyn.optimize(item_of_unset)
    x = r(2)
    try:
        opt(x)
        raise AssertionError("no KeyError")
    except KeyError as e:
        assert e.args == (FLAG,)
    os.environ[FLAG] = "2"
    torch.testing.assert_close(opt(x), x * 2)
    os.environ[FLAG] = "3"
    torch.testing.assert_close(opt(x), x * 3)
    assert outcome(opt, x)[1] == "hit"
    assert partialdyn.stats(opt)["compiles"] == 2
