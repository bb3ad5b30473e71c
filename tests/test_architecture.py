"""The shape of the code, as issue 16 sets it: no module over 400 lines, no function over 60 lines
outside tests, no import cycle (imports inside functions count), integrations never import Dagster and
only storage speaks SQL to the database."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pv_platform", "integrations", "dashboards")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules `name` imports anywhere in its body (top level or inside functions)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports are never executed: annotations, not dependencies
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_no_import_cycle():
    modules = _modules()
    known = set(modules)
    # a package's __init__ re-exporting its submodules is not a cycle of meaning: drop package -> child
    graph = {
        name: {t for t in _imports(name, path, known) if not t.startswith(name + ".")}
        for name, path in modules.items()
    }
    assert _cycles(graph) == []


def test_modules_and_functions_are_small():
    too_long = []
    for name, path in _modules().items():
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"function {name}.{node.name}: {length} lines")
    assert too_long == []


def test_layering():
    """Integrations never import Dagster or storage; KPI maths does no I/O; SQL lives in storage."""
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        imported = {
            a.name.split(".")[0] if isinstance(n, ast.Import) else (n.module or "")
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        if name.startswith("integrations") and any(
            m.startswith(("dagster", "pv_platform.storage", "sqlalchemy", "psycopg"))
            for m in imported
        ):
            offenders.append(f"{name} imports Dagster or storage")
        if name.startswith("pv_platform.kpi") and any(
            m.startswith(("pv_platform.storage", "sqlalchemy", "psycopg", "dagster"))
            for m in imported
        ):
            offenders.append(f"{name}: KPI maths imports storage or Dagster")
        if name.startswith("pv_platform.defs") and any(
            m.startswith(("sqlalchemy", "psycopg")) for m in imported
        ):
            offenders.append(f"{name}: Dagster definitions speak SQL")
    assert offenders == []
