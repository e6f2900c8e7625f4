"""The Cells widget's Phenotype section: markers, their thresholds on a histogram, counts.

The user adds markers (a channel read in a compartment); the selected marker's
per-cell means are drawn as a histogram with its threshold as a line. A new marker's
threshold is automatic (:func:`~napari_segnet.cells.automatic_threshold` on this
image's cells) and drawn first; dragging the line fixes it at the value let go,
*Automatic* gives it back. Every change classifies the cells again
(:func:`~napari_segnet.cells.classify`), refreshes the counts per phenotype and
emits :attr:`PhenotypePanel.classified`, for the widget to colour the cells.

*Save definition…* writes the markers as they are in the panel, with
:meth:`~napari_segnet.cells.PhenotypeDefinition.to_json`: a dragged threshold as its
number, an automatic one as ``null``, so that ``segment --phenotypes FILE`` chooses
it again over the whole batch, exactly as the panel did over this image.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pandas as pd
from napari.utils.notifications import show_error, show_info
from qtpy import QtWidgets as qw
from qtpy.QtCore import Signal
from qtpy.QtGui import QColor

from napari_segnet.cells import (
    COMPARTMENTS,
    Marker,
    PhenotypeDefinition,
    classify,
    marker_column,
    phenotype_counts,
    resolve_thresholds,
)
from napari_segnet.messages import one_sentence

from .histogram import HistogramCanvas
from .object_colours import category_colours
from .qt_helpers import WrappingLabel, hbox


class PhenotypePanel(qw.QGroupBox):
    """Markers and thresholds over per-cell measurements; phenotypes and their counts.

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.

    Attributes
    ----------
    markers : list of Marker
        As the user set them: ``threshold`` None is automatic.
    resolved : PhenotypeDefinition or None
        The same markers with every threshold a number (None without markers or cells).
    histogram : HistogramCanvas
        The selected marker's per-cell means and threshold line.
    counts : QTableWidget
        Phenotype, cells, percent; the phenotype's cell is in its colour.
    classified : Signal(object)
        ``(table, colours)`` after every change: the classified cells
        (:func:`~napari_segnet.cells.classify`) and phenotype → RGBA; ``(None, {})``
        when there is nothing to classify.
    """

    classified = Signal(object)

    def __init__(self, parent=None):
        super().__init__("Phenotype", parent)
        self.markers: list[Marker] = []
        self.resolved: PhenotypeDefinition | None = None
        self._table: pd.DataFrame | None = None
        self.channel, self.compartment = qw.QComboBox(), qw.QComboBox()
        self.compartment.addItems(COMPARTMENTS)
        self.add_button = qw.QPushButton("Add marker")
        self.marker_list = qw.QListWidget()
        self.marker_list.setMaximumHeight(80)
        self.remove_button = qw.QPushButton("Remove")
        self.automatic_button = qw.QPushButton("Automatic threshold")
        self.histogram = HistogramCanvas()
        self.counts = qw.QTableWidget(0, 3)
        self.counts.setHorizontalHeaderLabels(["phenotype", "cells", "%"])
        self.counts.verticalHeader().setVisible(False)
        self.counts.setEditTriggers(qw.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.counts.setMinimumHeight(130)
        self.counts.setMaximumHeight(180)
        self.save_button = qw.QPushButton("Save definition…")
        self.load_button = qw.QPushButton("Load definition…")
        self.hint = WrappingLabel("Make cells first; then add the markers to read.")
        form = qw.QFormLayout(self)
        form.addRow(self.hint)
        form.addRow("Marker", hbox(self.channel, self.compartment, self.add_button))
        form.addRow(self.marker_list)
        form.addRow(hbox(self.remove_button, self.automatic_button))
        form.addRow(self.histogram)
        form.addRow(self.counts)
        form.addRow(hbox(self.save_button, self.load_button))
        self.add_button.clicked.connect(lambda: self.add_marker())
        self.remove_button.clicked.connect(self.remove_marker)
        self.automatic_button.clicked.connect(self.automatic_threshold)
        self.marker_list.currentRowChanged.connect(self._show_histogram)
        self.histogram.threshold_changed.connect(self.set_threshold)
        self.save_button.clicked.connect(lambda: self.save_definition())
        self.load_button.clicked.connect(lambda: self.load_definition())
        self.set_cells(None, [])

    def set_cells(self, table: pd.DataFrame | None, channels: list[str]) -> None:
        """Work on these measured cells; offer `channels` (sanitised names) as markers."""
        self._table = table
        self.channel.clear()
        self.channel.addItems(channels)
        for widget in (self.channel, self.compartment, self.add_button, self.load_button):
            widget.setEnabled(table is not None)
        self.hint.setVisible(table is None)
        self._update()

    def current(self) -> int:
        """Return the index of the selected marker (-1: none)."""
        return self.marker_list.currentRow()

    def add_marker(self, channel: str | None = None, compartment: str | None = None) -> None:
        """Add a marker with an automatic threshold (default: the channel and compartment chosen).

        A channel already in the list is read in the new compartment instead.
        """
        channel = channel or self.channel.currentText()
        compartment = compartment or self.compartment.currentText()
        if not channel:
            return
        marker = Marker(channel, compartment)
        index = next((i for i, m in enumerate(self.markers) if m.channel == channel), None)
        if index is None:
            self.markers.append(marker)
            index = len(self.markers) - 1
        else:
            self.markers[index] = marker
        self._update(select=index)

    def remove_marker(self) -> None:
        """Remove the selected marker."""
        if 0 <= self.current() < len(self.markers):
            del self.markers[self.current()]
            self._update(select=min(self.current(), len(self.markers) - 1))

    def set_threshold(self, value: float) -> None:
        """Fix the selected marker's threshold at `value` (as dragging the line does)."""
        index = self.current()
        if 0 <= index < len(self.markers):
            self.markers[index] = replace(self.markers[index], threshold=float(value))
            self._update(select=index)

    def automatic_threshold(self) -> None:
        """Make the selected marker's threshold automatic again."""
        index = self.current()
        if 0 <= index < len(self.markers):
            self.markers[index] = replace(self.markers[index], threshold=None)
            self._update(select=index)

    def definition(self) -> PhenotypeDefinition | None:
        """Return the markers as a definition (automatic thresholds as None); None if empty."""
        return PhenotypeDefinition(tuple(self.markers)) if self.markers else None

    def save_definition(self, path=None):
        """Write the markers to a JSON file (see the module's notes).

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Where to write; by default a file dialog asks.

        Returns
        -------
        str or None
            The file written; None without markers, when the dialog was cancelled or
            writing failed (an error notification says why).
        """
        definition = self.definition()
        if definition is None:
            show_error("There is no marker to save: add a marker first.")
            return None
        path = (
            path
            or qw.QFileDialog.getSaveFileName(
                self, "Save phenotype definition", "phenotypes.json", "JSON files (*.json)"
            )[0]
        )
        if not path:
            return None
        from napari_segnet.io.atomic import atomic_path

        try:
            with atomic_path(path) as temporary:
                definition.to_json(temporary)
        except OSError as error:
            show_error(one_sentence(error))
            return None
        show_info(f"Saved the phenotype definition to {path}.")
        return str(path)

    def load_definition(self, path=None) -> bool:
        """Replace the markers with those of a JSON definition file.

        Nothing changes when the file cannot be read, is not a definition, or names a
        channel or compartment these cells were not measured in (an error
        notification says why).

        Parameters
        ----------
        path : str or pathlib.Path, optional
            The file; by default a file dialog asks.

        Returns
        -------
        bool
            Whether the markers were replaced.
        """
        path = (
            path
            or qw.QFileDialog.getOpenFileName(
                self, "Load phenotype definition", "", "JSON files (*.json)"
            )[0]
        )
        if not path:
            return False
        try:
            definition = PhenotypeDefinition.from_json(str(path))
            if self._table is not None:
                resolve_thresholds(self._table, definition)
        except (OSError, ValueError) as error:
            show_error(one_sentence(error))
            return False
        self.markers = list(definition.markers)
        self._update(select=0)
        return True

    def _update(self, select: int | None = None) -> None:
        """Settle the thresholds, classify, refresh the list, histogram and counts."""
        self.resolved, classified, colours = None, None, {}
        if self._table is not None and self.markers:
            try:
                self.resolved = resolve_thresholds(self._table, self.definition())
                classified = classify(self._table, self.resolved)
            except ValueError as error:
                show_error(one_sentence(error))
        if classified is not None:
            colours = category_colours(self.phenotypes())
        self._fill_list(select)
        self._fill_counts(classified, colours)
        self._show_histogram()
        for widget in (self.remove_button, self.automatic_button, self.save_button):
            widget.setEnabled(bool(self.markers))
        self.classified.emit((classified, colours))

    def phenotypes(self) -> list[str]:
        """Return every phenotype the markers can make, in a fixed order (all + first)."""
        signs = [(f"{m.channel}+", f"{m.channel}-") for m in self.markers]
        return [" ".join(parts) for parts in itertools.product(*signs)]

    def _fill_list(self, select: int | None) -> None:
        keep = self.current() if select is None else select
        self.marker_list.blockSignals(True)
        self.marker_list.clear()
        settled = self.resolved.markers if self.resolved is not None else self.markers
        for marker, level in zip(self.markers, settled):
            how = "dragged" if marker.threshold is not None else "automatic"
            value = f"{level.threshold:.4g} ({how})" if level.threshold is not None else how
            self.marker_list.addItem(f"{marker.channel} in {marker.compartment}: {value}")
        self.marker_list.setCurrentRow(min(max(keep, 0), len(self.markers) - 1))
        self.marker_list.blockSignals(False)

    def _fill_counts(self, classified, colours) -> None:
        self.counts.setRowCount(0)
        if classified is None:
            return
        counts = phenotype_counts(classified).set_index("phenotype")
        total = max(len(classified), 1)
        self.counts.setRowCount(len(colours))
        for row, (phenotype, colour) in enumerate(colours.items()):
            count = int(counts["count"].get(phenotype, 0))
            cells = (phenotype, str(count), f"{100.0 * count / total:.1f}")
            for column, text in enumerate(cells):
                self.counts.setItem(row, column, qw.QTableWidgetItem(text))
            swatch = QColor.fromRgbF(*colour[:3])
            self.counts.item(row, 0).setBackground(swatch)
            dark = swatch.lightnessF() < 0.55
            self.counts.item(row, 0).setForeground(QColor("white" if dark else "black"))
        self.counts.resizeColumnsToContents()

    def count_of(self, phenotype: str) -> int:
        """Return the number of cells of `phenotype` shown in the counts table."""
        for row in range(self.counts.rowCount()):
            if self.counts.item(row, 0).text() == phenotype:
                return int(self.counts.item(row, 1).text())
        return 0

    def _show_histogram(self, *_) -> None:
        index = self.current()
        if self._table is None or not 0 <= index < len(self.markers) or self.resolved is None:
            self.histogram.show_values([])
            return
        marker = self.resolved.markers[index]
        column = marker_column(marker)
        self.histogram.show_values(
            self._table[column].to_numpy(dtype=float), label=column, threshold=marker.threshold
        )
