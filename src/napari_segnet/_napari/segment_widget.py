"""The Segment dock widget: run a model on an image layer, add or update a labels layer."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy import QtWidgets as qw
from qtpy.QtCore import Qt

from napari_segnet.inference.devices import device_report, select_device
from napari_segnet.inference.progress import Progress
from napari_segnet.inference.segment import SegmentSettings, choose_channel, iter_segment
from napari_segnet.io import MicroscopyImage
from napari_segnet.models.bundled import list_models
from napari_segnet.models.checkpoint import ModelLoadError, load_model, read_model_config
from napari_segnet.postprocess import InstanceSettings

from . import layer_utils as lu

CHOOSE_FILE = "Choose file…"
RGB_CHOICES = ("Luminance", "Red", "Green", "Blue")
DEVICES = ("auto", "cpu", "cuda", "mps")
_log = logging.getLogger(__name__)
_REGISTERED: dict[str, Path] = {}  # models registered at runtime (e.g. just trained)
_OPEN_WIDGETS: weakref.WeakSet[SegmentWidget] = weakref.WeakSet()


def register_model(path, name: str | None = None) -> str:
    """Offer a model file in every open (and every later) Segment widget; returns its name."""
    path = Path(path)
    name = name or path.stem
    _REGISTERED[name] = path
    for widget in list(_OPEN_WIDGETS):
        widget.add_model(path, name)
    return name


def model_config(path):
    """A model file's config read from its header only (no weights), or None if unreadable."""
    try:
        return read_model_config(path)[0]
    except ModelLoadError:
        return None


def run_segmentation(image, model_path, device, settings, probabilities=False):
    """Load the model and segment, yielding Progress; return (Segmentation, device) or lu.Failed.

    Runs in a worker thread: its arguments hold no Qt or napari objects.
    """
    try:
        yield Progress(0, 1, "loading the model")
        device = select_device(device)
        model, _ = load_model(model_path, device, fuse=True)
        result = yield from iter_segment(image, model, settings, device=device,
                                         keep_probabilities=probabilities)  # fmt: skip
    except Exception as error:
        _log.debug("Segmentation failed", exc_info=True)
        return lu.Failed(lu.one_sentence(error))
    return result, str(device)


