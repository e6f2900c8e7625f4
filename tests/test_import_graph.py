"""No module of the package imports itself through others, at its top or inside functions."""

import ast
from pathlib import Path

import napari_segnet

ROOT = Path(napari_segnet.__file__).parent


def module_names() -> dict[str, Path]:
    """Dotted name → file, for every module and package of napari_segnet."""
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = ("napari_segnet", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from . import x`` imports module x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules
            # Names that are not modules come from the source module itself.
            if len(submodules) < len(node.names) and source in modules:
                found.add(source)
            found |= submodules
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & modules
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    return {name: imported(name, path, set(names)) for name, path in names.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import one another in a circle, or None."""
    state: dict[str, str] = {}

    def visit(name, path):
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                return [*path[path.index(other) :], other]
            if other not in state and (circle := visit(other, [*path, other])):
                return circle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (circle := visit(name, [name])):
            return circle
    return None


def test_the_graph_is_read_from_the_package():
    graph = import_graph()
    assert {"napari_segnet.models.model_file", "napari_segnet.models.onnx_model"} <= graph[
        "napari_segnet.models.checkpoint"
    ]
    assert graph["napari_segnet.models.formats"] == set()  # a leaf: constants and errors
    assert "napari_segnet.cli.one_file" in graph["napari_segnet.cli.cluster"]  # lazy imports too


def test_no_module_imports_itself_through_others():
    assert find_circle(import_graph()) is None


def test_a_circle_is_found_when_there_is_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
