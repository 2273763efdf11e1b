"""The import graph of the core, the QuPath bridge and the 3D Slicer module: no cycles, adapters outside.

The graph is read from the source files with ``ast``, function-local imports included: an import
moved into a function still runs and still ties the two modules together, it only hides the cycle
from a plain ``import``. An import of ``a.b.c`` is an edge to the module ``a.b.c``, not to the
packages ``a`` and ``a.b`` that Python runs first: a package ``__init__`` that imports its own
modules is the usual layout, not a cycle.

The adapters (QuPath bridge, 3D Slicer module) import the core, never the reverse: the Slicer
extension bundles only ``core/sarcoma_risk`` (SlicerSarcomaRisk/CMakeLists.txt), so a core module
that imports an adapter fails inside Slicer. The one exception is the demo, the composition root
that runs the product as its users do: its slide goes through the QuPath bridge's scoring path and
its MRI through the Slicer module's logic (``make demo`` needs the whole source tree).

One import policy (README, "Architecture"): imports at the top of the module, except at the
boundaries where a lazy import is the point -- the command line (``sarcoma_risk/cli``,
``qupath_bridge/cli*``: ``--help`` stays fast), a package ``__init__``'s module ``__getattr__``, the
3D Slicer module (not checked here: Slicer's Python loads it at start-up) and the Slicer and QuPath
runtimes a core module reaches (``slicer``, ``vtk``, ``paquo``, ``jpype``: they start an application
or a JVM). Any other import inside a function carries a ``# lazy: <reason>`` comment.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where each top-level import name of this repository lives (a package folder or a single module).
SOURCES: dict[str, Path] = {
    "sarcoma_risk": ROOT / "core" / "sarcoma_risk",
    "qupath_bridge": ROOT / "qupath_bridge",
    "SarcomaRiskLib": ROOT / "SlicerSarcomaRisk" / "SarcomaRiskLib",
    "SarcomaRisk": ROOT / "SlicerSarcomaRisk" / "SarcomaRisk.py",
}
#: Import names of the adapters; "SlicerSarcomaRisk" is the module's folder, never importable as such.
ADAPTERS = ("qupath_bridge", "SarcomaRiskLib", "SarcomaRisk", "SlicerSarcomaRisk")
#: (core module, adapter) pairs the demo may use, and nothing else in the core.
DEMO_USES_THE_ADAPTERS = {
    ("sarcoma_risk.demo.pathology", "qupath_bridge"),
    ("sarcoma_risk.demo.radiology", "SarcomaRiskLib"),
}

#: Folders checked by the import policy, and the modules in them that are command-line boundaries.
POLICY_ROOTS = (ROOT / "core", ROOT / "qupath_bridge")
CLI_BOUNDARIES = ("core/sarcoma_risk/cli/*.py", "qupath_bridge/cli*.py")
#: Libraries that start a runtime (3D Slicer, QuPath's JVM) when imported: imported where used.
RUNTIME_BOUNDARIES = ("slicer", "vtk", "qt", "ctk", "SarcomaRiskLib", "SarcomaRisk", "paquo", "jpype")

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of its first import}


def module_files(sources: dict[str, Path]) -> dict[str, Path]:
    """Every module of ``sources`` by dotted name (a package by its ``__init__.py``)."""
    modules = {}
    for top, location in sources.items():
        if location.is_file():
            modules[top] = location
            continue
        for path in sorted(location.rglob("*.py")):
            parts = [top, *path.relative_to(location).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Every module ``name`` imports, anywhere in the file, with its line.

    An import of this repository's code is resolved to the module it runs (``from pkg import mod``
    imports ``pkg.mod``; ``from pkg.mod import function`` imports ``pkg.mod``); others are kept as
    written.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule if submodule in known else source, node.lineno))
    return found


def import_graph(sources: dict[str, Path]) -> tuple[Graph, dict[str, Path]]:
    """The graph of imports between the modules of ``sources``, and where each module lives."""
    modules = module_files(sources)
    known = set(modules)
    graph: Graph = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(name, path, known):
            if target in known and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph, modules


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def find_cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle per group of modules that import each other: [a, b, ..., a]."""
    cycles = []
    for group in strongly_connected(graph):
        members, start = set(group), group[0]
        parent: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if start in graph[node]:  # never true for start itself: the graph has no self-imports
                path = [node]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                cycles.append([*reversed(path), start])
                break
            for child in sorted(graph[node]):
                if child in members and child not in parent:
                    parent[child] = node
                    queue.append(child)
    return cycles


def describe(cycle: list[str], graph: Graph, modules: dict[str, Path]) -> str:
    """``a -> b -> a`` with the file and line of each import."""
    steps = [cycle[0]]
    for here, there in zip(cycle, cycle[1:]):
        where = modules[here].relative_to(ROOT) if modules[here].is_relative_to(ROOT) else modules[here]
        steps.append(f"-> {there} ({where}:{graph[here][there]})")
    return " ".join(steps)


