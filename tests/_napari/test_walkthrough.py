"""A user's whole loop in the GUI, headless: open, segment, measure, correct and train,
segment with the new model, inspect the network."""

import shutil

import numpy as np
import pytest
from napari.layers import Labels

from napari_segnet.data import sample_path
from napari_segnet.io import read_image

TIMEOUT_MS = 300_000


def test_open_segment_measure_train_segment_again_inspect(
    make_napari_viewer, errors, tmp_path, monkeypatch, run_to_end
):
    def click_and_wait(widget, button):
        run = run_to_end(widget, button, TIMEOUT_MS)
        assert not run.cancelled and errors == []

    monkeypatch.setenv("NAPARI_SEGNET_MODELS", str(tmp_path / "models"))
    path = tmp_path / "nuclei_2ch.ome.tif"
    shutil.copyfile(sample_path("nuclei_2ch"), path)
    viewer = make_napari_viewer(show=True)

    # Open a multichannel OME-TIFF through the plugin: one layer per channel, calibrated.
    viewer.open(path, plugin="napari-segnet")
    assert [layer.name for layer in viewer.layers] == ["DAPI", "CellMask (synthetic)"]
    dapi = viewer.layers["DAPI"]
    viewer.layers.selection.active = dapi

    # Segment the DNA channel.
    _, segment = viewer.window.add_plugin_dock_widget("napari-segnet", "Segment")
    assert segment.image.layer() is dapi
    click_and_wait(segment, segment.run_button)
    labels = viewer.layers["DAPI labels"]
    assert isinstance(labels, Labels)
    assert tuple(labels.scale) == pytest.approx((0.65, 0.65))
    assert [str(unit) for unit in labels.units] == ["micrometer", "micrometer"]
    first_count = len(np.unique(labels.data)) - 1
    assert first_count > 100

    # Measure it: features in physical units.
    viewer.layers.selection.active = labels
    _, measure = viewer.window.add_plugin_dock_widget("napari-segnet", "Measure")
    assert measure.labels.layer() is labels
    click_and_wait(measure, measure.measure_button)
    features = labels.features
    assert len(features) == first_count
    np.testing.assert_allclose(features["area_um2"], features["area_px"] * 0.65**2)
    assert "intensity_mean_DAPI" in features

    # Correct the labels (here: replaced by the expert annotation) and fine-tune on them.
    labels.data = read_image(sample_path("nuclei_labels")).data.astype(labels.data.dtype)
    _, train = viewer.window.add_plugin_dock_widget("napari-segnet", "Train")
    assert train.image.layer() is dapi and train.labels.layer() is labels
    train.epochs.setValue(2)
    train.steps.setValue(3)
    click_and_wait(train, train.train_button)
    assert (tmp_path / "models" / "nuclei-tuned.safetensors").is_file()
    assert len(train.curve.scores) == 2

    # Segment again with the new model, which Segment now offers and has selected: the
    # corrected labels are kept, the new ones go to a new layer.
    assert segment.model.currentText() == "nuclei-tuned"
    corrected = labels.data.copy()
    click_and_wait(segment, segment.run_button)
    assert viewer.layers["DAPI labels"] is labels
    np.testing.assert_array_equal(labels.data, corrected)
    names = [layer.name for layer in viewer.layers if isinstance(layer, Labels)]
    assert names == ["DAPI labels", "DAPI labels [2]"]
    assert len(np.unique(viewer.layers["DAPI labels [2]"].data)) - 1 > 100
    click_and_wait(segment, segment.run_button)  # the new layer is updated, not piled up
    assert len([layer for layer in viewer.layers if isinstance(layer, Labels)]) == 2

    # Inspect the network on the image.
    _, inspect = viewer.window.add_plugin_dock_widget("napari-segnet", "Inspect network")
    inspect.image.choose(dapi)
    click_and_wait(inspect, inspect.run_button)
    assert "inspect: interior probability" in viewer.layers
    assert "inspect: encoder 4 · 1/16 resolution · 128 channels" in viewer.layers
    assert errors == []
