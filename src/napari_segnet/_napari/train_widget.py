"""The Train dock widget: fine-tune or train a model on corrected labels, watch it learn.

Training pairs come from the viewer (an image layer and a labels layer, e.g. a
segmentation the user has corrected) and/or from folders holding
``images/<stem>.tif`` and ``masks/<stem>.tif``. Training runs in a child
process (see :mod:`napari_segnet.training.session`). The model is written to the
user models folder as it improves (the best validation score is kept), so it
is offered in Segment's model list as soon as its first epoch ends, and it is
still there the next time napari starts.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy import QtWidgets as qw

from napari_segnet.io.atomic import atomic_path
from napari_segnet.messages import one_sentence
from napari_segnet.models import ENCODERS
from napari_segnet.models.bundled import user_models_dir
from napari_segnet.training.session import (
    ArraySource,
    FolderSource,
    TrainingProcess,
    TrainingRequest,
)
from napari_segnet.training.settings import VALIDATION_FRACTION, default_settings

from . import pickers
from .curve import TrainingCurve
from .layer_axes import displayed_plane, image_from_layer, layer_axes
from .model_picker import ModelPicker, register_model
from .qt_helpers import hbox, request_or_notify, spin_box
from .worker import WidgetWorker

SCRATCH = "new network (from scratch)"


class TrainWidget(qw.QWidget):
    """Train a model on image/labels pairs from the viewer or folders.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose image and labels layers are offered.
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self.process: TrainingProcess | None = None
        self._request: TrainingRequest | None = None
        self._best: tuple[int, float] | None = None
        self.sources: list[ArraySource | FolderSource] = []
        self.model_path: Path | None = None
        form = qw.QFormLayout(self)
        self.image = pickers.LayerPicker(napari_viewer, Image)
        self.channel = pickers.ChannelPicker()
        self.labels = pickers.LayerPicker(napari_viewer, Labels)
        self.source_list = qw.QListWidget()
        self.source_list.setMaximumHeight(80)
        self.source_list.setToolTip(
            "Pairs to train on. When the list is empty, the image and labels picked above "
            "are used as they are when Train is clicked."
        )
        self.add_layers_button = qw.QPushButton("Add layers")
        self.add_layers_button.setToolTip(
            "Add the plane shown now; add it again after more corrections."
        )
        self.add_folder_button = qw.QPushButton("Add folder…")
        self.add_folder_button.setToolTip(
            "A folder holding images/<name>.tif and masks/<name>.tif."
        )
        self.remove_button = qw.QPushButton("Remove")
        self.start = ModelPicker(SCRATCH)
        self.encoder = qw.QComboBox()
        self.encoder.addItems(list(ENCODERS))
        self.freeze = qw.QCheckBox("Freeze encoder (train the decoder only)")
        defaults = default_settings(fine_tune=True)  # the first choice is a model; see _on_start
        self.epochs = spin_box(qw.QSpinBox(), 1, 1000, defaults.epochs)
        self.steps = spin_box(qw.QSpinBox(), 1, 10_000, defaults.steps_per_epoch)
        self.validation = spin_box(qw.QDoubleSpinBox(), 0.0, 0.5, VALIDATION_FRACTION, step=0.05)
        self.validation.setToolTip("With few images, this part of every image is held out.")
        self.learning_rate = qw.QDoubleSpinBox()
        self.learning_rate.setDecimals(4)
        spin_box(self.learning_rate, 0.0001, 0.1, defaults.learning_rate, step=0.0005)
        self.device, devices = pickers.device_picker()
        self.device.setToolTip(devices.describe(f"auto uses {devices.auto}"))
        self.name = qw.QLineEdit()
        rows = (
            ("Image", self.image),
            (self.channel.label, self.channel),
            ("Labels", self.labels),
            ("", hbox(self.add_layers_button, self.add_folder_button, self.remove_button)),
            ("Training data", self.source_list),
            ("Start from", self.start),
            ("Encoder", self.encoder),
            ("", self.freeze),
            ("Epochs", self.epochs),
            ("Steps per epoch", self.steps),
            ("Validation fraction", self.validation),
            ("Learning rate", self.learning_rate),
            ("Device", self.device),
            ("Model name", self.name),
        )
        for label, field in rows:
            form.addRow(label, field)
        self.train_button, self.stop_button = qw.QPushButton("Train"), qw.QPushButton("Stop")
        self.save_button = qw.QPushButton("Save model…")
        self.stop_button.setEnabled(False)
        self.save_button.setEnabled(False)
        self.progress, self.status, self.curve = qw.QProgressBar(), qw.QLabel(""), TrainingCurve()
        self.status.setWordWrap(True)
        form.addRow(hbox(self.train_button, self.stop_button, self.save_button))
        form.addRow(self.progress)
        form.addRow(self.curve)
        form.addRow(self.status)
        self.runner = WidgetWorker(self, self.train_button, self.status, self.stop_button)
        self.runner.yielded.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.start.model_changed.connect(self._on_start)
        self.image.layer_changed.connect(self.channel.update_for)
        self.labels.layer_changed.connect(self._image_of_labels)
        self.add_layers_button.clicked.connect(self.add_layers)
        self.add_folder_button.clicked.connect(self._ask_folder)
        self.remove_button.clicked.connect(self._remove_source)
        self.train_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._ask_save)
        self._image_of_labels(self.labels.layer())
        self.channel.update_for(self.image.layer())
        self._on_start()

    def _image_of_labels(self, labels) -> None:
        """Suggest the image that ``<image> labels`` (Segment's output) was made from."""
        name = getattr(labels, "name", "").removesuffix(" labels")
        if name in self._viewer.layers:
            self.image.suggest(self._viewer.layers[name])

    def _on_start(self, path=None) -> None:
        """Offer the defaults of fine-tuning the chosen model, or of training from scratch."""
        scratch = self.start.path() is None
        defaults = default_settings(fine_tune=not scratch)
        self.encoder.setEnabled(scratch)
        self.epochs.setValue(defaults.epochs)
        self.steps.setValue(defaults.steps_per_epoch)
        self.learning_rate.setValue(defaults.learning_rate)
        self.name.setText("my-model" if scratch else f"{self.start.model_name()}-tuned")

    def layer_source(self) -> ArraySource:
        """Pair the picked image (channel) and labels, as shown now.

        Returns
        -------
        ArraySource
            The planes shown now of both layers.

        Raises
        ------
        ValueError
            If a layer is missing or their planes differ in size.
        """
        image_layer, labels_layer = self.image.layer(), self.labels.layer()
        if labels_layer is None:
            raise ValueError("There is no labels layer: segment the image or paint labels first.")
        image, channel = self.channel.picked(image_layer)
        plane = displayed_plane(self._viewer, image, image_layer, channel)
        labels = displayed_plane(
            self._viewer,
            image_from_layer(labels_layer, layer_axes(labels_layer)),
            labels_layer,
        )
        if labels.shape != plane.shape[:2]:
            raise ValueError(
                f"The labels ({labels.shape[0]}×{labels.shape[1]}) and the image "
                f"({plane.shape[0]}×{plane.shape[1]}) differ in size."
            )
        return ArraySource(f"{image_layer.name} + {labels_layer.name}", plane, labels.copy())

    def add_layers(self) -> None:
        """Add the picked image and labels (the plane shown now) to the training data."""
        try:
            self._add_source(self.layer_source())
        except ValueError as error:
            show_error(one_sentence(error))

    def add_folder(self, folder) -> None:
        """Add a folder holding ``images/`` and ``masks/`` to the training data.

        A folder without them gives an error notification and is not added.
        """
        folder = Path(folder)
        if not ((folder / "images").is_dir() and (folder / "masks").is_dir()):
            show_error(f"{folder} needs an images folder and a masks folder inside it.")
            return
        self._add_source(FolderSource(folder))

    def _add_source(self, source) -> None:
        self.sources.append(source)
        self.source_list.addItem(source.name)

    def _ask_folder(self) -> None:
        folder = qw.QFileDialog.getExistingDirectory(self, "Folder with images/ and masks/")
        if folder:
            self.add_folder(folder)

    def _remove_source(self) -> None:
        row = self.source_list.currentRow()
        if 0 <= row < len(self.sources):
            self.sources.pop(row)
            self.source_list.takeItem(row)

    def request(self) -> TrainingRequest:
        """Read what a click on Train would run from the current settings.

        Returns
        -------
        TrainingRequest
            The listed pairs (or the picked layers if none are listed) and settings;
            the model goes to a free name in the user models folder.

        Raises
        ------
        ValueError
            If the layers cannot be paired or the model name is not usable.
        """
        sources = list(self.sources) or [self.layer_source()]
        name = self.name.text().strip() or "my-model"
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("Give the model a name of letters, digits, '-', '_' or '.'.")
        out = _free_path(name)
        settings = default_settings(
            fine_tune=self.start.path() is not None,
            epochs=self.epochs.value(),
            steps_per_epoch=self.steps.value(),
            learning_rate=self.learning_rate.value(),
            freeze_encoder=self.freeze.isChecked(),
        )
        return TrainingRequest(
            sources=sources,
            start=self.start.path(),
            encoder=self.encoder.currentText(),
            name=out.stem,
            settings=settings,
            validation_fraction=self.validation.value(),
            out=out,
            device=self.device.currentText(),
        )

    def run(self) -> None:
        """Start training in a child process, followed by a worker thread."""
        if self.runner.running or (request := request_or_notify(self.request)) is None:
            return
        self._request, self._best = request, None
        self.curve.reset(request.settings.epochs * request.settings.steps_per_epoch)
        self.process = TrainingProcess(request)
        self.progress.setValue(0)
        self.runner.start(
            self.process.events,
            status="Starting…",
            activity=f"Training {request.name}",
            activity_stages=("training",),
            on_destroy=self.process.stop,
            ignore_errors=False,
        )

    def stop(self) -> None:
        """Stop training now; the best model so far is kept."""
        if self.runner.cancel("Stopping…"):
            self.process.stop()

    def _on_progress(self, event) -> None:
        if event.stage == "training":
            self.progress.setMaximum(event.total)
            self.progress.setValue(event.done)
            self.curve.add_loss(event.info["loss"])
            self.status.setText(f"Epoch {event.info['epoch']}: loss {event.info['loss']:.3f}")
        elif event.stage == "validated":
            steps = self._request.settings.steps_per_epoch
            self.curve.add_score(event.done * steps, event.info["ap50"])
            if event.info["best_epoch"] == event.done:  # a better model was written
                self._best = (event.done, event.info["ap50"])
                self._model_ready()
        else:
            self.status.setText(event.stage.capitalize() + "…")

    def _model_ready(self) -> None:
        self.model_path = self._request.out
        register_model(self.model_path, self._request.name)  # Segment selects it
        self.save_button.setEnabled(True)

    def _on_finished(self, stopped: bool) -> None:
        process, self.process = self.process, None
        process.stop()  # the child has ended (or is ended now); tidy up after it
        if stopped:
            kept = self._summary() if self._best else "No epoch had finished, so no model was kept."
            self.status.setText(f"Stopped. {kept}")
        elif process.error:
            self.status.setText(process.error)
            show_error(process.error)
        else:
            self.progress.setValue(self.progress.maximum())
            self.status.setText(self._summary())

    def _summary(self) -> str:
        epoch, ap50 = self._best  # of the model kept (chosen by mean AP over IoU 0.5–0.9)
        score = f"validation AP@0.5 {ap50:.3f}, " if math.isfinite(ap50) else ""  # none held out
        return (
            f"Model '{self._request.name}' ({score}epoch {epoch}) is in Segment's model "
            f"list; saved in {self.model_path.parent}."
        )

    def save(self, path) -> Path:
        """Copy the trained model to ``path`` (atomically).

        Parameters
        ----------
        path : str or pathlib.Path
            Where to copy it; the suffix becomes ``.safetensors``.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        path = Path(path).with_suffix(".safetensors")
        with atomic_path(path) as temporary:
            shutil.copyfile(self.model_path, temporary)
        return path

    def _ask_save(self) -> None:
        suggestion = f"{self._request.name}.safetensors"
        path, _ = qw.QFileDialog.getSaveFileName(
            self, "Save model", suggestion, "Models (*.safetensors)"
        )
        if path:
            try:
                self.status.setText(f"Saved {self.save(path)}.")
            except OSError as error:
                show_error(f"Could not save the model: {one_sentence(error)}")


def _free_path(name: str) -> Path:
    """Return ``<user models>/<name>.safetensors``, numbered if that name is taken."""
    folder = user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path, number = folder / f"{name}.safetensors", 1
    while path.exists():
        number += 1
        path = folder / f"{name}-{number}.safetensors"
    return path
