"""Packaging, command line, configuration and demo: what a newcomer runs first."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_AND_DEMO = "pip install torch==2.13.0 && pip install -e '.[test]' && python -m partialdyn demo"
TEST_COMMAND = "python -m pytest"


def clean_env() -> dict:
    """The current environment without PARTIALDYN_* settings, one intra-op thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTIALDYN_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "partialdyn", *args], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- README and CI

def test_readme_starts_with_install_demo_and_test_commands():
    first = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()[:8]]
    assert INSTALL_AND_DEMO in first
    assert TEST_COMMAND in first
    assert first.index(INSTALL_AND_DEMO) < first.index(TEST_COMMAND)


def test_ci_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    commands = [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert "set -euo pipefail" in commands
    assert "python3 -m pip install torch==2.13.0" in commands
    assert "python3 -m pip install -e '.[test]'" in commands
    # The README's command, with the interpreter CI has on PATH; it is the last step so
    # its exit status is the script's.
    assert commands[-1] == TEST_COMMAND.replace("python ", "python3 ", 1)


def test_ci_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)


def test_pyproject_contract():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "partialdyn"
    assert project["requires-python"] == ">=3.11"
    assert "torch>=2.13,<2.14" in project["dependencies"]
    assert set(project["optional-dependencies"]["test"]) >= {"pytest", "hypothesis"}
    assert project["scripts"]["partialdyn"] == "partialdyn.__main__:main"
    pytest_opts = meta["tool"]["pytest"]["ini_options"]
    assert pytest_opts["testpaths"] == ["tests"]
    assert "not slow" in pytest_opts["addopts"]
    assert any(m.startswith("slow:") for m in pytest_opts["markers"])


# ---------------------------------------------------------------- command line

def test_cli_help():
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout and "log" in out.stdout


def test_cli_log_view_help():
    out = run_cli("log", "view", "--help")
    assert out.returncode == 0, out.stderr
    assert "--html" in out.stdout


def test_cli_without_command_is_a_usage_error():
    out = run_cli()
    assert out.returncode == 2
    assert "usage" in out.stderr


def test_cli_dispatches_log_view(monkeypatch):
    from partialdyn.__main__ import main
    import partialdyn.logs

    seen = []
    fake = types.ModuleType("partialdyn.logs.viewer")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "partialdyn.logs.viewer", fake)
    monkeypatch.setattr(partialdyn.logs, "viewer", fake, raising=False)

    assert main(["log", "view", "run.jsonl"]) == 7
    assert main(["log", "view", "run.jsonl", "--html", "out.html"]) == 7
    assert seen == [["view", "run.jsonl"], ["view", "run.jsonl", "--html", "out.html"]]


def test_cli_dispatches_demo(monkeypatch):
    from partialdyn.__main__ import main
    import partialdyn.demo

    seen = []
    monkeypatch.setattr(partialdyn.demo, "main", lambda argv: seen.append(argv) or 0)
    assert main(["demo", "--quick"]) == 0
    assert seen == [["--quick"]]


# ---------------------------------------------------------------- configuration from the environment

@pytest.fixture
def from_environment():
    # config validates `backend` through partialdyn.backends, which the engine provides.
    try:
        from partialdyn.config import from_environment
    except ImportError as e:
        pytest.skip(f"partialdyn.config cannot be imported yet: {e}")
    return from_environment


def test_env_overrides_apply(from_environment):
    cfg = from_environment({
        "PARTIALDYN_POLICY": "static",
        "PARTIALDYN_RECOMPILE_LIMIT": "3",
        "PARTIALDYN_CACHE_SIZE_LIMIT": "4",
        "PARTIALDYN_FULLGRAPH": "true",
        "PARTIALDYN_LOG": "/tmp/run.jsonl",
        "PARTIALDYN_LOGS": "recompiles, guards",
        "UNRELATED": "ignored",
    })
    assert cfg.policy == "static"
    assert cfg.recompile_limit == 3
    assert cfg.cache_size_limit == 4
    assert cfg.fullgraph is True
    assert cfg.log_file == "/tmp/run.jsonl"
    assert cfg.logs == ("recompiles", "guards")


def test_env_defaults(from_environment):
    cfg = from_environment({})
    assert (cfg.policy, cfg.recompile_limit, cfg.cache_size_limit) == ("partial", 2, 8)
    assert cfg.log_file is None and cfg.logs == ()


def test_env_logs_all(from_environment):
    from partialdyn.config import LOG_TOPICS

    assert from_environment({"PARTIALDYN_LOGS": "all"}).logs == LOG_TOPICS


@pytest.mark.parametrize("env, must_mention", [
    ({"PARTIALDYN_POLICY": "sometimes"}, ["partial", "dynamic", "static", "automatic"]),
    ({"PARTIALDYN_RECOMPILE_LIMIT": "two"}, ["PARTIALDYN_RECOMPILE_LIMIT"]),
    ({"PARTIALDYN_RECOMPILE_LIMIT": "-1"}, [">= 0"]),
    ({"PARTIALDYN_CACHE_SIZE_LIMIT": "0"}, [">= 1"]),
    ({"PARTIALDYN_FULLGRAPH": "maybe"}, ["PARTIALDYN_FULLGRAPH"]),
    ({"PARTIALDYN_LOGS": "recompiles,everything"}, ["everything", "graph_breaks", "all"]),
    ({"PARTIALDYN_POLCY": "static"}, ["PARTIALDYN_POLCY", "PARTIALDYN_POLICY"]),
])
def test_env_bad_values_raise_with_valid_values(from_environment, env, must_mention):
    with pytest.raises(ValueError) as info:
        from_environment(env)
    for word in must_mention:
        assert word in str(info.value)


def test_env_backend(from_environment):
    assert from_environment({"PARTIALDYN_BACKEND": "eager"}).backend == "eager"
    with pytest.raises(ValueError):
        from_environment({"PARTIALDYN_BACKEND": "no-such-backend"})


# ---------------------------------------------------------------- the demo

def engine_ready() -> bool:
    try:
        return callable(getattr(importlib.import_module("partialdyn"), "optimize", None))
    except Exception:
        return False


@pytest.mark.skipif(not engine_ready(), reason="partialdyn.optimize is not importable yet")
def test_demo_quick_prints_the_table():
    out = run_cli("demo", "--quick", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    header = "engine  compiles  recompiles  graph breaks  eager fallbacks  seconds  correct"
    lines = out.stdout.splitlines()
    assert any(" ".join(line.split()) == " ".join(header.split()) for line in lines), out.stdout
    for engine in ("eager", "partialdyn partial", "partialdyn dynamic", "partialdyn static",
                   "partialdyn automatic", "torch.compile (default)"):
        row = next((line for line in lines if line.startswith(engine + " ")), None)
        assert row is not None, f"no row for {engine}:\n{out.stdout}"
        assert row.rstrip().endswith("yes"), row
