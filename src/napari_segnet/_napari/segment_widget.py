"""The Segment dock widget: run a model on an image layer, add or update a labels layer."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from qtpy import QtWidgets as qw

from napari_segnet.inference.devices import select_device
from napari_segnet.inference.diameter import AUTO
from napari_segnet.inference.fallback import iter_segment_with_fallback
from napari_segnet.inference.segment import SegmentSettings
from napari_segnet.inference.stream import should_stream
from napari_segnet.inference.stream_outputs import iter_segment_to_files
from napari_segnet.io import MicroscopyImage
from napari_segnet.messages import one_sentence
from napari_segnet.models.checkpoint import ModelLoadError, load_model, read_model_config
from napari_segnet.postprocess import InstanceSettings
from napari_segnet.progress import Progress, relay

from . import pickers
from .layer_axes import layer_axes
from .layers import record_model
from .model_picker import ModelPicker
from .qt_helpers import WrappingLabel, hbox, request_or_notify, spin_box
from .worker import Failed, WidgetWorker

_log = logging.getLogger(__name__)


def model_config(path):
    """Read a model file's config from its header only (no weights); None if unreadable."""
    try:
        return read_model_config(path)[0]
    except ModelLoadError:
        return None


@dataclass(frozen=True, eq=False)
class SegmentRequest:
    """What one click on Segment runs: the arguments of :func:`run_segmentation`.

    Attributes
    ----------
    image : MicroscopyImage
        The picked layer's data with its axes (all channels; ``settings`` picks one).
    model_path : pathlib.Path
        The model file.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    settings : SegmentSettings
        Channel, object size, tiling and instance thresholds.
    probabilities : bool
        Whether to keep the class probability maps (for extra layers).
    results : pathlib.Path
        Where the labels of a plane segmented block by block are written.
    name : str
        The layer's name, for the name of those labels.
    """

    image: MicroscopyImage
    model_path: Path | None
    device: str
    settings: SegmentSettings
    probabilities: bool = False
    results: Path | None = None
    name: str = "image"


def results_dir() -> Path:
    """Return the folder for labels of big planes.

    ``$NAPARI_SEGNET_RESULTS``, or ``~/.napari-segnet/results``.
    """
    return Path(os.environ.get("NAPARI_SEGNET_RESULTS", Path.home() / ".napari-segnet" / "results"))


@dataclass(frozen=True)
class BlockResult:
    """Labels of a big plane segmented block by block, in an OME-Zarr folder.

    Attributes
    ----------
    path : pathlib.Path
        The ``.zarr`` folder (a pyramid: level 0 is full resolution).
    summary : napari_segnet.inference.stream.StreamSummary
        Objects found, and how many may be cut at block borders.
    """

    path: Path
    summary: object


def run_segmentation(
    image, model_path, device, settings, probabilities=False, results=None, name="image"
):
    """Load the model and segment the image, yielding Progress.

    Runs in a worker thread: its arguments hold no Qt or napari objects. An image
    that :func:`~napari_segnet.inference.stream.should_stream` calls big (a plane or
    a Z-stack) is segmented block by block, in bounded memory, into an OME-Zarr folder in
    ``results`` (see :func:`results_dir`), and comes back as a :class:`BlockResult`.

    Returns
    -------
    tuple or Failed
        ``(Segmentation or BlockResult, where it ran, the model's ModelIdentity)``, or
        :class:`Failed` with one sentence (it never raises). Out of GPU memory, it
        retries with smaller tiles and then on the CPU
        (:mod:`napari_segnet.inference.fallback`); where it ran says so.
    """
    warnings = []

    def note(event):
        if "warning" in event.info:
            warnings.append(event.info["warning"])
        return event

    try:
        yield Progress(0, 1, "loading the model")
        device = select_device(device)
        model, _ = load_model(model_path, device, fuse=True)
        if should_stream(image):
            events = _segment_in_blocks(image, model, settings, device, results, name)
            return (yield from events), str(device), model.identity
        events = iter_segment_with_fallback(
            image, model, settings, device=device, keep_probabilities=probabilities
        )
        result = yield from relay(events, note)
    except Exception as error:
        _log.debug("Segmentation failed", exc_info=True)
        return Failed(one_sentence(error))
    return result, str(device) + (f" ({warnings[-1]})" if warnings else ""), model.identity


