"""The Measure dock widget: measure every object of a labels layer into its features."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy import QtWidgets as qw
from qtpy.QtCore import Qt

from napari_segnet.measure import measure, write_csv

from . import layer_utils as lu
from . import pickers
from .writer import write_labels

_log = logging.getLogger(__name__)


def run_measure(labels, images, names, axes, spacing):
    """Measure in a worker thread; return the table or lu.Failed (never raise)."""
    try:
        image = None
        if images:
            lazy = any(hasattr(data, "dask") for data in images)
            if lazy:
                import dask.array as da
            image = da.stack(images) if lazy else np.stack([np.asarray(i) for i in images])
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
        return lu.Failed(lu.one_sentence(error))


def merge_features(existing, new: pd.DataFrame) -> pd.DataFrame:
    """Merge measurements into a layer's features, keyed by ``label`` (and ``frame``).

    Measured columns replace columns of the same name; other (user) columns are
    kept and aligned by label; the rows are those of ``new`` (one per object).
    An ``index`` column equal to ``label`` lets napari show a label's row on hover.
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
    """Measure the objects of a labels layer; results go to ``layer.features``."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self.worker = self._target = self._layer = None
        self._unchecked: set[str] = set()
        self._syncing = False
        self.labels = pickers.LayerPicker(napari_viewer, Labels)
        self.images = qw.QListWidget()
        self.images.setMaximumHeight(90)
        self.measure_button = qw.QPushButton("Measure")
        self.progress = qw.QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator while measuring
        self.progress.setVisible(False)
        self.model = lu.DataFrameModel(self)
        self.table = qw.QTableView()
        self.table.setModel(self.model)
        self.table.setMinimumHeight(220)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)  # rows stay in label order until a header is clicked
        self.table.setSelectionBehavior(qw.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(qw.QAbstractItemView.SelectionMode.SingleSelection)
        self.calibration, self.status = qw.QLabel(), qw.QLabel()
        self.show_selected = qw.QCheckBox("Show only the selected object")
        self.export_csv_button = qw.QPushButton("Export CSV")
        self.export_labels_button = qw.QPushButton("Export labels")
        form = qw.QFormLayout(self)
        form.addRow("Labels", self.labels)
        form.addRow("Intensities", self.images)
        form.addRow(self.measure_button)
        form.addRow(self.progress)
        form.addRow(self.table)
        for widget in (self.calibration, self.show_selected, self.status):
            form.addRow(widget)
        form.addRow(lu.hbox(self.export_csv_button, self.export_labels_button))

        napari_viewer.layers.events.inserted.connect(self._refresh_images)
        napari_viewer.layers.events.removed.connect(self._refresh_images)
        self.labels.layer_changed.connect(self._on_labels_layer)
        self.images.itemChanged.connect(self._on_image_checked)
        self.measure_button.clicked.connect(self.run)
        self.table.selectionModel().selectionChanged.connect(self._on_row_selected)
        self.show_selected.toggled.connect(self._on_show_selected)
        self.export_csv_button.clicked.connect(lambda: self.export_csv())
        self.export_labels_button.clicked.connect(lambda: self.export_labels())
        self._on_labels_layer(self.labels.layer())

    def _on_labels_layer(self, layer) -> None:
        if layer is self._layer:  # the picker was refreshed (a layer was added or removed)
            return
        if self._layer is not None:
            for emitter, callback in self._layer_callbacks(self._layer):
                emitter.disconnect(callback)
        self._layer = layer
        if layer is not None:
            for emitter, callback in self._layer_callbacks(layer):
                emitter.connect(callback)
        self._refresh_images()
        self._show_features()

    def _layer_callbacks(self, layer):
        events = layer.events
        return (
            (events.selected_label, self._on_selected_label),
            (events.features, self._show_features),
            (events.scale, self._show_calibration),
            (events.units, self._show_calibration),
        )

    def _refresh_images(self, event=None) -> None:
        layer = self.labels.layer()
        shape = lu.full_resolution(layer).shape if layer is not None else None
        names = [
            image.name
            for image in self._viewer.layers
            if isinstance(image, Image)
            and not image.rgb
            and lu.full_resolution(image).shape == shape
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
        """The image layers ticked in the list."""
        items = [self.images.item(i) for i in range(self.images.count())]
        names = [item.text() for item in items if item.checkState() == Qt.CheckState.Checked]
        return [self._viewer.layers[name] for name in names if name in self._viewer.layers]

    def run(self) -> None:
        """Measure the picked labels layer (with the ticked images) in a worker thread."""
        layer = self.labels.layer()
        if self.worker is not None:
            return
        if layer is None:
            show_error("There is no labels layer to measure: segment an image first.")
            return
        try:
            axes = lu.layer_axes(layer)
        except ValueError as error:
            show_error(lu.one_sentence(error))
            return
        images = self.chosen_images()
        arguments = (
            lu.full_resolution(layer),
            [lu.full_resolution(i) for i in images],
            [i.name for i in images],
            axes,
            lu.spatial_spacing(layer, axes),
        )
        self._target = layer
        self.worker = thread_worker(run_measure, start_thread=False, ignore_errors=True)(*arguments)
        self.worker.returned.connect(self._on_result)
        self.worker.finished.connect(self._on_finished)
        self.measure_button.setEnabled(False)
        self.progress.setVisible(True)
        self.status.setText(f"Measuring {layer.name}…")
        self.worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        self.measure_button.setEnabled(True)
        self.progress.setVisible(False)

    def _on_result(self, result) -> None:
        if isinstance(result, lu.Failed):
            self.status.setText(result.message)
            show_error(result.message)
            return
        self._target.features = merge_features(self._target.features, result)
        self.status.setText(f"Measured {len(result)} objects in {self._target.name}.")

    def _show_features(self, event=None) -> None:
        layer = self._layer
        features = pd.DataFrame(layer.features) if layer is not None else pd.DataFrame()
        self.model.set_frame(features.drop(columns="index", errors="ignore"))
        header = self.table.horizontalHeader()
        self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
        self._show_calibration()
        if layer is not None:
            self._on_selected_label()

    def _show_calibration(self, event=None) -> None:
        layer, text = self._layer, ""
        if layer is not None:
            try:
                text = lu.describe_spacing(lu.spatial_spacing(layer, lu.layer_axes(layer)))
            except ValueError as error:
                text = lu.one_sentence(error)
        self.calibration.setText(text)

    def _label_column(self) -> np.ndarray | None:
        frame = self.model.frame
        return frame["label"].to_numpy() if "label" in frame else None

    def _on_row_selected(self, *_) -> None:
        rows = self.table.selectionModel().selectedRows()
        labels = self._label_column()
        if self._syncing or not rows or labels is None or self._layer is None:
            return
        self._syncing = True
        try:
            self._layer.selected_label = int(labels[rows[0].row()])
        finally:
            self._syncing = False

    def _on_selected_label(self, event=None) -> None:
        labels = self._label_column()
        if self._syncing or labels is None or self._layer is None:
            return
        rows = np.flatnonzero(labels == self._layer.selected_label)
        self._syncing = True
        try:
            if rows.size:
                self.table.selectRow(int(rows[0]))
                self.table.scrollTo(self.model.index(int(rows[0]), 0))
            else:
                self.table.clearSelection()
        finally:
            self._syncing = False

    def _on_show_selected(self, checked: bool) -> None:
        if self._layer is not None:
            self._layer.show_selected_label = checked

    def _ask_save_path(self, title: str, filters: str) -> str:
        return qw.QFileDialog.getSaveFileName(self, title, "", filters)[0]

    def export_csv(self, path=None):
        """Write the features table (measurements and user columns) to CSV; return the path."""
        layer = self._layer
        if layer is None or pd.DataFrame(layer.features).shape[1] == 0:
            show_error("There is nothing to export yet: click Measure first.")
            return None
        path = path or self._ask_save_path("Export measurements", "CSV files (*.csv)")
        if not path:
            return None
        try:
            written = write_csv(
                pd.DataFrame(layer.features).drop(columns="index", errors="ignore"), path
            )
        except (OSError, ValueError) as error:
            show_error(lu.one_sentence(error))
            return None
        show_info(f"Saved {len(layer.features)} rows to {written}.")
        return written

    def export_labels(self, path=None):
        """Write the labels layer to a Fiji-ready TIFF with its calibration; return the path."""
        layer = self._layer
        if layer is None:
            show_error("There is no labels layer to export.")
            return None
        path = path or self._ask_save_path("Export labels", "TIFF files (*.tif *.tiff)")
        if not path:
            return None
        attributes = {
            "scale": tuple(layer.scale),
            "units": tuple(str(u) for u in layer.units),
            "axis_labels": tuple(layer.axis_labels),
        }
        try:
            written = write_labels(str(path), lu.full_resolution(layer), attributes)[0]
        except (OSError, ValueError) as error:
            show_error(lu.one_sentence(error))
            return None
        show_info(f"Saved labels to {written}.")
        return written
