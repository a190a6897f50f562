"""The wiring rules of ``server/``, checked from the code itself.

* One composition root: no module but ``server/__main__.py`` imports ``server.app``.
* No import cycle crosses two packages: every strongly connected component of the
  module import graph stays inside one of ``server`` (the top-level modules),
  ``server.rest``, ``server.jobs``, ``server.net``... ``TYPE_CHECKING`` imports and
  imports inside functions count: they are dependencies all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "server"


def modules() -> dict[str, Path]:
    """Every module of the ``server`` package by dotted name."""
    found = {}
    for path in SERVER.rglob("*.py"):
        parts = list(path.relative_to(SERVER.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``server`` that ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    result: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        result |= {c for c in candidates if c in known and c != name}
    return result


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def components(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative: the graph may be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                result.append(component)
    return result


def package_of(module: str) -> str:
    """``server`` for the top-level modules, else ``server.<subpackage>``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (len(parts) == 2 and (SERVER / parts[1]).is_dir()) else "server"


def test_only_the_entry_point_imports_the_composition_root() -> None:
    importers = sorted(name for name, targets in graph().items() if "server.app" in targets)
    assert importers == ["server.__main__"]


def test_no_import_cycle_crosses_packages() -> None:
    crossing = [sorted(c) for c in components(graph()) if len({package_of(m) for m in c}) > 1]
    assert crossing == []


def test_the_checks_see_cycles() -> None:
    """The graph and the components are right on a known case (the checks could pass vacuously)."""
    edges = {"server.a": {"server.rest.b"}, "server.rest.b": {"server.a"}, "server.rest.c": set()}
    found = [sorted(c) for c in components(edges) if len(c) > 1]
    assert found == [["server.a", "server.rest.b"]]
    assert package_of("server.rest.b") == "server.rest" and package_of("server.app") == "server"
    assert "server.jobs.job" in graph()["server.jobs.engine"]
