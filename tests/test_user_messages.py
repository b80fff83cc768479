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
from helpers import outcome

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
