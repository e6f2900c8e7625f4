"""The modules of ``napari_segnet.models`` import one another without a circle."""

import ast
from pathlib import Path

import napari_segnet.models

PACKAGE = Path(napari_segnet.models.__file__).parent


def imported_siblings(path: Path) -> set[str]:
    """The modules of the package that ``path`` imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y, or from . import x
                names.update([node.module] if node.module else [a.name for a in node.names])
            elif (node.module or "").startswith("napari_segnet.models."):
                names.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            names.update(
                a.name.split(".")[2]
                for a in node.names
                if a.name.startswith("napari_segnet.models.")
            )
    return {name.split(".")[0] for name in names} - {"__init__"}


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: imported_siblings(path) & set(modules) for name, path in modules.items()}


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
    assert {"model_file", "onnx_model", "identity"} <= graph["checkpoint"]
    assert graph["formats"] == set()  # the leaf: constants and errors


def test_no_module_of_models_imports_itself_through_others():
    assert find_circle(import_graph()) is None


def test_a_circle_is_found_when_there_is_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
