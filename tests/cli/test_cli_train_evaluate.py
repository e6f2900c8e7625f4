"""``napari-segnet train``, ``evaluate`` and ``models`` in a subprocess."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from scipy.optimize import linear_sum_assignment

from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.io import read_image
from napari_segnet.models import load_model, read_model_config
from napari_segnet.models.bundled import resolve_model


@pytest.fixture
def folders(tmp_path, nuclei_pairs):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i, (image, labels) in enumerate(nuclei_pairs):
        tifffile.imwrite(images / f"n{i}.tif", image)
        tifffile.imwrite(masks / f"n{i}.tif", labels)
    return images, masks


def matched_ious(truth, prediction):
    """IoU of every true/predicted pair, then the pairs of a maximum matching at IoU > 0.5."""
    t_ids, p_ids = np.unique(truth)[1:], np.unique(prediction)[1:]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for i, t in enumerate(t_ids):
        for j, p in enumerate(p_ids):
            a, b = truth == t, prediction == p
            iou[i, j] = (a & b).sum() / (a | b).sum()
    rows, cols = linear_sum_assignment(-iou)
    return iou[rows, cols], len(t_ids), len(p_ids)


def test_evaluate_prints_what_an_independent_count_gives(run_cli, folders, tmp_path):
    images, masks = folders
    report = tmp_path / "scores.json"
    # On the CPU as the in-process count below: a GPU computes in another precision.
    result = run_cli(
        "evaluate", "--images", images, "--masks", masks, "--json", report, "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    model, _ = load_model(resolve_model("nuclei"), fuse=True)
    counts = []
    for path in sorted(images.iterdir()):
        prediction = segment(read_image(path), model, SegmentSettings()).labels
        counts.append(matched_ious(read_image(masks / path.name).data, prediction))
    rows = {float(line.split()[0]): line.split() for line in result.stdout.splitlines()[2:]}
    scores = json.loads(report.read_text())
    assert scores["model"] == model.identity.as_metadata()  # nuclei@2, with its weights hash
    assert scores["model"]["model"] == "nuclei@2"
    assert sorted(rows) == pytest.approx([0.5 + 0.05 * k for k in range(9)])
    for threshold, row in rows.items():
        tp = sum(int((ious >= threshold).sum()) for ious, _, _ in counts)
        n_true, n_pred = sum(c[1] for c in counts), sum(c[2] for c in counts)
        fp, fn = n_pred - tp, n_true - tp
        sum_iou = sum(ious[ious >= threshold].sum() for ious, _, _ in counts)
        expected = [tp / (tp + fp + fn), tp / n_pred, tp / n_true, 2 * tp / (2 * tp + fp + fn)]
        expected.append(sum_iou / (tp + fp / 2 + fn / 2))
        per_image = [
            (ious >= threshold).sum() / (nt + np_ - (ious >= threshold).sum())
            for ious, nt, np_ in counts
        ]
        expected.append(np.mean(per_image))
        assert [float(v) for v in row[1:]] == pytest.approx(expected, abs=5e-4)
        stored = scores["pooled"][str(threshold)] if str(threshold) in scores["pooled"] else None
        stored = stored or next(v for k, v in scores["pooled"].items() if float(k) == threshold)
        assert (stored["tp"], stored["fp"], stored["fn"]) == (tp, fp, fn)
    assert rows[0.5][1] != "0.000"  # the bundled model finds these nuclei


def test_train_from_the_bundled_model_then_evaluate_and_list(run_cli, folders, tmp_path):
    images, masks = folders
    models_dir = tmp_path / "models"
    model = models_dir / "mine.safetensors"
    options = ("--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "2", "--crop", "64")
    options += ("--device", "cpu")  # named, so that the line below holds on a GPU machine too
    result = run_cli(
        "train", "--images", images, "--masks", masks, "--out", model, "--from", "nuclei", *options
    )
    assert result.returncode == 0, result.stderr
    assert "Training on 4 images, validating on 2, on cpu." in result.stderr  # 0.2 × 6 ≥ 1
    assert "epoch 1: AP@0.5 " in result.stderr
    config, provenance = read_model_config(model)
    assert config.name == "nuclei"  # fine-tuning keeps the model's name
    assert provenance["settings"]["learning_rate"] == 1e-3  # the fine-tuning default
    assert provenance["settings"]["crop"] == 64
    assert len(provenance["validation_images"]) == 2
    assert not model.with_name(model.name + ".resume.pt.partial").exists()
    report = tmp_path / "scores.json"
    result = run_cli(
        "evaluate", "--images", images, "--masks", masks, "--model", model, "--json", report
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(report.read_text())["n_images"] == 6
    env = {**os.environ, "NAPARI_SEGNET_MODELS": str(models_dir)}
    listing = run_cli("models", env=env)
    assert listing.returncode == 0
    assert "nuclei" in listing.stdout and "mine" in listing.stdout


def test_train_on_two_images_holds_out_the_end_of_each(run_cli, folders, tmp_path):
    images, masks = folders
    for path in [*images.iterdir(), *masks.iterdir()]:
        if path.stem not in ("n0", "n1"):
            path.unlink()
    model = tmp_path / "two.safetensors"
    options = ("--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "64")
    options += ("--validation-fraction", "0.25", "--precision", "bf16")
    result = run_cli("train", "--images", images, "--masks", masks, "--out", model, *options)
    assert result.returncode == 0, result.stderr
    assert "the first 75% of each of 2 images, validating on the rest" in result.stderr
    config, provenance = read_model_config(model)
    assert provenance["validation_images"] == ["n0", "n1"]
    assert config.name == "two" and provenance["settings"]["learning_rate"] == 3e-3
    assert provenance["settings"]["precision"] == "bf16"
    assert 12 < config.object_diameter_px < 20  # a new network learns the objects' size


def test_training_resumes_where_it_stopped(run_cli, error_lines, folders, tmp_path):
    images, masks = folders
    model = tmp_path / "m.safetensors"
    arguments = ["train", "--images", images, "--masks", masks, "--out", model, "--epochs", "2"]
    arguments += ["--batch-size", "2", "--crop", "64", "--steps-per-epoch", "40"]
    resume = tmp_path / "m.safetensors.resume.pt"
    command = [sys.executable, "-m", "napari_segnet.cli", *map(str, arguments)]
    run = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    while not resume.exists() and run.poll() is None:
        time.sleep(0.05)
    assert run.poll() is None  # stopped in the second epoch, after the first was saved
    run.kill()
    run.wait()
    result = run_cli(*arguments, "--resume", resume)
    assert result.returncode == 0, result.stderr
    assert "epoch 2: AP@0.5" in result.stderr and "epoch 1:" not in result.stderr
    assert read_model_config(model)[1]["epoch"] in (1, 2)  # the better of the two epochs
    (line,) = error_lines(run_cli(*arguments[:-1], "30", "--resume", resume))
    assert "other settings (steps_per_epoch 40 → 30)" in line


def test_train_can_add_a_star_head_to_a_model(run_cli, error_lines, folders, tmp_path):
    images, masks = folders
    model = tmp_path / "star.safetensors"
    options = ("--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "64")
    arguments = ("train", "--images", images, "--masks", masks, "--out", model, "--from", "nuclei")
    result = run_cli(*arguments, *options, "--star-rays", "16")
    assert result.returncode == 0, result.stderr
    config, _ = read_model_config(model)
    assert config.heads == ("classes", "star") and config.star_rays == 16
    assert config.instance_method == "star_seeds"
    assert "Best mean AP" in result.stderr
    result = run_cli("evaluate", "--images", images, "--masks", masks, "--model", model)
    assert result.returncode == 0, result.stderr
    (line,) = error_lines(run_cli(*arguments, *options, "--star-rays", "30"))
    assert line.endswith("must be a power of two from 8 to 128 (8, 16, 32, 64 or 128), not 30.")
