"""What the Cells widget runs in its worker: grow cells from nuclei, measure compartments.

Plain data in (:class:`CellsRequest`), plain data out (:class:`CellsResult`); the
compute is :mod:`napari_segnet.cells`. No Qt here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from napari_segnet.cells import cytoplasm_labels, grow_cells, measure_cells
from napari_segnet.messages import one_sentence
from napari_segnet.progress import Progress

from .outcome import Failed

_log = logging.getLogger(__name__)

GROWTH = ("none", "expand", "stain")


@dataclass(frozen=True, eq=False)
class CellsRequest:
    """What one click on Make cells runs: the arguments of :func:`run_cells`.

    Attributes
    ----------
    nuclei : array-like
        The nuclei labels layer's full-resolution data.
    growth : {"none", "expand", "stain"}
        Measure the nuclei alone, expand every nucleus, or grow it on `stain`.
    stain : array-like or None
        The membrane or cytoplasm channel for ``growth="stain"``.
    kind : {"auto", "membrane", "cytoplasm"}
        What the stain shows.
    distance : float
        How far a cell reaches from its nucleus: µm when `spacing` is given, else px.
    images : list of array-like
        The channels measured, each of the nuclei's shape.
    names : list of str
        Their layer names (the intensity columns are named after them).
    axes : str
        The nuclei's axes (``YX``, ``ZYX``, ``TYX`` or ``TZYX``).
    spacing : tuple of float or None
        Pixel size in µm along the spatial axes; None works in pixels.
    """

    nuclei: object
    growth: str
    stain: object
    kind: str
    distance: float
    images: list
    names: list[str]
    axes: str
    spacing: tuple[float, ...] | None


@dataclass(frozen=True, eq=False)
class CellsResult:
    """Cells, their cytoplasm and the per-cell measurements.

    Attributes
    ----------
    cells, cytoplasm : ndarray or None
        Cell and cytoplasm labels (cell ``k`` holds nucleus ``k``); None when no
        cells were grown (``growth="none"``).
    table : pandas.DataFrame
        One row per cell (:func:`~napari_segnet.cells.measure_cells`).
    """

    cells: np.ndarray | None
    cytoplasm: np.ndarray | None
    table: pd.DataFrame


def run_cells(nuclei, growth, stain, kind, distance, images, names, axes, spacing):
    """Grow cells and measure them, yielding a progress event before each step.

    Returns
    -------
    CellsResult or Failed
        The cells and their table, or one sentence saying what went wrong (it never raises).
    """
    try:
        nuclei = np.asarray(nuclei)
        if growth == "none":
            cells = None
        else:
            yield Progress(0, 2, "growing cells" if growth == "stain" else "expanding nuclei")
            cells = grow_cells(
                nuclei,
                np.asarray(stain) if growth == "stain" else None,
                axes=axes,
                distance=distance,
                kind=kind,
                spacing=spacing,
            )
        yield Progress(1, 2, "measuring nucleus, cytoplasm and cell")
        image = np.stack([np.asarray(i) for i in images]) if images else None
        table = measure_cells(
            nuclei,
            nuclei if cells is None else cells,
            image,
            axes=axes,
            channel_axis=0 if images else None,
            channel_names=names or None,
            spacing=spacing,
        )
        cytoplasm = None if cells is None else cytoplasm_labels(cells, nuclei)
        return CellsResult(cells, cytoplasm, table)
    except Exception as error:
        _log.debug("Making cells failed", exc_info=True)
        return Failed(one_sentence(error))
