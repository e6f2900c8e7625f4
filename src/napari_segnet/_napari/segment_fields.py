"""Fields of the Segment widget that are more than a box: the object diameter, a folder."""

from __future__ import annotations

from pathlib import Path

from qtpy import QtWidgets as qw
from qtpy.QtCore import Signal

from .calibration import spatial_spacing
from .qt_helpers import spin_box

PIXELS, MICROMETRES = "px", "µm"


class DiameterField(qw.QWidget):
    """The object diameter: ``auto`` (0), or a size in pixels or, for calibrated layers, µm.

    Switching the unit converts the size with the layer's pixel size.

    Attributes
    ----------
    size : QDoubleSpinBox
        The diameter (0 shows ``auto``).
    unit : QComboBox
        ``px``, or ``µm`` (offered only for a layer calibrated in lengths).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.size = spin_box(qw.QDoubleSpinBox(), 0, 1000, 0)
        self.size.setSpecialValueText("auto")
        self.unit = qw.QComboBox()
        self.unit.addItems([PIXELS, MICROMETRES])
        self._pixel_um: float | None = None
        self._shown_unit = PIXELS
        layout = qw.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.size, 1)
        layout.addWidget(self.unit)
        self.unit.currentTextChanged.connect(self._convert)
        self.update_for(None)

    def update_for(self, layer, axes: str = "") -> None:
        """Offer µm when ``layer`` is calibrated in lengths (else fall back to px)."""
        spacing = spatial_spacing(layer, axes) if layer is not None and axes else None
        if not spacing and self.unit.currentText() == MICROMETRES:
            # Back to pixels of the layer the µm were given for, before its size is forgotten.
            self.unit.setCurrentText(PIXELS)
        self._pixel_um = spacing[-1] if spacing else None
        item = self.unit.model().item(1)
        item.setEnabled(self._pixel_um is not None)
        item.setToolTip(
            f"Pixels are {self._pixel_um:.4g} µm wide in this layer."
            if self._pixel_um
            else "The layer is not calibrated: give the diameter in pixels."
        )

    def value(self) -> tuple[float | None, str]:
        """Return ``(diameter, unit)``; the diameter is None for ``auto``."""
        return (self.size.value() or None), ("um" if self._shown_unit == MICROMETRES else "px")

    def _convert(self, unit: str) -> None:
        if unit == self._shown_unit:
            return
        size = self.size.value()
        if size and self._pixel_um:
            factor = self._pixel_um if unit == MICROMETRES else 1 / self._pixel_um
            self.size.setDecimals(3 if unit == MICROMETRES else 2)
            self.size.setValue(size * factor)
        self._shown_unit = unit


class FolderField(qw.QWidget):
    """A folder chosen with a dialog (or typed); empty means none.

    Parameters
    ----------
    placeholder : str
        What an empty field means.
    title : str
        The dialog's title.

    Attributes
    ----------
    changed : Signal(str)
        The new text.
    """

    changed = Signal(str)

    def __init__(self, placeholder: str, title: str, parent=None):
        super().__init__(parent)
        self._title = title
        self.line = qw.QLineEdit()
        self.line.setPlaceholderText(placeholder)
        self.line.setClearButtonEnabled(True)
        self.button = qw.QPushButton("Choose…")
        layout = qw.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line, 1)
        layout.addWidget(self.button)
        self.button.clicked.connect(self.choose)
        self.line.textChanged.connect(self.changed)

    def path(self) -> Path | None:
        """Return the folder, or None when the field is empty."""
        text = self.line.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path) -> None:
        """Show ``path`` (None: empty)."""
        self.line.setText(str(path) if path else "")

    def choose(self) -> None:
        """Ask for a folder; a cancelled dialog keeps the current one."""
        start = str(self.path() or Path.home())
        chosen = qw.QFileDialog.getExistingDirectory(self, self._title, start)
        if chosen:
            self.set_path(chosen)
