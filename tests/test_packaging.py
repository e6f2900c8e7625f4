"""The release files: what the sdist and the wheel carry, their metadata, and the version."""

import ast
import email
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import napari_segnet

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "napari_segnet"
# What the plugin needs at run time besides code: the npe2 manifest, the bundled model and the
# sample images (paths inside the package).
DATA_FILES = sorted(
    ["napari.yaml"]
    + [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "models" / "weights").glob("*")]
    + [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "data").glob("*.tif")]
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Build the sdist, then the wheel from the sdist, as a release does."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    (path,) = dist.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def sdist(dist) -> Path:
    (path,) = dist.glob("*.tar.gz")
    return path


@pytest.fixture(scope="module")
def metadata(wheel) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_package_has_data_files_to_ship():
    assert "napari.yaml" in DATA_FILES
    assert any(f.endswith(".safetensors") for f in DATA_FILES)
    assert sum(f.startswith("data/") for f in DATA_FILES) >= 3


def test_wheel_carries_manifest_weights_and_samples(wheel):
    with zipfile.ZipFile(wheel) as archive:
        for name in DATA_FILES:
            content = archive.read(f"napari_segnet/{name}")  # KeyError if missing
            assert content == (PACKAGE / name).read_bytes(), name


def test_sdist_carries_manifest_weights_samples_and_changelog(sdist):
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}

        def content(name: str) -> bytes:
            member = members[name]
            if member.issym():  # src/napari_segnet/napari.yaml links to the repository copy
                target = PurePosixPath(name).parent / member.linkname
                name = str(PurePosixPath(*_normalised(target.parts)))
                member = members[name]
            assert member.isfile(), name
            return archive.extractfile(member).read()

        for name in DATA_FILES:
            assert content(f"src/napari_segnet/{name}") == (PACKAGE / name).read_bytes(), name
        for name in ("CHANGELOG.md", "README.md", "LICENSE", "pyproject.toml"):
            assert content(name) == (ROOT / name).read_bytes(), name


def _normalised(parts):
    out = []
    for part in parts:
        if part == "..":
            out.pop()  # IndexError: the link points outside the archive
        elif part != ".":
            out.append(part)
    return out


def test_twine_accepts_both_files(wheel, sdist):
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2


def test_wheel_metadata_is_what_napari_hub_and_pip_need(metadata):
    assert metadata["Name"] == "napari-segnet"
    assert metadata["Version"] == napari_segnet.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier")
    assert "Framework :: napari" in classifiers
    claimed = [c.rsplit(" :: ", 1)[1] for c in classifiers if c.count(" :: ") == 2]
    claimed = [v for v in claimed if v[:1].isdigit() and "." in v]
    assert claimed, classifiers
    assert all(v in SpecifierSet(metadata["Requires-Python"]) for v in claimed), claimed
    assert metadata["Summary"] and metadata["Description-Content-Type"] == "text/markdown"
    assert "napari" in metadata.get_payload()  # the README is the long description
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert {"Documentation", "Source Code", "Bug Tracker", "User Support"} <= urls.keys()


def _third_party_imports() -> dict[str, bool]:
    """Top-level modules that the library and the command line import (not ``_napari/``).

    Each maps to whether every import of it is guarded: inside a ``try`` whose handler
    catches ``ImportError``, which is how the code tells the user to install an extra.
    """
    guarded: dict[str, bool] = {}

    def visit(node, in_guard: bool) -> None:
        if isinstance(node, ast.Try):
            catches = any(_catches_import_error(h.type) for h in node.handlers)
            for child in node.body:
                visit(child, in_guard or catches)
            for child in (*node.handlers, *node.orelse, *node.finalbody):
                visit(child, in_guard)
            return
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            root = name.split(".")[0]
            guarded[root] = guarded.get(root, True) and in_guard
        for child in ast.iter_child_nodes(node):
            visit(child, in_guard)

    for path in PACKAGE.rglob("*.py"):
        if "_napari" not in path.relative_to(PACKAGE).parts:
            visit(ast.parse(path.read_text(encoding="utf-8")), False)
    ignored = set(sys.stdlib_module_names) | {"napari_segnet"}
    return {root: value for root, value in guarded.items() if root not in ignored}


def _catches_import_error(handler_type) -> bool:
    if handler_type is None:
        return True
    names = handler_type.elts if isinstance(handler_type, ast.Tuple) else [handler_type]
    return any(getattr(n, "id", None) in ("ImportError", "ModuleNotFoundError") for n in names)


def test_every_package_the_library_imports_is_a_dependency(metadata):
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    core = {canonicalize_name(r.name) for r in requirements if r.marker is None}
    extras = {canonicalize_name(r.name) for r in requirements if r.marker is not None}
    imported = _third_party_imports()
    assert {"numpy", "torch", "tqdm"} <= imported.keys()  # the scan sees the package
    assert imported["tqdm"] is False  # and tells a plain lazy import from a guarded one
    assert imported["stardist"] is True  # the star extra, imported only where it is explained
    providers = packages_distributions()
    undeclared = {}
    for module, is_guarded in imported.items():
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        allowed = core | extras if is_guarded else core
        if not distributions & allowed:
            undeclared[module] = providers.get(module, ["not installed"])
    # A package of an extra only behind `except ImportError`, which says how to install it.
    assert undeclared == {}, "imported but not a dependency (or an unguarded extra)"


def test_changelog_has_an_entry_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{napari_segnet.__version__}] - " in changelog


def test_model_files_record_the_version_that_wrote_them(tmp_path):
    from importlib.metadata import version

    from safetensors import safe_open

    from napari_segnet.models import ModelConfig, create_model, load_model, save_model

    path = save_model(create_model(ModelConfig(name="x")), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        recorded = handle.metadata()["napari_segnet_version"]
    assert recorded == napari_segnet.__version__ == version("napari-segnet")
    _, provenance = load_model(path)  # the extra field does not disturb loading
    assert provenance == {}


def test_model_files_whose_header_size_begins_with_byte_0x80_load(tmp_path):
    # The first byte of a model file is the low byte of its header's size, so about one file
    # in 32 (headers are padded to 8 bytes) begins like a pickle; it must still load.
    from napari_segnet.models import ModelConfig, create_model, load_model, save_model

    model = create_model(ModelConfig(name="x"))
    for length in range(256):
        path = save_model(model, tmp_path / "m.safetensors", provenance={"note": "n" * length})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no header size began with 0x80")
    assert load_model(path)[1] == {"note": "n" * length}
