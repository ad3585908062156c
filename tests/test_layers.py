"""The package's layout holds: no import cycles, imports point down the layers, and an import
inside a function says why it is there. Reads the source (ast), so it covers every import a
module can make, not only the ones a test happens to run."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mtl_core"

# Rank of each part of mtl_core: a module may import parts of a lower rank, and modules of its own
# part. Parts of equal rank (say runs and lab) may not import each other.
RANKS = {
    "registry": 0,
    "suites": 1,
    "methods": 1,
    "architectures": 2,  # built for a suite's data, on the suites' backbones
    "config": 3,  # validates a run against the registries of suites, architectures and methods
    "engine": 4,
    "runs": 5,
    "lab": 5,
    "studies": 6,  # read stored runs (runs.store, runs.baselines)
    "figures": 6,  # draw the lab's toy problem and the engine's summaries
    "__main__": 9,  # the command line, over everything
}
# Pairs that the ranks would allow and the design forbids.
FORBIDDEN = {
    ("figures", "runs"): "figures draw data they are given; they never read the store or the jobs",
    ("figures", "studies"): "a figure takes a study's frames as arguments",
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported mtl_core module (or third-party top-level name)
    line: int
    in_function: bool
    type_checking: bool
    commented: bool


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str) -> list[Import]:
    path = MODULES[module]
    source = path.read_text()
    lines = source.splitlines()
    found: list[Import] = []

    def commented(node: ast.stmt) -> bool:
        """A comment on the import's line, or above the group of imports it belongs to."""
        if "#" in lines[node.lineno - 1]:
            return True
        row = node.lineno - 2
        while row >= 0 and (not lines[row].strip() or lines[row].strip().startswith(("import ", "from "))):
            row -= 1
        return row >= 0 and lines[row].strip().startswith("#")

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            function = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            checking = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, module):
                    found.append(Import(module, target, child.lineno, in_function, type_checking, commented(child)))
            visit(child, function, checking)

    visit(ast.parse(source), False, False)
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative imports: resolve against the importing package
        package = module.split(".")[: len(module.split(".")) - node.level + (MODULES[module].name == "__init__.py")]
        base = ".".join([*package, base] if base else package)
    # "from mtl_core.lab import toy" imports the module mtl_core.lab.toy
    names = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return names or [base]


IMPORTS = [imported for module in MODULES for imported in _imports(module)]


def _internal_graph(*, include_type_checking: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for imported in IMPORTS:
        if imported.source == "mtl_core" or (imported.type_checking and not include_type_checking):
            continue  # the public facade re-exports everything, lazily
        if imported.target in MODULES and imported.target != "mtl_core":
            graph[imported.source].add(imported.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted({*graph, *MODULES}):
        if node not in index:
            connect(node)
    return components


def test_every_part_has_a_rank_and_says_what_it_may_import():
    parts = {_part(module) for module in MODULES} - {""}
    assert parts <= set(RANKS), f"parts without a rank: {sorted(parts - set(RANKS))}"
    for part in parts:
        path = PACKAGE / part / "__init__.py"
        if path.exists():
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "import" in docstring and len(docstring) > 200, (
                f"mtl_core/{part}/__init__.py must say in a paragraph what lives there and what it may import")


def test_no_import_cycles():
    assert _cycles(_internal_graph(include_type_checking=True)) == []


def test_imports_point_down_the_layers():
    wrong = []
    for imported in IMPORTS:
        if imported.source == "mtl_core" or imported.target not in MODULES or imported.target == "mtl_core":
            continue
        source, target = _part(imported.source), _part(imported.target)
        if source == target:
            continue
        reason = FORBIDDEN.get((source, target))
        if reason or RANKS[target] >= RANKS[source]:
            wrong.append(f"{imported.source}:{imported.line} imports {imported.target}"
                         f" ({reason or f'{target} is not below {source}'})")
    assert wrong == []


def test_the_core_never_imports_streamlit_or_the_pages():
    offenders = [f"{i.source}:{i.line}" for i in IMPORTS
                 if i.target.split(".")[0] in {"streamlit", "pages", "app"}]
    assert offenders == []


def test_an_import_inside_a_function_says_why():
    silent = [f"{i.source}:{i.line} ({i.target})" for i in IMPORTS
              if i.in_function and not i.type_checking and not i.commented]
    assert silent == []


def test_the_checks_catch_what_they_are_for():
    """The graph and the ranks see a planted cycle and an upward import."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert RANKS["engine"] < RANKS["runs"] and RANKS["methods"] < RANKS["engine"]
    tree = ast.parse("def f():\n    import torch\n")
    assert isinstance(tree.body[0].body[0], ast.Import)


@pytest.mark.parametrize("module", ["mtl_core", "mtl_core.config", "mtl_core.methods", "mtl_core.registry",
                                    "mtl_core.figures.taxonomy", "mtl_core.runs.store"])
def test_light_modules_do_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
