"""The import graph of conrdata, conrmodel and pipelines has no cycle; docs references resolve.

Every module is parsed with :mod:`ast` (nothing is imported). Edges are all imports of project modules,
at module level and inside functions alike (a function-level import hides a dependency, it does not
remove it); imports under ``if TYPE_CHECKING:`` are skipped (they never run). Relative imports are
resolved against the importing module's package. ``from package import name`` is followed through
the package ``__init__`` to the module that defines ``name`` when ``__init__`` only re-exports it, so
importing a package's public API does not make a module depend on every sibling the ``__init__``
pulls in. Importing ``a.b.c`` is an edge to ``a.b.c`` only: the parent packages' ``__init__`` run too,
but every module of a package would otherwise "depend" on its own package.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("conrdata", "conrmodel", "pipelines")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    #: names bound at module level by ``from X import name``: name -> (resolved X, original name)
    reexports: dict[str, tuple[str, str]] = field(default_factory=dict)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def load_modules() -> dict[str, Module]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            name, is_pkg = _module_name(path)
            mods[name] = Module(name, path, is_pkg, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    _collect_reexports(mods)
    return mods


def _collect_reexports(mods: dict[str, Module]) -> None:
    for m in mods.values():
        for node in m.tree.body:
            if isinstance(node, ast.ImportFrom) and (base := _resolve_from(m, node)) is not None:
                for alias in node.names:
                    if alias.name != "*":
                        m.reexports[alias.asname or alias.name] = (base, alias.name)


def _resolve_from(m: Module, node: ast.ImportFrom) -> str | None:
    """The absolute module name ``from X import ...`` names (X resolved if relative)."""
    if node.level == 0:
        return node.module
    package = m.name if m.is_package else m.name.rsplit(".", 1)[0]
    parts = package.split(".")
    if node.level - 1 > len(parts) - 1:
        return None
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def _defining_module(mods: dict[str, Module], module: str, name: str, depth: int = 0) -> str:
    """Where ``from module import name`` really comes from: a submodule, the module a package
    ``__init__`` re-exports ``name`` from (followed through further packages), or ``module`` itself."""
    if f"{module}.{name}" in mods:
        return f"{module}.{name}"
    mod = mods[module]
    origin = mod.reexports.get(name)
    if not mod.is_package or origin is None or origin[0] not in mods or depth > 10:
        return module  # defined there (or a plain module's own import: a real edge to it)
    return _defining_module(mods, origin[0], origin[1], depth + 1)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(m: Module):
    """(line, imported absolute module or (package, name)) for every runtime import in ``m``."""
    skip: set[int] = set()
    for node in ast.walk(m.tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    for node in ast.walk(m.tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(m, node)
            if base is not None:
                for alias in node.names:
                    yield node.lineno, base, alias.name


def import_graph(mods: dict[str, Module]) -> dict[str, dict[str, int]]:
    """{module: {imported project module: first line}}."""
    graph: dict[str, dict[str, int]] = {name: {} for name in mods}
    for m in mods.values():
        for line, base, name in _imports(m):
            if name is None or name == "*":
                target = base if base in mods else None
            else:
                target = _defining_module(mods, base, name) if base in mods else None
            if target is not None and target != m.name:
                graph[m.name].setdefault(target, line)
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (a list of modules, first repeated at the end) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan; the graph has a few hundred nodes
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_one_cycle(graph, comp) for comp in components]


def _one_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth first)."""
    inside = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in inside:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def describe(graph, cycle: list[str], mods: dict[str, Module]) -> str:
    steps = [f"{a} -> {b}  ({mods[a].path.relative_to(REPO)}:{graph[a][b]})"
             for a, b in zip(cycle, cycle[1:])]
    return "\n    ".join(steps)


# --- the graph walker itself ----------------------------------------------------------------------------


def _graph_of(files: dict[str, str]) -> dict[str, dict[str, int]]:
    mods = {}
    for rel, text in files.items():
        path = REPO / rel  # names only: the trees come from the text, nothing is written into the repo
        name, is_pkg = _module_name(path)
        mods[name] = Module(name, path, is_pkg, ast.parse(text))
    _collect_reexports(mods)
    return import_graph(mods)


def test_walker_resolves_relative_function_level_and_reexported_imports():
    graph = _graph_of({
        "pk/__init__.py": "from pk.a import A\nfrom pk import b\n",
        "pk/a.py": "A = 1\ndef f():\n    from .c import C\n",
        "pk/b.py": "from pk import A\nimport typing\nif typing.TYPE_CHECKING:\n    from pk.c import C\n",
        "pk/c.py": "import pk.b\nfrom . import a\nC = 2\n",
    })
    assert graph["pk.b"] == {"pk.a": 1}  # through the re-export; TYPE_CHECKING import skipped
    assert graph["pk.a"] == {"pk.c": 3}  # function level, relative
    assert graph["pk.c"] == {"pk.b": 1, "pk.a": 2}
    assert graph["pk"] == {"pk.a": 1, "pk.b": 2}
    (cycle,) = find_cycles(graph)
    assert cycle == ["pk.a", "pk.c", "pk.a"]
    assert find_cycles({"x": {"y": 1}, "y": {}}) == []


# --- the project --------------------------------------------------------------------------------------------


def test_no_import_cycles():
    mods = load_modules()
    assert {"conrdata.dataset.writer", "conrmodel.train.loop", "pipelines.run"} <= set(mods)
    graph = import_graph(mods)
    assert sum(len(v) for v in graph.values()) > 200  # the walker sees the project's imports
    cycles = find_cycles(graph)
    report = "\n".join(f"  cycle {' -> '.join(c)}:\n    {describe(graph, c, mods)}" for c in cycles)
    assert not cycles, f"import cycles between project modules:\n{report}"


_DESIGN_REF = re.compile(r"[\w./-]*design\.md", re.IGNORECASE)


def test_design_references_point_into_the_repo():
    files = [p for pkg in (*PACKAGES, "tests", "benchmarks") for p in (REPO / pkg).rglob("*.py")]
    files += [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "manifests").glob("*.md")]
    this = Path(__file__).resolve()
    bad = []
    for path in files:
        if path.resolve() == this:
            continue
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for ref in _DESIGN_REF.findall(line):
                targets = [(REPO / ref).resolve(), (path.parent / ref).resolve()]
                if not any(t.is_file() and t.is_relative_to(REPO) for t in targets):
                    bad.append(f"{path.relative_to(REPO)}:{k}: {ref}")
    assert (REPO / "docs" / "design.md").is_file()
    assert not bad, "references to a design page that is not in the repository:\n" + "\n".join(bad)
