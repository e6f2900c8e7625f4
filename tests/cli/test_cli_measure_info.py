"""measure, info, --version, --help and --debug of the command line, run in a subprocess."""

import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.draw import disk

import napari_segnet


def assert_one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    message = result.stderr.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1
    assert message.startswith("napari-segnet: error: ")
    return message


@pytest.fixture
def calibrated_pair(tmp_path):
    """A 2-channel OME-TIFF (0.5 µm pixels) and matching labels with two disks."""
    labels = np.zeros((80, 100), np.uint16)
    labels[disk((20, 25), 10)] = 3
    labels[disk((55, 70), 15)] = 8
    rng = np.random.default_rng(0)
    dna = rng.normal(100, 5, labels.shape) + 500 * (labels > 0)
    other = rng.normal(50, 5, labels.shape) + 80 * (labels == 8)
    image = np.stack([dna, other]).clip(0, 65535).astype(np.uint16)
    image_path, labels_path = tmp_path / "cells.ome.tif", tmp_path / "cells_labels.tif"
    tifffile.imwrite(
        image_path,
        image,
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "Channel": {"Name": ["Hoechst 33342", "GFP"]},
        },
    )
    tifffile.imwrite(labels_path, labels)
    return image_path, labels_path, image, labels


def test_help_lists_the_commands(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0
    assert "measure" in result.stdout and "info" in result.stdout


def test_version(run_cli):
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"napari-segnet {napari_segnet.__version__}"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "napari-segnet"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0


def test_info_reports_versions_and_why_each_device_is_or_is_not_usable(run_cli):
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    import torch

    printed = dict(line.split(" ", 1) for line in result.stdout.splitlines()[:20] if " " in line)
    assert printed["napari-segnet"] == napari_segnet.__version__
    core = [r.split(">")[0].split("[")[0] for r in requires("napari-segnet") if "extra" not in r]
    assert "tqdm" in core and "torch" in core
    for package in core:
        assert printed[package] == version(package)
    try:
        assert printed["napari"] == version("napari")
    except PackageNotFoundError:  # the library and command line alone, without the gui extra
        assert printed["napari"] == 'not installed (pip install "napari-segnet[gui]")'
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "usable" in lines["cpu"] and "not usable" not in lines["cpu"]
    cuda_usable = torch.cuda.is_available()
    assert ("not usable" in lines["cuda"]) is not cuda_usable
    assert len(lines["cuda"].split(":", 1)[1].strip()) > 5  # a reason or the GPU's name


def test_models_quotes_the_report_split_score_where_a_model_file_has_one(run_cli, tmp_path):
    from napari_segnet.models import ModelConfig, create_model, read_model_config, save_model
    from napari_segnet.models.bundled import bundled_model_path

    folder = tmp_path / "models"
    folder.mkdir()
    validated = {"validation": {"ap50": 0.61, "ap_mean": 0.4}}
    save_model(create_model(ModelConfig()), folder / "mine.safetensors", provenance=validated)
    env = {**os.environ, "NAPARI_SEGNET_MODELS": str(folder)}
    result = run_cli("models", env=env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    _, bundled = read_model_config(bundled_model_path("nuclei"))
    report = bundled["report"]
    assert (
        f"report AP@0.5 {report['all']['ap50']:.3f} ({report['images']} held-out images)"
        in (rows["nuclei@2"])
    )
    assert "validation AP@0.5 0.610" in rows["mine"] and "report AP" not in rows["mine"]


def test_models_shows_a_speed_stored_in_a_model_file_whose_weights_stay_the_same(run_cli, tmp_path):
    from napari_segnet.models import ModelConfig, create_model, model_identity, save_model
    from napari_segnet.models.model_file import update_provenance

    folder = tmp_path / "models"
    folder.mkdir()
    path = save_model(create_model(ModelConfig()), folder / "mine.safetensors", provenance={})
    tensors_before = path.read_bytes()[-4096:]
    identity = model_identity(path)
    speed = {"megapixels_per_second": 2.154, "device": "cpu", "threads": 2}
    update_provenance(path, speed=speed)
    assert path.read_bytes()[-4096:] == tensors_before  # the tensors follow the header
    assert model_identity(path).sha256 == identity.sha256
    env = {**os.environ, "NAPARI_SEGNET_MODELS": str(folder)}
    result = run_cli("models", env=env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "2.15 MP/s on cpu × 2 threads" in rows["mine"]


def test_a_reader_that_goes_away_stops_the_listing_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `napari-segnet models | head -1` once head has its line
    try:
        result = subprocess.run(
            [sys.executable, "-m", "napari_segnet.cli", "models"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")


def test_measure_writes_physical_units_and_every_channel(run_cli, calibrated_pair, tmp_path):
    image_path, labels_path, image, labels = calibrated_pair
    out = tmp_path / "results" / "table.csv"
    result = run_cli("measure", "--image", image_path, "--labels", labels_path, "--out", out)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert list(table["label"]) == [3, 8]
    for label in (3, 8):
        row = table.set_index("label").loc[label]
        mask = labels == label
        assert row["area_px"] == mask.sum()
        assert row["area_um2"] == pytest.approx(mask.sum() * 0.25)
        ys, xs = np.nonzero(mask)
        assert row["centroid_y_um"] == pytest.approx(ys.mean() * 0.5)
        assert row["centroid_x_um"] == pytest.approx(xs.mean() * 0.5)
        assert row["intensity_mean_Hoechst_33342"] == pytest.approx(image[0][mask].mean())
        assert row["intensity_max_GFP"] == image[1][mask].max()


@pytest.mark.parametrize(
    "problem",
    ["missing image", "not a tiff", "shape mismatch", "float labels", "output under a file"],
)
def test_measure_errors_are_one_sentence_and_leave_no_output(
    run_cli, problem, calibrated_pair, tmp_path
):
    image_path, labels_path, _, labels = calibrated_pair
    out = tmp_path / "table.csv"
    if problem == "missing image":
        image_path = tmp_path / "nothing.tif"
    elif problem == "not a tiff":
        image_path.write_bytes(b"this is not an image")
    elif problem == "shape mismatch":
        tifffile.imwrite(labels_path, labels[:40])
    elif problem == "float labels":
        tifffile.imwrite(labels_path, labels.astype(np.float32))
    else:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "table.csv"
    result = run_cli("measure", "--image", image_path, "--labels", labels_path, "--out", out)
    assert_one_sentence_error(result)
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("*.csv")]


def test_debug_shows_the_traceback(run_cli, tmp_path):
    missing = tmp_path / "nothing.tif"
    out = tmp_path / "t.csv"
    result = run_cli("measure", "--image", missing, "--labels", missing, "--out", out, "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_missing_required_argument_is_a_usage_error(run_cli):
    result = run_cli("measure", "--image", "a.tif")
    assert result.returncode == 2
    assert "--labels" in result.stderr
