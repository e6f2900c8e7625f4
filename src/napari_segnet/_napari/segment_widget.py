"""The Segment dock widget: run a model on an image layer, add or update a labels layer."""

from __future__ import annotations

import logging

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy import QtWidgets as qw

from napari_segnet.inference.devices import select_device
from napari_segnet.inference.segment import SegmentSettings, iter_segment
from napari_segnet.models.checkpoint import ModelLoadError, load_model, read_model_config
from napari_segnet.postprocess import InstanceSettings
from napari_segnet.progress import Progress

from . import layer_utils as lu
from . import pickers
from .model_picker import ModelPicker

_log = logging.getLogger(__name__)


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
        result = yield from iter_segment(
            image, model, settings, device=device, keep_probabilities=probabilities
        )
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
        form = qw.QFormLayout(self)
        self.image = pickers.LayerPicker(napari_viewer, Image)
        self.channel, self.model = pickers.ChannelPicker(), ModelPicker(select_registered=True)
        self.device, self._device_notes, auto = pickers.device_picker()
        notes = f" ({self._device_notes})" if self._device_notes else ""
        self.device_info = qw.QLabel(f"auto uses {auto}{notes}")
        self.device_info.setWordWrap(True)
        self.diameter = lu.spin_box(qw.QDoubleSpinBox(), 0, 1000, 0, "px")
        self.diameter.setSpecialValueText("as trained")
        self.seed = lu.spin_box(qw.QDoubleSpinBox(), 0.01, 0.99, 0.5, step=0.05)
        self.foreground = lu.spin_box(qw.QDoubleSpinBox(), 0.01, 0.99, 0.5, step=0.05)
        self.min_size = lu.spin_box(qw.QSpinBox(), 0, 100_000, 15, "px")
        self.tile = lu.spin_box(qw.QSpinBox(), 64, 4096, SegmentSettings().tile, "px", step=64)
        self.probabilities = qw.QCheckBox("Add probability maps")
        rows = (
            ("Image", self.image),
            (self.channel.label, self.channel),
            ("Model", self.model),
            ("Device", self.device),
            ("", self.device_info),
            ("Object diameter", self.diameter),
            ("Seed threshold", self.seed),
            ("Foreground threshold", self.foreground),
            ("Min size", self.min_size),
            ("Tile size", self.tile),
            ("", self.probabilities),
        )
        for label, field in rows:
            form.addRow(label, field)
        self.run_button, self.cancel_button = qw.QPushButton("Segment"), qw.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress, self.status = qw.QProgressBar(), qw.QLabel("")
        self.status.setWordWrap(True)
        form.addRow(lu.hbox(self.run_button, self.cancel_button))
        form.addRow(self.progress)
        form.addRow(self.status)
        self.model.model_changed.connect(self._on_model)
        self.image.layer_changed.connect(self.channel.update_for)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._on_model(self.model.path())
        self.channel.update_for(self.image.layer())

    def _on_model(self, path) -> None:
        config = model_config(path)
        defaults = InstanceSettings(**(getattr(config, "instance_settings", None) or {}))
        self.seed.setValue(defaults.seed_threshold)
        self.foreground.setValue(defaults.foreground_threshold)
        self.min_size.setValue(int(defaults.min_size))
        trained = getattr(config, "object_diameter_px", None)
        self.diameter.setToolTip(
            f"Typical object diameter in pixels; 0 uses the training size ({trained:g} px)."
            if trained
            else "This model has no training size: it always runs at full size."
        )

    def request(self) -> dict:
        """What a click on Segment would run, from the current settings."""
        image, channel = self.channel.picked(self.image.layer())
        instances = InstanceSettings(
            self.seed.value(), self.foreground.value(), self.min_size.value()
        )
        settings = SegmentSettings(
            channel=channel,
            diameter=self.diameter.value() or None,
            tile=self.tile.value(),
            instances=instances,
        )
        return {
            "image": image,
            "model_path": self.model.path(),
            "device": self.device.currentText(),
            "settings": settings,
            "probabilities": self.probabilities.isChecked(),
        }

    def run(self) -> None:
        """Start segmenting the picked layer in a worker thread."""
        if self.worker is not None or (request := lu.request_or_notify(self.request)) is None:
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
        self._activity = lu.ActivityProgress(f"Segmenting {layer.name}")
        worker.start()

    def cancel(self) -> None:
        """Stop the running segmentation (after the tile being computed)."""
        if self.worker is not None:
            self.status.setText("Cancelling…")
            self.worker.quit()

    def _on_progress(self, event) -> None:
        if self.worker is None:  # delivered after the run ended
            return
        self.progress.setMaximum(max(event.total, 1))
        self.progress.setValue(event.done)
        self.status.setText(event.stage.capitalize() + "…")
        self._activity.show(event)  # last: napari may process other events while drawing it

    def _on_finished(self) -> None:
        self._activity.close()
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
        calibration = {
            key: tuple(getattr(layer, key)[i] for i in keep)
            for key in ("scale", "translate", "units", "axis_labels")
        }
        if segmentation.probabilities is not None:  # added first: the labels stay on top
            for index, kind in ((1, "interior"), (2, "boundary")):
                self._put(
                    Image,
                    f"{layer.name} {kind} probability",
                    segmentation.probabilities[index],
                    calibration,
                    colormap="magma",
                    blending="additive",
                    contrast_limits=(0, 1),
                )
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
