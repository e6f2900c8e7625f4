"""The Measure dock widget in a real viewer, on the bundled sample and its ground truth."""

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_segnet._napari.measure_widget import MeasureWidget, merge_features
from napari_segnet.data import sample_path
from napari_segnet.io import read_image

TIMEOUT_MS = 120_000


@pytest.fixture
def truth():
    return read_image(sample_path("nuclei_labels")).data


@pytest.fixture
def labelled_viewer(make_napari_viewer, truth):
    viewer = make_napari_viewer(show=True)  # hidden canvases render black under Xvfb
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    viewer.add_labels(
        truth, name="nuclei labels", scale=(0.65, 0.65), units=("micrometer", "micrometer")
    )
    return viewer


@pytest.fixture
def click_measure(run_to_end):
    """Click Measure and wait for the run's end; the measurements are then in the layer."""

    def click(widget, layer):
        run = run_to_end(widget, widget.measure_button, TIMEOUT_MS)
        assert not run.cancelled and len(run.results) == 1
        assert widget.progress.isHidden() and widget.measure_button.isEnabled()
        assert widget.status.text().startswith(f"Measured {len(run.results[0])} objects")
        assert "area_px" in layer.features

    return click


def test_measure_merges_into_features_and_syncs_the_table(
    labelled_viewer, truth, errors, tmp_path, click_measure
):
    viewer = labelled_viewer
    layer = viewer.layers["nuclei labels"]
    ids = np.unique(truth)[1:]
    notes = {int(ids[0]): "first", int(ids[5]): "dividing"}
    layer.features = pd.DataFrame(
        {"label": list(notes), "my_note": list(notes.values()), "area_um2": [-1.0, -1.0]}
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Measure")
    assert isinstance(widget, MeasureWidget)
    assert widget.labels.layer() is layer  # the active labels layer
    assert [layer.name for layer in widget.chosen_images()] == ["DAPI", "CellMask (synthetic)"]
    assert widget.calibration.text() == "Pixel size 0.65 µm × 0.65 µm"

    click_measure(widget, layer)
    features = pd.DataFrame(layer.features)
    assert len(features) == len(ids)
    np.testing.assert_array_equal(features["label"], ids)
    np.testing.assert_array_equal(features["index"], ids)  # napari shows the row on hover
    np.testing.assert_allclose(features["area_um2"], features["area_px"] * 0.65**2)
    dapi = viewer.layers["DAPI"].data
    first = features.iloc[0]
    assert first["intensity_mean_DAPI"] == pytest.approx(dapi[truth == first["label"]].mean())
    assert "intensity_mean_CellMask_synthetic" in features
    by_label = features.set_index("label")["my_note"]
    assert by_label[ids[0]] == "first" and by_label[ids[5]] == "dividing"
    assert by_label.isna().sum() == len(ids) - 2
    assert widget.model.rowCount() == len(ids)
    assert "index" not in list(widget.model.frame.columns)
    assert errors == []

    # table -> viewer
    assert int(widget.model.frame["label"][3]) == ids[3]  # label order until sorted
    widget.table.selectRow(3)
    assert layer.selected_label == int(widget.model.frame["label"][3])
    # viewer -> table
    layer.selected_label = int(ids[10])
    (row,) = widget.table.selectionModel().selectedRows()
    assert int(widget.model.frame["label"][row.row()]) == ids[10]
    widget.show_selected.setChecked(True)
    assert layer.show_selected_label
    widget.show_selected.setChecked(False)

    # sorting the table keeps the row -> label link
    widget.table.sortByColumn(
        list(widget.model.frame.columns).index("area_px"), Qt.SortOrder.DescendingOrder
    )
    widget.table.selectRow(0)
    largest = features.loc[features["area_px"].idxmax(), "label"]
    assert layer.selected_label == largest

    # exports
    csv = widget.export_csv(tmp_path / "measurements.csv")
    table = pd.read_csv(csv)
    assert len(table) == len(ids) and "index" not in table
    assert {"area_um2", "intensity_mean_DAPI", "my_note"} <= set(table.columns)
    np.testing.assert_allclose(table["area_um2"], features["area_um2"])
    tif = widget.export_labels(tmp_path / "labels.tif")
    written = read_image(tif)
    np.testing.assert_array_equal(written.data, truth)
    assert written.pixel_size == pytest.approx({"Y": 0.65, "X": 0.65})
    assert errors == []

    path = tmp_path / "measure_widget.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    assert path.stat().st_size > 10_000


def test_remeasuring_replaces_columns_and_keeps_user_ones(
    labelled_viewer, truth, errors, click_measure
):
    viewer = labelled_viewer
    layer = viewer.layers["nuclei labels"]
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.images.item(1).setCheckState(Qt.CheckState.Unchecked)  # only DAPI
    click_measure(widget, layer)
    features = layer.features
    assert "intensity_mean_DAPI" in features and "intensity_mean_CellMask_synthetic" not in features
    features["my_note"] = "checked"
    layer.features = features
    layer.data = np.where(truth == truth.max(), 0, truth)  # the user erased one object
    click_measure(widget, layer)
    features = layer.features
    assert len(features) == len(np.unique(truth)) - 2
    assert (features["my_note"] == "checked").all()
    assert list(features.columns).count("area_px") == 1
    assert errors == []


def test_uncalibrated_labels_are_measured_in_pixels(
    make_napari_viewer, truth, errors, click_measure
):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(truth, name="labels")
    widget = MeasureWidget(viewer)
    assert widget.calibration.text() == "Uncalibrated: pixels"
    assert widget.images.count() == 0
    click_measure(widget, layer)
    assert "area_um2" not in layer.features and "intensity_mean_DAPI" not in layer.features
    assert errors == []
    widget.deleteLater()


def test_exports_without_measurements_or_layers_say_why(make_napari_viewer, errors, tmp_path):
    viewer = make_napari_viewer()
    widget = MeasureWidget(viewer)
    widget.measure_button.click()
    assert errors == ["There is no labels layer to measure: segment an image first."]
    assert not widget.runner.running and widget.progress.isHidden()
    errors.clear()
    assert widget.export_labels(tmp_path / "x.tif") is None
    viewer.add_labels(np.zeros((8, 8), np.uint16))
    assert widget.export_csv(tmp_path / "x.csv") is None
    assert len(errors) == 2 and not list(tmp_path.iterdir())
    widget.deleteLater()


def test_merge_features_aligns_user_columns_by_label():
    new = pd.DataFrame({"label": [1, 2, 4], "area_px": [10, 20, 40]})
    old = pd.DataFrame({"index": [4, 1, 3], "area_px": [0, 0, 0], "note": ["d", "a", "gone"]})
    merged = merge_features(old, new)
    assert list(merged["label"]) == [1, 2, 4] and list(merged["area_px"]) == [10, 20, 40]
    assert list(merged["note"].fillna("")) == ["a", "", "d"]
    assert list(merged["index"]) == [1, 2, 4]
    # napari's own convention without a label/index column: row i is label i
    implicit = merge_features(pd.DataFrame({"note": ["bg", "one", "two"]}), new)
    assert list(implicit["note"].fillna("")) == ["one", "two", ""]
    assert list(merge_features(pd.DataFrame(), new).columns) == ["label", "area_px", "index"]


def test_big_labels_are_measured_block_by_block_with_the_same_rows(
    labelled_viewer, monkeypatch, errors, run_to_end, click_measure
):
    from napari_segnet.measure import blocks

    viewer = labelled_viewer
    layer = viewer.layers["nuclei labels"]
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.choose(layer)
    click_measure(widget, layer)
    whole = pd.DataFrame(layer.features).copy()

    monkeypatch.setattr(blocks, "BLOCKWISE_PIXELS", 100_000)  # the sample counts as big
    monkeypatch.setattr(blocks, "BLOCK", 200)
    run = run_to_end(widget, widget.measure_button, TIMEOUT_MS)
    assert [event.stage for event in run.progress][-1] == "measuring block 12 of 12"
    assert widget.status.text().startswith(f"Measured {len(whole)} objects")
    by_blocks = pd.DataFrame(layer.features)
    assert list(by_blocks.columns) == list(whole.columns)
    numeric = [c for c in whole.columns if pd.api.types.is_numeric_dtype(whole[c])]
    np.testing.assert_allclose(by_blocks[numeric].to_numpy(float), whole[numeric].to_numpy(float))
    assert errors == []


def test_colour_by_a_column_shows_its_histogram_and_paints_the_objects(
    labelled_viewer, truth, errors, click_measure, qtbot, tmp_path
):
    from napari.utils.colormaps import DirectLabelColormap

    viewer = labelled_viewer
    layer = viewer.layers["nuclei labels"]
    own_colours = layer.colormap
    widget = MeasureWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert [widget.colour_by.itemText(i) for i in range(widget.colour_by.count())] == ["none"]
    click_measure(widget, layer)
    columns = widget.value_columns()
    assert "area_um2" in columns and "label" not in columns and "index" not in columns

    widget.colour_by_column("area_um2")
    features = pd.DataFrame(layer.features)
    smallest = int(features.loc[features["area_um2"].idxmin(), "label"])
    largest = int(features.loc[features["area_um2"].idxmax(), "label"])
    assert isinstance(layer.colormap, DirectLabelColormap)
    colours = layer.colormap.map(np.array([smallest, largest]))
    np.testing.assert_allclose(colours[0][:3], [0.267004, 0.004874, 0.329415], atol=1e-4)
    np.testing.assert_allclose(colours[1][:3], [0.993248, 0.906157, 0.143936], atol=1e-4)
    assert widget.histogram.colorbar is not None
    assert widget.histogram.values.size == len(features)
    low, high = widget.histogram.colorbar.mappable.get_clim()
    assert (low, high) == (features["area_um2"].min(), features["area_um2"].max())
    assert sum(bar.get_height() for bar in widget.histogram.axes.patches) == len(features)

    widget.colormap.setCurrentText("magma")
    np.testing.assert_allclose(
        layer.colormap.map(np.array([largest]))[0][:3], [0.987053, 0.991438, 0.749504], atol=1e-4
    )
    with pytest.raises(ValueError, match="no measured column 'volume_um3'"):
        widget.colour_by_column("volume_um3")
    qtbot.wait(100)
    path = tmp_path / "measure_colour.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    assert path.stat().st_size > 10_000

    # Measuring again keeps the column; "none" gives the layer its own colours back.
    click_measure(widget, layer)
    assert widget.colour_by.currentText() == "area_um2"
    widget.colour_by_column(None)
    assert layer.colormap is own_colours
    assert widget.histogram.colorbar is None
    assert errors == []
