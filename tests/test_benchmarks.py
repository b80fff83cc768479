"""Fast checks of the benchmark runner: the `tiny` workload, quick mode, eager backend."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # `benchmarks` is not installed

from benchmarks.engines import ENGINES, Engine  # noqa: E402
from benchmarks.report import to_json, to_markdown  # noqa: E402
from benchmarks.run import main, metadata, run  # noqa: E402

MEASURED = ("compiles", "recompiles", "graphs", "graph_breaks", "eager_fallbacks",
            "trace_time_s", "wall_time_s", "per_call_us", "eager_per_call_us",
            "overhead_us", "compile_peak_mib")


@pytest.fixture(scope="module")
def rows():
    return run(workloads=["tiny"], engines=["eager", "torch-default"], quick=True)


def check_measured(row):
    assert row.status == "ok", row.note
    assert row.correct is True and row.mismatched_calls == []
    for name in MEASURED:
        assert isinstance(getattr(row, name), (int, float)), name
    assert row.inputs > 1 and row.wall_time_s > 0 and row.per_call_us > 0


def test_eager_and_torch_rows(rows):
    assert [(r.workload, r.engine, r.backend) for r in rows] == [
        ("tiny", "eager", "eager"), ("tiny", "torch-default", "eager")]
    for row in rows:
        check_measured(row)
    eager, torch_default = rows
    assert eager.compiles == eager.recompiles == eager.graphs == 0
    assert eager.trace_time_s == 0
    assert torch_default.compiles >= 1 and torch_default.graphs >= 1
    assert torch_default.trace_time_s > 0 and torch_default.compile_peak_mib > 0
    assert torch_default.compiles_ratio == 1.0 and torch_default.trace_time_ratio == 1.0


def test_renderings(rows):
    meta = metadata("eager", True)
    table = to_markdown(rows, meta).splitlines()
    assert table[2].startswith("| workload | engine | compiles |")
    assert sum(line.startswith("| tiny |") for line in table) == 2
    data = json.loads(to_json(rows, meta))
    assert data["meta"]["backend"] == "eager"
    assert [r["engine"] for r in data["rows"]] == ["eager", "torch-default"]


def test_engine_error_is_recorded(monkeypatch):
    def broken(fn, backend):
        raise RuntimeError("engine exploded")

    monkeypatch.setitem(ENGINES, "broken", Engine("broken", broken, lambda opt: {}))
    [row] = run(workloads=["tiny"], engines=["broken"], quick=True)
    assert row.status == "error" and "engine exploded" in row.note and "test_benchmarks.py" in row.note
    assert row.compiles is None and row.correct is None


def test_cli_rejects_unknown_names():
    with pytest.raises(SystemExit) as exit_info:
        main(["--engines", "eager,nope"])
    assert exit_info.value.code == 2


def test_partialdyn_rows():
    engines = ["partialdyn-partial", "partialdyn-dynamic", "partialdyn-static",
               "partialdyn-automatic", "torch-default"]
    result = run(workloads=["tiny"], engines=engines, quick=True)
    assert [r.engine for r in result] == engines
    for row in result:
        check_measured(row)
        assert row.compiles >= 1
        assert row.compiles_ratio is not None and row.trace_time_ratio is not None


def test_cache_hit_benchmark_reports_both_engines_on_x_plus_y():
    from benchmarks.cache_hit import main as cache_hit_main
    [result] = cache_hit_main(["--workloads", "tiny", "--rounds", "1", "--calls", "5", "--warmup", "1"])
    assert result.case == "tiny" and result.correct is True
    assert result.eager_us > 0 and result.partialdyn_us > 0 and result.torch_us > 0


def test_first_call_benchmark_times_a_one_layer_encoder_and_prints_ratios():
    from benchmarks.first_call import first_call_seconds, to_markdown
    engines = ["partialdyn-partial", "partialdyn-static"]
    results = [first_call_seconds("encoder", engine, layers=1) for engine in engines]
    assert [r["engine"] for r in results] == engines and all(r["first_call_s"] > 0 for r in results)
    table = to_markdown({("encoder", r["engine"]): r["first_call_s"] for r in results}, ["encoder"], engines, "eager")
    assert table.splitlines()[1] == "| model | partialdyn-partial s | partialdyn-static s | partial/static |"
    assert table.splitlines()[3].startswith("| encoder |")
