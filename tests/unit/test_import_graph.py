"""The package's import graph has no circles (DESIGN.md, Layers), and the moved modules' old paths still import.

The graph is read from the source (module-level imports, not those inside functions or under
``TYPE_CHECKING``), so a circle is found whichever module a process happens to import first.
Importing ``a.b.c`` runs ``a`` and ``a.b`` too, so those count as edges, except a package's own
ancestors, which are already being imported when a submodule of theirs runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The folders that install as saemerge's packages (pyproject.toml's package-dir).
ROOTS = {
    "saemerge": REPO / "src" / "saemerge",
    "saemerge.components": REPO / "components",
    "saemerge.pipeline": REPO / "pipeline",
}

# Old import paths kept for one release, and where their code lives now.
MOVED = {
    "saemerge.runlog": "saemerge.run.layout",
    "saemerge.lease": "saemerge.run.lease",
    "saemerge.compute": "saemerge.run.compute",
    "saemerge.progress": "saemerge.run.progress",
    "saemerge.attribution": "saemerge.run.attribution",
    "saemerge.objectstore": "saemerge.s3server.server",
    "saemerge.storetls": "saemerge.s3server.tls",
    "saemerge.report": "saemerge.reports.run",
    "saemerge.units": "saemerge.util.units",
    "saemerge.cpus": "saemerge.util.cpus",
    "saemerge.manifest": "saemerge.util.manifest",
}


def modules() -> dict[str, Path]:
    found = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _module_level_imports(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try):
            yield from (n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom))


def import_graph() -> dict[str, set[str]]:
    """Each saemerge module -> the saemerge modules that importing it runs at module level."""
    mods = modules()

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {t for a in node.names if (t := known(a.name))}
                continue
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*head, base] if base else head)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
            targets |= set(subs)
            if len(subs) < len(node.names) and (found := known(base)):  # names taken from `base` itself
                targets.add(found)
        deps: set[str] = set()
        for target in targets:
            parts = target.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[name] = {d for d in deps if d in mods and d != name and d not in ancestors}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_a_circle():
    """The walk itself: a circle through a package's __init__ and a plain one are both found."""
    graph = {"a": {"a.b"}, "a.b": {"c"}, "c": {"a"}, "d": set()}
    assert cycles(graph) == [["a", "a.b", "c"]]
    graph = import_graph()
    assert "saemerge.run.layout" in graph["saemerge.run.inspect"]
    assert "saemerge.storage" in graph["saemerge.run.tables"]


def test_no_module_level_import_circles():
    assert cycles(import_graph()) == []


def test_run_bookkeeping_imports_only_downwards():
    """layout, then records, then reports: nothing in run/ reaches up into inspect, reports or steps."""
    graph = import_graph()
    for name in graph:
        if name.startswith("saemerge.run.") and name != "saemerge.run.inspect":
            up = {d for d in graph[name] if d.startswith(("saemerge.steps", "saemerge.report", "saemerge.run.inspect"))}
            assert not up, f"{name} imports {up}"


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_old_paths_still_import(old, new):
    """Each old path imports first in a fresh interpreter (no partly-initialised module) and
    offers the moved code; a module moved whole is the very same object (monkeypatching it works)."""
    code = f"""
import importlib
old = importlib.import_module({old!r})
new = importlib.import_module({new!r})
defined = [n for n in vars(new) if not n.startswith("_") and getattr(vars(new)[n], "__module__", None) == new.__name__]
assert defined and all(getattr(old, n) is vars(new)[n] for n in defined), defined
assert old is new or old.__name__ == "saemerge.runlog"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_util_imports_nothing_of_saemerge_but_errors():
    """util/ sits below every layer (storage and the cache both use its manifest); so does the
    torch-free checkpoint format, which preflight and the checkpoint reader share, and the device
    decision, which ops/, evaluate/, steps/, preflight and the pipeline share."""
    graph = import_graph()
    for name in graph:
        if name.startswith("saemerge.util.") or name in ("saemerge.checkpoint_format", "saemerge.devices"):
            assert graph[name] <= {"saemerge.errors"}, f"{name} imports {graph[name]}"