class SegmentWidget(qw.QWidget):
    """Segment the picked image layer with a model; results go to ``<name> labels``."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self.worker = self._target = None
        self._last_model = 0
        form = qw.QFormLayout(self)
        self.image = lu.LayerPicker(napari_viewer, Image)
        self.channel, self.model, self.device = qw.QComboBox(), qw.QComboBox(), qw.QComboBox()
        self.channel_label, self.device_info = qw.QLabel("Channel"), qw.QLabel()
        self.device_info.setWordWrap(True)
        self.diameter = lu.spin_box(qw.QDoubleSpinBox(), 0, 1000, 0, "px")
        self.diameter.setSpecialValueText("as trained")
        self.seed = lu.spin_box(qw.QDoubleSpinBox(), 0.01, 0.99, 0.5, step=0.05)
        self.foreground = lu.spin_box(qw.QDoubleSpinBox(), 0.01, 0.99, 0.5, step=0.05)
        self.min_size = lu.spin_box(qw.QSpinBox(), 0, 100_000, 15, "px")
        self.tile = lu.spin_box(qw.QSpinBox(), 64, 4096, SegmentSettings().tile, "px", step=64)
        self.probabilities = qw.QCheckBox("Add probability maps")
        rows = (("Image", self.image), (self.channel_label, self.channel), ("Model", self.model),
                ("Device", self.device), ("", self.device_info),
                ("Object diameter", self.diameter), ("Seed threshold", self.seed),
                ("Foreground threshold", self.foreground), ("Min size", self.min_size),
                ("Tile size", self.tile), ("", self.probabilities))  # fmt: skip
        for label, field in rows:
            form.addRow(label, field)
        self.run_button, self.cancel_button = qw.QPushButton("Segment"), qw.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress, self.status = qw.QProgressBar(), qw.QLabel("")
        self.status.setWordWrap(True)
        form.addRow(lu.hbox(self.run_button, self.cancel_button))
        form.addRow(self.progress)
        form.addRow(self.status)
        for name, path in {**list_models(), **_REGISTERED}.items():
            self.add_model(path, name, select=False)
        self.model.addItem(CHOOSE_FILE)
        self._setup_devices()
        self.model.currentIndexChanged.connect(self._on_model)
        self.image.layer_changed.connect(self._update_channels)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._on_model(0)
        self._update_channels()
        _OPEN_WIDGETS.add(self)

    def add_model(self, path, name: str | None = None, select: bool = True) -> None:
        """Add a model file to the picker (once) and optionally select it."""
        path = Path(path)
        index = self.model.findData(str(path))
        if index < 0:
            index = self.model.findText(CHOOSE_FILE)
            index = self.model.count() if index < 0 else index
            self.model.blockSignals(True)  # inserting before the current item moves it
            self.model.insertItem(index, name or path.stem, str(path))
            self.model.setItemData(index, str(path), Qt.ItemDataRole.ToolTipRole)
            self.model.blockSignals(False)
        if select:
            self.model.setCurrentIndex(index)

    def _ask_model_path(self) -> str:
        models = "napari-segnet models (*.safetensors);;All files (*)"
        return qw.QFileDialog.getOpenFileName(self, "Choose a model file", "", models)[0]

    def _on_model(self, index: int) -> None:
        if self.model.itemText(index) == CHOOSE_FILE:
            path = self._ask_model_path()
            if not path:
                self.model.setCurrentIndex(self._last_model)
                return
            self.add_model(path)
            return
        self._last_model = index
        config = model_config(self.model.itemData(index))
        defaults = InstanceSettings(**(getattr(config, "instance_settings", None) or {}))
        self.seed.setValue(defaults.seed_threshold)
        self.foreground.setValue(defaults.foreground_threshold)
        self.min_size.setValue(int(defaults.min_size))
        trained = getattr(config, "object_diameter_px", None)
        self.diameter.setToolTip(
            f"Typical object diameter in pixels; 0 uses the training size ({trained:g} px)."
            if trained else "This model has no training size: it always runs at full size."
        )  # fmt: skip

    def _setup_devices(self) -> None:
        report = {status.name: status for status in device_report()}
        self.device.addItems(DEVICES)
        notes = []
        for index, name in enumerate(DEVICES):
            status = report.get(name)
            if status is not None and not status.available:
                self.device.model().item(index).setEnabled(False)
                self.device.setItemData(index, status.detail, Qt.ItemDataRole.ToolTipRole)
                notes.append(f"{name}: {status.detail.split('. ')[0]}")  # full text: tooltip
        auto = next(n for n in ("cuda", "mps", "cpu") if report[n].available)
        self._device_notes = "; ".join(notes)
        self.device_info.setText(f"auto uses {auto}" + (f" ({'; '.join(notes)})" if notes else ""))

    def _update_channels(self, layer=None) -> None:
        layer = self.image.layer()
        self.channel.clear()
        choices, default = [], 0
        try:
            axes = lu.layer_axes(layer) if layer is not None else ""
        except ValueError:  # reported when Segment is clicked
            axes = ""
        if "S" in axes:
            choices = list(RGB_CHOICES)
        elif "C" in axes:
            image = lu.image_from_layer(layer, axes)
            choices = list(image.channel_names)
            default = choose_channel(image, None) or 0
        self.channel.addItems(choices)
        self.channel.setCurrentIndex(default)
        self.channel.setVisible(bool(choices))
        self.channel_label.setVisible(bool(choices))

    def request(self) -> dict:
        """What a click on Segment would run, from the current settings."""
        layer = self.image.layer()
        if layer is None:
            raise ValueError("There is no image layer to segment: open an image first.")
        axes = lu.layer_axes(layer)
        image, channel = lu.image_from_layer(layer, axes), None
        if "S" in axes and self.channel.currentIndex() > 0:  # one colour of an RGB image
            k = self.channel.currentIndex() - 1
            image = MicroscopyImage(image.data[..., k], axes.replace("S", ""), (), image.pixel_size)
        elif "C" in axes:
            channel = self.channel.currentIndex()
        instances = InstanceSettings(self.seed.value(), self.foreground.value(),
                                     self.min_size.value())  # fmt: skip
        settings = SegmentSettings(channel=channel, diameter=self.diameter.value() or None,
                                   tile=self.tile.value(), instances=instances)  # fmt: skip
        return {"image": image, "model_path": Path(self.model.currentData()),
                "device": self.device.currentText(), "settings": settings,
                "probabilities": self.probabilities.isChecked()}  # fmt: skip

    def run(self) -> None:
        """Start segmenting the picked layer in a worker thread."""
        if self.worker is not None:
            return
        try:
            request = self.request()
        except ValueError as error:
            show_error(lu.one_sentence(error))
            return
        layer = self._target = self.image.layer()
        worker = thread_worker(run_segmentation, start_thread=False, ignore_errors=True)(**request)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_result)
        worker.finished.connect(self._on_finished)
        self.destroyed.connect(worker.quit)
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(f"Segmenting {layer.name}…")
        worker.start()

    def cancel(self) -> None:
        """Stop the running segmentation (after the tile being computed)."""
        if self.worker is not None:
            self.status.setText("Cancelling…")
            self.worker.quit()

    def _on_progress(self, event) -> None:
        self.progress.setMaximum(max(event.total, 1))
        self.progress.setValue(event.done)
        self.status.setText(event.stage.capitalize() + "…")

    def _on_finished(self) -> None:
        self.destroyed.disconnect(self.worker.quit)
        if self.worker.abort_requested:
            self.status.setText("Cancelled.")
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_result(self, result) -> None:
        layer = self._target
        if isinstance(result, lu.Failed):
            self.status.setText(result.message)
            show_error(result.message)
            return
        segmentation, device = result
        notes = f" ({self._device_notes})" if self._device_notes else ""
        self.device_info.setText(f"Last run on {device}{notes}")
        self.progress.setValue(self.progress.maximum())
        n = len(np.unique(segmentation.labels)) - 1
        self.status.setText(f"Found {n} objects in {layer.name}.")
        self.add_result(layer, segmentation)

    def add_result(self, layer, segmentation) -> Labels:
        """Add or update ``<name> labels`` (and the probability maps) for an image layer."""
        axes = lu.layer_axes(layer).replace("S", "")
        keep = [i for i, axis in enumerate(axes) if axis != "C"]
        calibration = {key: tuple(getattr(layer, key)[i] for i in keep)
                       for key in ("scale", "translate", "units", "axis_labels")}  # fmt: skip
        if segmentation.probabilities is not None:  # added first: the labels stay on top
            for index, kind in ((1, "interior"), (2, "boundary")):
                self._put(Image, f"{layer.name} {kind} probability",
                          segmentation.probabilities[index], calibration, colormap="magma",
                          blending="additive", contrast_limits=(0, 1))  # fmt: skip
        labels = self._put(Labels, f"{layer.name} labels", segmentation.labels, calibration)
        if segmentation.classes:
            classes = dict(segmentation.classes)
            labels.features = {"index": classes["label"], **classes}
        return labels

    def _put(self, kind, name, data, calibration, **kwargs):
        layers = self._viewer.layers
        old = layers[name] if name in layers else None
        if isinstance(old, kind) and old.ndim != data.ndim:  # e.g. another channel choice
            layers.remove(old)
        elif isinstance(old, kind):
            layer = old
            for key, value in calibration.items():
                setattr(layer, key, value)
            layer.data = data
            if kind is Labels:
                layer.features = {}  # the objects are new: old rows would describe others
            return layer
        add = self._viewer.add_labels if kind is Labels else self._viewer.add_image
        return add(data, name=name, **calibration, **kwargs)
