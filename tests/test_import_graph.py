"""The import graph of ``packages/`` and ``services/`` has no circle.

Every import counts, the lazy ones inside functions and those under ``TYPE_CHECKING`` too: a
circle hidden in a function body is still a lower layer reaching up (the registry's promotion
once imported the evaluator, which imports inference, which imports the registry).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every source module of every member."""
    modules: dict[str, Path] = {}
    for src in sorted([*ROOT.glob("packages/*/src"), *ROOT.glob("services/*/src")]):
        for file in sorted(src.rglob("*.py")):
            parts = list(file.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = file
    return modules


def imported(module: str, file: Path, known: set[str]) -> set[str]:
    """The known modules ``module`` imports anywhere in its file."""
    found: set[str] = set()
    package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        found.update(n for n in names if n in known and n != module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported(name, file, set(modules)) for name, file in modules.items()}


def test_the_import_graph_has_no_circle() -> None:
    edges = graph()
    assert len(edges) > 50  # every member's modules were read
    found = cycles(edges)
    assert not found, "import circles: " + "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{m} -> {sorted(edges[m] & set(c))}" for m in c) + ")"
        for c in found
    )


def test_the_walk_sees_lazy_imports_and_finds_a_circle() -> None:
    # The registry's storage layer imports nothing above it; the checker itself must see a
    # circle made of lazy imports (how the old one hid).
    edges = graph()
    assert "verticals.core.registry" in edges["verticals.core.inference"]  # a lazy import
    assert not edges["verticals.core.registry"] & {
        "verticals.core.evaluation",
        "verticals.core.inference",
        "verticals.core.training",
        "verticals.core.sequence",
    }
    edges["verticals.core.registry"].add("verticals.core.evaluation")
    assert cycles(edges) == [
        ["verticals.core.evaluation", "verticals.core.inference", "verticals.core.registry"]
    ]
