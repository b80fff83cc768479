"""The JSON Lines log, read back, for the conformance-like streams that trigger each event kind."""
import json
import math
import os

import pytest
import torch

import partialdyn
from partialdyn.config import config
from helpers import outcome


@pytest.fixture
def log_path(tmp_path):
    partialdyn.reset()
    path = tmp_path / "log.jsonl"
    saved = config.log_file
    config.log_file = str(path)
    yield path
    config.log_file = saved
    partialdyn.reset()


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def branch(x):
    if x.size(0) > 16:
        return x * 2
    return x - 1


def factorial_scale(x):
    return x / math.factorial(x.size(-1))


def opaque_call(x):
    y = x * 2
    os.getpid()
    return y + 1


def add(x, y):
    return x + y * 2


def test_every_event_is_versioned_json(log_path):
    opt = partialdyn.optimize(branch)
    for b in (4, 32):
        opt(torch.randn(b, 3))
    assert outcome(opt, torch.randn(4, 3))[1] == "hit"
    rows = read(log_path)
    assert rows and all(r["v"] == 2 and "kind" in r and "time" in r and "run" in r and "pid" in r for r in rows)
    assert [r["recompile"] for r in rows if r["kind"] == "compile"] == [False, True]


def test_branch_on_size_logs_compile_reason_guards_and_predicate(log_path):
    opt = partialdyn.optimize(branch)
    for b in (4, 8, 32):
        opt(torch.randn(b, 3))
    rows = read(log_path)
    compiles = [r for r in rows if r["kind"] == "compile"]
    assert [c["recompile"] for c in compiles] == [False, True]
    assert compiles[0]["reason"] == "first call"
    assert "x.size(0)" in compiles[1]["reason"] and "got 32" in compiles[1]["reason"]
    assert compiles[0]["fn"] == "branch" and compiles[0]["code"].startswith("branch (test_log_events.py:")
    guards = [r for r in rows if r["kind"] == "guards"][0]["guards"]
    assert {g["kind"] for g in guards} >= {"TENSOR_MATCH_DYNAMIC", "SHAPE", "GLOBAL_STATE"}
    assert any(g["kind"] == "SHAPE" and "x.size(0) <= 16" in g["text"] for g in guards)
    kinds = [g["kind"] for g in guards]
    assert kinds.index("TENSOR_MATCH_DYNAMIC") < kinds.index("SHAPE") < kinds.index("GLOBAL_STATE")
    assert kinds == sorted(kinds, key=kinds.index)      # each kind's guards are listed together
    spec = [r for r in rows if r["kind"] == "specialization"][0]
    assert spec["use"] == "predicate" and spec["source"] == "x.size(0)" and spec["op"] == "if"
    assert spec["file"].endswith("test_log_events.py") and spec["line"] == branch.__code__.co_firstlineno + 1
    assert "x.size(0) > 16" in spec["text"]


def test_backoff_logs_value_specializations_backoff_and_break(log_path):
    opt = partialdyn.optimize(factorial_scale)
    for d in (3, 4, 5, 6):
        opt(torch.randn(2, d))
    rows = read(log_path)
    specs = [r for r in rows if r["kind"] == "specialization"]
    assert [s["value"] for s in specs] == [3, 4] and all(s["use"] == "value" for s in specs)
    assert all(s["op"] == "math.factorial" for s in specs)
    backoff = [r for r in rows if r["kind"] == "backoff"]
    assert backoff == [dict(backoff[0], dim="x.size(1)", recompiles=2, limit=2, unstable=True)]
    breaks = [r for r in rows if r["kind"] == "graph_break"]
    assert len(breaks) == 1 and "unstable" in breaks[0]["reason"] and breaks[0]["hint"]
    assert breaks[0]["line"] == factorial_scale.__code__.co_firstlineno + 1


def test_break_on_opaque_call_logs_the_line_and_a_hint(log_path):
    opt = partialdyn.optimize(opaque_call)
    for b in (2, 3):
        opt(torch.randn(b, 2))
    breaks = [r for r in read(log_path) if r["kind"] == "graph_break"]
    assert len(breaks) == 1
    b = breaks[0]
    assert "getpid" in b["reason"] and b["hint"]
    assert b["file"].endswith("test_log_events.py") and b["line"] == opaque_call.__code__.co_firstlineno + 2
    assert b["stack"] and "opaque_call" in b["stack"][0]


def test_cache_size_limit_logs_cache_limit_and_stats(log_path):
    opt = partialdyn.optimize(add, policy="static", cache_size_limit=2)
    with pytest.warns(UserWarning, match="cache_size_limit"):
        for b in (2, 3, 5, 8):
            opt(torch.randn(b, 8), torch.randn(b, 8))
    assert outcome(opt, torch.randn(3, 8), torch.randn(3, 8))[1] == "hit"     # the entries made stay in use
    partialdyn.reset()      # emits the stats snapshot
    rows = read(log_path)
    limit = [r for r in rows if r["kind"] == "cache_limit"]
    assert len(limit) == 1 and limit[0]["limit"] == 2 and limit[0]["fn"] == "add"
    stats = [r for r in rows if r["kind"] == "stats" and r["fn"] == "add"][-1]
    assert stats["calls"] == 5 and stats["compiles"] == 2 and stats["eager_fallbacks"] == 2
    assert stats["cache_hits"] == 1


def test_log_view_renders_a_real_log(log_path, capsys):
    from partialdyn.logs import viewer
    opt = partialdyn.optimize(factorial_scale)
    for d in (3, 4, 5, 6):
        opt(torch.randn(2, d))
    partialdyn.reset()
    assert viewer.main(["view", str(log_path)]) == 0
    out = capsys.readouterr().out
    assert "factorial_scale" in out and "x.size(1)" in out and "math.factorial" in out
    assert "unstable" in out or "backoff" in out
