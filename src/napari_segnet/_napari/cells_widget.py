"""The Cells dock widget: cells grown from nuclei, measured per compartment, phenotyped.

A dock of its own rather than more rows in Segment: it starts from any nuclei labels
layer (made by Segment, corrected by hand, or opened from a file) and its results
are measurements and phenotypes, so it sits beside Measure; Segment stays about the
network. Its parts:

- *Cells*: the nuclei layer, how cells are made (none: the nuclei alone; expanded by
  a distance; grown on a membrane or cytoplasm channel, of a kind told apart
  automatically or given) and the distance (µm for a calibrated layer, else px).
  *Make cells* runs :mod:`.cells_run` in the shared worker (progress, Cancel) and
  adds or updates ``<image> cells`` and ``<image> cytoplasm`` (hidden at first, so
  that the cells' colours stay visible). Every channel of the nuclei's shape is
  measured in nucleus, cytoplasm and cell
  (:func:`~napari_segnet.cells.measure_cells`) into the cells layer's ``features``
  (the nuclei layer's with *none*), shown in the same linked table as Measure's
  (:mod:`.features_table`).
- *Phenotype* (:mod:`.phenotype_panel`): markers, a histogram per marker with its
  threshold to drag, counts per phenotype, the definition saved as or loaded from
  JSON. The cells are coloured by phenotype through the layer's own labels colormap
  (:mod:`.object_colours`); their own colours come back when no marker is left.

The compute lives in :mod:`napari_segnet.cells`; this module only reads the
widgets into a request and writes results into layers.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy import QtWidgets as qw

from napari_segnet.cells import DEFAULT_DISTANCE
from napari_segnet.measure import sanitise_channel_names

from . import pickers
from .calibration import spatial_spacing
from .cells_run import CellsRequest, CellsResult, run_cells
from .features_table import FeaturesTable
from .layer_axes import full_resolution, layer_axes
from .measure_widget import merge_features
from .object_colours import LayerColours, category_colormap
from .phenotype_panel import PhenotypePanel
from .qt_helpers import WrappingLabel, hbox, request_or_notify, spin_box
from .worker import WidgetWorker

__all__ = ["CellsRequest", "CellsWidget", "run_cells"]

KEY = "napari-segnet cells"  # metadata of the layers this widget made
GROWTH_CHOICES = (
    ("Expand nuclei", "expand"),
    ("Grow on a stain", "stain"),
    ("None (nuclei only)", "none"),
)
KINDS = ("auto", "membrane", "cytoplasm")
PIXEL_DISTANCE = 10.0  # px, for uncalibrated layers
_SUFFIX = re.compile(r" labels( \[\d+\])?$")


def image_name(nuclei_name: str) -> str:
    """Return the image a nuclei layer was named after: ``DAPI labels [2]`` → ``DAPI``."""
    return _SUFFIX.sub("", nuclei_name) or nuclei_name


class CellsWidget(qw.QWidget):
    """Grow cells from a nuclei layer, measure them, and sort them into phenotypes.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are offered and where the cells are added.
    parent : QWidget, optional
        The Qt parent.

    Attributes
    ----------
    target : napari.layers.Labels or None
        The layer holding the measured cells (``<image> cells``, or the nuclei with *none*).
    phenotype : PhenotypePanel
        Markers, thresholds and counts.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self.target = None
        self._colours = LayerColours()  # while cells show their phenotype
        self._phenotype_columns: list[str] = []
        self.nuclei = pickers.LayerPicker(napari_viewer, Labels)
        self.growth, self.stain, self.kind = qw.QComboBox(), qw.QComboBox(), qw.QComboBox()
        for text, value in GROWTH_CHOICES:
            self.growth.addItem(text, value)
        self.kind.addItems(KINDS)
        self.distance = spin_box(qw.QDoubleSpinBox(), 0.1, 1000.0, DEFAULT_DISTANCE, "µm", 0.5)
        self.channels = WrappingLabel()
        self.run_button, self.cancel_button = qw.QPushButton("Make cells"), qw.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = qw.QProgressBar()
        self.progress.setVisible(False)
        self.status = WrappingLabel()
        self.features = FeaturesTable()
        self.phenotype = PhenotypePanel()
        form = qw.QFormLayout(self)
        form.setFieldGrowthPolicy(qw.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Nuclei", self.nuclei)
        form.addRow("Cells", self.growth)
        form.addRow("Stain", hbox(self.stain, self.kind))
        form.addRow("Distance", self.distance)
        form.addRow("Measured", self.channels)
        form.addRow(hbox(self.run_button, self.cancel_button))
        form.addRow(self.progress)
        form.addRow(self.status)
        form.addRow(self.features)
        form.addRow(self.phenotype)
        self.runner = WidgetWorker(self, self.run_button, self.status, self.cancel_button)
        self.runner.yielded.connect(self._on_progress)
        self.runner.returned.connect(self._on_result)
        self.runner.finished.connect(self._on_finished)
        self.nuclei.layer_changed.connect(self._on_nuclei)
        self.growth.currentIndexChanged.connect(self._on_growth)
        napari_viewer.layers.events.inserted.connect(self._refresh_channels)
        napari_viewer.layers.events.removed.connect(self._refresh_channels)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(lambda: self.runner.cancel())
        self.phenotype.classified.connect(self._on_classified)
        self._unit = "µm"
        self._on_nuclei(self.nuclei.layer())
        self._on_growth()

    def channel_layers(self) -> list:
        """Return the image layers measured: every single-channel one of the nuclei's shape."""
        layer = self.nuclei.layer()
        if layer is None:
            return []
        shape = full_resolution(layer).shape
        return [
            image
            for image in self._viewer.layers
            if isinstance(image, Image) and not image.rgb and full_resolution(image).shape == shape
        ]

    def set_growth(self, growth: str, stain: str | None = None) -> None:
        """Choose how cells are made: ``"none"``, ``"expand"`` or ``"stain"`` on `stain`."""
        self.growth.setCurrentIndex(self.growth.findData(growth))
        if stain is not None:
            self.stain.setCurrentText(stain)

    def request(self) -> CellsRequest:
        """Read what a click on Make cells would run.

        Raises
        ------
        ValueError
            If there is no nuclei layer, no stain channel to grow on, or the axes
            cannot be told.
        """
        layer = self.nuclei.layer()
        if layer is None:
            raise ValueError("There is no nuclei labels layer: segment an image first.")
        axes = layer_axes(layer)
        images = self.channel_layers()
        growth, stain = self.growth.currentData(), None
        if growth == "stain":
            chosen = [i for i in images if i.name == self.stain.currentText()]
            if not chosen:
                raise ValueError(
                    "There is no channel of the nuclei's size to grow cells on: "
                    "open a membrane or cytoplasm channel, or expand the nuclei."
                )
            stain = full_resolution(chosen[0])
        return CellsRequest(
            nuclei=full_resolution(layer),
            growth=growth,
            stain=stain,
            kind=self.kind.currentText(),
            distance=float(self.distance.value()),
            images=[full_resolution(i) for i in images],
            names=[i.name for i in images],
            axes=axes,
            spacing=spatial_spacing(layer, axes),
        )

    def run(self) -> None:
        """Make and measure the cells in a worker thread."""
        if self.runner.running or (request := request_or_notify(self.request)) is None:
            return
        self._source, self._names = self.nuclei.layer(), list(request.names)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.runner.start(run_cells, request, status=f"Making cells from {self._source.name}…")

    def _on_progress(self, event) -> None:
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(event.done)
        self.status.setText(event.stage.capitalize() + "…")

    def _on_finished(self, cancelled: bool) -> None:
        self.progress.setVisible(False)
        if cancelled:
            self.status.setText("Cancelled: nothing was changed.")

    def _on_result(self, result: CellsResult) -> None:
        source = self._source
        if result.cells is None:
            target = source
        else:
            base = image_name(source.name)
            target = self._put(f"{base} cells", result.cells, source, visible=True)
            self._put(f"{base} cytoplasm", result.cytoplasm, source, visible=False)
            self._viewer.layers.selection.active = target
            self.nuclei.suggest(source)  # the picker follows the active layer; keep the nuclei
        self._colours.restore()
        features = pd.DataFrame(target.features).drop(
            columns=self._phenotype_columns, errors="ignore"
        )  # the last run's phenotypes: the panel classifies these cells again
        self._phenotype_columns = []
        target.features = merge_features(features, result.table)
        self.target = target
        self.features.set_layer(target)
        self.phenotype.set_cells(result.table, sanitise_channel_names(self._names))
        self.status.setText(f"Measured {len(result.table)} cells in {target.name}.")

    def _put(self, name: str, data: np.ndarray, source, *, visible: bool):
        """Update this widget's layer called `name`, or add one with the nuclei's calibration."""
        from .labels_output import free_name, labels_digest

        layers = self._viewer.layers
        if name in layers and isinstance(layers[name], Labels) and KEY in layers[name].metadata:
            layer, note = layers[name], layers[name].metadata[KEY]
            own = note.get("nuclei_id") == id(source) and note.get("digest") == labels_digest(
                layer.data
            )
            if own:  # made from these nuclei, and not edited since
                layer.data = data
                note["digest"] = labels_digest(layer.data)
                return layer
            kept, name = name, free_name(layers, name)
            show_info(
                f"{kept} was edited or made from other nuclei: it is kept, and the new labels "
                f"are in {name!r}."
            )
        calibration = {
            key: tuple(getattr(source, key))
            for key in ("scale", "translate", "units", "axis_labels")
        }
        metadata = {KEY: {"nuclei": source.name, "nuclei_id": id(source)}}
        if "axes" in source.metadata:
            metadata["axes"] = source.metadata["axes"]
        layer = self._viewer.add_labels(
            data, name=free_name(layers, name), visible=visible, metadata=metadata, **calibration
        )
        layer.metadata[KEY]["digest"] = labels_digest(layer.data)
        return layer

    def _on_classified(self, payload) -> None:
        table, colours = payload
        layer = self.target
        if layer is None or layer not in self._viewer.layers:
            return
        features = pd.DataFrame(layer.features).drop(
            columns=self._phenotype_columns, errors="ignore"
        )
        if table is None:
            self._colours.restore()
            self._phenotype_columns = []
            layer.features = features
            return
        self._phenotype_columns = [m.positive_column for m in self.phenotype.markers]
        self._phenotype_columns.append("phenotype")
        # Colours first: a Measure widget showing this layer sees them taken when the
        # features change, and leaves them be.
        self._colours.paint(
            layer,
            category_colormap(table["label"].to_numpy(), table["phenotype"].to_numpy(), colours),
        )
        layer.features = merge_features(features, table)

    def _on_nuclei(self, layer=None) -> None:
        unit = "px"
        if layer is not None:
            try:
                unit = "µm" if spatial_spacing(layer, layer_axes(layer)) else "px"
            except ValueError:  # said when Make cells is clicked
                pass
        if unit != self._unit:
            self._unit = unit
            self.distance.setSuffix(f" {unit}")
            self.distance.setValue(DEFAULT_DISTANCE if unit == "µm" else PIXEL_DISTANCE)
        self._refresh_channels()

    def _refresh_channels(self, event=None) -> None:
        names = [layer.name for layer in self.channel_layers()]
        chosen = self.stain.currentText()
        self.stain.clear()
        self.stain.addItems(names)
        preferred = [n for n in names if re.search("membrane|cellmask|cytoplasm|wga", n, re.I)]
        self.stain.setCurrentText(chosen if chosen in names else (preferred or names or [""])[0])
        self.channels.setText(", ".join(names) or "no channel of the nuclei's size")

    def _on_growth(self, *_) -> None:
        growth = self.growth.currentData()
        self.stain.setEnabled(growth == "stain")
        self.kind.setEnabled(growth == "stain")
        self.distance.setEnabled(growth != "none")
