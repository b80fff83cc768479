"""Messages in the user's terms: resume functions by the user's name and line, tracebacks like eager's,
hints that apply to the break they are given for."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch

import partialdyn
from helpers import check, outcome, r

HERE = __file__


def breaks_then_fails(x):
    print("side effect")
    y = x + 1
    return y.view(7)


def test_a_resume_function_is_named_by_the_function_and_the_line_of_the_break_in_events_and_explain():
    partialdyn.reset()
    opt = partialdyn.optimize(breaks_then_fails)
    opt(torch.ones(7))
    break_line = breaks_then_fails.__code__.co_firstlineno + 1
    codes = [e["code"] for e in partialdyn.events("compile")]
    assert f"breaks_then_fails (after line {break_line})" in codes, codes
    assert not any("resume" in code for code in codes), codes
    frames = [frame.name for frame in partialdyn.explain(breaks_then_fails, torch.ones(7)).frames]
    assert any(name.endswith(f"breaks_then_fails (after line {break_line})") for name in frames), frames
    assert outcome(opt, torch.ones(7))[1] == "hit"


def two_breaks_on_one_line(x, n):
    y = x + 1
    print("first", y.shape); z = y * 2; print("second")
    return z + 1 if n > 2 else z - 1


def branches_on_a_tensor(x):
    if x.sum() > 0: x = x + 1
    return x * 2


def test_two_graph_breaks_on_one_line_give_resume_functions_with_distinct_names_and_their_own_entries():
    partialdyn.reset()
    stats = check(two_breaks_on_one_line, [(r(3), 1), (r(3), 5)], breaks=2, recompiles=1)
    line = two_breaks_on_one_line.__code__.co_firstlineno + 2
    first = f"two_breaks_on_one_line (after line {line})"
    second = f"two_breaks_on_one_line (after line {line}, 2nd break)"
    compiles = {}
    for event in partialdyn.events("compile"):
        compiles.setdefault(event["code"], []).append(event["reason"])
    resumed = {code: reasons for code, reasons in compiles.items() if "after line" in code}
    assert resumed.keys() == {first, second}, compiles
    assert resumed[first] == ["first call"], compiles                   # n is not used before the 2nd break
    assert resumed[second][0] == "first call" and "n" in resumed[second][1], compiles   # recompiled on n
    assert [e["code"] for e in partialdyn.events("graph_break")] == [
        f"two_breaks_on_one_line ({Path(HERE).name}:{two_breaks_on_one_line.__code__.co_firstlineno})", first]
    assert stats["compiles"] == 4, stats
    frames = [frame.name for frame in partialdyn.explain(two_breaks_on_one_line, r(3), 1).frames]
    assert [name.split(".")[-1] for name in frames[1:]] == [first, second], frames


def test_the_two_continuations_of_a_branch_on_a_tensor_get_distinct_names():
    partialdyn.reset()
    check(branches_on_a_tensor, [(torch.ones(3),), (-torch.ones(3),)], breaks=1)
    line = branches_on_a_tensor.__code__.co_firstlineno + 1
    codes = {e["code"] for e in partialdyn.events("compile") if "after line" in e["code"]}
    assert codes == {f"branches_on_a_tensor (after line {line})",
                     f"branches_on_a_tensor (after line {line}, 2nd branch)"}, codes


def test_a_traceback_after_a_graph_break_shows_the_users_frames_and_names_as_eager_does():
    partialdyn.reset()
    opt = partialdyn.optimize(breaks_then_fails)

    def frames_of(fn):
        with pytest.raises(RuntimeError) as raised:
            fn(torch.ones(3))
        return traceback.extract_tb(raised.value.__traceback__)
    eager = frames_of(breaks_then_fails)
    for _ in range(2):      # the first call compiles, the second hits the cache: both tracebacks are eager's
        optimized = frames_of(opt)
        user = [(f.filename, f.name, f.lineno) for f in optimized if "partialdyn" not in f.filename]
        assert user == [(f.filename, f.name, f.lineno) for f in eager]
        assert optimized[-1].name == "breaks_then_fails"
        assert len(optimized) - len(user) <= 1, [(f.filename, f.name) for f in optimized]
    stats = partialdyn.stats(opt)
    assert stats["graph_breaks"] == 1 and stats["compiles"] == 1 and stats["cache_hits"] == 1, stats


def test_the_hint_for_formatting_an_unstable_size_does_not_suggest_torch_ops():
    def label(x):
        text = f"rows={x.size(0)}"
        return x * 2, text
    partialdyn.reset()
    opt = partialdyn.optimize(label, recompile_limit=1)
    for rows in (2, 3, 4, 5):
        assert opt(torch.ones(rows))[1] == f"rows={rows}"
    (event,) = [e for e in partialdyn.events("graph_break") if "unstable" in e["reason"]][:1]
    assert "torch ops" not in event["hint"] and "format it outside" in event["hint"], event["hint"]


SUMMARY_PROGRAM = """
import torch, partialdyn

def rows(x):
    total = x[0]
    for i in range(1, x.size(0)):
        total = total + x[i]
    return total

opt = partialdyn.optimize(rows, policy="static")
for n in (2, 3, 4, 4):
    opt(torch.ones(n, 2))
"""


def test_partialdyn_logs_summary_prints_compiles_recompiles_by_reason_and_compile_time_at_exit(tmp_path):
    program = tmp_path / "summary_program.py"
    program.write_text(SUMMARY_PROGRAM)
    env = {**os.environ, "PARTIALDYN_LOGS": "summary", "PYTHONPATH": str(Path(partialdyn.__file__).parents[1])}
    done = subprocess.run([sys.executable, str(program)], env=env, capture_output=True, text=True, check=True)
    lines = done.stderr.strip().splitlines()
    start = lines.index("partialdyn summary:")
    assert re.fullmatch(r"  rows: 4 calls, 3 compiles \(2 recompiles\), 0 graph breaks, 0 eager fallbacks; "
                        r"\d+\.\d\d s compiling", lines[start + 1]), lines[start:]
    assert lines[start + 2].startswith("    2 x recompile on x.size(0) == N (from argument at "), lines[start:]


class Doubler(torch.nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1) * 2


def test_the_cache_limit_warning_of_an_optimized_module_names_the_user_s_calling_line():
    partialdyn.reset()
    model = partialdyn.optimize(Doubler(), policy="static", cache_size_limit=1)
    model(r(2, 3))
    assert outcome(model, r(2, 3))[1] == "hit"
    with pytest.warns(UserWarning, match="cache_size_limit=1") as caught:
        call_line = sys._getframe().f_lineno + 1
        model(r(4, 3))
    assert (caught[0].filename, caught[0].lineno) == (HERE, call_line)
