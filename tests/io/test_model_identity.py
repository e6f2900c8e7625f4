"""The model that made labels, recorded by every writer and read back, calibration intact."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from roifile import roiread

from napari_segnet.io import read_image, write_labels
from napari_segnet.io.geojson import read_geojson, write_geojson
from napari_segnet.io.imagej_rois import read_imagej_rois, write_imagej_rois
from napari_segnet.io.model_identity import ModelIdentity, csv_columns, parse_text
from napari_segnet.io.stack_labels import StackLabelsWriter
from napari_segnet.io.tiled_labels import TiledLabelsWriter
from napari_segnet.io.zarr_labels import ZarrLabelsWriter
from napari_segnet.measure import write_csv

# A hash made only of digits, which ImageJ and OME parsers would happily read as a number.
MODEL = ModelIdentity("nuclei", 2, "0123456789" * 6 + "0123")
USER_MODEL = ModelIdentity("lab-model", None, "ab" * 32)


def two_objects(shape=(40, 60)) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[5:15, 5:20] = 1
    labels[20:35, 30:50] = 2
    return labels


def test_the_identity_round_trips_through_its_metadata_and_text():
    assert MODEL.reference == "nuclei@2" and USER_MODEL.reference == "lab-model"
    assert MODEL.short_sha256 == MODEL.sha256[:16]
    for identity in (MODEL, USER_MODEL):
        assert ModelIdentity.from_metadata(identity.as_metadata()) == identity
        assert ModelIdentity.from_metadata(identity.as_text()) == identity
        assert ModelIdentity.from_metadata(identity.as_text("=")) == identity
        text_values = {k: str(v) for k, v in identity.as_metadata().items()}
        assert ModelIdentity.from_metadata(text_values) == identity
    assert "model_version" not in USER_MODEL.as_metadata()
    # Only the reference and the hash: the name and version come from the reference.
    assert ModelIdentity.from_metadata({"model": "nuclei@2", "model_sha256": MODEL.sha256}) == MODEL
    for nothing in (None, {}, "", {"model": "nuclei@2"}, {"model_sha256": "not a hash"}):
        assert ModelIdentity.from_metadata(nothing) is None
    assert parse_text("ImageJ=1.11a\nunit=micron\nmodel=nuclei@2") == {"model": "nuclei@2"}
    assert csv_columns(MODEL) == {"model": "nuclei@2", "model_sha256": MODEL.sha256[:16]}
    assert csv_columns(None) == {}


@pytest.mark.parametrize("largest", [2, 70000])  # uint16 (ImageJ writer) and uint32 TIFFs
def test_labels_tiff_records_the_model_and_keeps_fiji_calibration(tmp_path, largest):
    labels = two_objects().astype(np.uint32)
    labels[labels == 2] = largest
    path = write_labels(tmp_path / "labels.tif", labels, spacing=(0.5, 0.25), model=MODEL)
    image = read_image(path)
    np.testing.assert_array_equal(image.data, labels)
    assert image.pixel_size == {"Y": 0.5, "X": 0.25}
    assert image.metadata["format"] == "ImageJ hyperstack"
    assert ModelIdentity.from_metadata(image.metadata["model"]) == MODEL
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "micron"
        assert tif.pages.first.tags["XResolution"].value == (4, 1)
        assert f"model_sha256={MODEL.sha256}\n" in tif.pages.first.description + "\n"
        assert tif.imagej_metadata["Info"].endswith(f"{MODEL.describe()}.")
    # Without a model, nothing is claimed.
    plain = read_image(write_labels(tmp_path / "plain.tif", labels, spacing=(0.5, 0.25)))
    assert "model" not in plain.metadata


def test_tiled_and_stack_ome_tiffs_record_the_model_in_an_ome_map_annotation(tmp_path):
    plane = two_objects((300, 280))
    with TiledLabelsWriter(tmp_path / "plane.tif", plane.shape, spacing=(0.5, 0.5), tile=64,
                           model=MODEL) as writer:  # fmt: skip
        writer.paint(plane, (0, 0))
    stack = np.stack([plane[:100, :120]] * 3)
    for labels_format in ("tiff", "zarr"):
        name = "stack.tif" if labels_format == "tiff" else "stack.zarr"
        with StackLabelsWriter(tmp_path / name, stack.shape, spacing=(2.0, 0.5, 0.5),
                               labels_format=labels_format, model=MODEL) as writer:  # fmt: skip
            writer.paint(stack, (0, 0, 0))
    for name, pixel_size in (
        ("plane.tif", {"Y": 0.5, "X": 0.5}),
        ("stack.tif", {"Z": 2.0, "Y": 0.5, "X": 0.5}),
        ("stack.zarr", {"Z": 2.0, "Y": 0.5, "X": 0.5}),
    ):
        image = read_image(tmp_path / name)
        assert image.pixel_size == pytest.approx(pixel_size), name
        assert ModelIdentity.from_metadata(image.metadata["model"]) == MODEL, name
    with tifffile.TiffFile(tmp_path / "plane.tif") as tif:
        assert tif.is_ome and "napari-segnet/model" in tif.ome_metadata
        assert MODEL.describe() in tif.ome_metadata  # the image's OME Description


def test_zarr_labels_record_the_model_beside_the_ngff_metadata(tmp_path):
    path = tmp_path / "labels.zarr"
    labels = two_objects((300, 300))
    with ZarrLabelsWriter(path, labels.shape, spacing=(0.5, 0.5), model=MODEL) as writer:
        writer.paint(labels, (0, 0))
    attrs = zarr.open_group(path, mode="r").attrs
    assert attrs["multiscales"][0]["version"] == "0.4" and "image-label" in attrs
    assert attrs["napari-segnet"]["model"] == MODEL.as_metadata()
    image = read_image(path)
    assert image.metadata["image_label"]
    assert ModelIdentity.from_metadata(image.metadata["model"]) == MODEL


def test_outlines_carry_the_model_and_still_read_back(tmp_path):
    labels = two_objects()
    geojson = write_geojson(tmp_path / "objects.geojson", labels, model=MODEL)
    for feature in json.loads(geojson.read_text())["features"]:
        properties = feature["properties"]
        assert properties["objectType"] == "detection"
        assert properties["metadata"] == {k: str(v) for k, v in MODEL.as_metadata().items()}
    np.testing.assert_array_equal(read_geojson(geojson, labels.shape), labels)

    rois = write_imagej_rois(tmp_path / "objects_rois.zip", labels, model=USER_MODEL)
    assert [ModelIdentity.from_metadata(roi.props) for roi in roiread(rois)] == [USER_MODEL] * 2
    np.testing.assert_array_equal(read_imagej_rois(rois, labels.shape), labels)


def test_csv_gets_constant_model_columns_after_the_measurements(tmp_path):
    table = pd.DataFrame({"label": [1, 2], "area_px": [150, 300]})
    path = write_csv(table, tmp_path / "table.csv", model=MODEL)
    written = pd.read_csv(path, dtype={"model_sha256": str})
    assert list(written.columns) == ["label", "area_px", "model", "model_sha256"]
    assert list(written["model"]) == ["nuclei@2"] * 2
    assert list(written["model_sha256"]) == [MODEL.sha256[:16]] * 2
    assert list(table.columns) == ["label", "area_px"]  # the caller's table is unchanged
    empty = pd.read_csv(write_csv(table.iloc[:0], tmp_path / "empty.csv", model=MODEL))
    assert list(empty.columns) == ["label", "area_px", "model", "model_sha256"]
    assert list(pd.read_csv(write_csv(table, tmp_path / "plain.csv")).columns) == [
        "label",
        "area_px",
    ]
