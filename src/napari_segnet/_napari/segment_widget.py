"""The Segment dock widget: run a model on an image layer, add or update a labels layer.

The network's outputs of recent runs are kept (:mod:`napari_segnet.inference.reuse`),
so that Segment after a change of thresholds only makes the objects again; labels
corrected by hand are never overwritten (:mod:`.labels_output`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy import QtWidgets as qw

from napari_segnet.inference.diameter import AUTO
from napari_segnet.inference.reuse import OutputsCache, output_bytes
from napari_segnet.inference.segment import SegmentSettings
from napari_segnet.models.checkpoint import ModelLoadError, read_model_config
from napari_segnet.postprocess import InstanceSettings, StarSettings

from . import labels_output, pickers
from .calibration import spatial_spacing
from .layer_axes import layer_axes, plane_of, shown_position
from .layers import record_model
from .model_picker import ModelPicker
from .qt_helpers import WrappingLabel, hbox, request_or_notify, spin_box
from .segment_fields import DiameterField, FolderField
from .segment_run import (
    BlockResult,
    SegmentRequest,
    SegmentResult,
    remove_stale_temporary,
    results_dir,
    run_segmentation,
)
from .worker import WidgetWorker

__all__ = ["BlockResult", "SegmentRequest", "SegmentWidget", "run_segmentation"]


def model_config(path):
    """Read a model file's config from its header only (no weights); None if unreadable."""
    try:
        return read_model_config(path)[0]
    except ModelLoadError:
        return None


