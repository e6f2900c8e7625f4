"""The model picker offers every version; labels from Segment name their model in every export."""

import json

import pandas as pd
import tifffile
from roifile import roiread

from napari_segnet._napari.layers import layer_model
from napari_segnet._napari.measure_widget import MeasureWidget
from napari_segnet._napari.model_picker import CHOOSE_FILE, ModelPicker
from napari_segnet._napari.segment_widget import SegmentWidget
from napari_segnet.io import read_image
from napari_segnet.io.model_identity import ModelIdentity
from napari_segnet.models import model_identity
from napari_segnet.models.bundled import bundled_model_path

TIMEOUT_MS = 120_000


def test_the_picker_offers_every_version_newest_first(qtbot):
    picker = ModelPicker("from scratch")
    qtbot.addWidget(picker)
    texts = [picker.itemText(i) for i in range(picker.count())]
    assert texts[:2] == ["nuclei@2 (newest)", "nuclei@1"]
    assert texts[-2:] == ["from scratch", CHOOSE_FILE]
    assert picker.currentIndex() == 0 and picker.path() == bundled_model_path("nuclei")
    assert picker.model_name() == "nuclei"
    picker.setCurrentIndex(picker.findText("nuclei@1"))
    assert picker.path() == bundled_model_path("nuclei@1") and picker.model_name() == "nuclei"


def test_labels_from_segment_carry_their_model_into_every_export(
    make_napari_viewer, run_to_end, errors, tmp_path
):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-segnet", "nuclei")
    image = viewer.layers[0]
    segment = SegmentWidget(viewer)
    segment.model.setCurrentIndex(segment.model.findText("nuclei@1"))
    run = run_to_end(segment, segment.run_button, TIMEOUT_MS)
    assert not run.cancelled and errors == []
    labels = viewer.layers[f"{image.name} labels"]
    first = model_identity("nuclei@1")
    assert labels.metadata["model"] == first.as_metadata()

    measure = MeasureWidget(viewer)
    measure.labels.choose(labels)
    assert measure.labels.layer() is labels
    assert not run_to_end(measure, measure.measure_button, TIMEOUT_MS).cancelled
    table = pd.read_csv(measure.export_csv(tmp_path / "table.csv"))
    assert set(table["model"]) == {"nuclei@1"} and set(table["model_sha256"]) == {
        first.short_sha256
    }
    assert "model" not in labels.features  # the table in napari stays measurements only
    exported = read_image(measure.export_labels(tmp_path / "labels.tif"))
    assert ModelIdentity.from_metadata(exported.metadata["model"]) == first
    geojson = json.loads(open(measure.export_geojson(tmp_path / "labels.geojson")).read())
    assert geojson["features"][0]["properties"]["metadata"]["model"] == "nuclei@1"
    rois = roiread(measure.export_imagej_rois(tmp_path / "labels_rois.zip"))
    assert ModelIdentity.from_metadata(rois[0].props) == first
    # File > Save Layers goes through the same writers.
    viewer.layers.selection = {labels}
    viewer.layers.save(str(tmp_path / "saved.tif"), selected=True, plugin="napari-segnet")
    with tifffile.TiffFile(tmp_path / "saved.tif") as tif:
        assert f"model_sha256={first.sha256}" in tif.pages.first.description

    # Segmenting again with the newest version: the layer now names that one.
    segment.model.setCurrentIndex(0)
    assert not run_to_end(segment, segment.run_button, TIMEOUT_MS).cancelled
    assert layer_model(viewer.layers[f"{image.name} labels"].metadata) == model_identity("nuclei")
    assert errors == []
    segment.deleteLater()
    measure.deleteLater()
