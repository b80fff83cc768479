"""The log viewer: text report, HTML page, command line."""
import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import pytest

from partialdyn.logs import viewer
from partialdyn.logs.page import render_html

F = dict(fn="f", code="f (add.py:3)")
G = dict(fn="Net.forward", code="forward (net.py:10)")

# A small run: f compiles, recompiles on x.size(0), backs off x.size(1), breaks into a
# resume function; Net.forward falls back to eager and hits the cache limit.
STREAM = [
    dict(v=1, kind="compile", time=1000.0, **F, entry=0, recompile=False, reason="first call",
         trace_seconds=0.0125, backend_seconds=0.003, graphs=1, graph_breaks=0,
         policy="partial", backend="eager"),
    dict(v=1, kind="guards", time=1000.1, **F, entry=0, guards=[
        {"kind": "TENSOR_MATCH_DYNAMIC", "text": "x", "source": "x"},
        {"kind": "TENSOR_MATCH_STATIC", "text": "x.size(1) == 64", "source": "x"},
        {"kind": "SHAPE", "text": "x.size(0) > 16", "source": "x"},
        {"kind": "TENSOR_MATCH_STATIC", "text": "x.size(2) == 8", "source": "x"},
        {"kind": "SHAPE", "text": "Eq(Mod(x.size(0), 4), 0)", "source": "x"}]),
    dict(v=1, kind="specialization", time=1000.05, **F, source="x.size(1)", use="value", value=64,
         op="math.factorial", file="add.py", line=5, text="    n = math.factorial(x.size(1))"),
    dict(v=1, kind="specialization", time=1000.06, **F, source="x.size(0)", use="predicate",
         predicate="x.size(0) > 16", op="if", file="add.py", line=4, text="if x.size(0) > 16:"),
    dict(v=1, kind="compile", time=1001.25, **F, entry=1, recompile=True,
         reason="x.size(1) == 64 failed: got 80", trace_seconds=0.01, backend_seconds=0.002,
         graphs=2, graph_breaks=1, policy="partial", backend="eager"),
    dict(v=1, kind="backoff", time=1001.26, **F, dim="x.size(1)", recompiles=2, limit=2, unstable=True),
    dict(v=1, kind="graph_break", time=1001.27, fn="f", code="__resume_at_20 (add.py:3)",
         reason="math.factorial of unstable x.size(1)", file="add.py", line=5,
         hint="x.size(1) keeps changing; pass it as a tensor"),
    dict(v=1, kind="eager_fallback", time=1002.0, **G, reason="tracer error: <unsupported opcode>",
         file=None, line=None),
    dict(v=1, kind="cache_limit", time=1003.0, **G, limit=8),
    dict(v=1, kind="stats", time=1004.0, fn="f", calls=9, cache_hits=7, compiles=1, recompiles=0,
         graphs=1, graph_breaks=0, eager_fallbacks=0),
    dict(v=1, kind="stats", time=1005.0, fn="f", calls=12, cache_hits=9, compiles=3, recompiles=1,
         graphs=4, graph_breaks=1, eager_fallbacks=0),
]

EXPECTED_TEXT = """\
partialdyn log: 11 events, 2 functions

== f ==  policy partial, backend eager
compiles
  time     event      entry            graphs  breaks  trace   backend  reason
  +0.000s  compile    f (add.py:3) #0  1       0       0.013s  0.003s   first call
  +1.250s  recompile  f (add.py:3) #1  2       1       0.010s  0.002s   x.size(1) == 64 failed: got 80
guards
  entry            kind                  guard
  f (add.py:3) #0  TENSOR_MATCH_DYNAMIC  x
                   TENSOR_MATCH_STATIC   x.size(1) == 64
                                         x.size(2) == 8
                   SHAPE                 x.size(0) > 16
                                         Eq(Mod(x.size(0), 4), 0)
specializations
  at        use        guard            by              line
  add.py:5  value      x.size(1) == 64  math.factorial  n = math.factorial(x.size(1))
  add.py:4  predicate  x.size(0) > 16   if              if x.size(0) > 16:
backoff
  dim        recompiles  decision
  x.size(1)  2/2         unstable: consuming it now graph-breaks
graph breaks
  at        code                       reason                                hint
  add.py:5  __resume_at_20 (add.py:3)  math.factorial of unstable x.size(1)  x.size(1) keeps changing; pass it as a tensor
summary: 12 calls, 9 cache hits, 3 compiles (1 recompile), 4 graphs, 1 graph break, 0 eager fallbacks

== Net.forward ==
fallbacks
  event           code                 at  reason
  eager fallback  forward (net.py:10)  -   tracer error: <unsupported opcode>
  cache limit     forward (net.py:10)  -   8 entries reached; running eagerly
summary: ? calls, ? cache hits, 0 compiles (0 recompiles), 0 graphs, 0 graph breaks, 1 eager fallback  \
(counted from events: no stats snapshot)

overall: ? calls, ? cache hits, 3 compiles (1 recompile), 4 graphs, 1 graph break, 1 eager fallback
"""


