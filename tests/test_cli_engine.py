"""segment, train, evaluate and models through the command line, including hostile input."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_segnet.io import read_image
from napari_segnet.models import read_model_config


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "napari_segnet.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
    )


def one_sentence(result):
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("napari-segnet")]
    assert lines and all("Traceback" not in line for line in result.stderr.splitlines())
    return lines


@pytest.fixture
def calibrated_image(tmp_path, nuclei_pairs):
    image, labels = nuclei_pairs[0]
    path = tmp_path / "cells.ome.tif"
    noise = np.random.default_rng(1).integers(0, 50, image.shape, dtype=np.uint8)
    tifffile.imwrite(
        path,
        np.stack([noise, image]),
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 0.4,
            "PhysicalSizeY": 0.4,
            "Channel": {"Name": ["Actin", "DAPI"]},
        },
    )
    return path, labels


def test_segment_writes_calibrated_labels_and_measurements(calibrated_image, tmp_path):
    path, truth = calibrated_image
    out = tmp_path / "out"
    result = run_cli("segment", path, "--out", out)
    assert result.returncode == 0, result.stderr
    labels = read_image(out / "cells_labels.tif")
    assert labels.data.shape == truth.shape
    assert labels.pixel_size == pytest.approx({"Y": 0.4, "X": 0.4})
    table = pd.read_csv(out / "cells_measurements.csv")
    assert len(table) == labels.data.max() > 0
    assert {"area_um2", "intensity_mean_DAPI", "intensity_mean_Actin"} <= set(table.columns)
    assert sorted(p.name for p in out.iterdir()) == ["cells_labels.tif", "cells_measurements.csv"]


def test_segment_many_inputs_with_one_bad_one(calibrated_image, tmp_path):
    path, _ = calibrated_image
    zeros, broken = tmp_path / "zeros.tif", tmp_path / "broken.tif"
    tifffile.imwrite(zeros, np.zeros((50, 60), np.uint16))
    broken.write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    result = run_cli("segment", path, broken, zeros, "--out", out, "--no-measure")
    lines = one_sentence(result)
    assert len(lines) == 1 and "broken.tif" in lines[0]
    assert read_image(out / "zeros_labels.tif").data.max() == 0  # zero objects is a valid answer
    assert sorted(p.name for p in out.iterdir()) == ["cells_labels.tif", "zeros_labels.tif"]


@pytest.mark.parametrize("content", ["pickle", "garbage", "missing"])
def test_bad_model_files_are_refused_in_one_sentence(content, calibrated_image, tmp_path):
    path, _ = calibrated_image
    model = tmp_path / "model.safetensors"
    marker = tmp_path / "pwned"
    if content == "pickle":

        class Exploit:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        model.write_bytes(pickle.dumps(Exploit()))
    elif content == "garbage":
        model.write_bytes(np.random.default_rng(0).bytes(1000))
    result = run_cli("segment", path, "--out", tmp_path / "out", "--model", model)
    (line,) = one_sentence(result)
    assert "model" in line
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unwritable_output_folder(calibrated_image, tmp_path):
    path, _ = calibrated_image
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_sentence(run_cli("segment", path, "--out", blocker / "out"))


def test_unusable_device_is_explained(calibrated_image, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a usable CUDA device")
    path, _ = calibrated_image
    (line,) = one_sentence(run_cli("segment", path, "--out", tmp_path, "--device", "cuda"))
    assert "not usable" in line


def test_train_from_the_bundled_model_then_evaluate_and_list(tmp_path, nuclei_pairs):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i, (image, labels) in enumerate(nuclei_pairs):
        tifffile.imwrite(images / f"n{i}.tif", image)
        tifffile.imwrite(masks / f"n{i}.tif", labels)
    models_dir = tmp_path / "models"
    model = models_dir / "mine.safetensors"
    result = run_cli(
        "train",
        "--images",
        images,
        "--masks",
        masks,
        "--out",
        model,
        "--from",
        "nuclei",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "2",
        "--crop",
        "64",
    )
    assert result.returncode == 0, result.stderr
    assert "the first 85% of each of 6 images" in result.stderr  # 0.15 × 6 < 1 image
    assert model.exists()
    report = tmp_path / "scores.json"
    result = run_cli(
        "evaluate", "--images", images, "--masks", masks, "--model", model, "--json", report
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(report.read_text())
    assert scores["n_images"] == 6
    assert 0 <= scores["pooled"]["0.5"]["ap"] <= 1
    assert "0.90" in result.stdout or "0.9" in result.stdout
    env = {**__import__("os").environ, "NAPARI_SEGNET_MODELS": str(models_dir)}
    listing = run_cli("models", env=env)
    assert listing.returncode == 0
    assert "nuclei" in listing.stdout and "mine" in listing.stdout


def test_train_on_two_images_holds_out_the_end_of_each(tmp_path, nuclei_pairs):
    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for i, (image, labels) in enumerate(nuclei_pairs[:2]):
        tifffile.imwrite(tmp_path / "images" / f"n{i}.tif", image)
        tifffile.imwrite(tmp_path / "masks" / f"n{i}.tif", labels)
    model = tmp_path / "two.safetensors"
    options = ("--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "64")
    result = run_cli(
        "train",
        "--images",
        tmp_path / "images",
        "--masks",
        tmp_path / "masks",
        "--out",
        model,
        *options,
        "--validation-fraction",
        "0.25",
    )
    assert result.returncode == 0, result.stderr
    assert "the first 75% of each of 2 images, validating on the rest" in result.stderr
    config, provenance = read_model_config(model)
    assert provenance["validation_images"] == ["n0", "n1"]
    assert 12 < config.object_diameter_px < 20  # a new network learns the objects' size