def _segment_in_blocks(image, model, settings, device, results: Path | None, name: str):
    """Segment a big plane or Z-stack block by block into an OME-Zarr pyramid in ``results``."""
    folder = results or results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "image"
    path = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}_labels.zarr"
    events = iter_segment_to_files(
        image, model, settings, path, labels_format="zarr", device=device
    )
    summary = yield from events
    return BlockResult(path, summary)


class SegmentWidget(qw.QWidget):
    """Segment the picked image layer with a model; results go to ``<name> labels``.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are offered and where the labels are added.
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._target = None
        form = qw.QFormLayout(self)
        form.setFieldGrowthPolicy(qw.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.image = pickers.LayerPicker(napari_viewer, Image)
        self.channel, self.model = pickers.ChannelPicker(), ModelPicker(select_registered=True)
        self.device, self._devices = pickers.device_picker()
        self.device_info = WrappingLabel(self._devices.describe(f"auto uses {self._devices.auto}"))
        self.device_info.setToolTip(self._devices.reasons)
        self.diameter = spin_box(qw.QDoubleSpinBox(), 0, 1000, 0, "px")
        self.diameter.setSpecialValueText("auto")
        self.rescale = qw.QCheckBox("Rescale to the model's object size")
        self.rescale.setChecked(True)
        self.rescale.setToolTip(
            "Unchecked: the image is segmented as it is, whatever the size of its objects."
        )
        self.rescale.toggled.connect(self.diameter.setEnabled)
        instances = InstanceSettings()  # until a model's own thresholds replace them
        self.seed = spin_box(qw.QDoubleSpinBox(), 0.01, 0.99, instances.seed_threshold, step=0.05)
        self.foreground = spin_box(
            qw.QDoubleSpinBox(), 0.01, 0.99, instances.foreground_threshold, step=0.05
        )
        self.min_size = spin_box(qw.QSpinBox(), 0, 100_000, instances.min_size, "px")
        self.min_size.setToolTip(
            "Objects smaller than this are removed. Pixels as the network sees them: when the "
            "image is rescaled to the model's object size, the limit is rescaled with it."
        )
        self.tile = spin_box(qw.QSpinBox(), 64, 4096, SegmentSettings().tile, "px", step=64)
        self.probabilities = qw.QCheckBox("Add probability maps")
        self.tta = qw.QCheckBox("Test-time flips (8 × slower)")
        self.tta.setToolTip(
            "Average every tile over its eight flips and rotations: slightly smoother edges."
        )
        rows = (
            ("Image", self.image),
            (self.channel.label, self.channel),
            ("Model", self.model),
            ("Device", self.device),
            ("", self.device_info),
            ("Object diameter", self.diameter),
            ("", self.rescale),
            ("Seed threshold", self.seed),
            ("Foreground threshold", self.foreground),
            ("Min size", self.min_size),
            ("Tile size", self.tile),
            ("", self.tta),
            ("", self.probabilities),
        )
        for label, field in rows:
            form.addRow(label, field)
        self.run_button, self.cancel_button = qw.QPushButton("Segment"), qw.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress, self.status = qw.QProgressBar(), qw.QLabel("")
        self.status.setWordWrap(True)
        form.addRow(hbox(self.run_button, self.cancel_button))
        form.addRow(self.progress)
        form.addRow(self.status)
        self.runner = WidgetWorker(self, self.run_button, self.status, self.cancel_button)
        self.runner.yielded.connect(self._on_progress)
        self.runner.returned.connect(self._on_result)
        self.runner.finished.connect(self._on_finished)
        self.model.model_changed.connect(self._on_model)
        self.image.layer_changed.connect(self.channel.update_for)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._on_model(self.model.path())
        self.channel.update_for(self.image.layer())

    def _on_model(self, path) -> None:
        config = model_config(path)
        star = bool(getattr(config, "has_star_head", False))  # rays cannot be flipped yet
        self.tta.setEnabled(not star)
        if star:
            self.tta.setChecked(False)
        defaults = InstanceSettings(**(getattr(config, "instance_settings", None) or {}))
        self.seed.setValue(defaults.seed_threshold)
        self.foreground.setValue(defaults.foreground_threshold)
        self.min_size.setValue(int(defaults.min_size))
        trained = getattr(config, "object_diameter_px", None)
        self.diameter.setToolTip(
            "Typical object diameter in pixels. 'auto' measures it on the image first; the "
            f"image is then rescaled so that objects are {trained:g} px wide, as in training."
            if trained
            else "This model has no training size: it always runs at full size."
        )

    def request(self) -> SegmentRequest:
        """Read what a click on Segment would run from the current settings.

        Raises
        ------
        ValueError
            If there is no image layer or its axes cannot be told.
        """
        image, channel = self.channel.picked(self.image.layer())
        instances = InstanceSettings(
            self.seed.value(), self.foreground.value(), self.min_size.value()
        )
        settings = SegmentSettings(
            channel=channel,
            diameter=(self.diameter.value() or AUTO) if self.rescale.isChecked() else None,
            tile=self.tile.value(),
            instances=instances,
            tta=self.tta.isChecked(),
        )
        return SegmentRequest(
            image,
            self.model.path(),
            self.device.currentText(),
            settings,
            self.probabilities.isChecked(),
            name=self.image.layer().name,
        )

    def run(self) -> None:
        """Start segmenting the picked layer in a worker thread."""
        if self.runner.running or (request := request_or_notify(self.request)) is None:
            return
        layer = self._target = self.image.layer()
        self.progress.setValue(0)
        self.runner.start(
            run_segmentation,
            request,
            status=f"Segmenting {layer.name}…",
            activity=f"Segmenting {layer.name}",
        )

    def cancel(self) -> None:
        """Stop the running segmentation (after the tile being computed)."""
        self.runner.cancel()

    def _on_progress(self, event) -> None:
        self.progress.setMaximum(max(event.total, 1))
        self.progress.setValue(event.done)
        self.status.setText(event.stage.capitalize() + "…")

    def _on_finished(self, cancelled: bool) -> None:
        if cancelled:
            self.status.setText("Cancelled.")

    def _on_result(self, result) -> None:
        layer = self._target
        segmentation, device, identity = result
        self.device_info.setText(self._devices.describe(f"Last run on {device}"))
        self.progress.setValue(self.progress.maximum())
        if isinstance(segmentation, BlockResult):
            summary = segmentation.summary
            text = f"Found {summary.objects} objects in {layer.name}, block by block"
            if summary.oversized:
                text += (
                    f"; {summary.oversized} may be cut at block borders (larger than the "
                    f"{summary.halo}-pixel halo)"
                )
            self.status.setText(text + f". Labels: {segmentation.path}")
            record_model(self.add_block_result(layer, segmentation), identity)
            return
        n = len(np.unique(segmentation.labels)) - 1
        sizing = segmentation.diameter_estimate
        self.status.setText(
            f"Found {n} objects in {layer.name}"
            + (f" ({sizing.describe()})." if sizing is not None else ".")
        )
        record_model(self.add_result(layer, segmentation), identity)

    def add_block_result(self, layer, result: BlockResult) -> Labels:
        """Add or update ``<name> labels`` as a multiscale layer read lazily from its folder."""
        import dask.array as da
        import zarr

        group = zarr.open_group(result.path, mode="r")
        levels = [da.from_zarr(group[d["path"]]) for d in group.attrs["multiscales"][0]["datasets"]]
        return self._put(
            Labels, f"{layer.name} labels", levels, self._calibration(layer), multiscale=True
        )

    def add_result(self, layer, segmentation) -> Labels:
        """Add or update ``<name> labels`` (and the probability maps) for an image layer.

        Parameters
        ----------
        layer : napari.layers.Image
            The segmented layer; the new layers get its calibration.
        segmentation : napari_segnet.inference.segment.Segmentation
            The result of :func:`run_segmentation`.

        Returns
        -------
        napari.layers.Labels
            The labels layer, new or updated.
        """
        calibration = self._calibration(layer)
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

    @staticmethod
    def _calibration(layer) -> dict:
        """Return the scale, translation, units and axis names of a layer, less its channels."""
        axes = layer_axes(layer).replace("S", "")
        keep = [i for i, axis in enumerate(axes) if axis != "C"]
        return {
            key: tuple(getattr(layer, key)[i] for i in keep)
            for key in ("scale", "translate", "units", "axis_labels")
        }

    def _put(self, kind, name, data, calibration, **kwargs):
        layers = self._viewer.layers
        old = layers[name] if name in layers else None
        multiscale = kwargs.get("multiscale", False)
        ndim = data[0].ndim if multiscale else data.ndim
        if isinstance(old, kind) and (old.ndim != ndim or old.multiscale != multiscale):
            layers.remove(old)  # e.g. another channel choice, or a big plane's pyramid
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
