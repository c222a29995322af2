"""Imports go down the layers drawn in docs/architecture.md, and never in a circle.

The "Layers" block of docs/architecture.md is the order, top to bottom: a line may
import itself and the lines below it; names on one line are peers and import
neither each other nor anything above. Every import counts, lazy ones included.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mlxctl"
DOCS = ROOT / "docs" / "architecture.md"

# Circles that another change is removing (issue 14, the engine refactor); once
# it lands, this test names the entry to delete.
ALLOWED_CIRCLES: set[frozenset[str]] = set()

Edges = dict[str, set[str]]


def layer_rows(doc: str) -> list[list[str]]:
    """The units of each line of the Layers block, top first ("mlxctl" is the package root)."""
    block = re.search(r"## Layers\n.*?```text\n(.*?)```", doc, re.DOTALL)
    assert block, "docs/architecture.md lost its Layers block"
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


def import_edges(src: Path) -> Edges:
    """Module → the mlxctl modules it imports (a name from a package counts as its module)."""
    package = src.name
    modules: dict[str, Path] = {}
    for path in src.rglob("*.py"):
        parts = [package, *path.relative_to(src).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    edges: Edges = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in modules else node.module for t in targets]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    edges[name].add(target)
    return edges


def unit_of(module: str, units: list[str], package: str) -> str | None:
    """The longest unit naming `module`, or None; `package` alone is the root module."""
    if module == package:
        return package if package in units else None
    dotted = module.removeprefix(f"{package}.")
    named = [u for u in units if u != package and (dotted == u or dotted.startswith(f"{u}."))]
    return max(named, key=len, default=None)


def layer_violations(edges: Edges, rows: list[list[str]], package: str) -> list[str]:
    row_of = {unit: i for i, row in enumerate(rows) for unit in row}
    units = list(row_of)
    found = []
    for module, targets in sorted(edges.items()):
        here = unit_of(module, units, package)
        if here is None:
            found.append(f"{module} belongs to no line of the Layers block")
            continue
        for target in sorted(targets):
            there = unit_of(target, units, package)
            if there is None or there == here:
                continue
            if row_of[there] <= row_of[here]:
                found.append(f"{module} ({here}) imports {target} ({there}), not below it")
    return found


def circles(edges: Edges) -> list[frozenset[str]]:
    """The import circles: strongly connected sets of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = {stack.pop()}
            while v not in members:
                members.add(stack.pop())
            if len(members) > 1:
                found.append(frozenset(members))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_import_goes_down_the_layers() -> None:
    rows = layer_rows(DOCS.read_text())
    violations = layer_violations(import_edges(SRC), rows, "mlxctl")
    assert violations == [], "fix the import or the Layers block of docs/architecture.md"


def test_every_layer_names_code() -> None:
    rows = layer_rows(DOCS.read_text())
    modules = import_edges(SRC)
    units = [u for row in rows for u in row]
    empty = [u for u in units if not any(unit_of(m, units, "mlxctl") == u for m in modules)]
    assert empty == [], f"the Layers block names what src/mlxctl no longer has: {empty}"


def test_no_import_circle() -> None:
    found = set(circles(import_edges(SRC)))
    assert found - ALLOWED_CIRCLES == set(), "break these import circles"
    gone = [sorted(c) for c in ALLOWED_CIRCLES - found]
    assert gone == [], f"delete these from ALLOWED_CIRCLES, they are gone: {gone}"


def test_the_checks_catch_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    for folder in ("store", "store/local", "api"):
        (src / folder).mkdir(parents=True)
        (src / folder / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    (src / "store" / "local" / "scan.py").write_text("from pkg.api import routes\n")
    lazy = "def f() -> None:\n    from pkg.store.local import scan\n"
    (src / "api" / "routes.py").write_text(lazy)
    (src / "stray.py").write_text("import pkg\n")
    rows = layer_rows("## Layers\n\n```text\napi\nstore.local\nstore\npkg\n```\n")
    edges = import_edges(src)
    assert layer_violations(edges, rows, "pkg") == [
        "pkg.store.local.scan (store.local) imports pkg.api.routes (api), not below it",
        "pkg.stray belongs to no line of the Layers block",
    ]
    assert circles(edges) == [frozenset({"pkg.api.routes", "pkg.store.local.scan"})]
