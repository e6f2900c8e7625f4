"""The npe2 manifest: valid, shipped in the package, every command importable."""

import importlib
import subprocess
import sys
from importlib.metadata import distribution
from importlib.resources import files
from pathlib import Path

import npe2
import pytest
import yaml

MANIFEST = files("napari_segnet") / "napari.yaml"


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_manifest_ships_inside_the_package_and_matches_the_repository_copy():
    assert MANIFEST.is_file()
    repository_copy = Path(__file__).parents[1] / "napari.yaml"
    assert MANIFEST.read_text(encoding="utf-8") == repository_copy.read_text(encoding="utf-8")


def test_manifest_is_registered_through_the_entry_point():
    entry_points = distribution("napari-segnet").entry_points
    (entry,) = [e for e in entry_points if e.group == "napari.manifest"]
    assert entry.value == "napari_segnet:napari.yaml"
    manifest = npe2.PluginManifest.from_distribution("napari-segnet")
    assert manifest.name == "napari-segnet"


def test_npe2_validate_passes():
    npe2_cli = Path(sys.executable).parent / "npe2"
    result = subprocess.run(
        [str(npe2_cli), "validate", "napari-segnet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize("command", _manifest()["contributions"]["commands"], ids=lambda c: c["id"])
def test_every_python_name_imports(command):
    module_name, _, attribute = command["python_name"].partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


def test_package_metadata_is_what_napari_hub_needs():
    metadata = distribution("napari-segnet").metadata
    assert "Framework :: napari" in metadata.get_all("Classifier")
    assert metadata["Summary"]
    assert metadata.get("License-Expression") == "BSD-3-Clause"
    requirements = " ".join(metadata.get_all("Requires-Dist")).lower()
    core = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert not any(q in " ".join(core).lower() for q in ("pyqt", "pyside", "napari"))
    assert "pyqt6" in requirements  # the gui extra brings a Qt binding