def core_imports_of_adapters(sources: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(core module, adapter, line) for every import of an adapter by a core module."""
    modules = module_files(sources)
    found = set()
    for name, path in modules.items():
        if name.split(".")[0] != "sarcoma_risk":
            continue
        for target, line in imports_of(name, path, set(modules)):
            top = target.split(".")[0]
            if top in ADAPTERS:
                found.add((name, top, line))
    return sorted(found)


def unexplained_local_imports(path: Path, root: Path) -> list[str]:
    """``file:line: import`` for every import inside a function or class of ``path`` that the policy does not allow."""
    relative = path.relative_to(root)
    if any(relative.match(pattern) for pattern in CLI_BOUNDARIES):
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []

    def visit(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if inside and not allowed(child):
                    found.append(f"{relative}:{child.lineno}: {ast.unparse(child)}")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                lazy_getattr = path.name == "__init__.py" and node is tree and child.name == "__getattr__"
                if not lazy_getattr:
                    visit(child, True)
            else:
                visit(child, inside)

    def allowed(node: ast.Import | ast.ImportFrom) -> bool:
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.level:
            names = ["."]
        if all(name.split(".")[0] in RUNTIME_BOUNDARIES for name in names):
            return True
        return any("# lazy:" in line for line in lines[node.lineno - 1:node.end_lineno])

    tree = ast.parse(text, str(path))
    visit(tree, False)
    return found


# ---- the repository -----------------------------------------------------------------------------

def test_imports_inside_functions_are_at_a_boundary_or_say_why_they_are_lazy():
    found = [line for folder in POLICY_ROOTS for path in sorted(folder.rglob("*.py"))
             for line in unexplained_local_imports(path, ROOT)]
    assert not found, ("import at the top of the module, or add '# lazy: <reason>' (README, Architecture):\n  "
                       + "\n  ".join(found))


def test_the_core_the_qupath_bridge_and_the_slicer_module_import_each_other_without_cycles():
    graph, modules = import_graph(SOURCES)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (move what both sides need to where it belongs):\n  " + "\n  ".join(
        describe(c, graph, modules) for c in cycles)


def test_only_the_demo_in_the_core_imports_an_adapter_and_only_the_one_it_drives():
    unexpected = [f"{name} imports {adapter} (line {line})" for name, adapter, line in core_imports_of_adapters(SOURCES)
                  if (name, adapter) not in DEMO_USES_THE_ADAPTERS]
    assert not unexpected, ("the core must not import the QuPath bridge or the 3D Slicer module (Slicer bundles "
                            "only core/sarcoma_risk):\n  " + "\n  ".join(unexpected))


def test_the_graph_sees_the_adapters_import_the_core():
    """Guards the two tests above against a graph that finds no imports at all."""
    graph, _ = import_graph(SOURCES)
    for adapter in ("qupath_bridge", "SarcomaRiskLib"):
        assert any(target.startswith("sarcoma_risk.") for name, edges in graph.items()
                   if name.split(".")[0] == adapter for target in edges), f"no edge from {adapter} to the core"


# ---- the checks themselves, on a small package written for the purpose ------------------------

def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_a_cycle_hidden_in_a_function_is_found_and_named_with_its_lines(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "from pkg.a import VALUE\n",
        "a.py": "from pkg.sub import b\nVALUE = 1\n",
        "sub/__init__.py": "",
        "sub/b.py": "from . import c\n",
        "sub/c.py": "def later():\n    from pkg.a import VALUE\n    return VALUE\n",
        "d.py": "import pkg.a\n",
    })
    graph, modules = import_graph({"pkg": package})
    assert graph["pkg.sub.b"] == {"pkg.sub.c": 1}  # a relative import of a module resolves to it
    (cycle,) = find_cycles(graph)
    assert cycle == ["pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a"]
    text = describe(cycle, graph, modules)
    assert f"-> pkg.a ({package / 'sub' / 'c.py'}:2)" in text


def test_a_package_init_importing_its_own_modules_is_not_a_cycle(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "from pkg.a import VALUE\n",
        "a.py": "from pkg.b import OTHER\nVALUE = OTHER\n",
        "b.py": "OTHER = 1\n",
    })
    graph, _ = import_graph({"pkg": package})
    assert find_cycles(graph) == []
    assert graph["pkg"] == {"pkg.a": 1} and graph["pkg.a"] == {"pkg.b": 1}


def test_a_core_module_importing_an_adapter_inside_a_function_is_reported(tmp_path):
    core = write_package(tmp_path, {"__init__.py": "", "wsi.py": "def f():\n    from qupath_bridge.x import y\n"})
    assert core_imports_of_adapters({"sarcoma_risk": core}) == [("sarcoma_risk.wsi", "qupath_bridge", 2)]


def test_the_import_policy_reports_a_local_import_without_a_reason_and_spares_the_boundaries(tmp_path):
    write_package(tmp_path, {
        "__init__.py": "def __getattr__(name):\n    import json\n    return json\n",
        "heavy.py": ("def f():\n    import json\n    return json\n\n"
                     "def g():\n    import torch  # lazy: foundation module, see test_package\n"
                     "    from paquo.projects import QuPathProject\n    return torch, QuPathProject\n"),
        "cls.py": "class C:\n    def m(self):\n        from . import heavy\n        return heavy\n",
    })
    (tmp_path / "qupath_bridge").mkdir()
    (tmp_path / "qupath_bridge" / "cli_score.py").write_text("def run():\n    import json\n", encoding="utf-8")
    found = [line for path in sorted(tmp_path.rglob("*.py"))
             for line in unexplained_local_imports(path, tmp_path)]
    assert found == ["pkg/cls.py:3: from . import heavy", "pkg/heavy.py:2: import json"]


@pytest.mark.parametrize("demo_module, adapter", sorted(DEMO_USES_THE_ADAPTERS))
def test_each_allowed_demo_import_still_exists(demo_module, adapter):
    """An exception no longer used is removed from the list, so that it cannot cover a new import."""
    assert (demo_module, adapter) in {(n, a) for n, a, _ in core_imports_of_adapters(SOURCES)}
