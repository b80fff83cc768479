"""The package's layers import one way (docs/architecture.md): read off the source, function-level imports
included."""
from __future__ import annotations

import ast
import dis
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "partialdyn"

# Modules below the frontend: they must import nothing from the frontend or the runtime above them.
LOWER_LAYERS = ("partialdyn.graph", "partialdyn.shapes", "partialdyn.guards", "partialdyn.errors",
                "partialdyn.sources", "partialdyn.trackers", "partialdyn.rebuilt", "partialdyn.names")
UPPER_LAYERS = ("partialdyn.frontend", "partialdyn.runtime")


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = (root.name,) + path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules of the package at `root` it imports anywhere in its file."""
    modules = _modules(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for alias in node.names:
                    if f"{origin}.{alias.name}" in modules:
                        targets.add(f"{origin}.{alias.name}")
                    elif origin in modules:
                        targets.add(origin)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
        targets.discard(name)
        graph[name] = {t for t in targets if not (name.startswith(t + ".") and modules[t].name == "__init__.py")}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _in(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_layers_below_the_frontend_import_nothing_from_the_frontend_or_the_runtime():
    graph = import_graph()
    wrong = sorted(f"{module} imports {target}" for module, targets in graph.items() if _in(module, LOWER_LAYERS)
                   for target in targets if _in(target, UPPER_LAYERS))
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    cycles = [sorted(cycle) for cycle in import_cycles(import_graph())]
    assert not cycles, cycles


def test_the_tracer_imports_every_module_that_registers_protocol_rules():
    """A rule module registers its rules when imported: one the tracer does not import may be missing from the
    protocol tables when a trace dispatches (its rules found only if some other import happened to load it)."""
    registering = {f"partialdyn.frontend.{path.stem}" for path in (PACKAGE / "frontend").glob("*.py")
                   if re.search(r"protocol\.register(_binary)?\(", path.read_text())}
    missing = sorted(registering - import_graph()["partialdyn.frontend.tracer"])
    assert registering and not missing, missing


def test_the_import_parser_sees_function_level_and_relative_imports(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from .sub import a\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "a.py").write_text("def f():\n    from ..b import g\n    from . import c\n")
    (root / "sub" / "c.py").write_text("import pkg.b\n")
    (root / "b.py").write_text("g = 1\n")
    graph = import_graph(root)
    assert graph["pkg"] == {"pkg.sub.a"}
    assert graph["pkg.sub.a"] == {"pkg.b", "pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.b"}
    assert import_cycles(graph) == []
    (root / "b.py").write_text("from .sub import c\n")
    assert import_cycles(import_graph(root)) == [frozenset({"pkg.b", "pkg.sub.c"})]


def test_the_runtime_names_no_opcode_it_reads_what_an_opcode_does_at_a_break_from_its_handler():
    """Each opcode's behaviour at a graph break is declared next to its tracing handler (frontend/opcodes.py);
    the runtime that performs the break step must not re-implement opcodes by name."""
    named = []
    for path in sorted((PACKAGE / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in dis.opmap:
                named.append(f"{path.name}:{node.lineno} {node.value}")
    assert named == []
