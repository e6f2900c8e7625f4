"""The Cells dock widget in a real viewer, on synthetic tissue with known positive cells."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import QPoint, Qt

import synthetic_cells as synthetic
from napari_segnet._napari.cells_widget import CellsWidget, image_name
from napari_segnet.cells import PhenotypeDefinition

TIMEOUT_MS = 120_000
SPACING = (0.5, 0.5)


@pytest.fixture(scope="module")
def tissue():
    return synthetic.synthetic_cells((256, 256), spacing=SPACING, rim_gaps=0.1, seed=0)


@pytest.fixture
def tissue_viewer(make_napari_viewer, tissue):
    viewer = make_napari_viewer(show=True)
    calibration = {"scale": SPACING, "units": ("micrometer",) * 2}
    for index, name in enumerate(synthetic.CHANNELS):
        viewer.add_image(tissue.image[index], name=name, blending="additive", **calibration)
    viewer.add_labels(tissue.nuclei, name="tissue labels", **calibration)
    return viewer


def drag(qtbot, histogram, start: float, end: float) -> None:
    """Press on the histogram at value `start`, move to `end` and let go, as a user does."""
    canvas = histogram.canvas
    x0, y = histogram.widget_position(start)
    x1, _ = histogram.widget_position(end)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x0, y))
    qtbot.mouseMove(canvas, QPoint((x0 + x1) // 2, y))
    qtbot.mouseMove(canvas, QPoint(x1, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x1, y))


def test_cells_grown_on_a_membrane_measured_and_phenotyped_by_dragging_the_threshold(
    tissue_viewer, tissue, run_to_end, errors, qtbot, tmp_path
):
    viewer = tissue_viewer
    nuclei = viewer.layers["tissue labels"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Cells")
    assert isinstance(widget, CellsWidget)
    assert widget.nuclei.layer() is nuclei
    assert widget.distance.suffix() == " µm" and widget.distance.value() == 5.0
    assert widget.channels.text() == ", ".join(synthetic.CHANNELS)
    widget.set_growth("stain", "membrane")

    run = run_to_end(widget, widget.run_button, TIMEOUT_MS)
    assert not run.cancelled and len(run.results) == 1
    assert [event.stage for event in run.progress] == [
        "growing cells",
        "measuring nucleus, cytoplasm and cell",
    ]
    cells, cytoplasm = viewer.layers["tissue cells"], viewer.layers["tissue cytoplasm"]
    inside = tissue.nuclei > 0
    np.testing.assert_array_equal(cells.data[inside], tissue.nuclei[inside])  # cell k holds k
    assert (cells.data > 0).sum() > 2 * inside.sum()
    np.testing.assert_array_equal(cytoplasm.data, np.where(inside, 0, cells.data))
    assert tuple(cells.scale) == SPACING and not cytoplasm.visible
    assert widget.nuclei.layer() is nuclei and widget.target.name == "tissue cells"
    features = pd.DataFrame(cells.features)
    n = len(np.unique(tissue.nuclei)) - 1
    assert len(features) == n and widget.features.model.rowCount() == n
    assert {"cell_area_um2", "cytoplasm_intensity_mean_CD8", "intensity_mean_Ki67"} <= set(
        features.columns
    )
    assert widget.status.text() == f"Measured {n} cells in tissue cells."

    # A marker: its automatic threshold is drawn first, the cells take their phenotype's colour.
    panel = widget.phenotype
    panel.channel.setCurrentText("CD8")
    panel.compartment.setCurrentText("cytoplasm")
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    automatic = panel.resolved.markers[0].threshold
    assert panel.markers[0].threshold is None
    assert panel.histogram.threshold == pytest.approx(automatic)
    values = features["cytoplasm_intensity_mean_CD8"].to_numpy()
    positives = int((values > automatic).sum())
    assert panel.count_of("CD8+") == positives and panel.count_of("CD8-") == n - positives
    classified = pd.DataFrame(cells.features).set_index("label")
    truth = pd.Series(tissue.positive["CD8"])
    assert (classified["CD8_positive"] == truth[classified.index]).mean() > 0.95
    assert isinstance(cells.colormap, DirectLabelColormap)
    colours = dict(
        zip(
            ["CD8+", "CD8-"],
            [panel.counts.item(r, 0).background().color().getRgbF() for r in range(2)],
        )
    )
    a_positive = int(classified.index[classified["CD8_positive"]][0])
    np.testing.assert_allclose(
        cells.colormap.map(np.array([a_positive]))[0][:3], colours["CD8+"][:3], atol=1 / 255
    )

    # Dragging the line higher makes fewer positives; the counts, features and colours follow.
    higher = float(np.sort(values)[-3]) - 1e-3  # just under the third largest: 3 positives
    drag(qtbot, panel.histogram, automatic, higher)
    qtbot.wait(50)
    dragged = panel.markers[0].threshold
    assert dragged is not None and dragged > automatic
    expected = int((values > dragged).sum())
    assert expected < positives
    assert panel.count_of("CD8+") == expected and panel.count_of("CD8-") == n - expected
    assert int(pd.DataFrame(cells.features)["CD8_positive"].sum()) == expected
    assert "(dragged)" in panel.marker_list.item(0).text()
    mapped = cells.colormap.map(np.array([a_positive]))[0][:3]
    now_positive = bool(
        pd.DataFrame(cells.features).set_index("label").loc[a_positive, "CD8_positive"]
    )
    np.testing.assert_allclose(
        mapped, colours["CD8+" if now_positive else "CD8-"][:3], atol=1 / 255
    )

    # Saved as JSON, the definition holds the dragged number; automatic ones stay null.
    panel.add_marker("Ki67", "nucleus")
    assert panel.counts.rowCount() == 4
    path = panel.save_definition(tmp_path / "phenotypes.json")
    saved = json.loads(Path(path).read_text())
    assert saved["markers"][0]["threshold"] == pytest.approx(dragged)
    assert saved["markers"][1]["threshold"] is None
    assert PhenotypeDefinition.from_json(path) == panel.definition()
    assert errors == []

    panel.automatic_threshold()
    panel.marker_list.setCurrentRow(0)
    panel.automatic_threshold()
    assert panel.load_definition(path)
    assert panel.markers[0].threshold == pytest.approx(dragged)

    # Removing every marker gives the cells their own colours back.
    panel.remove_marker()
    panel.remove_marker()
    assert not isinstance(cells.colormap, DirectLabelColormap)
    assert "phenotype" not in cells.features and "CD8_positive" not in cells.features
    assert errors == []

    qtbot.wait(100)
    shot = tmp_path / "cells_widget.png"
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    assert shot.stat().st_size > 10_000


def test_bad_definitions_and_settings_say_why_and_change_nothing(
    make_napari_viewer, tissue, run_to_end, errors, tmp_path
):
    viewer = make_napari_viewer()
    widget = CellsWidget(viewer)
    widget.run_button.click()
    assert errors == ["There is no nuclei labels layer: segment an image first."]
    panel = widget.phenotype
    assert panel.save_definition(tmp_path / "none.json") is None
    assert errors[1:] == ["There is no marker to save: add a marker first."]
    errors.clear()

    viewer.add_labels(tissue.nuclei, name="tissue labels")  # no channel to grow on
    widget.set_growth("stain")
    widget.run_button.click()
    assert len(errors) == 1 and errors[0].startswith("There is no channel of the nuclei's size")
    assert not widget.runner.running and len(viewer.layers) == 1
    errors.clear()

    widget.set_growth("expand")
    run = run_to_end(widget, widget.run_button, TIMEOUT_MS)
    assert not run.cancelled and "tissue cells" in viewer.layers
    assert widget.channels.text() == "no channel of the nuclei's size"
    assert panel.channel.count() == 0

    broken = tmp_path / "broken.json"
    broken.write_text('{"markers": [{"channel": "CD8", "compartment": "membrane"}]}')
    unmeasured = tmp_path / "unmeasured.json"
    unmeasured.write_text('{"markers": [{"channel": "CD8", "compartment": "cell"}]}')
    for path in (broken, unmeasured, tmp_path / "missing.json"):
        assert not panel.load_definition(path)
    assert len(errors) == 3 and all(e.endswith(".") and "\n" not in e for e in errors)
    assert "compartment must be one of" in errors[0]
    assert "has no column 'cell_intensity_mean_CD8'" in errors[1]
    assert panel.markers == [] and "phenotype" not in viewer.layers["tissue cells"].features
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "unmeasured.json"]
    widget.deleteLater()


def test_uncalibrated_nuclei_expand_in_pixels_or_are_measured_alone(
    make_napari_viewer, tissue, run_to_end, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(tissue.channel("CD8"), name="CD8")
    nuclei = viewer.add_labels(tissue.nuclei, name="DAPI labels [2]")
    widget = CellsWidget(viewer)
    assert widget.distance.suffix() == " px" and widget.distance.value() == 10.0
    run_to_end(widget, widget.run_button, TIMEOUT_MS)
    cells = viewer.layers["DAPI cells"]
    assert image_name(nuclei.name) == "DAPI"
    assert (cells.data > 0).sum() > (tissue.nuclei > 0).sum()

    widget.set_growth("none")
    assert not widget.distance.isEnabled()
    run_to_end(widget, widget.run_button, TIMEOUT_MS)
    assert widget.target is nuclei and "DAPI cells [2]" not in viewer.layers
    assert "cytoplasm_intensity_mean_CD8" in nuclei.features
    assert len(nuclei.features) == len(np.unique(tissue.nuclei)) - 1
    widget.phenotype.add_marker("CD8", "nucleus")
    assert widget.phenotype.counts.rowCount() == 2
    assert isinstance(nuclei.colormap, DirectLabelColormap)
    assert errors == []
    widget.deleteLater()


def test_edited_cells_are_kept_and_measure_leaves_phenotype_colours_be(
    tissue_viewer, run_to_end, errors, qtbot, infos
):
    from napari_segnet._napari.measure_widget import NO_COLOUR, MeasureWidget

    viewer = tissue_viewer
    _, widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Cells")
    widget.set_growth("expand")
    run_to_end(widget, widget.run_button, TIMEOUT_MS)
    cells = viewer.layers["tissue cells"]

    # Measure colours the cells by area; then a marker colours them by phenotype.
    _, measure = viewer.window.add_plugin_dock_widget("napari-segnet", "Measure")
    assert isinstance(measure, MeasureWidget)
    measure.labels.choose(cells)
    qtbot.wait(50)
    measure.colour_by_column("cell_area_um2")
    by_area = cells.colormap
    widget.phenotype.add_marker("CD8", "cytoplasm")
    phenotypes = cells.colormap
    assert phenotypes is not by_area
    qtbot.wait(50)
    # Measure saw its colours taken: it shows none, and restores nothing over them.
    assert measure.colour_by.currentText() == NO_COLOUR
    measure.colour_by_column(None)
    assert cells.colormap is phenotypes

    # A hand correction of the cells survives Make cells.
    edited = cells.data.copy()
    edited[:8, :8] = 999
    cells.data = edited
    run_to_end(widget, widget.run_button, TIMEOUT_MS)
    np.testing.assert_array_equal(viewer.layers["tissue cells"].data, edited)
    assert "tissue cells [2]" in viewer.layers
    assert any("tissue cells [2]" in message for message in infos)
    assert errors == []
