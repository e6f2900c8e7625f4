"""Combo boxes shared by the dock widgets: a layer, a channel of it, a device."""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QLabel

from .layer_axes import image_from_layer, layer_axes

RGB_CHOICES = ("Luminance", "Red", "Green", "Blue")
DEVICES = ("auto", "cpu", "cuda", "mps")


class LayerPicker(QComboBox):
    """A combo box of the viewer's layers of one type that follows the active layer.

    It follows the active layer until the user picks a layer themselves (or
    :meth:`choose` is called); it follows again once that layer is removed.

    Parameters
    ----------
    viewer : napari.Viewer
        Whose layers are offered.
    layer_type : type
        The napari layer class offered (e.g. ``napari.layers.Image``).
    parent : QWidget, optional
        The Qt parent.

    Attributes
    ----------
    layer_changed : Signal(object)
        The picked layer (or None) after every change of choice.
    """

    layer_changed = Signal(object)

    def __init__(self, viewer, layer_type: type, parent=None):
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._layers: list = []
        self.user_picked = False
        self.activated.connect(self._on_user_pick)  # user interaction only
        self.currentIndexChanged.connect(lambda _: self.layer_changed.emit(self.layer()))
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.selection.events.active.connect(self._on_active)
        self.refresh()

    def layer(self):
        """Return the picked layer, or None."""
        index = self.currentIndex()
        return self._layers[index] if 0 <= index < len(self._layers) else None

    def choose(self, layer) -> None:
        """Pick a layer as the user would; it then stays picked."""
        self.user_picked = True
        self.setCurrentIndex(self._layers.index(layer))

    def suggest(self, layer) -> None:
        """Pick a layer unless the user has picked one themselves."""
        if not self.user_picked and layer in self._layers:
            self.setCurrentIndex(self._layers.index(layer))

    def refresh(self, event=None) -> None:
        """Rebuild the list from the viewer's layers, keeping the current choice."""
        current = self.layer()
        layers = [layer for layer in self._viewer.layers if isinstance(layer, self._type)]
        for layer in layers:
            layer.events.name.connect(self.refresh)
        if current not in layers:
            self.user_picked = False
            active = self._viewer.layers.selection.active
            current = active if isinstance(active, self._type) else (layers or [None])[-1]
        self.blockSignals(True)
        self.clear()
        self._layers = layers
        self.addItems([layer.name for layer in layers])
        self.setCurrentIndex(layers.index(current) if current in layers else -1)
        self.blockSignals(False)
        self.layer_changed.emit(self.layer())

    def _on_user_pick(self, index: int) -> None:
        self.user_picked = True

    def _on_active(self, event=None) -> None:
        self.suggest(self._viewer.layers.selection.active)


class ChannelPicker(QComboBox):
    """Which channel of an image layer to use: names of a channel axis, or RGB colours.

    Hidden (with its form label) when the layer has a single channel.

    Attributes
    ----------
    label : QLabel
        Its form label, hidden with it.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel("Channel")

    def update_for(self, layer) -> None:
        """Offer the channels of ``layer`` (None: nothing), preselecting a DNA channel."""
        from napari_segnet.inference.segment import choose_channel

        self.clear()
        choices, default = [], 0
        try:
            axes = layer_axes(layer) if layer is not None else ""
        except ValueError:  # reported when the widget's button is clicked
            axes = ""
        if "S" in axes:
            choices = list(RGB_CHOICES)
        elif "C" in axes:
            image = image_from_layer(layer, axes)
            choices = list(image.channel_names)
            default = choose_channel(image, None) or 0
        self.addItems(choices)
        self.setCurrentIndex(default)
        self.setVisible(bool(choices))
        self.label.setVisible(bool(choices))

    def picked(self, layer):
        """Apply this choice to ``layer``.

        Returns
        -------
        (MicroscopyImage, int or None)
            The layer's data with its axes (one colour of an RGB layer if one is
            picked) and the channel index along its ``C`` axis (None without one).

        Raises
        ------
        ValueError
            If there is no layer or its axes cannot be told.
        """
        from napari_segnet.io import MicroscopyImage

        if layer is None:
            raise ValueError("There is no image layer: open an image first.")
        axes = layer_axes(layer)
        image = image_from_layer(layer, axes)
        if "S" in axes and self.currentIndex() > 0:  # one colour of an RGB image
            k = self.currentIndex() - 1
            image = MicroscopyImage(image.data[..., k], axes.replace("S", ""), (), image.pixel_size)
        return image, (self.currentIndex() if "C" in axes else None)


@dataclass(frozen=True)
class DeviceNotes:
    """Which device ``auto`` uses and why other devices cannot be used.

    Attributes
    ----------
    auto : str
        The device ``auto`` picks here (``cuda``, ``mps`` or ``cpu``).
    short : str
        ``"cuda: <first sentence of the reason>; mps: ..."``; empty if all are usable.
    reasons : str
        The whole reasons, one line per unusable device (for a tooltip).
    """

    auto: str
    short: str
    reasons: str

    def describe(self, text: str) -> str:
        """Append the short notes to ``text`` in parentheses (if there are any)."""
        return f"{text} ({self.short})" if self.short else text


def device_picker() -> tuple[QComboBox, DeviceNotes]:
    """Make a combo box of devices, the unusable ones disabled with the reason as tooltip.

    Returns
    -------
    (QComboBox, DeviceNotes)
        The box and, in words, which device ``auto`` uses and why others are off.
    """
    from napari_segnet.inference.devices import device_report

    report = {status.name: status for status in device_report()}
    box = QComboBox()
    box.addItems(DEVICES)
    short, reasons = [], []
    for index, name in enumerate(DEVICES):
        status = report.get(name)
        if status is not None and not status.available:
            box.model().item(index).setEnabled(False)
            box.setItemData(index, status.detail, Qt.ItemDataRole.ToolTipRole)
            short.append(f"{name}: {status.detail.split('. ')[0]}")
            reasons.append(f"{name}: {status.detail}")
    auto = next(n for n in ("cuda", "mps", "cpu") if report[n].available)
    return box, DeviceNotes(auto, "; ".join(short), "\n".join(reasons))
