"""The Inspect network dock widget: show what each part of the network computes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from napari.layers import Image
from qtpy import QtWidgets as qw

from napari_segnet.inference.inspect import inspect_network
from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.segment import SegmentSettings
from napari_segnet.messages import one_sentence
from napari_segnet.models.checkpoint import load_model

from . import pickers
from .layer_axes import displayed_plane, yx_dimensions
from .model_picker import ModelPicker
from .qt_helpers import request_or_notify, spin_box
from .worker import Failed, WidgetWorker

PREFIX = "inspect: "
CLASSES = ("background", "interior", "boundary")
EXPLANATION = """<b>How the network segments</b><ol>
<li><b>Input</b>: one channel, scaled so the background is near 0 and the objects near 1
(images with a bright background are inverted).</li>
<li><b>Encoder</b>: each stage halves the resolution and computes more feature channels. Early
stages respond to edges and spots; deeper ones, which see a wider area, to whole objects and
their surroundings.</li>
<li><b>Decoder</b>: brings the coarse, context-rich features back to fine resolution, mixing in the
encoder's detail through skip connections; a last stage at full resolution (where the model
has one) sees the image pixel by pixel, so that small objects keep sharp edges.</li>
<li><b>Classifier</b>: for every pixel, a linear layer turns the decoder's features into
probabilities of <i>background</i>, <i>interior</i> and <i>boundary</i>.</li>
<li><b>Instances</b>: each interior region becomes a seed; a watershed grows the seeds through the
foreground, so touching objects are split where the boundary class lies.</li></ol>
Each feature layer holds the most active channels of one stage: move the first slider to
step through them."""
_log = logging.getLogger(__name__)


def tile_around(centre, shape, size: int) -> tuple[slice, slice]:
    """Place a ``size``-pixel square around ``centre`` inside ``shape``.

    Parameters
    ----------
    centre : sequence of float
        Row and column of the middle, in pixels.
    shape : sequence of int
        Rows and columns of the image.
    size : int
        Edge of the square; a side of the image that is shorter is taken whole.

    Returns
    -------
    (slice, slice)
        Rows and columns of the tile, inside the image.
    """
    tile = []
    for middle, length in zip(centre, shape):
        extent = min(size, length)
        start = int(np.clip(round(middle - extent / 2), 0, length - extent))
        tile.append(slice(start, start + extent))
    return tuple(tile)


@dataclass(frozen=True, eq=False)
class InspectRequest:
    """What one click on Inspect runs: the arguments of :func:`run_inspection`.

    Attributes
    ----------
    plane : numpy.ndarray
        The plane shown now of the picked image (its picked channel).
    tile : (slice, slice)
        The part of it to run the network on (see :func:`tile_around`).
    model_path : pathlib.Path
        The model file.
    channels : int
        Feature channels kept per stage.
    """

    plane: np.ndarray
    tile: tuple[slice, slice]
    model_path: Path | None
    channels: int


def run_inspection(plane, tile, model_path, channels):
    """Load the model and inspect it on ``plane[tile]`` (in a worker thread).

    Returns
    -------
    napari_segnet.inference.inspect.Inspection or Failed
        What each part of the network computed, or :class:`Failed` with one
        sentence (it never raises).
    """
    try:
        model, _ = load_model(model_path)
        normalised = normalise(
            plane, model.config.normalise_percentiles, channels=model.config.in_channels
        )[(..., *tile)]
        return inspect_network(model, normalised, channels=channels)
    except Exception as error:
        _log.debug("Inspection failed", exc_info=True)
        return Failed(one_sentence(error))


class InspectWidget(qw.QWidget):
    """Run a model on a tile of the picked image and show its inside as layers.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose image layers are offered and where the layers are added.
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._layer = self._tile = None
        form = qw.QFormLayout(self)
        self.image = pickers.LayerPicker(napari_viewer, Image)
        self.channel = pickers.ChannelPicker()
        self.model = ModelPicker()
        self.channels = spin_box(qw.QSpinBox(), 1, 16, 4)
        self.channels.setToolTip("Feature channels shown per stage (the most active ones).")
        self.tile = spin_box(qw.QSpinBox(), 64, 2048, SegmentSettings().tile, "px", step=64)
        self.tile.setToolTip(
            "A square of this size around the centre of the view (by default one "
            "segmentation tile)."
        )
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
        self.runner = WidgetWorker(self, self.run_button, self.status)
        self.runner.returned.connect(self._on_result)
        self.image.layer_changed.connect(self.channel.update_for)
        self.run_button.clicked.connect(self.run)
        self.channel.update_for(self.image.layer())

    def request(self) -> InspectRequest:
        """Read what a click on Inspect would run: a tile around the centre of the view.

        Raises
        ------
        ValueError
            If there is no image layer or its axes cannot be told.
        """
        layer = self.image.layer()
        image, channel = self.channel.picked(layer)
        plane = displayed_plane(self._viewer, image, layer, channel)
        yx = yx_dimensions(layer)
        centre = _newer_or_older(self._viewer, "scene", "camera").center[-2:]
        centre = [(c - layer.translate[i]) / layer.scale[i] for c, i in zip(centre, yx)]
        return InspectRequest(
            plane,
            tile_around(centre, plane.shape[:2], self.tile.value()),
            self.model.path(),
            self.channels.value(),
        )

    def run(self) -> None:
        """Inspect the network on a tile of the picked image, in a worker thread."""
        if self.runner.running or (request := request_or_notify(self.request)) is None:
            return
        self._layer, self._tile = self.image.layer(), request.tile
        self.runner.start(run_inspection, request, status="Running the network…")

    def _on_result(self, result) -> None:
        self.show_inspection(result)
        y, x = self._tile
        self.status.setText(
            f"Inspected rows {y.start}–{y.stop}, columns {x.start}–{x.stop} of {self._layer.name}."
        )

    def show_inspection(self, inspection) -> None:
        """Replace the previous inspection layers with these.

        Parameters
        ----------
        inspection : napari_segnet.inference.inspect.Inspection
            The result of :func:`run_inspection` on the last tile requested.
        """
        viewer, layer = self._viewer, self._layer
        for old in [old for old in viewer.layers if old.name.startswith(PREFIX)]:
            viewer.layers.remove(old)
        yx = yx_dimensions(layer)
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
    """Return ``viewer.<part>.<name>`` (napari ≥ 0.9), else ``viewer.<name>``."""
    return getattr(getattr(viewer, part, None), name, None) or getattr(viewer, name)
