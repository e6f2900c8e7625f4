"""The Measure dock widget: measure every object of a labels layer into its features.

Below the table, *Colour by* picks a measured column: its histogram, drawn with a
colour bar (:mod:`.histogram`), and the objects painted with the same colours
(:mod:`.object_colours`, a napari labels colormap) show where the large and small
values lie, in one widget. *none* gives the layer back the colours it had.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy import QtWidgets as qw
from qtpy.QtCore import Qt

from napari_segnet.measure import measure, write_csv
from napari_segnet.measure.blocks import iter_measure_blocks
from napari_segnet.messages import one_sentence

from . import pickers
from .calibration import describe_spacing, spatial_spacing
from .features_table import FeaturesTable
from .histogram import HistogramCanvas
from .layer_axes import full_resolution, layer_axes
from .layers import layer_model
from .object_colours import LayerColours, value_colormap, value_limits
from .qt_helpers import hbox, request_or_notify
from .worker import Failed, WidgetWorker
from .writer import write_geojson, write_imagej_rois, write_labels

_log = logging.getLogger(__name__)

NO_COLOUR = "none"
COLORMAPS = ("viridis", "magma", "plasma", "cividis", "coolwarm")
_NOT_VALUES = ("label", "index", "frame")  # identifiers, not measurements


@dataclass(frozen=True, eq=False)
class MeasureRequest:
    """What one click on Measure runs: the arguments of :func:`run_measure`.

    Attributes
    ----------
    labels : array-like
        The labels layer's full-resolution data.
    images : list of array-like
        The ticked image layers' data, each of the labels' shape.
    names : list of str
        Their layer names (the intensity columns are named after them).
    axes : str
        The labels' axes (see :func:`~napari_segnet._napari.layer_axes.layer_axes`).
    spacing : tuple of float or None
        Pixel size in µm along the spatial axes; None measures in pixels only.
    """

    labels: object
    images: list
    names: list[str]
    axes: str
    spacing: tuple[float, ...] | None


def run_measure(labels, images, names, axes, spacing):
    """Measure every object in a worker thread, yielding progress for big labels.

    A 2-D labels layer of more than
    :data:`~napari_segnet.measure.blocks.BLOCKWISE_PIXELS` is measured block by
    block (:func:`~napari_segnet.measure.blocks.iter_measure_blocks`): memory
    holds a block, not the image, and every object is measured whole.

    Returns
    -------
    pandas.DataFrame or Failed
        One row per object, or :class:`Failed` with one sentence (it never raises).
    """
    try:
        image = None
        if images:
            lazy = any(hasattr(data, "dask") for data in images)
            if lazy or _blockwise(labels, axes):
                import dask.array as da

                image = da.stack([da.asarray(i) for i in images])
            else:
                image = np.stack([np.asarray(i) for i in images])
        if _blockwise(labels, axes):
            return (
                yield from iter_measure_blocks(
                    labels,
                    image,
                    channel_axis=0 if images else None,
                    channel_names=names or None,
                    spacing=spacing,
                )
            )
        return measure(
            labels,
            image,
            axes=axes,
            channel_axis=0 if images else None,
            channel_names=names or None,
            spacing=spacing,
        )
    except Exception as error:
        _log.debug("Measuring failed", exc_info=True)
        return Failed(one_sentence(error))


def _blockwise(labels, axes: str) -> bool:
    """Whether labels are one plane too big to measure at once (see ``BLOCKWISE_PIXELS``)."""
    from napari_segnet.measure import blocks

    return axes == "YX" and labels.shape[0] * labels.shape[1] > blocks.BLOCKWISE_PIXELS


def merge_features(existing, new: pd.DataFrame) -> pd.DataFrame:
    """Merge measurements into a layer's features, keyed by ``label`` (and ``frame``).

    Measured columns replace columns of the same name; other (user) columns are
    kept and aligned by label; the rows are those of ``new`` (one per object).
    An ``index`` column equal to ``label`` lets napari show a label's row on hover.

    Parameters
    ----------
    existing : pandas.DataFrame or dict
        The layer's features now (may be empty, or lack a ``label`` column).
    new : pandas.DataFrame
        Fresh measurements with a ``label`` column.

    Returns
    -------
    pandas.DataFrame
        The layer's new features.
    """
    existing = pd.DataFrame(existing)
    key = [c for c in ("frame", "label") if c in new.columns]
    merged = new.copy()
    if existing.shape[1] and len(existing):
        existing = existing.copy()
        if "label" not in existing:  # napari's convention: "index", else row i is label i
            existing["label"] = existing["index"] if "index" in existing else range(len(existing))
        on = [c for c in key if c in existing]
        user = [c for c in existing if c not in new.columns and c != "index"]
        if user:
            kept = existing[on + user].dropna(subset=on).drop_duplicates(on, keep="last")
            kept = kept.astype({c: new[c].dtype for c in on})
            merged = merged.merge(kept, on=on, how="left")
    merged["index"] = merged["label"].to_numpy()
    return merged


class MeasureWidget(qw.QWidget):
    """Measure the objects of a labels layer; results go to ``layer.features``.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose labels (and image) layers are offered.
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._target = self._layer = None
        self._unchecked: set[str] = set()
        self._colours = LayerColours()  # while objects are coloured by a value
        self.labels = pickers.LayerPicker(napari_viewer, Labels)
        self.images = qw.QListWidget()
        self.images.setMaximumHeight(90)
        self.measure_button = qw.QPushButton("Measure")
        self.progress = qw.QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator while measuring
        self.progress.setVisible(False)
        self.features = FeaturesTable()
        self.model, self.table = self.features.model, self.features.table
        self.show_selected = self.features.show_selected
        self.calibration, self.status = qw.QLabel(), qw.QLabel()
        self.colour_by, self.colormap = qw.QComboBox(), qw.QComboBox()
        self.colour_by.addItem(NO_COLOUR)
        self.colormap.addItems(COLORMAPS)
        self.histogram = HistogramCanvas()
        self.export_csv_button = qw.QPushButton("Export CSV")
        self.export_labels_button = qw.QPushButton("Export labels")
        self.export_geojson_button = qw.QPushButton("Export GeoJSON (QuPath)")
        self.export_rois_button = qw.QPushButton("Export ROIs (Fiji)")
        form = qw.QFormLayout(self)
        form.addRow("Labels", self.labels)
        form.addRow("Intensities", self.images)
        form.addRow(self.measure_button)
        form.addRow(self.progress)
        form.addRow(self.features)
        for widget in (self.calibration, self.status):
            form.addRow(widget)
        form.addRow(hbox(self.export_csv_button, self.export_labels_button))
        form.addRow(hbox(self.export_geojson_button, self.export_rois_button))
        form.addRow("Colour by", hbox(self.colour_by, self.colormap))
        form.addRow(self.histogram)
        self.runner = WidgetWorker(self, self.measure_button, self.status)
        self.runner.yielded.connect(self._on_progress)
        self.runner.returned.connect(self._on_result)
        self.runner.finished.connect(self._on_finished)

        napari_viewer.layers.events.inserted.connect(self._refresh_images)
        napari_viewer.layers.events.removed.connect(self._refresh_images)
        self.labels.layer_changed.connect(self._on_labels_layer)
        self.images.itemChanged.connect(self._on_image_checked)
        self.measure_button.clicked.connect(self.run)
        self.features.shown.connect(self._on_features_shown)
        self.colour_by.currentTextChanged.connect(self._colour_objects)
        self.colormap.currentTextChanged.connect(self._colour_objects)
        self.export_csv_button.clicked.connect(lambda: self.export_csv())
        self.export_labels_button.clicked.connect(lambda: self.export_labels())
        self.export_geojson_button.clicked.connect(lambda: self.export_geojson())
        self.export_rois_button.clicked.connect(lambda: self.export_imagej_rois())
        self._on_labels_layer(self.labels.layer())

    def _on_labels_layer(self, layer) -> None:
        if layer is self._layer:  # the picker was refreshed (a layer was added or removed)
            return
        self._colours.restore()
        if self._layer is not None:
            for emitter, callback in self._layer_callbacks(self._layer):
                emitter.disconnect(callback)
        self._layer = layer
        if layer is not None:
            for emitter, callback in self._layer_callbacks(layer):
                emitter.connect(callback)
        self._refresh_images()
        self.features.set_layer(layer)
        self._show_calibration()

    def _layer_callbacks(self, layer):
        events = layer.events
        return ((events.scale, self._show_calibration), (events.units, self._show_calibration))

    def _refresh_images(self, event=None) -> None:
        layer = self.labels.layer()
        shape = full_resolution(layer).shape if layer is not None else None
        names = [
            image.name
            for image in self._viewer.layers
            if isinstance(image, Image) and not image.rgb and full_resolution(image).shape == shape
        ]
        self.images.blockSignals(True)
        self.images.clear()
        for name in names:
            item = qw.QListWidgetItem(name, self.images)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            unchecked = name in self._unchecked
            item.setCheckState(Qt.CheckState.Unchecked if unchecked else Qt.CheckState.Checked)
        self.images.blockSignals(False)

    def _on_image_checked(self, item) -> None:
        if item.checkState() == Qt.CheckState.Checked:
            self._unchecked.discard(item.text())
        else:
            self._unchecked.add(item.text())

    def chosen_images(self) -> list:
        """Return the image layers ticked in the list."""
        items = [self.images.item(i) for i in range(self.images.count())]
        names = [item.text() for item in items if item.checkState() == Qt.CheckState.Checked]
        return [self._viewer.layers[name] for name in names if name in self._viewer.layers]

    def request(self) -> MeasureRequest:
        """Read what a click on Measure would run: the picked labels, the ticked images.

        Raises
        ------
        ValueError
            If there is no labels layer or its axes cannot be told.
        """
        layer = self.labels.layer()
        if layer is None:
            raise ValueError("There is no labels layer to measure: segment an image first.")
        axes = layer_axes(layer)
        images = self.chosen_images()
        return MeasureRequest(
            full_resolution(layer),
            [full_resolution(i) for i in images],
            [i.name for i in images],
            axes,
            spatial_spacing(layer, axes),
        )

    def run(self) -> None:
        """Measure the picked labels layer (with the ticked images) in a worker thread."""
        if self.runner.running or (request := request_or_notify(self.request)) is None:
            return
        self._target = self.labels.layer()
        self.progress.setVisible(True)
        self.runner.start(run_measure, request, status=f"Measuring {self._target.name}…")

    def _on_progress(self, event) -> None:
        self.progress.setRange(0, max(event.total, 1))  # blocks measured so far
        self.progress.setValue(event.done)
        self.status.setText(event.stage.capitalize() + "…")

    def _on_finished(self, cancelled: bool) -> None:
        self.progress.setVisible(False)
        self.progress.setRange(0, 0)

    def _on_result(self, result) -> None:
        self._target.features = merge_features(self._target.features, result)
        self.status.setText(f"Measured {len(result)} objects in {self._target.name}.")

    def value_columns(self) -> list[str]:
        """Return the measured columns that objects can be coloured by (numeric ones)."""
        frame = self.model.frame
        return [
            str(c)
            for c in frame.columns
            if c not in _NOT_VALUES
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ]

    def colour_by_column(self, column: str | None) -> None:
        """Colour the objects by `column` (None or ``"none"``: their own colours again).

        Raises
        ------
        ValueError
            If the layer has no such numeric column.
        """
        column = column or NO_COLOUR
        if self.colour_by.findText(column) < 0:
            raise ValueError(f"There is no measured column {column!r} to colour by.")
        self.colour_by.setCurrentText(column)

    def _on_features_shown(self, frame) -> None:
        chosen = self.colour_by.currentText() or NO_COLOUR
        columns = [NO_COLOUR, *self.value_columns()]
        self.colour_by.blockSignals(True)
        self.colour_by.clear()
        self.colour_by.addItems(columns)
        self.colour_by.setCurrentText(chosen if chosen in columns else NO_COLOUR)
        self.colour_by.blockSignals(False)
        self._colour_objects()

    def _colour_objects(self, *_) -> None:
        column, layer, frame = self.colour_by.currentText(), self._layer, self.model.frame
        if layer is not None and self._colours.lost(layer):
            # Another widget (Cells' phenotypes) painted the layer since: its colours stay.
            self._colours.forget()
            self.colour_by.blockSignals(True)
            self.colour_by.setCurrentText(NO_COLOUR)
            self.colour_by.blockSignals(False)
            column = NO_COLOUR
        if layer is None or column in ("", NO_COLOUR) or {column, "label"} - set(frame):
            self._colours.restore()
            self.histogram.show_values([])
            return
        values = frame[column].to_numpy(dtype=np.float64)
        limits, colormap = value_limits(values), self.colormap.currentText()
        labels = frame["label"].to_numpy()
        self._colours.paint(layer, value_colormap(labels, values, colormap=colormap, limits=limits))
        self.histogram.show_values(values, label=column, colormap=colormap, limits=limits)

    def _show_calibration(self, event=None) -> None:
        layer, text = self._layer, ""
        if layer is not None:
            try:
                text = describe_spacing(spatial_spacing(layer, layer_axes(layer)))
            except ValueError as error:
                text = one_sentence(error)
        self.calibration.setText(text)

    def _ask_save_path(self, title: str, filters: str) -> str:
        return qw.QFileDialog.getSaveFileName(self, title, "", filters)[0]

    def export_csv(self, path=None):
        """Write the features table (measurements and user columns) to CSV.

        Labels made by Segment add the constant columns ``model`` and ``model_sha256``
        (see :func:`napari_segnet.measure.write_csv`).

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Where to write; by default a file dialog asks.

        Returns
        -------
        pathlib.Path or None
            The file written; None if there was nothing to write, the dialog was
            cancelled or writing failed (an error notification says why).
        """
        layer = self._layer
        if layer is None or pd.DataFrame(layer.features).shape[1] == 0:
            show_error("There is nothing to export yet: click Measure first.")
            return None
        path = path or self._ask_save_path("Export measurements", "CSV files (*.csv)")
        if not path:
            return None
        try:
            written = write_csv(
                pd.DataFrame(layer.features).drop(columns="index", errors="ignore"),
                path,
                model=layer_model(layer.metadata),  # labels from Segment name their model
            )
        except (OSError, ValueError) as error:
            show_error(one_sentence(error))
            return None
        show_info(f"Saved {len(layer.features)} rows to {written}.")
        return written

    def export_labels(self, path=None):
        """Write the labels layer to a Fiji-ready TIFF with its calibration.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Where to write; by default a file dialog asks.

        Returns
        -------
        str or None
            The file written; None if there is no labels layer, the dialog was
            cancelled or writing failed (an error notification says why).
        """
        layer = self._layer
        if layer is None:
            show_error("There is no labels layer to export.")
            return None
        path = path or self._ask_save_path("Export labels", "TIFF files (*.tif *.tiff)")
        if not path:
            return None
        try:
            written = write_labels(str(path), full_resolution(layer), self._attributes())[0]
        except (OSError, ValueError) as error:
            show_error(one_sentence(error))
            return None
        show_info(f"Saved labels to {written}.")
        return written

    def export_geojson(self, path=None):
        """Write every object's outline as a QuPath detection, with its measurements.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Where to write (``.geojson``); by default a file dialog asks.

        Returns
        -------
        str or None
            The file written; None if there is no labels layer, the dialog was
            cancelled or writing failed (an error notification says why).
        """
        return self._export_outlines(
            path, write_geojson, "Export outlines for QuPath", "GeoJSON files (*.geojson)"
        )

    def export_imagej_rois(self, path=None):
        """Write every object's outline as an ImageJ ROI set for Fiji's ROI Manager.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Where to write (``.zip``); by default a file dialog asks.

        Returns
        -------
        str or None
            The file written; None if there is no labels layer, the dialog was
            cancelled or writing failed (an error notification says why).
        """
        return self._export_outlines(
            path, write_imagej_rois, "Export outlines for Fiji", "ImageJ ROI sets (*.zip)"
        )

    def _export_outlines(self, path, write, title: str, filters: str):
        layer = self._layer
        if layer is None:
            show_error("There is no labels layer to export.")
            return None
        path = path or self._ask_save_path(title, filters)
        if not path:
            return None
        attributes = self._attributes()
        data = layer.data if getattr(layer, "multiscale", False) else full_resolution(layer)
        try:
            written = write(str(path), data, attributes)[0]
        except (OSError, ValueError) as error:
            show_error(one_sentence(error))
            return None
        show_info(f"Saved the outlines of {layer.name!r} to {written}.")
        return written

    def _attributes(self) -> dict:
        """Return the labels layer's calibration and features, as napari hands them to writers."""
        layer = self._layer
        return {
            "scale": tuple(layer.scale),
            "units": tuple(str(u) for u in layer.units),
            "axis_labels": tuple(layer.axis_labels),
            "features": pd.DataFrame(layer.features).drop(columns="index", errors="ignore"),
            "metadata": dict(layer.metadata),  # with the model that made the labels
        }
