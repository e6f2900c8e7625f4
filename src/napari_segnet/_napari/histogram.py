"""A histogram of per-object values with a threshold line to drag, or a colour bar.

Drawn by matplotlib on its Qt canvas (``FigureCanvasQTAgg``), as napari-matplotlib
does, rather than with QPainter like the small training curve (:mod:`.curve`): bins,
axes, ticks that fit any range and colour bars are matplotlib's well-kept code, and
a histogram is read by its axes. The canvas takes the dock's colours so that it sits
in napari's dark or light theme.

Two uses share it: the Cells widget's marker histogram, whose threshold line the
user drags (:attr:`HistogramCanvas.threshold_changed` is emitted when the line is
let go, so the viewer is recoloured once per drag, not at every mouse move), and the
Measure widget's column histogram, whose bars and colour bar show the colours the
objects are painted with.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

BINS = 64
LINE_COLOUR = "#ff5a5a"


class HistogramCanvas(QWidget):
    """Histogram of values; optionally a threshold line to drag, or a colour bar.

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.
    height : int
        Height of the plot in pixels.

    Attributes
    ----------
    canvas : FigureCanvasQTAgg
        matplotlib's Qt widget (tests press, move and release the mouse on it).
    threshold_moved : Signal(float)
        The line is being dragged to this value.
    threshold_changed : Signal(float)
        The line was dragged and let go at this value.
    """

    threshold_moved = Signal(float)
    threshold_changed = Signal(float)

    def __init__(self, parent=None, *, height: int = 180):
        super().__init__(parent)
        self.figure = Figure(figsize=(4, 2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.axes = self.colorbar = self._line = None
        self._threshold: float | None = None
        self._dragging = False
        self.values = np.empty(0)
        self.canvas.mpl_connect("button_press_event", self._on_press)
        self.canvas.mpl_connect("motion_notify_event", self._on_motion)
        self.canvas.mpl_connect("button_release_event", self._on_release)
        self.show_values([])

    @property
    def threshold(self) -> float | None:
        """The value at the line, or None when no line is drawn."""
        return self._threshold

    def show_values(
        self,
        values,
        *,
        label: str = "",
        threshold: float | None = None,
        colormap: str | None = None,
        limits: tuple[float, float] | None = None,
    ) -> None:
        """Draw the histogram of `values` (NaNs left out).

        Parameters
        ----------
        values : array_like of float
            One value per object.
        label : str
            The x axis' title (a column name).
        threshold : float, optional
            Draw a line here that the user can drag.
        colormap : str, optional
            A matplotlib colormap: bars take the colour of their value, and a colour
            bar spans `limits` under the histogram.
        limits : (float, float), optional
            The values at the colormap's ends (default: the values' range).
        """
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self.values = values[np.isfinite(values)]
        self.figure.clear()
        self._line = self.colorbar = None
        self._dragging = False
        background, text = self._theme()
        self.figure.set_facecolor(background)
        if colormap is not None:
            grid = self.figure.add_gridspec(2, 1, height_ratios=(6, 1))
            self.axes = self.figure.add_subplot(grid[0])
            bar_axes = self.figure.add_subplot(grid[1])
        else:
            self.axes, bar_axes = self.figure.add_subplot(), None
        axes = self.axes
        axes.set_facecolor(background)
        for spine in axes.spines.values():
            spine.set_color(text)
        axes.tick_params(colors=text, labelsize=7)
        axes.set_xlabel(label, color=text, fontsize=8)
        axes.set_ylabel("objects", color=text, fontsize=8)
        if self.values.size == 0:
            middle = dict(ha="center", va="center", transform=axes.transAxes)
            axes.text(0.5, 0.5, "no values", color=text, **middle)
            self._threshold = None
            self.canvas.draw_idle()
            return
        low, high = limits or (float(self.values.min()), float(self.values.max()))
        if high <= low:
            high = low + 1.0
        span = (min(low, self.values.min()), max(high, self.values.max()))
        if threshold is not None:
            span = (min(span[0], threshold), max(span[1], threshold))
        if span[1] <= span[0]:
            span = (span[0], span[0] + 1.0)
        _, edges, bars = axes.hist(self.values, bins=BINS, range=span, color="#7f9fbf")
        axes.set_xlim(span)
        if colormap is not None:
            norm = Normalize(low, high, clip=True)
            mappable = ScalarMappable(norm=norm, cmap=colormap)
            for bar, left, right in zip(bars, edges[:-1], edges[1:]):
                bar.set_facecolor(mappable.to_rgba((left + right) / 2))
            self.colorbar = self.figure.colorbar(mappable, cax=bar_axes, orientation="horizontal")
            self.colorbar.ax.tick_params(colors=text, labelsize=7)
            self.colorbar.outline.set_edgecolor(text)
        self._threshold = None
        if threshold is not None:
            self._threshold = float(threshold)
            self._line = axes.axvline(self._threshold, color=LINE_COLOUR, linewidth=2)
        self.canvas.draw_idle()

    def set_threshold(self, value: float) -> None:
        """Move the line to `value` (no signal: the caller knows)."""
        if self._line is None:
            return
        self._threshold = float(value)
        self._line.set_xdata([self._threshold, self._threshold])
        self.canvas.draw_idle()

    def widget_position(self, value: float) -> tuple[int, int]:
        """Return where on :attr:`canvas` (Qt pixels) `value` lies, halfway up the plot."""
        bottom, top = self.axes.get_ylim()
        x, y = self.axes.transData.transform((value, (bottom + top) / 2))
        ratio = self.canvas.device_pixel_ratio or 1
        return round(x / ratio), round((self.figure.bbox.height - y) / ratio)

    def _theme(self) -> tuple[tuple, tuple]:
        palette = self.palette()
        background = palette.window().color().getRgbF()
        text = palette.windowText().color().getRgbF()
        return background, text

    def _on_press(self, event) -> None:
        if self._line is None or event.inaxes is not self.axes or event.button != 1:
            return
        self._dragging = True
        self._move_to(event.xdata)

    def _on_motion(self, event) -> None:
        if self._dragging and event.inaxes is self.axes and event.xdata is not None:
            self._move_to(event.xdata)

    def _on_release(self, event) -> None:
        if not self._dragging:
            return
        self._dragging = False
        if event.inaxes is self.axes and event.xdata is not None:
            self._move_to(event.xdata)
        self.threshold_changed.emit(self._threshold)

    def _move_to(self, x: float) -> None:
        low, high = self.axes.get_xlim()
        self.set_threshold(float(np.clip(x, low, high)))
        self.threshold_moved.emit(self._threshold)
