"""``--export geojson,imagej-roi``: outlines beside the labels, for QuPath and Fiji."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from roifile import roiread

from napari_segnet.io import read_image, write_labels
from napari_segnet.io.geojson import read_geojson
from napari_segnet.io.imagej_rois import read_imagej_rois


def test_segment_exports_one_feature_and_one_roi_per_object(run_cli, calibrated_image, tmp_path):
    path, _ = calibrated_image
    out = tmp_path / "out"
    result = run_cli("segment", path, "--out", out, "--export", "geojson,imagej-roi")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "cells.geojson",
        "cells_labels.tif",
        "cells_measurements.csv",
        "cells_rois.zip",
    ]
    labels = read_image(out / "cells_labels.tif").data
    table = pd.read_csv(out / "cells_measurements.csv")
    features = json.loads((out / "cells.geojson").read_text(encoding="utf-8"))["features"]
    n = int(labels.max())
    assert n > 0 and len(features) == n == len(roiread(out / "cells_rois.zip"))
    for feature in features:  # the measurements are the CSV's
        row = table[table["label"] == feature["properties"]["label"]].iloc[0]
        measured = feature["properties"]["measurements"]
        assert measured["area_um2"] == pytest.approx(row["area_um2"])
        assert measured["intensity_mean_DAPI"] == pytest.approx(row["intensity_mean_DAPI"])
    np.testing.assert_array_equal(read_geojson(out / "cells.geojson", labels.shape), labels)
    np.testing.assert_array_equal(read_imagej_rois(out / "cells_rois.zip", labels.shape), labels)


def test_resume_wants_the_exports_too(run_cli, calibrated_image, tmp_path):
    path, _ = calibrated_image
    out = tmp_path / "out"
    assert run_cli("segment", path, "--out", out).returncode == 0
    result = run_cli("segment", path, "--out", out, "--resume", "--export", "geojson")
    assert result.returncode == 0, result.stderr
    assert "already done" not in result.stderr
    assert (out / "cells.geojson").is_file()
    result = run_cli("segment", path, "--out", out, "--resume", "--export", "geojson")
    assert "cells.ome.tif: already done" in result.stderr


def test_unknown_export_is_a_usage_error_in_one_sentence(run_cli, calibrated_image, tmp_path):
    path, _ = calibrated_image
    result = run_cli("segment", path, "--out", tmp_path / "out", "--export", "geojson,svg")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith(
        "argument --export: unknown export 'svg'; choose from geojson, imagej-roi, "
        "separated by commas"
    )
    assert not (tmp_path / "out").exists()


def test_block_by_block_segmentation_exports_the_whole_images_outlines(
    run_cli, calibrated_image, tmp_path
):
    from napari_segnet.io.imagej_rois import read_imagej_rois

    path, _ = calibrated_image
    runs = {"whole": ("--block", 0), "blocks": ("--block", 64)}
    for name, options in runs.items():
        result = run_cli(
            "segment", path, "--out", tmp_path / name, *options, "--export", "imagej-roi,geojson"
        )
        assert result.returncode == 0, result.stderr
    whole = tifffile.imread(tmp_path / "whole" / "cells_labels.tif")
    blocks = tifffile.imread(tmp_path / "blocks" / "cells_labels.tif")
    mapping = dict(np.unique(np.stack([whole.ravel(), blocks.ravel()]), axis=1).T)
    assert np.array_equal(
        read_imagej_rois(tmp_path / "blocks" / "cells_rois.zip", blocks.shape), blocks
    )
    geometries = [
        {f["properties"]["label"]: f["geometry"] for f in json.loads(p.read_text())["features"]}
        for p in (tmp_path / "whole" / "cells.geojson", tmp_path / "blocks" / "cells.geojson")
    ]
    assert {mapping[k]: v for k, v in geometries[0].items()} == geometries[1]


@pytest.mark.parametrize("block", [0, 64])
def test_measure_exports_beside_its_csv_whole_or_block_by_block(run_cli, tmp_path, block):
    rng = np.random.default_rng(2)
    labels = np.zeros((150, 170), np.uint16)
    for k in range(1, 13):
        y, x = rng.integers(5, 140), rng.integers(5, 160)
        labels[y : y + 8, x : x + 6] = k  # later ones may cover earlier ones, in part or whole
    labels[100:130, 100:112] = 13  # an object across block borders
    image_path, labels_path = tmp_path / "cells.tif", tmp_path / "cells_labels.tif"
    tifffile.imwrite(image_path, rng.integers(0, 255, labels.shape, dtype=np.uint8))
    write_labels(labels_path, labels)
    out = tmp_path / "out" / "cells_measurements.csv"
    result = run_cli(
        "measure",
        "--image",
        image_path,
        "--labels",
        labels_path,
        "--out",
        out,
        "--block",
        block,
        "--export",
        "imagej-roi,geojson",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "cells.geojson",
        "cells_measurements.csv",
        "cells_rois.zip",
    ]
    present = len(np.unique(labels)) - 1
    assert len(pd.read_csv(out)) == present == len(roiread(out.parent / "cells_rois.zip"))
    np.testing.assert_array_equal(read_geojson(out.parent / "cells.geojson", labels.shape), labels)
    np.testing.assert_array_equal(
        read_imagej_rois(out.parent / "cells_rois.zip", labels.shape), labels
    )