class SegmentWidget(qw.QWidget):
    """Segment the picked image layer with a model; results go to ``<name> labels``.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are offered and where the labels are added.
    parent : QWidget, optional
        The Qt parent.

    Attributes
    ----------
    cache : OutputsCache
        The network outputs of recent runs (dropped when their layer is closed).
    outputs : labels_output.ResultLayers
        Writes the results to layers, never over labels edited by hand.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._target = self._request = self._config = None
        self._started = 0.0
        self.cache = OutputsCache()
        self.outputs = labels_output.ResultLayers(napari_viewer)
        self.form = form = qw.QFormLayout(self)
        form.setFieldGrowthPolicy(qw.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.image = pickers.LayerPicker(napari_viewer, Image)
        self.channel, self.model = pickers.ChannelPicker(), ModelPicker(select_registered=True)
        self.device, self._devices = pickers.device_picker()
        self.device_info = WrappingLabel(self._devices.describe(f"auto uses {self._devices.auto}"))
        self.device_info.setToolTip(self._devices.reasons)
        self.diameter_field = DiameterField()
        self.diameter = self.diameter_field.size
        self.rescale = qw.QCheckBox("Rescale to the model's object size")
        self.rescale.setChecked(True)
        self.rescale.setToolTip(
            "Unchecked: the image is segmented as it is, whatever the size of its objects."
        )
        self.rescale.toggled.connect(self.diameter_field.setEnabled)
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
        star = StarSettings()
        self.prob_threshold = spin_box(
            qw.QDoubleSpinBox(), 0.01, 0.99, star.prob_threshold, step=0.05
        )
        self.prob_threshold.setToolTip("Pixels more probable than this propose a polygon.")
        self.overlap_threshold = spin_box(
            qw.QDoubleSpinBox(), 0.0, 1.0, star.nms_threshold, step=0.05
        )
        self.overlap_threshold.setToolTip(
            "Of two polygons overlapping by more than this share of the smaller one, the less "
            "probable is dropped: lower keeps fewer, less overlapping objects."
        )
        self.tile = spin_box(qw.QSpinBox(), 64, 4096, SegmentSettings().tile, "px", step=64)
        self.plane_only = qw.QCheckBox("This plane only")
        self.plane_only.setToolTip(
            "Segment only the plane shown now (its Z slice and time frame); the other planes "
            "of the labels are kept."
        )
        self.probabilities = qw.QCheckBox("Add probability maps")
        self.plane_only.toggled.connect(lambda on: self.probabilities.setEnabled(not on))
        self.tta = qw.QCheckBox("Test-time flips (8 × slower)")
        self.tta.setToolTip(
            "Average every tile over its eight flips and rotations: slightly smoother edges."
        )
        self.results = FolderField("a temporary folder", "Folder for the labels of big images")
        self.results.set_path(results_dir())
        self.results.setToolTip(
            "Images over 4096 × 4096 pixels are segmented block by block into an OME-Zarr "
            "folder here. Empty: a temporary folder, removed when the labels layer is closed."
        )
        self._rows = {}
        rows = (
            ("Image", self.image),
            (self.channel.label, self.channel),
            ("Model", self.model),
            ("Device", self.device),
            ("", self.device_info),
            ("Object diameter", self.diameter_field),
            ("", self.rescale),
            ("Seed threshold", self.seed),
            ("Foreground threshold", self.foreground),
            ("Min size", self.min_size),
            ("Polygon probability", self.prob_threshold),
            ("Polygon overlap", self.overlap_threshold),
            ("Tile size", self.tile),
            ("", self.plane_only),
            ("", self.tta),
            ("", self.probabilities),
            ("Big images to", self.results),
        )
        for label, field in rows:
            label = qw.QLabel(label) if isinstance(label, str) else label
            form.addRow(label, field)
            self._rows[field] = label
        self.run_button, self.cancel_button = qw.QPushButton("Segment"), qw.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress, self.status = qw.QProgressBar(), WrappingLabel("")
        form.addRow(hbox(self.run_button, self.cancel_button))
        form.addRow(self.progress)
        form.addRow(self.status)
        self.runner = WidgetWorker(self, self.run_button, self.status, self.cancel_button)
        self.runner.yielded.connect(self._on_progress)
        self.runner.returned.connect(self._on_result)
        self.runner.finished.connect(self._on_finished)
        self.model.model_changed.connect(self._on_model)
        self.image.layer_changed.connect(self._on_layer)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        napari_viewer.layers.events.removed.connect(self._on_layer_removed)
        self._on_model(self.model.path())
        self._on_layer(self.image.layer())
        remove_stale_temporary()

    def _show_row(self, field, visible: bool) -> None:
        field.setVisible(visible)
        self._rows[field].setVisible(visible)

    def _on_model(self, path) -> None:
        self._config = config = model_config(path)
        star = bool(getattr(config, "has_star_head", False))  # rays cannot be flipped yet
        self.tta.setEnabled(not star)
        if star:
            self.tta.setChecked(False)
        method = getattr(config, "instance_method", "watershed") if star else "watershed"
        for field in (self.seed, self.foreground, self.min_size):
            self._show_row(field, method != "star")  # polygons alone: no watershed
        for field in (self.prob_threshold, self.overlap_threshold):
            self._show_row(field, method != "watershed")
        defaults = InstanceSettings(**(getattr(config, "instance_settings", None) or {}))
        self.seed.setValue(defaults.seed_threshold)
        self.foreground.setValue(defaults.foreground_threshold)
        self.min_size.setValue(int(defaults.min_size))
        trained = getattr(config, "object_diameter_px", None)
        self.diameter_field.setToolTip(
            "Typical object diameter, in pixels or (for a calibrated layer) µm. 'auto' "
            f"measures it on the image first; the image is then rescaled so that objects are "
            f"{trained:g} px wide, as in training."
            if trained
            else "This model has no training size: it always runs at full size."
        )

    def _on_layer(self, layer) -> None:
        self.channel.update_for(layer)
        try:
            axes = layer_axes(layer) if layer is not None else ""
        except ValueError:  # reported when Segment is clicked
            axes = ""
        self.diameter_field.update_for(layer, axes)
        stacked = [axis for axis in "TZ" if axis in axes]
        self.plane_only.setText(
            {"T": "This frame only", "Z": "This slice only"}.get(
                "".join(stacked), "This plane only"
            )
        )
        self._show_row(self.plane_only, bool(stacked))
        if not stacked:
            self.plane_only.setChecked(False)

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        self.cache.forget(layer.unique_id)
        if isinstance(layer, Labels):
            labels_output.remove_temporary(layer)

    def request(self) -> SegmentRequest:
        """Read what a click on Segment would run from the current settings.

        Raises
        ------
        ValueError
            If there is no image layer, its axes cannot be told, or a diameter in
            µm is asked of a layer that is not calibrated.
        """
        layer = self.image.layer()
        image, channel = self.channel.picked(layer)
        axes = layer_axes(layer)
        diameter, unit = self.diameter_field.value()
        if unit == "um" and self.rescale.isChecked() and diameter:
            image = _calibrated(image, layer, axes)
        plane = None
        if not self.plane_only.isHidden() and self.plane_only.isChecked():
            position = shown_position(self._viewer, layer, axes)
            image = plane_of(image, position)
            plane = tuple(position[axis] for axis in axes if axis in position)
        instances = InstanceSettings(
            self.seed.value(), self.foreground.value(), self.min_size.value()
        )
        star = None
        if getattr(self._config, "has_star_head", False):
            star = StarSettings(self.prob_threshold.value(), self.overlap_threshold.value())
        settings = SegmentSettings(
            channel=channel,
            diameter=(diameter or AUTO) if self.rescale.isChecked() else None,
            diameter_unit=unit,
            tile=self.tile.value(),
            instances=instances,
            tta=self.tta.isChecked(),
            star=star,
        )
        pixels = int(np.prod([n for n, a in zip(image.data.shape, image.axes) if a not in "CS"]))
        return SegmentRequest(
            image,
            self.model.path(),
            self.device.currentText(),
            settings,
            self.probabilities.isChecked() and plane is None,
            results=self.results.path(),
            name=layer.name,
            plane=plane,
            source=layer.unique_id,
            cache=self.cache,
            keep_outputs=self.cache.fits(output_bytes(self._config, pixels)),
        )

    def run(self) -> None:
        """Start segmenting the picked layer in a worker thread."""
        if self.runner.running or (request := request_or_notify(self.request)) is None:
            return
        layer = self._target = self.image.layer()
        self._request, self._started = request, time.monotonic()
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

    def _on_result(self, result: SegmentResult) -> None:
        layer, request, segmentation = self._target, self._request, result.segmentation
        seconds = time.monotonic() - self._started
        self.device_info.setText(self._devices.describe(f"Last run on {result.device}"))
        self.progress.setValue(self.progress.maximum())
        if isinstance(segmentation, BlockResult):
            summary = segmentation.summary
            text = f"Found {summary.objects} objects in {layer.name}, block by block"
            if summary.oversized:
                text += (
                    f"; {summary.oversized} may be cut at block borders (larger than the "
                    f"{summary.halo}-pixel halo)"
                )
            where = (
                "in a temporary folder, removed when the layer is closed (choose a folder to "
                "keep them)"
                if segmentation.temporary
                else str(segmentation.path)
            )
            self.status.setText(text + f". Labels: {where}.")
            record_model(self.outputs.add_block_result(layer, segmentation), result.model)
            return
        keep = result.key is not None and segmentation.outputs is not None and not result.reused
        if keep and layer in self._viewer.layers:  # (a layer closed meanwhile: forgotten)
            self.cache.put(result.key, segmentation.outputs)
        n = len(np.unique(segmentation.labels)) - 1
        where = f"{layer.name}" if request.plane is None else f"this plane of {layer.name}"
        sizing = segmentation.diameter_estimate
        if result.reused:
            how = (
                f" in {seconds:.1f} s, from the network outputs of the last run: only the "
                "thresholds were applied again"
            )
            how += f" ({sizing.describe()})." if sizing is not None else "."
        else:
            how = f" ({sizing.describe()})." if sizing is not None else "."
        labels, kept = self.outputs.add_result(
            layer, segmentation, probabilities=request.probabilities, plane=request.plane
        )
        record_model(labels, result.model)
        text = f"Found {n} objects in {where}{how}"
        if kept is not None:
            note = (
                f"{kept.name} was edited since Segment made it, so it is kept: the new labels "
                f"are in {labels.name}."
            )
            show_info(note)
            text += " " + note
        self.status.setText(text)


def _calibrated(image, layer, axes: str):
    """Give ``image`` the layer's pixel size in µm, for a diameter in µm."""
    if image.spacing is not None:
        return image
    spacing = spatial_spacing(layer, axes)
    if spacing is None:
        raise ValueError(
            f"Layer {layer.name!r} is not calibrated in lengths: give the object diameter in px."
        )
    spatial = [axis for axis in axes.replace("S", "") if axis in "ZYX"]
    return replace(image, pixel_size={**image.pixel_size, **dict(zip(spatial, spacing))})
