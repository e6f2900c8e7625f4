"""Every output of the command line names the model that made it: name, version, weights hash."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tifffile
from roifile import roiread

from napari_segnet.data import sample_path
from napari_segnet.io import read_image
from napari_segnet.io.model_identity import ModelIdentity
from napari_segnet.models import model_identity


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """The bundled sample segmented with nuclei@1, with both exports."""
    from napari_segnet.cli import main

    out = tmp_path_factory.mktemp("segmented")
    status = main(
        [
            "segment",
            str(sample_path("nuclei")),
            "--out",
            str(out),
            "--model",
            "nuclei@1",
            "--device",
            "cpu",
            "--export",
            "geojson,imagej-roi",
        ]
    )
    assert status == 0
    return out


def test_segment_names_the_model_in_every_output(segmented):
    expected = model_identity("nuclei@1")
    assert expected.version == 1 and expected != model_identity("nuclei")

    table = pd.read_csv(segmented / "nuclei_fluo_measurements.csv")
    assert len(table) > 100
    assert list(table.columns[-2:]) == ["model", "model_sha256"]  # after the measurements
    assert set(table["model"]) == {"nuclei@1"}
    assert set(table["model_sha256"]) == {expected.sha256[:16]}

    labels = segmented / "nuclei_fluo_labels.tif"
    assert ModelIdentity.from_metadata(read_image(labels).metadata["model"]) == expected
    with tifffile.TiffFile(labels) as tif:
        assert tif.is_imagej
        description = tif.pages.first.description
        assert "model=nuclei@1\n" in description
        assert f"model_sha256={expected.sha256}" in description
        assert expected.sha256 in tif.imagej_metadata["Info"]  # Fiji: Image > Show Info

    collection = json.loads((segmented / "nuclei_fluo.geojson").read_text())
    features = collection["features"]
    assert len(features) == len(table)
    for feature in features:
        metadata = feature["properties"]["metadata"]  # QuPath keeps it as object metadata
        assert all(isinstance(value, str) for value in metadata.values())
        assert ModelIdentity.from_metadata(metadata) == expected

    rois = roiread(segmented / "nuclei_fluo_rois.zip")
    assert len(rois) == len(table)
    assert {ModelIdentity.from_metadata(roi.props) for roi in rois} == {expected}
    assert "model: nuclei@1\n" in rois[0].props  # ImageJ's "key: value" properties


def test_measure_names_the_model_of_our_labels_and_none_of_others(run_cli, segmented, tmp_path):
    sample = sample_path("nuclei")
    ours = segmented / "nuclei_fluo_labels.tif"
    result = run_cli("measure", "--image", sample, "--labels", ours, "--out",
                     tmp_path / "ours.csv", "--export", "geojson")  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "ours.csv")
    assert set(table["model"]) == {"nuclei@1"}
    feature = json.loads((tmp_path / "ours.geojson").read_text())["features"][0]
    assert feature["properties"]["metadata"]["model"] == "nuclei@1"

    elsewhere = tmp_path / "elsewhere.tif"  # labels from another tool: no model to name
    tifffile.imwrite(elsewhere, read_image(ours).data)
    result = run_cli("measure", "--image", sample, "--labels", elsewhere, "--out",
                     tmp_path / "elsewhere.csv", "--export", "geojson")  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "elsewhere.csv")
    assert "model" not in table.columns and "model_sha256" not in table.columns
    feature = json.loads((tmp_path / "elsewhere.geojson").read_text())["features"][0]
    assert "metadata" not in feature["properties"]


def test_the_default_model_is_the_newest_version(run_cli, tmp_path):
    image = tmp_path / "crop.tif"
    tifffile.imwrite(image, tifffile.imread(sample_path("nuclei"))[:160, :200])
    result = run_cli("segment", image, "--out", tmp_path, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    newest = model_identity("nuclei@2")
    assert set(pd.read_csv(tmp_path / "crop_measurements.csv")["model"]) == {"nuclei@2"}
    labels = read_image(tmp_path / "crop_labels.tif")
    assert ModelIdentity.from_metadata(labels.metadata["model"]) == newest


def test_an_unknown_version_is_one_sentence(run_cli, tmp_path):
    image = tmp_path / "tiny.tif"
    tifffile.imwrite(image, np.zeros((40, 50), np.uint8))
    result = run_cli("segment", image, "--out", tmp_path / "out", "--model", "nuclei@9")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "napari-segnet: error: There is no version 9 of the bundled model nuclei: its versions "
        "are nuclei@1 and nuclei@2 (nuclei alone is nuclei@2)."
    ]
    assert not (tmp_path / "out" / "tiny_labels.tif").exists()


def test_models_lists_every_version_with_its_hash(run_cli, tmp_path):
    from napari_segnet.models import ModelConfig, create_model, save_model

    save_model(create_model(ModelConfig()), tmp_path / "mine.safetensors")
    env = {**os.environ, "NAPARI_SEGNET_MODELS": str(tmp_path)}
    result = run_cli("models", env=env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "= nuclei@2 (the newest of nuclei@1, nuclei@2)" in rows["nuclei"]
    for reference in ("nuclei@1", "nuclei@2"):
        assert "bundled" in rows[reference]
        assert f"sha256 {model_identity(reference).short_sha256}" in rows[reference]
        assert f"{reference}.safetensors" in rows[reference]  # its own file
    assert f"sha256 {model_identity(tmp_path / 'mine.safetensors').short_sha256}" in rows["mine"]
    lines = [line.split()[0] for line in result.stdout.splitlines()]
    assert lines[:3] == ["nuclei", "nuclei@2", "nuclei@1"]
