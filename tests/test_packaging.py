"""Packaging, command line, configuration and demo: what a newcomer runs first."""
from __future__ import annotations

import ast
import os
import re
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
    """The current environment without PARTIALDYN_* settings (but where the C++ tensor check is built), one
    intra-op thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTIALDYN_") or k == "PARTIALDYN_NATIVE_DIR"}
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


SLOW_TEST_COMMAND = "python -m pytest -m slow"


def ci_commands() -> list[str]:
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_ci_builds_a_fresh_virtual_environment_and_removes_it():
    commands = ci_commands()
    assert "set -euo pipefail" in commands
    make_dir = next(i for i, c in enumerate(commands) if c.startswith("WORK=") and "mktemp -d" in c)
    assert commands[make_dir + 1] == """trap 'rm -rf "$WORK"' EXIT"""
    assert 'python3.11 -m venv "$WORK/venv"' in commands
    assert 'export PATH="$WORK/venv/bin:$PATH"' in commands
    # nothing is installed or run before the venv is first on PATH (but the browser, a Debian package)
    first_venv = commands.index('export PATH="$WORK/venv/bin:$PATH"')
    assert not [c for c in commands[:first_venv] if re.search(r"\bpip\b|pytest", c)]


def test_ci_runs_the_readme_install_and_test_commands_in_that_environment():
    commands = ci_commands()
    installs = [c.strip() for c in INSTALL_AND_DEMO.split("&&") if c.strip().startswith("pip ")]
    assert installs == ["pip install torch==2.13.0", "pip install -e '.[test]'"]
    # the 3.11 leg, then the 3.12 and 3.13 legs, each in its own environment
    assert [c for c in commands if "pip install" in c] == ["python -m " + c for c in installs] * 3
    readme = (ROOT / "README.md").read_text()
    assert f"`{SLOW_TEST_COMMAND}`" in readme
    tests = [c for c in commands if c.startswith("python -m pytest")]
    assert tests == [TEST_COMMAND, SLOW_TEST_COMMAND, TEST_COMMAND, TEST_COMMAND]
    assert commands.index(TEST_COMMAND) > commands.index("python -m pip install -e '.[test]'")
    second_leg = commands.index('export PATH="$WORK/venv312/bin:$PATH"')
    third_leg = commands.index('export PATH="$WORK/venv313/bin:$PATH"')
    assert '"$PY312" -m venv "$WORK/venv312"' in commands[:second_leg]
    assert commands[second_leg + 2:second_leg + 5] == ["python -m " + c for c in installs] + [TEST_COMMAND]
    assert '"$PY313" -m venv "$WORK/venv313"' in commands[second_leg:third_leg]
    assert commands[third_leg + 2:] == ["python -m " + c for c in installs] + [TEST_COMMAND]


def test_ci_installs_the_browser_only_when_missing():
    assert any(c.startswith("command -v chromium") and "apt-get install -y chromium" in c for c in ci_commands())


def test_ci_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)


def test_pyproject_contract():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "partialdyn"
    assert "torch>=2.13,<2.14" in project["dependencies"]
    assert project["scripts"]["partialdyn"] == "partialdyn.__main__:main"
    pytest_opts = meta["tool"]["pytest"]["ini_options"]
    assert pytest_opts["testpaths"] == ["tests"]
    assert "not slow" in pytest_opts["addopts"]
    assert any(m.startswith("slow:") for m in pytest_opts["markers"])


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_test_extra_names_what_the_tests_need_by_ranges_not_pins():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert {requirement_name(r) for r in extra} >= {"pytest", "hypothesis", "numpy", "transformers"}
    assert not [r for r in extra if "==" in r], f"pins in the test extra: {extra}"


LOCAL_MODULES = {"partialdyn", "benchmarks", "helpers", "broken_engines", "conftest", "run", "cases", "fuzz"}


def test_every_package_the_tests_import_is_installed_by_the_project():
    """A fresh `pip install -e '.[test]'` must bring every third-party module tests/ imports."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {requirement_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    imported = {}
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                imported.setdefault(name.split(".")[0], path.name)
    third_party = {name: where for name, where in imported.items()
                   if name not in sys.stdlib_module_names and name not in LOCAL_MODULES
                   and not name.startswith("test_")}
    missing = {name: where for name, where in third_party.items() if name.lower() not in installed}
    assert not missing, f"imported by tests but not installed by pyproject (dependencies or the test extra): {missing}"


