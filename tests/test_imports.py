"""The import-time contract: the package is light, compute never pulls in the GUI stack."""

import ast
import subprocess
import sys
from pathlib import Path

import napari_segnet

PACKAGE_DIR = Path(napari_segnet.__file__).parent
GUI_MODULES = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt")
COMPUTE_MODULES = [
    "napari_segnet.io",
    "napari_segnet.measure",
    "napari_segnet.inference",
    "napari_segnet.data",
    "napari_segnet.cli",
    "napari_segnet.inference.inspect",
    "napari_segnet.training.session",
    "napari_segnet.messages",
]


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_importing_the_package_loads_neither_torch_nor_qt():
    loaded = _modules_after_import("import napari_segnet")
    assert not {"torch", "napari", "qtpy", "PyQt6", "magicgui"} & loaded


def test_compute_modules_do_not_import_the_gui_stack_at_run_time():
    statement = "; ".join(f"import {name}" for name in COMPUTE_MODULES)
    loaded = _modules_after_import(statement)
    leaked = {m for m in loaded if m.split(".")[0] in GUI_MODULES}
    assert not leaked


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_compute_source_file_imports_the_gui_stack_even_lazily():
    offenders = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        if "_napari" in path.relative_to(PACKAGE_DIR).parts:
            continue
        bad = _imported_roots(path) & set(GUI_MODULES)
        if bad:
            offenders[str(path.relative_to(PACKAGE_DIR))] = sorted(bad)
    assert offenders == {}
    assert len(list(PACKAGE_DIR.rglob("*.py"))) > 10  # the scan really looked at the package
