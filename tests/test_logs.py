"""The event log: in-memory store, JSON Lines file sink, stderr topics, failure tolerance."""
import json
import os
import subprocess
import sys

import pytest

from partialdyn.logs import clear_events, emit, events

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RECOMPILE = dict(fn="f", code="f (add.py:3)", entry=1, recompile=True,
                 reason="x.size(0) == 8 failed: got 10", trace_seconds=0.01,
                 backend_seconds=0.002, graphs=1, graph_breaks=0, policy="partial", backend="eager")


@pytest.fixture(autouse=True)
def fresh_log():
    """Each test starts with no events, no log file and no stderr topics, and restores the config."""
    from partialdyn.config import config
    saved = config.log_file, config.logs
    config.log_file, config.logs = None, ()
    clear_events()
    yield config
    clear_events()
    config.log_file, config.logs = saved


def test_emit_returns_the_recorded_event_with_its_envelope():
    event = emit("cache_limit", fn="f", code="f (a.py:1)", limit=8)
    assert list(event)[:5] == ["v", "kind", "time", "run", "pid"]
    assert event["v"] == 2 and event["kind"] == "cache_limit" and isinstance(event["time"], float)
    assert event["limit"] == 8
    assert events() == [event]


def test_events_filters_by_kind_and_clear_events_forgets_them():
    emit("compile", **RECOMPILE)
    emit("graph_break", fn="f", code="f (a.py:1)", reason="r", file="a.py", line=2, hint="")
    emit("compile", **RECOMPILE)
    assert [e["kind"] for e in events()] == ["compile", "graph_break", "compile"]
    assert len(events("compile")) == 2 and events("backoff") == []
    clear_events()
    assert events() == []


def test_envelope_fields_cannot_be_overwritten():
    event = emit("specialization", kind="value", v=7, run="mine", pid=0, source="x.size(1)", value=64)
    assert event["kind"] == "specialization" and event["v"] == 2
    assert event["run"] != "mine" and event["pid"] != 0
    assert event["value"] == 64


def test_memory_keeps_only_the_most_recent_events():
    from partialdyn.logs.events import MAX_EVENTS
    for i in range(MAX_EVENTS + 10):
        emit("tick", i=i)
    kept = events()
    assert len(kept) == MAX_EVENTS
    assert kept[0]["i"] == 10 and kept[-1]["i"] == MAX_EVENTS + 9


def read_lines(path):
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def test_log_file_gets_one_json_object_per_event(fresh_log, tmp_path):
    path = tmp_path / "run.jsonl"
    fresh_log.log_file = str(path)
    first = emit("compile", **RECOMPILE)
    emit("guards", fn="f", code="f (add.py:3)", entry=1, odd=object(),
         guards=[{"kind": "SHAPE", "text": "x.size(0) > 16", "source": "x"}])
    written = read_lines(path)
    assert written[0] == first
    assert written[1]["v"] == 2 and written[1]["kind"] == "guards"
    assert written[1]["guards"][0]["text"] == "x.size(0) > 16"
    assert written[1]["odd"].startswith("<object object")


def test_log_file_follows_the_config_at_each_emit(fresh_log, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    emit("tick", n=0)
    fresh_log.log_file = str(first)
    emit("tick", n=1)
    fresh_log.log_file = str(second)
    emit("tick", n=2)
    fresh_log.log_file = None
    emit("tick", n=3)
    assert [e["n"] for e in read_lines(first)] == [1]
    assert [e["n"] for e in read_lines(second)] == [2]
    assert len(events()) == 4


def test_log_file_is_appended_to_and_reopened_after_clear(fresh_log, tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps({"v": 1, "kind": "tick", "n": 0}) + "\n")
    fresh_log.log_file = str(path)
    emit("tick", n=1)
    assert [e["n"] for e in read_lines(path)] == [0, 1]
    clear_events()
    path.unlink()
    emit("tick", n=2)
    assert [e["n"] for e in read_lines(path)] == [2]


def test_nothing_is_printed_without_topics(capsys):
    emit("compile", **RECOMPILE)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind, fields, topics", [
    ("compile", dict(RECOMPILE, recompile=False, reason="first call"), {"compiles"}),
    ("compile", RECOMPILE, {"compiles", "recompiles"}),
    ("guards", dict(fn="f", code="f (a.py:1)", entry=0, guards=[]), {"guards"}),
    ("specialization", dict(fn="f", source="x.size(1)", use="value", value=3), {"specializations"}),
    ("backoff", dict(fn="f", dim="x.size(1)", recompiles=2, limit=2, unstable=True), {"recompiles"}),
    ("graph_break", dict(fn="f", reason="print", file="a.py", line=3, hint=""), {"graph_breaks"}),
    ("eager_fallback", dict(fn="f", reason="boom", file=None, line=None), {"fallbacks"}),
    ("cache_limit", dict(fn="f", limit=8), {"fallbacks", "recompiles"}),
    ("stats", dict(fn="f", calls=1), set()),
])
def test_each_kind_prints_under_its_topics_only(fresh_log, capsys, kind, fields, topics):
    from partialdyn.config import LOG_TOPICS
    for topic in LOG_TOPICS:
        fresh_log.logs = (topic,)
        emit(kind, **fields)
        printed = capsys.readouterr().err
        assert printed.startswith("[partialdyn] ") == (topic in topics), topic