# ---------------------------------------------------------------- Python version

def test_requires_python_is_the_versions_the_package_supports():
    import partialdyn
    (first_major, first_minor), *_, (last_major, last_minor) = partialdyn.SUPPORTED_PYTHON
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["requires-python"] == f">={first_major}.{first_minor},<{last_major}.{last_minor + 1}"
    assert partialdyn.SUPPORTED_PYTHON == tuple((3, minor) for minor in range(first_minor, last_minor + 1))
    assert sys.version_info[:2] in partialdyn.SUPPORTED_PYTHON


@pytest.mark.parametrize("version", [(3, 14, 0, "final", 0), (3, 10, 13, "final", 0)])
def test_import_on_an_unsupported_python_raises_a_clear_import_error_even_under_dash_o(version):
    script = f"import sys; sys.version_info = {version!r}; import partialdyn"
    out = subprocess.run([sys.executable, "-O", "-c", script], cwd=ROOT, env=clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert (f"ImportError: partialdyn supports CPython 3.11, 3.12 and 3.13 only (its opcode tables are those versions'); "
            f"this is Python {version[0]}.{version[1]}") in out.stderr


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
    assert main(["log", "view", "run.jsonl", "--full"]) == 7
    assert seen == [["view", "run.jsonl"], ["view", "run.jsonl", "--html", "out.html"], ["view", "run.jsonl", "--full"]]


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
    from partialdyn.config import from_environment
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

def test_demo_prints_the_table_then_a_short_log_whose_recompile_names_the_user_line():
    """The one recompile reason is on screen, next to a user line, not buried under parameter guards."""
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
    printed = (out.stdout + out.stderr).splitlines()
    assert len(printed) <= 40, "\n".join(printed)
    summaries = [line for line in printed if line.startswith(("summary:", "overall:"))]
    assert summaries and not any("?" in line for line in summaries), summaries
    recompiles = [line for line in printed if line.lstrip().startswith("+") and " recompile " in line]
    assert recompiles, out.stdout
    assert all(re.search(r" failed: got \d+ \(from .+ at \S*demo\.py:\d+\)$", line) for line in recompiles), recompiles
    assert any("parameters of TinyTransformer: static shapes" in line for line in printed), out.stdout


# ---------------------------------------------------------------- the suite's own rules

def run_pytest_with_our_conftest(folder, files: dict) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    for name, text in files.items():
        (folder / name).write_text(text)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=120)


def test_a_skipped_test_fails_the_run_unless_it_needs_missing_hardware(tmp_path):
    out = run_pytest_with_our_conftest(tmp_path / "tests", {"test_skips.py": (
        "import pytest\n"
        "def test_package_missing():\n    pytest.skip('no numpy')\n"
        "def test_gpu_missing():\n    pytest.skip('needs hardware: a CUDA device')\n"
        "@pytest.mark.xfail(strict=True, raises=ZeroDivisionError)\n"
        "def test_known_failure():\n    1 / 0\n")})
    assert out.returncode == 1, out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("1 failed, 1 skipped, 1 xfailed"), out.stdout
    assert "test_package_missing was skipped (no numpy); skips fail in this suite" in out.stdout


def test_a_module_skipped_at_import_fails_the_run(tmp_path):
    out = run_pytest_with_our_conftest(tmp_path / "tests", {
        "test_module_skip.py": "import pytest\npytest.importorskip('no_such_package_here')\n"})
    assert out.returncode != 0, out.stdout
    assert "module test_module_skip.py was skipped (could not import 'no_such_package_here'" in out.stdout
