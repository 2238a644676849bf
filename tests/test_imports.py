"""Imports point one way down the pipeline, with no cycle between packages or files (docs/reference.md).

The imports are read from the source with `ast`, function-local and type-checking ones included:
a lazy import is still a dependency, it only moves the failure to run time.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "videor1"

# Bottom to top: a package may import its own layer's packages (one way) and the layers below.
# rewards and algo come first: pure functions that import nothing of ours, so that every stage,
# record validation included, can read the problem types and the math (docs/reference.md).
LAYERS: list[set[str]] = [
    {"rewards", "algo"},
    {"data"},
    {"media"},
    {"prompts"},
    {"models"},
    {"rollout"},
    {"train", "eval"},
    {"annotate", "api", "demo", "doctor"},
    {"cli", "__main__"},
]
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}

# Known exceptions, each with the reason it is still here: (importing package, imported package).
EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imported(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The modules of ours that an import statement loads (a `from package import module` names the
    submodule, anything else the package or module itself)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolved against the importing module's package
            parts = module.split(".") if is_package else module.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                 for alias in node.names]
    found = []
    for name in names:
        while name and name not in modules:  # `import videor1.data.loading.x` -> the longest module of ours
            name = name.rpartition(".")[0]
        if name.startswith(PACKAGE + ".") or name == PACKAGE:
            found.append(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets.update(_imported(node, module, path.name == "__init__.py", modules))
        graph[module] = targets - {module}
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        source = package_of(module)
        packages[source].update(t for t in map(package_of, targets)
                                if t and t != source and (source, t) not in EXCEPTIONS)
    return dict(packages)


def test_every_package_has_a_layer():
    packages = {package_of(module) for module in _modules()} - {""}
    assert packages <= set(LAYER), f"add to LAYERS: {sorted(packages - set(LAYER))}"


def test_imports_point_down_the_pipeline():
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if (source := package_of(module)) and (dest := package_of(target)) and source != dest
        and (source, dest) not in EXCEPTIONS and LAYER[dest] > LAYER[source]
    )
    assert not upward, "imports pointing up the pipeline:\n" + "\n".join(upward)


def test_no_cycle_between_packages():
    assert cycles(package_graph(import_graph())) == []


def test_no_cycle_between_files():
    graph = import_graph()
    graph = {module: {t for t in targets if (package_of(module), package_of(t)) not in EXCEPTIONS}
             for module, targets in graph.items()}
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import videor1.data.loading\n", {"videor1.data.loading"}),
        ("def f():\n    from videor1.media import loader\n", {"videor1.media.loader"}),
        ("from videor1.rewards import accuracy_reward\n", {"videor1.rewards"}),
        ("from . import records\n", {"videor1.data.records"}),
        ("from ..media.errors import MediaError\n", {"videor1.media.errors"}),
    ],
)
def test_the_reader_sees_every_form_of_import(source: str, expected: set[str]):
    modules = _modules()
    tree = ast.parse(source)
    found = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
             for t in _imported(node, "videor1.data.validate", False, modules)}
    assert found == expected


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
