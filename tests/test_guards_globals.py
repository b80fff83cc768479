"""Guards on global names: a builtin stays right only while no global shadows it; generated guard and
runner code cannot be confused by user names (a parameter called `G`, `F`, `math`, `K0`, `__pd_k0`)."""
import sys
import types

import pytest
import torch

from helpers import Compiled, check, r


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def _exec(source, **names):
    namespace = {"torch": torch, **names}
    exec(source, namespace)
    return namespace


def test_a_global_that_shadows_a_builtin_after_the_compile_recompiles():
    ns = _exec("def f(x):\n    return x * abs(-2)\n")
    stats = check(ns["f"], [(r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: ns.__setitem__("abs", lambda v: 100)}, recompiles=1)
    assert stats["cache_hits"] == 1


def test_a_global_function_held_across_a_break_and_read_again_after_it_is_guarded_at_both_reads():
    """`len(str(n))`: at the break in `str` the stack holds the global `len`, which the resume function gets as
    an argument and reads again as a global (an internal error before: the two reads were aliased through a
    tracker that had no source)."""
    ns = _exec("def f(x):\n    out = x * len(str(x.size(0)))\n    return out + len([1, 2])\n")
    ns["len"] = lambda value: 7
    stats = check(ns["f"], [(r(2, 4),), (r(3, 4),), (r(3, 4),)], policy="dynamic", recompile_limit=1, breaks=2,
                  recompiles=None,
                  before={2: lambda fn: ns.__setitem__("len", lambda value: 5)})
    assert stats["internal_errors"] == 0 and stats["eager_fallbacks"] == 0, stats


@pytest.mark.parametrize("name", ["G", "F", "math", "K0", "__pd_k0", "__pd_globals", "len", "type"])
def test_a_parameter_named_like_generated_code_names_is_just_a_parameter(name):
    ns = _exec(f"def f(x, {name}):\n    return x * W * x.shape[0] + {name}['a']\n", W=torch.ones(2))
    arg = {"a": 1, "W": torch.full((2,), 100.0)}
    stats = check(ns["f"], [(r(2), arg), (r(2), arg)])
    assert stats["cache_hits"] == 1


def test_a_float_parameter_named_math_stays_symbolic_and_hits_the_cache():
    ns = _exec("def f(x, math):\n    return x * math\n")
    stats = check(ns["f"], [(r(2), 2.5), (r(2), 3.5), (r(2), 4.5)])
    assert stats["cache_hits"] == 2


def test_dict_keyed_by_dtype_is_guarded_by_its_keys_and_values():
    scale = {torch.float32: 2.0}

    def f(x):
        return x * scale[x.dtype]
    stats = check(f, [(r(2),), (r(2),), (r(2),)],
                  before={2: lambda fn: scale.__setitem__(torch.float32, 5.0)}, recompiles=1)
    assert stats["cache_hits"] == 1


@pytest.mark.parametrize("form", ["import", "from"])
def test_a_module_attribute_read_after_an_import_inside_the_function_is_guarded(form):
    mod = types.ModuleType("pd_guards_cfg")
    mod.K = 2
    sys.modules["pd_guards_cfg"] = mod
    source = ("def f(x):\n    import pd_guards_cfg\n    return x * pd_guards_cfg.K\n" if form == "import" else
              "def f(x):\n    from pd_guards_cfg import K\n    return x * K\n")
    try:
        ns = _exec(source)
        stats = check(ns["f"], [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: setattr(mod, "K", 5)},
                      recompiles=1)
        assert stats["cache_hits"] == 1
    finally:
        del sys.modules["pd_guards_cfg"]


LOG_SOURCE = """
LOG = ["before"]
def only_appends(x):
    LOG.append(x.shape[0])
    LOG.extend(["call"])
    return x + 1
def appends_then_reads(x):
    LOG.append("call")
    return x + len(LOG) + len(LOG[-2])
"""


@pytest.mark.parametrize("name, recompiles", [("only_appends", 0), ("appends_then_reads", 3)])
def test_appending_to_a_global_list_guards_its_length_only_when_the_function_reads_it(name, recompiles):
    eager, traced = _exec(LOG_SOURCE), _exec(LOG_SOURCE)
    compiled = Compiled(traced[name])
    for b in (2, 3, 3, 4):
        x = r(b)
        want = eager[name](x.clone())
        got = compiled(x.clone())
        torch.testing.assert_close(got, want)
        assert traced["LOG"] == eager["LOG"]
    # only appending: eager reads nothing of the list, so one compile serves every length
    compiled.stats(recompiles=recompiles)


def test_a_module_attribute_read_through_sys_modules_is_guarded():
    """`sys` is a library module, read without a source: `sys.modules[name].K` was a constant of the trace with
    no guard, and the cache kept returning x * 2 after K became 5."""
    mod = types.ModuleType("pd_guards_registry")
    mod.K = 2
    sys.modules["pd_guards_registry"] = mod
    try:
        ns = _exec("import sys\ndef f(x):\n    return x * sys.modules['pd_guards_registry'].K\n")
        stats = check(ns["f"], [(r(2),), (r(2),), (r(2),)], before={2: lambda fn: setattr(mod, "K", 5)},
                      recompiles=1)
        assert stats["cache_hits"] == 1
    finally:
        del sys.modules["pd_guards_registry"]


def _settings_module():
    mod = types.ModuleType("pd_guards_settings")
    exec("SCALE = 1.0\ndef scaled(x):\n    return x * SCALE\n", vars(mod))
    return mod


SETTINGS = _settings_module()
SELF = sys.modules[__name__]
SCALE = 1.0


def _sets_a_module_attribute_then_calls_into_it(x):
    SETTINGS.SCALE = 3.0
    return SETTINGS.scaled(x)


def _sets_a_module_attribute_then_reads_it_as_a_global(x):
    SELF.SCALE = 4.0
    return x * SCALE


def _sets_a_global_then_reads_it_as_a_module_attribute(x):
    global SCALE
    SCALE = 5.0
    return x * SELF.SCALE


def _sets_a_global_then_reads_the_module_dict(x):
    global SCALE
    SCALE = 6.0
    return x * SELF.__dict__["SCALE"]


def _sets_an_item_of_globals_then_reads_the_global(x):
    x = x + 1
    globals()["SCALE"] = 7.0        # globals() breaks: the resume function holds the dict
    return x * SCALE


def _holds_globals_then_sets_the_global(x):
    x = x + 1
    table = globals()
    global SCALE
    SCALE = 8.0
    return x * table["SCALE"]


def _sets_an_item_of_the_module_dict_then_reads_the_global(x):
    x = x + 1
    SELF.__dict__["SCALE"] = 9.0
    return x * SCALE


@pytest.mark.parametrize("fn", [_sets_a_module_attribute_then_calls_into_it,
                                _sets_a_module_attribute_then_reads_it_as_a_global,
                                _sets_a_global_then_reads_it_as_a_module_attribute,
                                _sets_a_global_then_reads_the_module_dict,
                                _sets_an_item_of_globals_then_reads_the_global,
                                _holds_globals_then_sets_the_global,
                                _sets_an_item_of_the_module_dict_then_reads_the_global])
def test_a_module_attribute_the_global_it_is_and_the_globals_dict_are_one_value_in_the_trace(fn):
    """A module's attributes are its functions' globals, and its __dict__ is their globals dict.  The trace
    kept `mod.SCALE = v` and `global SCALE; SCALE = v` (replayed after the graph) and the globals dict held as
    a dict (synced after the graph) apart from each other, so a read through one after a write through another
    saw the old value (x * 1 where eager gives x * 3)."""
    opt = Compiled(fn)
    for n in (2, 3, 4):
        global SCALE
        SCALE = SETTINGS.SCALE = 1.0
        expected = fn(r(n))
        written = (SCALE, SETTINGS.SCALE)
        SCALE = SETTINGS.SCALE = 1.0
        torch.testing.assert_close(opt(r(n)), expected)
        assert (SCALE, SETTINGS.SCALE) == written
    SCALE = SETTINGS.SCALE = 1.0
    opt.stats(breaks=None, fallbacks=None)
