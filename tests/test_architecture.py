"""The architecture stays easy to see: no import cycles in covid_core/ or app/ (imports inside functions count
too), the core never imports Streamlit, and every page stays layout-sized."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

CORE, APP = REPO / "covid_core", REPO / "app"


def _module_name(path: Path) -> str:
    if path.is_relative_to(CORE):
        parts = ["covid_core", *path.relative_to(CORE).with_suffix("").parts]
    else:  # the app runs with app/ on sys.path: its modules are top-level names (ui, case_view, views.diagnose)
        parts = list(path.relative_to(APP).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The known modules ``path`` imports anywhere in it (``from .x import y`` resolved; ``y`` counts when it is
    itself a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def _graph() -> dict[str, set[str]]:
    files = [*CORE.rglob("*.py"), *APP.rglob("*.py")]
    known = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, known) for f in files}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    # A package imports its own modules from __init__; a module importing its package back is the cycle to catch.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in _graph().items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_never_imports_streamlit():
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(n == "streamlit" or n.startswith("streamlit.") for n in names), path


def test_each_page_is_layout_sized():
    for page in (APP / "views").glob("*.py"):
        assert len(page.read_text().splitlines()) <= 150, f"{page.name}: move its logic into covid_core/"
