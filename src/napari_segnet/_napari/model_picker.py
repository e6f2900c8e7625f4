"""The model combo box shared by the widgets, and the registry of models made in this session."""

from __future__ import annotations

import weakref
from pathlib import Path

from qtpy import QtWidgets as qw
from qtpy.QtCore import Qt, Signal

from napari_segnet.models.bundled import (
    bundled_file_version,
    bundled_models,
    list_models,
    user_models,
)

CHOOSE_FILE = "Choose file…"
_REGISTERED: dict[str, Path] = {}  # models registered at runtime (e.g. just trained)
_OPEN_PICKERS: weakref.WeakSet[ModelPicker] = weakref.WeakSet()


def register_model(path, name: str | None = None) -> str:
    """Offer a model file in every open (and every later) model picker; returns its name.

    Pickers made with ``select_registered=True`` (Segment's) also select it.
    """
    path = Path(path)
    name = name or path.stem
    _REGISTERED[name] = path
    for picker in list(_OPEN_PICKERS):
        try:
            picker.add_model(path, name, select=picker.select_registered)
        except RuntimeError:  # its widget was closed: Qt deleted the combo box
            _OPEN_PICKERS.discard(picker)
    return name


def model_choices() -> dict[str, Path]:
    """Return the picker's models by the text it shows: bundled, user, registered.

    Every version of a bundled model is offered, newest first: ``nuclei@2 (newest)``,
    which the plain name ``nuclei`` loads, then ``nuclei@1``.
    """
    choices = {
        f"{model.reference} (newest)" if model.newest else model.reference: model.path
        for model in bundled_models()
    }
    loadable = list_models()
    choices |= {name: path for name, path in user_models().items() if loadable[name] == path}
    return choices | _REGISTERED


class ModelPicker(qw.QComboBox):
    """A combo box of models: bundled and user models, then those registered in this session.

    Every version of a bundled model is there, the newest first and selected (see
    :func:`model_choices`). An optional extra choice (e.g. "from scratch", whose path
    is None) comes next, and "Choose file…" (a file dialog) last.

    Parameters
    ----------
    extra : str, optional
        The text of the extra choice.
    select_registered : bool
        Select each model registered later with :func:`register_model`.
    parent : QWidget, optional
        The Qt parent.

    Attributes
    ----------
    model_changed : Signal(object)
        The chosen model's path (None for the extra choice) after every change.
    """

    model_changed = Signal(object)

    def __init__(self, extra: str | None = None, *, select_registered: bool = False, parent=None):
        super().__init__(parent)
        self.select_registered = select_registered
        self._last = 0
        for name, path in model_choices().items():
            self.add_model(path, name, select=False)
        if extra:
            self.addItem(extra)
        self.addItem(CHOOSE_FILE)
        self.setCurrentIndex(0)
        self.currentIndexChanged.connect(self._on_index)
        _OPEN_PICKERS.add(self)

    def path(self) -> Path | None:
        """Return the chosen model file (None for the extra choice)."""
        data = self.currentData()
        return Path(data) if data else None

    def model_name(self) -> str:
        """Return the chosen model's name: ``nuclei`` for any of its versions, else its text."""
        path = self.path()
        bundled = bundled_file_version(path) if path is not None else None
        return bundled[0] if bundled else self.currentText()

    def add_model(self, path, name: str | None = None, select: bool = True) -> None:
        """Add a model file (once), before the extra choice and "Choose file…"."""
        path = Path(path)
        index = self.findData(str(path))
        if index < 0:
            index = next((i for i in range(self.count()) if not self.itemData(i)), self.count())
            self.blockSignals(True)  # inserting before the current item moves it
            self.insertItem(index, name or path.stem, str(path))
            self.setItemData(index, str(path), Qt.ItemDataRole.ToolTipRole)
            self.blockSignals(False)
        if select:
            self.setCurrentIndex(index)

    def ask_path(self) -> str:
        """Ask for a model file (a file dialog); empty if cancelled."""
        models = "napari-segnet models (*.safetensors *.onnx *.zip);;All files (*)"
        return qw.QFileDialog.getOpenFileName(self, "Choose a model file", "", models)[0]

    def _on_index(self, index: int) -> None:
        if self.itemText(index) == CHOOSE_FILE:
            path = self.ask_path()
            if path:
                self.add_model(path)
            else:
                self.setCurrentIndex(self._last)
            return
        self._last = index
        self.model_changed.emit(self.path())
