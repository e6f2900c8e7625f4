"""``--diameter auto|none|D``: automatic object size on the command line, whole and in blocks."""

import re

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.draw import disk

from napari_segnet.cli.common import UserError, parse_diameter


def small_nuclei(path, shape=(150, 170), diameter=8, seed=0):
    """Write a TIFF of bright blurred disks, far smaller than the model's objects."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    step = 1.8 * diameter
    centres = [
        (y, x)
        for y in np.arange(step / 2, shape[0] - diameter / 2, step)
        for x in np.arange(step / 2, shape[1] - diameter / 2, step)
    ]
    for n, (y, x) in enumerate(centres, 1):
        jitter = rng.uniform(-0.2, 0.2, 2) * diameter
        labels[disk((y + jitter[0], x + jitter[1]), diameter / 2, shape=shape)] = n
    image = ndimage.gaussian_filter((labels > 0) * 150.0, 1.0) + rng.normal(20, 5, shape)
    tifffile.imwrite(path, image.clip(0, 255).astype(np.uint8))
    return labels


def one_to_one(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return np.array_equal(a > 0, b > 0) and pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def test_diameter_values_are_parsed_at_the_edge():
    assert parse_diameter("auto") == parse_diameter("AUTO") == "auto"
    assert parse_diameter("none") is None
    assert parse_diameter("12") == 12.0 and parse_diameter("7.5") == 7.5
    for bad in ("0", "-3", "abc", "nan", "inf", ""):
        with pytest.raises(UserError, match="--diameter must be auto, none or a positive number"):
            parse_diameter(bad)


def test_auto_none_and_a_number(run_cli, tmp_path):
    image = tmp_path / "small.tif"
    truth = small_nuclei(image)
    results = {}
    for value in ("auto", "none", "12"):
        out = tmp_path / value
        result = run_cli("segment", image, "--out", out, "--diameter", value, "--no-measure")
        assert result.returncode == 0, result.stderr
        results[value] = (result.stderr, tifffile.imread(out / "small_labels.tif"))
    stderr, labels = results["auto"]
    lines = [line for line in stderr.splitlines() if "estimated object diameter" in line]
    assert len(lines) == 1, stderr
    found = re.fullmatch(
        r"small\.tif: estimated object diameter ([\d.]+) px from \d+ objects, zoom ([\d.]+)",
        lines[0],
    )
    assert found and float(found[1]) == pytest.approx(8, rel=0.15), lines[0]
    assert float(found[2]) > 2
    assert labels.shape == truth.shape and labels.max() == pytest.approx(truth.max(), rel=0.1)
    for value in ("none", "12"):
        stderr, labels = results[value]
        assert "estimated" not in stderr and labels.shape == truth.shape
    assert not one_to_one(results["none"][1], results["auto"][1])  # not rescaled: other objects


def test_auto_block_by_block_locally_and_on_two_workers(run_cli, tmp_path):
    image = tmp_path / "small.tif"
    small_nuclei(image)
    runs = {"whole": (), "blocks": ("--block", 64), "workers": ("--block", 64, "--workers", 2)}
    for name, options in runs.items():
        result = run_cli("segment", image, "--out", tmp_path / name, *options)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("small.tif: estimated object diameter") == 1, result.stderr
    whole = tifffile.imread(tmp_path / "whole" / "small_labels.tif")
    blocks = tifffile.imread(tmp_path / "blocks" / "small_labels.tif")
    assert whole.max() > 50 and one_to_one(whole, blocks)
    assert np.array_equal(tifffile.imread(tmp_path / "workers" / "small_labels.tif"), blocks)
    csv = [(tmp_path / n / "small_measurements.csv").read_text() for n in ("blocks", "workers")]
    assert csv[0] == csv[1]


@pytest.mark.parametrize("value", ["0", "abc"])
def test_a_bad_diameter_is_one_sentence(run_cli, error_lines, tmp_path, value):
    image = tmp_path / "small.tif"
    small_nuclei(image, shape=(40, 40))
    lines = error_lines(run_cli("segment", image, "--out", tmp_path / "out", "--diameter", value))
    assert lines == [
        f"napari-segnet: error: --diameter must be auto, none or a positive number, not '{value}'."
    ]
    assert not list((tmp_path / "out").glob("small_*"))


def test_tta_averages_the_views_and_keeps_the_labels_shape(run_cli, tmp_path):
    image = tmp_path / "small.tif"
    truth = small_nuclei(image, diameter=14)
    outputs = {}
    for name, extra in (("plain", ()), ("tta", ("--tta",))):
        result = run_cli("segment", image, "--out", tmp_path / name, "--no-measure", *extra)
        assert result.returncode == 0, result.stderr
        outputs[name] = tifffile.imread(tmp_path / name / "small_labels.tif")
    assert outputs["tta"].shape == truth.shape
    assert outputs["tta"].max() == pytest.approx(truth.max(), rel=0.1)
    assert not np.array_equal(outputs["tta"], outputs["plain"])  # other probabilities
