"""Colour every object of a labels layer by a value or a category of its features row.

A labels layer is recoloured through napari's own
:class:`~napari.utils.colormaps.DirectLabelColormap` (a label → colour mapping,
napari ≥ 0.5), not by an overlay: the objects keep their outlines, picking and
painting, and napari draws the mapping on the GPU with no copy of the data. The
colours come from matplotlib colormaps, the same as the histogram's colour bar
(:mod:`.histogram`), so the bar and the objects match exactly.

A label id maps to one colour for the whole layer: in a time series where an id
appears in several frames, the last row of that id sets its colour.

No Qt here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize, to_rgba
from napari.utils.colormaps import DirectLabelColormap

UNMEASURED = (0.5, 0.5, 0.5, 0.6)  # objects without a value (e.g. drawn after measuring)
PHENOTYPE_PALETTE = "tab10"


def value_limits(values) -> tuple[float, float]:
    """Return the finite range of `values` ((0, 1) when there is none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def value_colormap(
    labels: Sequence[int],
    values,
    *,
    colormap: str = "viridis",
    limits: tuple[float, float] | None = None,
) -> DirectLabelColormap:
    """Colour object ``labels[i]`` by ``values[i]`` on a matplotlib colormap.

    Parameters
    ----------
    labels : sequence of int
        Label ids (a features table's ``label`` column).
    values : array_like of float
        One value per label; NaN gets :data:`UNMEASURED`.
    colormap : str
        A matplotlib colormap name.
    limits : (float, float), optional
        Values at the colormap's ends (default :func:`value_limits`).

    Returns
    -------
    DirectLabelColormap
        Set it as a labels layer's ``colormap``.
    """
    values = np.asarray(values, dtype=np.float64)
    norm = Normalize(*(limits or value_limits(values)), clip=True)
    rgba = colormaps[colormap](norm(np.nan_to_num(values)))
    rgba[~np.isfinite(values)] = UNMEASURED
    return _direct(labels, rgba)


def category_colours(categories: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Give every category (e.g. phenotype) a distinct colour, in the order given."""
    palette = colormaps[PHENOTYPE_PALETTE]
    return {name: tuple(palette(i % palette.N)) for i, name in enumerate(categories)}


def category_colormap(
    labels: Sequence[int], categories: Sequence[str], colours: dict[str, tuple[float, ...]]
) -> DirectLabelColormap:
    """Colour object ``labels[i]`` with ``colours[categories[i]]``.

    Parameters
    ----------
    labels : sequence of int
        Label ids.
    categories : sequence of str
        One category per label.
    colours : dict
        Category → RGBA (see :func:`category_colours`); others get :data:`UNMEASURED`.

    Returns
    -------
    DirectLabelColormap
        Set it as a labels layer's ``colormap``.
    """
    rgba = np.array([to_rgba(colours.get(c, UNMEASURED)) for c in categories]).reshape(-1, 4)
    return _direct(labels, rgba)


def _direct(labels, rgba: np.ndarray) -> DirectLabelColormap:
    mapping = {None: UNMEASURED, 0: (0.0, 0.0, 0.0, 0.0)}
    for label, colour in zip(np.asarray(labels, dtype=np.int64).tolist(), rgba):
        if label != 0:
            mapping[label] = tuple(float(c) for c in colour)
    return DirectLabelColormap(color_dict=mapping)


class LayerColours:
    """The colours one widget gave a labels layer, and the colours they replaced.

    Two widgets may colour the same layer (Measure by a value, Cells by phenotype).
    Each restores the layer's colours only while its own are still shown: once the
    other widget has painted the layer, :meth:`holds` is False and restoring does
    nothing, so neither puts back colours that no longer mean anything.
    """

    def __init__(self):
        self.layer = self.original = self.given = None

    def holds(self, layer=None) -> bool:
        """Whether this widget's colours are the ones `layer` (default: its own) shows."""
        if self.layer is None or (layer is not None and not _same(layer, self.layer)):
            return False
        return _same(self.layer.colormap, self.given)

    def lost(self, layer) -> bool:
        """Whether this widget coloured `layer` and another has painted it since."""
        return self.layer is not None and _same(self.layer, layer) and not self.holds()

    def paint(self, layer, colormap) -> None:
        """Show `colormap` on `layer`, remembering the colours it replaces."""
        if self.layer is not None and not self.holds(layer):
            self.forget()
        if self.layer is None:
            self.layer, self.original = layer, layer.colormap
        layer.colormap = colormap
        self.given = layer.colormap

    def restore(self) -> None:
        """Put the replaced colours back if this widget's are still shown; forget them."""
        if self.holds():
            self.layer.colormap = self.original
        self.forget()

    def forget(self) -> None:
        """Let the layer's current colours be, whoever gave them."""
        self.layer = self.original = self.given = None


def _same(a, b) -> bool:
    """Whether `a` and `b` are one object (napari hands plugins proxies of its objects)."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)