def test_stderr_lines_read_well(fresh_log, capsys):
    fresh_log.logs = "all"
    emit("compile", **RECOMPILE)
    emit("guards", fn="f", code="f (add.py:3)", entry=1, guards=[
        {"kind": "TENSOR_MATCH_STATIC", "text": "x.size(1) == 64", "source": "x"},
        {"kind": "SHAPE", "text": "x.size(0) > 16", "source": "x"}])
    emit("specialization", fn="f", code="f (add.py:3)", source="x.size(1)", use="value", value=64,
         op="math.factorial", file="add.py", line=5, text="n = math.factorial(x.size(1))")
    emit("specialization", fn="f", code="f (add.py:3)", source="x.size(0)", use="predicate",
         predicate="x.size(0) > 16", op="if", file="add.py", line=4, text="if x.size(0) > 16:")
    emit("backoff", fn="f", code="f (add.py:3)", dim="x.size(1)", recompiles=2, limit=2, unstable=True)
    emit("graph_break", fn="f", code="__resume_at_20 (add.py:3)", reason="print() is not traceable",
         file="add.py", line=7, hint="move the print out of f")
    emit("eager_fallback", fn="g", code="g (b.py:1)", reason="tracer error", file=None, line=None)
    emit("cache_limit", fn="g", code="g (b.py:1)", limit=8)
    assert capsys.readouterr().err == """\
[partialdyn] recompile f (add.py:3): x.size(0) == 8 failed: got 10
[partialdyn] guards f (add.py:3) entry 1:
[partialdyn]   TENSOR_MATCH_STATIC x.size(1) == 64
[partialdyn]   SHAPE x.size(0) > 16
[partialdyn] specialize f (add.py:3): x.size(1) == 64 (value used by math.factorial at add.py:5)
[partialdyn] specialize f (add.py:3): x.size(0) > 16 (predicate used by if at add.py:4)
[partialdyn] backoff f (add.py:3): x.size(1) caused 2 recompiles, limit 2; unstable: consuming it now graph-breaks
[partialdyn] graph break __resume_at_20 (add.py:3) in f at add.py:7: print() is not traceable; hint: move the print out of f
[partialdyn] eager fallback g (b.py:1): tracer error
[partialdyn] cache limit g (b.py:1): 8 entries reached; running eagerly
"""


def test_unwritable_log_file_warns_once_and_never_raises(fresh_log, tmp_path, capsys):
    fresh_log.log_file = str(tmp_path)  # a directory: open() fails
    emit("tick", n=1)
    emit("tick", n=2)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "log file" in warnings[0]
    assert [e["n"] for e in events()] == [1, 2]


def test_unserializable_event_does_not_raise(fresh_log, tmp_path):
    loop = []
    loop.append(loop)
    fresh_log.log_file = str(tmp_path / "run.jsonl")
    assert emit("tick", loop=loop)["loop"] is loop


def test_broken_stderr_does_not_raise(fresh_log, monkeypatch):
    class ClosedStream:
        def write(self, text):
            raise OSError("stderr is closed")

    monkeypatch.setattr(sys, "stderr", ClosedStream())
    fresh_log.logs = "all"
    emit("compile", **RECOMPILE)
    assert len(events()) == 1


def test_importing_the_logs_pulls_in_neither_torch_nor_the_engine():
    """Logging must work while the engine is broken; config is read only when an event is emitted."""
    script = (
        "import sys, types\n"
        "pkg = types.ModuleType('partialdyn')\n"
        f"pkg.__path__ = [{os.path.join(REPO, 'partialdyn')!r}]\n"
        "sys.modules['partialdyn'] = pkg\n"
        "import partialdyn.logs, partialdyn.logs.viewer\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('partialdyn.')\n"
        "             and not m.startswith('partialdyn.logs')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
