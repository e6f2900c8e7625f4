"""The Inspect network dock widget: show what each part of the network computes."""

from __future__ import annotations

import logging

import numpy as np
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy import QtWidgets as qw

from napari_segnet.inference.inspect import inspect_network
from napari_segnet.inference.normalise import normalise
from napari_segnet.models.checkpoint import load_model

from . import layer_utils as lu
from . import pickers
from .model_picker import ModelPicker

PREFIX = "inspect: "
CLASSES = ("background", "interior", "boundary")
EXPLANATION = """<b>How the network segments</b><ol>
<li><b>Input</b>: one channel, scaled so the background is near 0 and the objects near 1
(images with a bright background are inverted).</li>
<li><b>Encoder</b>: each stage halves the resolution and computes more feature channels. Early
stages respond to edges and spots; deeper ones, which see a wider area, to whole objects and
their surroundings.</li>
<li><b>Decoder</b>: brings the coarse, context-rich features back to fine resolution, mixing in the
encoder's detail through skip connections.</li>
<li><b>Classifier</b>: for every pixel, a linear layer turns the decoder's features into
probabilities of <i>background</i>, <i>interior</i> and <i>boundary</i>.</li>
<li><b>Instances</b>: each interior region becomes a seed; a watershed grows the seeds through the
foreground, so touching objects are split where the boundary class lies.</li></ol>
Each feature layer holds the most active channels of one stage: move the first slider to
step through them."""
_log = logging.getLogger(__name__)


def tile_around(centre, shape, size: int) -> tuple[slice, slice]:
    """A ``size``-pixel square around ``centre`` inside ``shape`` (whole sides when smaller)."""
    tile = []
    for middle, length in zip(centre, shape):
        extent = min(size, length)
        start = int(np.clip(round(middle - extent / 2), 0, length - extent))
        tile.append(slice(start, start + extent))
    return tuple(tile)


def run_inspection(plane, tile, model_path, channels):
    """Load the model and inspect it on ``plane[tile]``; the Inspection, or ``lu.Failed``."""
    try:
        model, _ = load_model(model_path)
        normalised = normalise(plane, model.config.normalise_percentiles)[tile]
        return inspect_network(model, normalised, channels=channels)
    except Exception as error:
        _log.debug("Inspection failed", exc_info=True)
        return lu.Failed(lu.one_sentence(error))


class InspectWidget(qw.QWidget):
    """Run a model on a tile of the picked image and show its inside as layers."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self.worker = None
        form = qw.QFormLayout(self)
        self.image = pickers.LayerPicker(napari_viewer, Image)
        self.channel = pickers.ChannelPicker()
        self.model = ModelPicker()
        self.channels = lu.spin_box(qw.QSpinBox(), 1, 16, 4)
        self.channels.setToolTip("Feature channels shown per stage (the most active ones).")
        self.tile = lu.spin_box(qw.QSpinBox(), 64, 2048, 512, "px", step=64)
        self.tile.setToolTip("A square of this size around the centre of the view.")
        self.grid = qw.QCheckBox("Show layers side by side (grid)")
        self.grid.setChecked(True)
        for label, field in (
            ("Image", self.image),
            (self.channel.label, self.channel),
            ("Model", self.model),
            ("Channels per stage", self.channels),
            ("Tile size", self.tile),
            ("", self.grid),
        ):
            form.addRow(label, field)
        self.run_button, self.status = qw.QPushButton("Inspect"), qw.QLabel("")
        self.status.setWordWrap(True)
        explanation = qw.QLabel(EXPLANATION)
        explanation.setWordWrap(True)
        form.addRow(self.run_button)
        form.addRow(self.status)
        form.addRow(explanation)
        self.image.layer_changed.connect(self.channel.update_for)
        self.run_button.clicked.connect(self.run)
        self.channel.update_for(self.image.layer())

    def request(self) -> dict:
        """The plane, tile, model and channel count a click on Inspect would use."""
        layer = self.image.layer()
        image, channel = self.channel.picked(layer)
        plane = lu.displayed_plane(self._viewer, image, layer, channel)
        yx = [i for i, axis in enumerate(lu.layer_axes(layer).replace("S", "")) if axis in "YX"]
        centre = _newer_or_older(self._viewer, "scene", "camera").center[-2:]
        centre = [(c - layer.translate[i]) / layer.scale[i] for c, i in zip(centre, yx)]
        return {
            "plane": plane,
            "tile": tile_around(centre, plane.shape[:2], self.tile.value()),
            "model_path": self.model.path(),
            "channels": self.channels.value(),
        }

    def run(self) -> None:
        """Inspect the network on a tile of the picked image, in a worker thread."""
        if self.worker is not None or (request := lu.request_or_notify(self.request)) is None:
            return
        self._layer, self._tile = self.image.layer(), request["tile"]
        worker = thread_worker(run_inspection, start_thread=False, ignore_errors=True)(**request)
        worker.returned.connect(self._on_result)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.setEnabled(False)
        self.status.setText("Running the network…")
        worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)

    def _on_result(self, result) -> None:
        if isinstance(result, lu.Failed):
            self.status.setText(result.message)
            show_error(result.message)
            return
        self.show_inspection(result)
        y, x = self._tile
        self.status.setText(
            f"Inspected rows {y.start}–{y.stop}, columns {x.start}–{x.stop} of {self._layer.name}."
        )

    def show_inspection(self, inspection) -> None:
        """Replace the previous inspection layers with these."""
        viewer, layer = self._viewer, self._layer
        for old in [old for old in viewer.layers if old.name.startswith(PREFIX)]:
            viewer.layers.remove(old)
        yx = [i for i, axis in enumerate(lu.layer_axes(layer).replace("S", "")) if axis in "YX"]
        scale = np.array([layer.scale[i] for i in yx])
        origin = np.array([layer.translate[i] for i in yx])
        origin = origin + scale * [part.start for part in self._tile]

        units = tuple(str(layer.units[i]) for i in yx)

        def place(stride=1):
            return {
                "scale": tuple(scale * stride),
                "units": units,
                "translate": tuple(origin + scale * (stride - 1) / 2),
            }

        viewer.add_image(
            inspection.image,
            name=PREFIX + "input (normalised)",
            colormap="gray",
            contrast_limits=(0, 1),
            **place(),
        )
        for feature in inspection.features:
            placement = place(feature.stride)
            viewer.add_image(
                feature.data,
                name=PREFIX + feature.title,
                colormap="viridis",
                contrast_limits=(0, 1),
                scale=(1, *placement["scale"]),
                translate=(0, *placement["translate"]),
                units=("pixel", *units),
                metadata={"channels": feature.channels},
            )
        for index, kind in enumerate(CLASSES):
            viewer.add_image(
                inspection.probabilities[index],
                name=f"{PREFIX}{kind} probability",
                colormap="magma",
                contrast_limits=(0, 1),
                **place(),
            )
        _newer_or_older(viewer, "canvas", "grid").enabled = self.grid.isChecked()


def _newer_or_older(viewer, part: str, name: str):
    """``viewer.<part>.<name>`` (napari ≥ 0.9), else ``viewer.<name>``."""
    return getattr(getattr(viewer, part, None), name, None) or getattr(viewer, name)
