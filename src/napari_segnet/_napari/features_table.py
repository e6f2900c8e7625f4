"""A labels layer's ``features`` as a sortable table linked to the viewer's selected object.

Shared by Measure and Cells: clicking a row selects its object in the layer, picking
an object (``selected_label``) selects its row, and *Show only the selected object*
hides the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy import QtWidgets as qw
from qtpy.QtCore import Qt, Signal

from .table_model import DataFrameModel


class FeaturesTable(qw.QWidget):
    """The features of one labels layer, kept in step with it.

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.

    Attributes
    ----------
    model : DataFrameModel
        The rows shown (``index`` left out), in the order shown.
    table : QTableView
        The view of :attr:`model`.
    show_selected : QCheckBox
        Show only the selected object in the layer.
    shown : Signal(object)
        The features now shown (a DataFrame), after every change of layer or features.
    """

    shown = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layer = None
        self._syncing = False
        self.model = DataFrameModel(self)
        self.table = qw.QTableView()
        self.table.setModel(self.model)
        self.table.setMinimumHeight(220)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)  # rows stay in label order until a header is clicked
        self.table.setSelectionBehavior(qw.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(qw.QAbstractItemView.SelectionMode.SingleSelection)
        self.show_selected = qw.QCheckBox("Show only the selected object")
        layout = qw.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.show_selected)
        self.table.selectionModel().selectionChanged.connect(self._on_row_selected)
        self.show_selected.toggled.connect(self._on_show_selected)

    def layer(self):
        """Return the labels layer shown, or None."""
        return self._layer

    def set_layer(self, layer) -> None:
        """Show the features of `layer` (None: an empty table) and follow its changes."""
        if layer is self._layer:
            return
        if self._layer is not None:
            for emitter, callback in self._callbacks(self._layer):
                emitter.disconnect(callback)
        self._layer = layer
        if layer is not None:
            for emitter, callback in self._callbacks(layer):
                emitter.connect(callback)
        self.refresh()

    def _callbacks(self, layer):
        events = layer.events
        return (
            (events.selected_label, self._on_selected_label),
            (events.features, self.refresh),
        )

    def refresh(self, event=None) -> None:
        """Show the layer's features as they are now, in the current sort order."""
        layer = self._layer
        features = pd.DataFrame(layer.features) if layer is not None else pd.DataFrame()
        self.model.set_frame(features.drop(columns="index", errors="ignore"))
        header = self.table.horizontalHeader()
        self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
        if layer is not None:
            self._on_selected_label()
        self.shown.emit(self.model.frame)

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
