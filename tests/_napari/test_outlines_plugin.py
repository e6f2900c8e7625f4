"""Outlines in napari: writers and reader through the npe2 manifest, and Measure's exports."""

import json
import zipfile

import numpy as np
import pytest
from roifile import roiread

from napari_segnet._napari.measure_widget import MeasureWidget
from napari_segnet._napari.reader import napari_get_outlines_reader
from napari_segnet.io.geojson import read_geojson, write_geojson
from napari_segnet.io.imagej_rois import read_imagej_rois, write_imagej_rois


@pytest.fixture
def labels(nuclei_pairs):
    _, labels = nuclei_pairs[1]
    return labels


def test_labels_layers_save_as_geojson_and_roi_sets(make_napari_viewer, tmp_path, labels):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels, name="nuclei")
    layer.features = {
        "label": np.arange(1, labels.max() + 1),
        "score": np.linspace(0, 1, labels.max()),
    }
    viewer.layers.save(str(tmp_path / "nuclei.geojson"), selected=False, plugin="napari-segnet")
    viewer.layers.save(str(tmp_path / "nuclei_rois.zip"), selected=False, plugin="napari-segnet")
    np.testing.assert_array_equal(read_geojson(tmp_path / "nuclei.geojson", labels.shape), labels)
    np.testing.assert_array_equal(
        read_imagej_rois(tmp_path / "nuclei_rois.zip", labels.shape), labels
    )
    features = json.loads((tmp_path / "nuclei.geojson").read_text())["features"]
    scores = {f["properties"]["label"]: f["properties"]["measurements"]["score"] for f in features}
    assert scores[labels.max()] == 1.0


def test_outlines_open_on_the_grid_of_the_image_they_fit(
    make_napari_viewer, tmp_path, labels, infos
):
    viewer = make_napari_viewer()
    big = np.zeros((labels.shape[0] + 20, labels.shape[1] + 30), np.uint8)
    viewer.add_image(np.zeros((8, 8), np.uint8), name="too small")
    viewer.add_image(big, name="cells", scale=(0.5, 0.5))
    write_geojson(tmp_path / "qupath.geojson", labels)
    (layer,) = viewer.open(str(tmp_path / "qupath.geojson"), plugin="napari-segnet")
    assert layer.data.shape == big.shape
    assert tuple(layer.scale) == (0.5, 0.5)
    np.testing.assert_array_equal(layer.data[: labels.shape[0], : labels.shape[1]], labels)
    assert not layer.data[labels.shape[0] :].any()
    assert any("image layer 'cells'" in message for message in infos)


def test_roi_sets_open_as_stacks_without_an_image(make_napari_viewer, tmp_path, infos):
    stack = np.zeros((4, 20, 24), np.uint16)
    stack[1, 2:8, 3:9] = 3
    stack[3, 10:18, 12:20] = 8
    write_imagej_rois(tmp_path / "stack_rois.zip", stack)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "stack_rois.zip"), plugin="napari-segnet")
    assert layer.data.shape == (4, 18, 20)  # the extent of the shapes
    np.testing.assert_array_equal(layer.data, stack[:, :18, :20])
    assert any("the extent of its shapes" in message for message in infos)


def test_ordinary_zip_files_are_not_claimed(tmp_path):
    other = tmp_path / "data.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert napari_get_outlines_reader(str(other)) is None
    assert napari_get_outlines_reader(str(tmp_path / "image.tif")) is None


def test_measure_exports_outlines_with_measurements(
    make_napari_viewer, run_to_end, tmp_path, labels, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, labels.shape, dtype=np.uint8))
    layer = viewer.add_labels(labels, name="nuclei")
    widget = MeasureWidget(viewer)
    assert widget.export_geojson(tmp_path / "early.geojson") is not None  # outlines only
    run = run_to_end(widget, widget.measure_button, 120_000)
    assert not run.cancelled
    geojson = widget.export_geojson(tmp_path / "nuclei.geojson")
    rois = widget.export_imagej_rois(tmp_path / "nuclei_rois.zip")
    assert errors == []
    features = json.loads(open(geojson).read())["features"]
    assert len(features) == labels.max() == len(roiread(rois))
    areas = dict(zip(layer.features["label"], layer.features["area_px"]))
    for feature in features:
        properties = feature["properties"]
        assert properties["measurements"]["area_px"] == areas[properties["label"]]
    np.testing.assert_array_equal(read_imagej_rois(rois, labels.shape), labels)
    assert widget.export_imagej_rois(tmp_path / "missing" / "x.zip") is None
    assert len(errors) == 1 and "does not exist" in errors[0]
    widget.deleteLater()
