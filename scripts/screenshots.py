"""Take the README's screenshots headless.

    xvfb-run -a .venv/bin/python scripts/screenshots.py [--only slide | widgets | cells]

Writes PNG files into docs/images/.
"""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import napari
import numpy as np
import tifffile
from qtpy.QtWidgets import QApplication

from napari_segnet._napari.qt_helpers import process_events_until
from napari_segnet.data import sample_path
from napari_segnet.io import read_image
from napari_segnet.measure import measure

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def settle(viewer: napari.Viewer) -> None:
    for _ in range(20):
        QApplication.processEvents()
    viewer.window._qt_window.repaint()


def shoot(viewer: napari.Viewer, name: str) -> None:
    """Let the viewer draw, then save the whole window as ``docs/images/<name>.png``."""
    settle(viewer)
    viewer.screenshot(str(OUT / f"{name}.png"), canvas_only=False, flash=False)


def run_to_end(widget, timeout_s: float = 300) -> None:
    """Click the widget's main action and wait until its worker is done."""
    widget.run()
    process_events_until(lambda: not widget.runner.running, timeout_s=timeout_s)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open(sample_path("nuclei_2ch"), plugin="napari-segnet")
    viewer.scale_bar.visible = True
    shoot(viewer, "sample_2ch_opened")

    image, labels = read_image(sample_path("nuclei_2ch")), read_image(sample_path("nuclei_labels"))
    layer = viewer.add_labels(
        labels.data,
        name="nuclei labels",
        scale=(0.65, 0.65),
        units=("micrometer",) * 2,
        opacity=0.45,
    )
    layer.features = measure(
        labels.data,
        image.data,
        channel_axis=0,
        channel_names=image.channel_names,
        spacing=image.spacing,
    )
    viewer.layers.selection.active = layer
    shoot(viewer, "sample_2ch_measured")
    viewer.close()
    widget_screenshots()


def widget_screenshots() -> None:
    """Segment the sample's DAPI channel, measure it, fine-tune, inspect: the dock widgets."""
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    viewer.layers.selection.active = viewer.layers["DAPI"]
    _, segment = viewer.window.add_plugin_dock_widget("napari-segnet", "Segment")
    run_to_end(segment)
    shoot(viewer, "segment_widget")
    viewer.window.remove_dock_widget(segment)
    _, measure_widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Measure")
    run_to_end(measure_widget)
    measure_widget.table.selectRow(0)
    shoot(viewer, "measure_widget")
    viewer.window.remove_dock_widget(measure_widget)

    # Fine-tune on corrected labels (here the expert annotation), into a throw-away folder.
    labels = viewer.layers["DAPI labels"]
    labels.data = read_image(sample_path("nuclei_labels")).data.astype(labels.data.dtype)
    os.environ["NAPARI_SEGNET_MODELS"] = tempfile.mkdtemp()
    _, train = viewer.window.add_plugin_dock_widget("napari-segnet", "Train")
    train.epochs.setValue(6)
    train.steps.setValue(10)
    run_to_end(train, timeout_s=900)
    shoot(viewer, "train_widget")
    viewer.window.remove_dock_widget(train)

    _, inspect = viewer.window.add_plugin_dock_widget("napari-segnet", "Inspect network")
    inspect.image.choose(viewer.layers["DAPI"])
    inspect.tile.setValue(192)
    run_to_end(inspect)
    for layer in viewer.layers:  # the grid shows the inspection only
        layer.visible = layer.name.startswith("inspect: ")
    shoot(viewer, "inspect_widget")
    viewer.close()


def slide_screenshot() -> None:
    """Segment a 6144 × 6144 mosaic block by block: the multiscale labels, zoomed in."""
    folder = Path(tempfile.mkdtemp())
    os.environ["NAPARI_SEGNET_RESULTS"] = str(folder / "results")
    sample = tifffile.imread(sample_path("nuclei"))
    period = np.block([[sample, sample[:, ::-1]], [sample[::-1], sample[::-1, ::-1]]])
    rows, columns = (np.arange(6144) % n for n in period.shape)
    mosaic = folder / "mosaic.tif"
    tifffile.imwrite(mosaic, period[np.ix_(rows, columns)], tile=(512, 512), compression="zlib")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open(mosaic, plugin="napari-segnet")
    _, segment = viewer.window.add_plugin_dock_widget("napari-segnet", "Segment")
    run_to_end(segment, timeout_s=1800)
    viewer.camera.center = (3072, 3072)
    viewer.camera.zoom = 1.2
    shoot(viewer, "segment_slide")
    viewer.close()


def synthetic_tissue():
    """Synthetic tissue with membrane, cytoplasm and two markers (the cells tests' generator)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "cells" / "synthetic_cells.py"
    spec = importlib.util.spec_from_file_location("synthetic_cells", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["synthetic_cells"] = module
    spec.loader.exec_module(module)
    return module.CHANNELS, module.synthetic_cells((320, 320), spacing=(0.5, 0.5), seed=4)


def cells_screenshots() -> None:
    """Cells grown on a membrane stain and phenotyped; Measure colouring them by a column."""
    channels, tissue = synthetic_tissue()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 1150)
    calibration = {"scale": (0.5, 0.5), "units": ("micrometer",) * 2}
    colours = ("blue", "gray", "gray", "green", "magenta")
    for index, (name, colour) in enumerate(zip(channels, colours)):
        visible = name in ("DAPI", "CD8")
        viewer.add_image(
            tissue.image[index],
            name=name,
            colormap=colour,
            blending="additive",
            visible=visible,
            **calibration,
        )
    viewer.add_labels(tissue.nuclei, name="tissue labels", visible=False, **calibration)
    viewer.scale_bar.visible = True
    _, cells = viewer.window.add_plugin_dock_widget("napari-segnet", "Cells")
    cells.set_growth("stain", "membrane")
    run_to_end(cells)
    panel = cells.phenotype
    panel.add_marker("Ki67", "nucleus")
    panel.add_marker("CD8", "cytoplasm")
    viewer.layers["tissue cells"].contour = 0
    viewer.layers["tissue cells"].opacity = 0.55
    shoot(viewer, "cells_widget")
    viewer.window.remove_dock_widget(cells)

    _, measure_widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Measure")
    measure_widget.labels.choose(viewer.layers["tissue cells"])
    measure_widget.colour_by_column("cell_area_um2")
    viewer.layers["tissue cells"].opacity = 0.8
    shoot(viewer, "cells_measure_colour")
    viewer.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--only", "slide"]:
        slide_screenshot()
    elif sys.argv[1:] == ["--only", "widgets"]:
        widget_screenshots()
    elif sys.argv[1:] == ["--only", "cells"]:
        cells_screenshots()
    else:
        main()
        slide_screenshot()
        cells_screenshots()
