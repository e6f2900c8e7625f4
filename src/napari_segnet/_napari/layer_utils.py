"""Helpers shared by the dock widgets: axes, planes, calibration, messages, small widgets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QApplication, QHBoxLayout

from napari_segnet.messages import one_sentence

T = TypeVar("T")
AXIS_LETTERS = "TCZYX"


@dataclass(frozen=True)
class Failed:
    """What a worker returns instead of raising: one sentence for the user."""

    message: str


def layer_axes(layer) -> str:
    """Axes of a layer's data as letters from ``TCZYXS`` (``S``: RGB samples, last).

    Our reader stores them in ``metadata["axes"]``; otherwise they come from
    ``axis_labels`` when those are axis letters, else from the number of
    dimensions (2-D: ``YX``, 3-D: ``ZYX``, 4-D: ``TZYX``).

    Raises
    ------
    ValueError
        If the axes cannot be told.
    """
    ndim = layer.ndim
    rgb = "S" if getattr(layer, "rgb", False) else ""
    stored = layer.metadata.get("axes")
    if isinstance(stored, str) and _valid(stored.replace("S", ""), ndim):
        return stored.replace("S", "") + rgb
    labels = "".join(str(label).upper() for label in layer.axis_labels)
    if _valid(labels, ndim):
        return labels + rgb
    first = str(layer.axis_labels[0]).casefold()
    guesses = {2: "YX", 3: "TYX" if first in ("t", "time") else "ZYX", 4: "TZYX"}
    if ndim not in guesses:
        raise ValueError(
            f"Cannot tell the axes of layer {layer.name!r} with {ndim} dimensions: "
            "name them with axis labels such as t, c, z, y, x."
        )
    return guesses[ndim] + rgb


def _valid(axes: str, ndim: int) -> bool:
    return (
        len(axes) == ndim
        and set(axes) <= set(AXIS_LETTERS)
        and len(set(axes)) == ndim
        and axes.endswith("YX")
    )


def image_from_layer(layer, axes: str):
    """A MicroscopyImage of an image layer's data with the given axes (see layer_axes)."""
    from napari_segnet.io import MicroscopyImage

    data = full_resolution(layer)
    names = tuple(str(n) for n in layer.metadata.get("channel_names") or ())
    if "C" in axes and len(names) != data.shape[axes.index("C")]:
        names = tuple(f"channel {i}" for i in range(data.shape[axes.index("C")]))
    return MicroscopyImage(data, axes, names, dict(layer.metadata.get("pixel_size") or {}))


def displayed_plane(viewer, image, layer, channel: int | None = None) -> np.ndarray:
    """The 2-D (or RGB) plane of ``image`` (from ``layer``) that the viewer shows now.

    Axes other than Y, X, C and S are indexed at the viewer's current position.
    """
    offset = viewer.dims.ndim - layer.ndim
    index = []
    layer_dim = 0
    for axis in image.axes:
        if axis == "S":
            index.append(slice(None))
            continue
        if axis == "C":
            index.append(channel or 0)
        elif axis in "YX":
            index.append(slice(None))
        else:
            point = viewer.dims.point[offset + layer_dim]
            step = (point - layer.translate[layer_dim]) / layer.scale[layer_dim]
            size = image.data.shape[len(index)]
            index.append(int(np.clip(round(step), 0, size - 1)))
        layer_dim += 1
    return np.asarray(image.data[tuple(index)])


def full_resolution(layer):
    """A layer's data; the full-resolution level of a multiscale layer."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def micrometres(scale, units) -> tuple[float, ...] | None:
    """Convert scale steps with pint units to micrometres; None if any is not a length."""
    import pint

    sizes = []
    for step, unit in zip(scale, units):
        try:
            quantity = float(step) * (unit if isinstance(unit, pint.Unit) else pint.Unit(unit))
            sizes.append(float(quantity.to("micrometer").magnitude))
        except (pint.errors.PintError, ValueError, TypeError, AttributeError):
            return None
    return tuple(sizes)


def spatial_spacing(layer, axes: str) -> tuple[float, ...] | None:
    """Pixel size in µm along the spatial axes (Z, Y, X) of a layer, or None."""
    keep = [i for i, axis in enumerate(axes.replace("S", "")) if axis in "ZYX"]
    units = getattr(layer, "units", None) or ("pixel",) * layer.ndim
    return micrometres([layer.scale[i] for i in keep], [units[i] for i in keep])


def describe_spacing(spacing: tuple[float, ...] | None) -> str:
    """'Pixel size 0.65 µm × 0.65 µm' (voxel for 3-D), or 'Uncalibrated: pixels'."""
    if spacing is None:
        return "Uncalibrated: pixels"
    kind = "Voxel" if len(spacing) == 3 else "Pixel"
    return f"{kind} size " + " × ".join(f"{s:.4g} µm" for s in spacing)


class ActivityProgress:
    """A bar in napari's activity dock, driven by :class:`Progress` events (closed when done)."""

    def __init__(self, description: str):
        from napari.utils import progress

        self._bar = progress(total=0, desc=description)  # indeterminate until the first event

    def show(self, event) -> None:
        """Move the bar to ``event.done`` of ``event.total``."""
        if event.total and self._bar.total != event.total:
            self._bar.total = event.total
        self._bar.update(event.done - self._bar.n)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()


def request_or_notify(make_request: Callable[[], T]) -> T | None:
    """Call ``make_request()``; if it raises ValueError, notify its one sentence, return None."""
    from napari.utils.notifications import show_error

    try:
        return make_request()
    except ValueError as error:
        show_error(one_sentence(error))
        return None


def process_events_until(predicate: Callable[[], bool], timeout_s: float = 300.0) -> bool:
    """Run the Qt event loop until ``predicate()`` is true (for scripts); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QApplication.processEvents()
        time.sleep(0.01)
    return True


def hbox(*widgets) -> QHBoxLayout:
    """Widgets side by side, for a form row."""
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    return layout


def spin_box(box, low, high, value, suffix: str = "", step=None):
    """Set up a QSpinBox or QDoubleSpinBox in one call."""
    box.setRange(low, high)
    box.setValue(value)
    if suffix:
        box.setSuffix(f" {suffix}")
    if step is not None:
        box.setSingleStep(step)
    return box


class DataFrameModel(QAbstractTableModel):
    """A read-only, sortable Qt view of a DataFrame (fast for 100k+ rows)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.frame = pd.DataFrame()

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: B008
        return 0 if parent.isValid() else len(self.frame)

    def columnCount(self, parent=QModelIndex()):  # noqa: B008
        return 0 if parent.isValid() else self.frame.shape[1]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        value = self.frame.iat[index.row(), index.column()]
        return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        if not 0 <= column < self.frame.shape[1]:
            return
        self.layoutAboutToBeChanged.emit()
        ascending = order == Qt.SortOrder.AscendingOrder
        self.frame = self.frame.sort_values(
            self.frame.columns[column], ascending=ascending, kind="stable"
        ).reset_index(drop=True)
        self.layoutChanged.emit()