def test_text_report_of_a_small_run():
    assert viewer.render_text(STREAM) == EXPECTED_TEXT


def test_summary_is_counted_from_events_without_a_stats_snapshot():
    without_stats = [e for e in STREAM if e["kind"] != "stats"]
    assert ("summary: ? calls, ? cache hits, 2 compiles (1 recompile), 3 graphs, 1 graph break, "
            "0 eager fallbacks  (counted from events: no stats snapshot)") in viewer.render_text(without_stats)


def test_unknown_kinds_and_missing_fields_are_tolerated():
    odd = [{"kind": "compile"}, {"kind": "guards", "fn": "f", "guards": "not a list"},
           {"kind": "specialization", "fn": "f"}, {"kind": "mystery", "fn": "f", "a": [1]},
           {"kind": ["unhashable"], "fn": "f"}, {"v": 1}]
    text = viewer.render_text(odd)
    assert "== (no function) ==" in text
    assert "?     compile  ? #?   ?" in text
    assert re.search(r'mystery +\{"a": \[1\]\}', text)
    assert "6 events, 2 functions" in text
    assert "(no function)" in render_html(odd)


def test_empty_log():
    assert viewer.render_text([]) == (
        "partialdyn log: 0 events, 0 functions\n\n"
        "overall: 0 calls, 0 cache hits, 0 compiles (0 recompiles), 0 graphs, 0 graph breaks, "
        "0 eager fallbacks\n")


def test_html_is_self_contained_escaped_and_covers_each_function():
    stream = STREAM + [dict(v=1, kind="compile", time=1006.0, fn="make.<locals>.<lambda>",
                            code="<lambda> (m.py:2)", entry=0, recompile=False,
                            reason="first call <script>alert(1)</script>")]
    page = render_html(stream)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for fn in ("f", "Net.forward", "make.&lt;locals&gt;.&lt;lambda&gt;"):
        assert f"<summary><h2>{fn}</h2>" in page
    assert page.count("<details open class=\"function\"") == 3


