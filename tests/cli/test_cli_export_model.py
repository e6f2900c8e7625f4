"""``napari-segnet export-model``, and ``segment --model`` with what it wrote."""

import zipfile

import pytest
import tifffile

from napari_segnet.data import sample_path
from napari_segnet.metrics import evaluate

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    """A 256 × 320 crop of the bundled sample (about 30 nuclei)."""
    path = tmp_path_factory.mktemp("image") / "crop.tif"
    tifffile.imwrite(path, tifffile.imread(sample_path("nuclei"))[:256, :320])
    return path


@pytest.fixture(scope="module")
def torch_labels(small_image, tmp_path_factory):
    from napari_segnet.cli import main

    out = tmp_path_factory.mktemp("torch")
    assert main(["segment", str(small_image), "--out", str(out), "--no-measure"]) == 0
    return tifffile.imread(out / "crop_labels.tif")


def _segment_with(run_cli, model, image, out):
    result = run_cli("segment", image, "--out", out, "--no-measure", "--model", model)
    assert result.returncode == 0, result.stderr
    return tifffile.imread(out / "crop_labels.tif")


def _f1(truth, prediction):
    return evaluate([truth], [prediction], thresholds=(0.5,))["pooled"][0.5]["f1"]


def test_onnx_export_segments_the_same_objects(run_cli, small_image, torch_labels, tmp_path):
    model = tmp_path / "nuclei.onnx"
    result = run_cli("export-model", "nuclei", "--format", "onnx", "--out", model)
    assert result.returncode == 0, result.stderr
    assert "max |onnxruntime − torch|" in result.stderr
    labels = _segment_with(run_cli, model, small_image, tmp_path / "out")
    assert torch_labels.max() > 10  # the comparison means something
    assert _f1(torch_labels, labels) >= 0.99


def test_exports_in_the_user_models_folder_are_listed_and_found_by_name(
    run_cli, small_image, torch_labels, tmp_path
):
    import os

    from napari_segnet.models.bundled import resolve_model
    from napari_segnet.models.checkpoint import load_model
    from napari_segnet.models.export import export_onnx

    folder = tmp_path / "models"
    folder.mkdir()
    export_onnx(load_model(resolve_model("nuclei"))[0], folder / "shared-nuclei.onnx")
    (folder / "notes.zip").write_bytes(b"not a model package")
    env = {**os.environ, "NAPARI_SEGNET_MODELS": str(folder)}
    listed = run_cli("models", env=env)
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if row.startswith("shared-nuclei")]
    assert line.split()[1:4] == ["user", "compact", "exported"]
    (broken,) = [row for row in listed.stdout.splitlines() if row.startswith("notes")]
    assert "unusable" in broken
    result = run_cli(
        "segment",
        small_image,
        "--out",
        tmp_path / "out",
        "--no-measure",
        "--model",
        "shared-nuclei",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    labels = tifffile.imread(tmp_path / "out" / "crop_labels.tif")
    assert _f1(torch_labels, labels) >= 0.99


def test_an_exported_model_is_not_trained_further(run_cli, error_lines, nuclei_pairs, tmp_path):
    from napari_segnet.models.bundled import resolve_model
    from napari_segnet.models.checkpoint import load_model
    from napari_segnet.models.export import export_onnx

    model = tmp_path / "nuclei.onnx"
    export_onnx(load_model(resolve_model("nuclei"))[0], model)
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for number, (image, labels) in enumerate(nuclei_pairs[:2]):
        tifffile.imwrite(tmp_path / "images" / f"{number}.tif", image)
        tifffile.imwrite(tmp_path / "masks" / f"{number}.tif", labels)
    result = run_cli(
        "train",
        "--images",
        tmp_path / "images",
        "--masks",
        tmp_path / "masks",
        "--out",
        tmp_path / "new.safetensors",
        "--from",
        model,
        "--epochs",
        "1",
        "--device",
        "cpu",
    )
    (line,) = error_lines(result)
    assert "nuclei.onnx is an exported model, which runs only for inference" in line
    assert not (tmp_path / "new.safetensors").exists()


def test_bioimageio_package_segments_the_same_objects(run_cli, small_image, torch_labels, tmp_path):
    pytest.importorskip("bioimageio.spec")
    package = tmp_path / "nuclei.zip"
    result = run_cli(
        "export-model", "nuclei", "--format", "bioimageio", "--out", package, "--no-test"
    )
    assert result.returncode == 0, result.stderr
    assert "bioimageio test not run" in result.stderr
    with zipfile.ZipFile(package) as archive:
        assert "rdf.yaml" in archive.namelist()
    labels = _segment_with(run_cli, package, small_image, tmp_path / "out")
    assert _f1(torch_labels, labels) >= 0.99


def test_torchscript_export(run_cli, tmp_path):
    model = tmp_path / "nuclei.pt"
    result = run_cli("export-model", "nuclei", "--format", "torchscript", "--out", model)
    assert result.returncode == 0, result.stderr
    assert "max |torchscript − torch|" in result.stderr
    assert zipfile.is_zipfile(model)  # TorchScript files are zip archives


def test_an_unknown_model_is_one_sentence(run_cli, error_lines, tmp_path):
    result = run_cli("export-model", "nope", "--format", "onnx", "--out", tmp_path / "x.onnx")
    (line,) = error_lines(result)
    assert "There is no model 'nope'" in line
    assert not (tmp_path / "x.onnx").exists()


def test_an_unknown_format_is_a_usage_error(run_cli, tmp_path):
    result = run_cli("export-model", "nuclei", "--format", "keras", "--out", tmp_path / "x")
    assert result.returncode == 2
    assert "invalid choice: 'keras'" in result.stderr


def test_exported_models_and_wrong_suffixes_are_refused(run_cli, error_lines, tmp_path):
    (line,) = error_lines(
        run_cli("export-model", "nuclei", "--format", "bioimageio", "--out", tmp_path / "x.onnx")
    )
    assert "--out must end in .zip" in line
    exported = tmp_path / "already.onnx"
    exported.write_bytes(b"whatever")
    (line,) = error_lines(
        run_cli("export-model", exported, "--format", "onnx", "--out", tmp_path / "y.onnx")
    )
    assert "already an exported model" in line
