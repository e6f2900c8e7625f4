"""A Qt table model of a pandas DataFrame (the Measure widget's table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt


class DataFrameModel(QAbstractTableModel):
    """A read-only, sortable Qt view of a DataFrame (fast for 100k+ rows).

    Attributes
    ----------
    frame : pandas.DataFrame
        The rows shown, in the order shown (sorting reorders it).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.frame = pd.DataFrame()

    def set_frame(self, frame: pd.DataFrame) -> None:
        """Show ``frame`` (its index is dropped: rows are numbered from 1)."""
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: B008
        """Return the number of rows (none below the top level)."""
        return 0 if parent.isValid() else len(self.frame)

    def columnCount(self, parent=QModelIndex()):  # noqa: B008
        """Return the number of columns (none below the top level)."""
        return 0 if parent.isValid() else self.frame.shape[1]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        """Return a cell as text: floats with 4 significant digits."""
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        value = self.frame.iat[index.row(), index.column()]
        return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        """Return a column's name, or a row's number counted from 1."""
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        """Sort the rows by one column (stable: equal values keep their order)."""
        if not 0 <= column < self.frame.shape[1]:
            return
        self.layoutAboutToBeChanged.emit()
        ascending = order == Qt.SortOrder.AscendingOrder
        self.frame = self.frame.sort_values(
            self.frame.columns[column], ascending=ascending, kind="stable"
        ).reset_index(drop=True)
        self.layoutChanged.emit()
