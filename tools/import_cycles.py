"""``python -m tools import-cycles``: fail when modules of the workspace import each other in a cycle.

The graph has an edge ``a -> b`` when module ``a`` imports ``b`` while it is being imported: at
module level, in a class body, or under a module-level ``if``/``try``. Imports inside functions and
under ``if TYPE_CHECKING:`` run later (or never) and are left out; they are how a cycle is broken.
``from package import name`` points to ``package.name`` when that is a module, else to
``package``. Only the ``headwater`` modules of each package's ``src/`` are considered.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "headwater"


def module_name(src: Path, path: Path) -> str:
    """``src/headwater/core/_x.py`` -> ``headwater.core._x``; a package is its ``__init__``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_time_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run when the module (or class body) runs, descending into if/try/with."""
    for node in body:
        if isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                yield from _import_time_statements(node.orelse)
                continue
            yield from _import_time_statements([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            handlers = [s for h in node.handlers for s in h.body]
            yield from _import_time_statements(
                [*node.body, *handlers, *node.orelse, *node.finalbody]
            )
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _import_time_statements(node.body)
        else:
            yield node


def imports(module: str, is_package: bool, tree: ast.Module, known: set[str]) -> set[str]:
    """The workspace modules ``module`` imports at import time."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in _import_time_statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {name for name in found if name in known and name != module}


def graph(sources: Iterable[Path]) -> dict[str, set[str]]:
    """The import-time graph of every ``headwater`` module under ``sources`` (``src/`` dirs)."""
    files = {
        module_name(src, path): path
        for src in sources
        for path in sorted((src / PREFIX).rglob("*.py"))
    }
    known = set(files)
    return {
        name: imports(name, path.name == "__init__.py", ast.parse(path.read_bytes()), known)
        for name, path in files.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def workspace_sources(root: Path = ROOT) -> list[Path]:
    """Every package's ``src/`` directory."""
    return sorted(p.parent for p in root.glob("*/src/headwater"))


def main(argv: list[str]) -> int:
    """Print the cycles of the workspace (or of the ``src/`` directories given); 1 if any."""
    sources = [Path(a) for a in argv] or workspace_sources()
    edges = graph(sources)
    found = cycles(edges)
    for component in found:
        members = set(component)
        print(f"import cycle among {len(component)} modules:")
        for name in component:
            print(f"  {name} -> {', '.join(sorted(edges[name] & members))}")
    if not found:
        print(f"no import cycles among {len(edges)} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