def chromium(tmp_path, *args):
    """Headless Debian chromium (.ci/run installs it) on a fresh profile, with the network kept quiet."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: apt-get install -y chromium (.ci/run does it)"
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, check=False)


def png_pixels(path):
    """(width, height, rows of grey levels) of an 8-bit non-interlaced RGB/RGBA PNG, as chromium writes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, pos = {}, 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks[kind] = chunks.get(kind, b"") + data[pos + 8:pos + 8 + length]
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(chunks[b"IDAT"]), width * channels
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, upper_left = previous[i], previous[i - channels] if i >= channels else 0
            estimate = left + up - upper_left
            paeth = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                        (abs(estimate - upper_left), 2, upper_left))[2]
            line[i] = (line[i] + (0, left, up, (left + up) // 2, paeth)[kind]) & 0xFF
        rows.append([sum(line[i:i + 3]) // 3 for i in range(0, stride, channels)])
        previous = bytes(line)
    return width, height, rows


def test_html_renders_in_headless_chromium_with_the_report_on_the_page(tmp_path):
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(render_html(STREAM), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    assert dom.stdout.count("<details open") == 2 and dom.stdout.count("<table") >= 5, dom.stdout
    for text in ("<h1>partialdyn log</h1>", "<h2>f</h2>", "<h2>Net.forward</h2>", "<td>x.size(1) == 64</td>",
                 "<h3>recompile chain</h3>", "<h3>cache entries</h3>", "<h3>timeline</h3>",
                 "math.factorial of unstable x.size(1)", "tracer error: &lt;unsupported opcode&gt;"):
        assert text in dom.stdout, text
    ids = set(re.findall(r'id="([^"]+)"', dom.stdout))
    links = re.findall(r'href="#([^"]+)"', dom.stdout)
    assert links and all(link in ids for link in links), sorted(set(links) - ids)
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1000,800", page.as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr
    width, height, rows = png_pixels(png)
    assert (width, height) == (1000, 800)
    dark = [sum(level < 128 for level in row) for row in rows]
    assert sum(1 for count in dark if count) > height // 4, "most of the page is blank: no text drawn"
    assert sum(dark) < width * height // 4, "the page is mostly dark: not the report's light page"
    assert any(dark[:80]), "no heading drawn at the top of the page"


def write_log(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_view_prints_the_report_and_counts_unreadable_lines(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    write_log(log, [json.dumps(e) for e in STREAM[:2]] + ["{not json", "", "[1, 2]"])
    assert viewer.main(["view", str(log)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("partialdyn log: 2 events, 1 function, 2 unreadable lines skipped\n")
    assert "first call" in out and "TENSOR_MATCH_DYNAMIC" in out


def test_view_html_option_writes_the_page_too(tmp_path, capsys):
    log, page = tmp_path / "run.jsonl", tmp_path / "run.html"
    write_log(log, [json.dumps(e) for e in STREAM])
    assert viewer.main(["view", str(log), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(EXPECTED_TEXT) and f"HTML report written to {page}" in out
    assert page.read_text(encoding="utf-8") == render_html(STREAM)


def test_view_of_a_missing_file_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert viewer.main(["view", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"cannot read {missing}: No such file or directory" in captured.err


def test_events_emitted_to_a_log_file_read_back_in_the_viewer(tmp_path, capsys):
    from partialdyn.config import config
    from partialdyn.logs import clear_events, emit
    log = tmp_path / "run.jsonl"
    saved = config.log_file
    config.log_file = str(log)
    try:
        emit("compile", fn="f", code="f (add.py:3)", entry=0, recompile=False, reason="first call",
             trace_seconds=0.1, backend_seconds=0.2, graphs=1, graph_breaks=0)
        emit("stats", fn="f", calls=1, cache_hits=0, compiles=1, recompiles=0, graphs=1,
             graph_breaks=0, eager_fallbacks=0)
    finally:
        config.log_file = saved
        clear_events()
    assert viewer.main(["view", str(log)]) == 0
    out = capsys.readouterr().out
    assert "+0.000s  compile  f (add.py:3) #0  1       0       0.100s  0.200s   first call" in out
    assert "summary: 1 call, 0 cache hits, 1 compile (0 recompiles)" in out


def guard(kind, text, dims=()):
    return {"kind": kind, "text": text, "source": text.split(":")[0], "dims": list(dims), "provenance": None}


MODULE = dict(fn="Net.forward", code="forward (net.py:10)")
PARAMETERS = [guard("TENSOR_MATCH_STATIC", f"self.layers[{i}].weight: Parameter float32 cpu ndim=2 shape=(8, 8)")
              for i in range(26)]
FIXED = [guard("ID_MATCH", "self is the same Net object"), guard("GLOBAL_STATE", "grad mode is on")]


def module_run(run, pid, first_batch):
    """A module's two compiles in one run: entry #1 recompiled on the batch size."""
    envelope = dict(v=2, run=run, pid=pid, **MODULE)
    entry_guards = [guard("TENSOR_MATCH_DYNAMIC", "x: Tensor float32 cpu ndim=2"), *PARAMETERS, *FIXED]
    return [
        dict(kind="compile", time=2000.0, **envelope, entry=0, recompile=False, reason="first call"),
        dict(kind="guards", time=2000.1, **envelope, entry=0,
             guards=[*entry_guards, guard("TENSOR_MATCH_STATIC", f"x.size(0) == {first_batch}", ["x.size(0)"])]),
        dict(kind="compile", time=2001.0, **envelope, entry=1, recompile=True,
             reason=f"x.size(0) == {first_batch} failed: got 3 (from argument at net.py:10)",
             failed_entry=0, failed_guard=f"x.size(0) == {first_batch}"),
        dict(kind="guards", time=2001.1, **envelope, entry=1,
             guards=[*entry_guards, guard("TENSOR_MATCH_STATIC", "x.size(0) == 3", ["x.size(0)"])]),
        dict(kind="stats", time=2002.0, **envelope, calls=4, cache_hits=2, compiles=2, recompiles=1, graphs=2,
             graph_breaks=0, eager_fallbacks=0),
    ]


def test_guards_that_never_change_are_folded_and_what_differs_is_listed():
    text = viewer.render_text(module_run("a1.0", 11, first_batch=1))
    assert """\
guards
  entry                   kind                  guard
  forward (net.py:10) #0  TENSOR_MATCH_DYNAMIC  x: Tensor float32 cpu ndim=2
                          TENSOR_MATCH_STATIC   x.size(0) == 1
                          (folded)              26 parameters of Net: static shapes
                                                2 guards on no input dim: 1 ID_MATCH, 1 GLOBAL_STATE
  forward (net.py:10) #1  TENSOR_MATCH_STATIC   x.size(0) == 3
                          (folded)              29 guards as in #0
""" in text, text
    full = viewer.render_text(module_run("a1.0", 11, first_batch=1), full=True)
    assert "self.layers[25].weight: Parameter" in full and "(folded)" not in full


def test_two_runs_appended_to_one_log_are_reported_and_counted_apart(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    write_log(log, [json.dumps(e) for e in module_run("a1.0", 11, 1) + module_run("b2.0", 22, 5)])
    assert viewer.main(["view", str(log)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("partialdyn log: 10 events, 2 functions in 2 runs\n"), out
    first, second = out.split("== Net.forward ==")[1:]
    assert first.startswith("  run a1.0 (pid 11)") and second.startswith("  run b2.0 (pid 22)")
    for report in (first, second):
        assert report.count(" recompile ") == 1 and report.count(" compile ") == 1, report
        assert "summary: 4 calls, 2 cache hits, 2 compiles (1 recompile)" in report
    assert "overall: 8 calls, 4 cache hits, 4 compiles (2 recompiles)" in out


def test_every_event_names_its_run_and_process_and_reset_starts_a_new_run():
    import os
    from partialdyn.logs import clear_events, emit
    first = emit("compile", fn="f")
    clear_events()
    second = emit("compile", fn="f")
    clear_events()
    assert first["v"] == second["v"] == 2 and first["pid"] == second["pid"] == os.getpid()
    assert first["run"] != second["run"] and first["run"].split(".")[0] == second["run"].split(".")[0]


def test_a_log_of_an_unknown_schema_version_is_a_clear_error(tmp_path, capsys):
    log = tmp_path / "future.jsonl"
    write_log(log, [json.dumps(STREAM[0]), json.dumps({**STREAM[1], "v": 7})])
    assert viewer.main(["view", str(log)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (f"{log}: line 2: event schema version 7 is unknown to this viewer (it reads versions 1, 2)"
            in captured.err), captured.err
    with pytest.raises(ValueError, match="schema version 'two' is unknown"):
        render_html([{**STREAM[0], "v": "two"}])


class _PageElements(HTMLParser):
    """The text of every element with an id (`texts[id]`, with its tag in `tags`), and every link as
    (class, target id, id of the nearest enclosing element with an id)."""

    def __init__(self, page: str):
        super().__init__()
        self.texts, self.tags, self.links, self._open = {}, {}, [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href", "").startswith("#"):
            within = next((element for _, element in reversed(self._open) if element), None)
            self.links.append((attrs.get("class"), attrs["href"][1:], within))
        if tag in VOID_TAGS:
            return
        self._open.append((tag, attrs.get("id")))
        if attrs.get("id"):
            self.texts[attrs["id"]], self.tags[attrs["id"]] = "", tag

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, element in self._open:
            if element:
                self.texts[element] += data


VOID_TAGS = {"meta", "br", "img", "hr", "input", "link"}


def recompiles_for_two_dims(x):
    if x.size(0) > 4:
        x = x + 1
    if x.size(1) > 2:
        x = x * 2
    return x.sum(0)


def test_each_recompiles_failed_guard_links_to_that_guard_and_to_the_specialization_that_made_it():
    import partialdyn
    from helpers import check, r
    partialdyn.reset()
    check(recompiles_for_two_dims, [(r(3, 2),), (r(5, 2),), (r(5, 3),)], recompiles=2)
    events = partialdyn.events()
    page = _PageElements(render_html(events))
    first_line = recompiles_for_two_dims.__code__.co_firstlineno
    # (the dim each recompile failed on, the line of the `if` that specialized it)
    expected = [("x.size(0)", first_line + 1), ("x.size(1)", first_line + 3)]
    recompiles = [e for e in events if e["kind"] == "compile" and e["recompile"]]
    assert len(recompiles) == len(expected), recompiles
    for event, (dim, line) in zip(recompiles, expected):
        chain_item = f"f0-e{event['entry']}-chain"
        links = {kind: target for kind, target, within in page.links if within == chain_item}
        failed_entry = f"f0-e{event['failed_entry']}"
        assert links["failed-entry"] == failed_entry and page.tags[failed_entry] == "section", links
        guard_row, made_by = links["failed-guard"], links["made-by"]
        assert guard_row.startswith(f"{failed_entry}-g") and page.tags[guard_row] == "tr", links
        assert event["failed_guard"] in page.texts[guard_row] and dim in event["failed_guard"], page.texts[guard_row]
        assert made_by.startswith(f"{failed_entry}-s") and page.tags[made_by] == "tr", links
        row = page.texts[made_by]
        assert f"{recompiles_for_two_dims.__code__.co_filename}:{line}" in row and dim in row, (dim, line, row)
