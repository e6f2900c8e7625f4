"""Nucleus, cytoplasm and cell: one row per cell, measured per compartment and channel.

The table is built from :func:`napari_segnet.measure.measure`, called once per
compartment. The nucleus columns keep the names :func:`~napari_segnet.measure.measure`
gives them (``area_px``, ``intensity_mean_DAPI``, ...), so readers of today's
tables keep working; the cell and cytoplasm columns carry their compartment
word (``cell_area_um2``, ``cytoplasm_intensity_mean_CD8``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from napari_segnet.measure import measure

COMPARTMENTS = ("nucleus", "cytoplasm", "cell")
_INTENSITY = "intensity_"
_SIZE = ("area_px", "area_um2", "volume_px", "volume_um3")
_KEYS = ("frame", "label")

__all__ = ["COMPARTMENTS", "cytoplasm_labels", "measure_cells", "ratio_column"]


def cytoplasm_labels(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Return the cytoplasm of every cell: its pixels outside any nucleus.

    Parameters
    ----------
    cells : ndarray of int
        Cell labels (cell ``k`` holds nucleus ``k``).
    nuclei : ndarray of int
        Nucleus labels, same shape.

    Returns
    -------
    ndarray
        Cytoplasm labels with the cells' ids and dtype; a cell that is all
        nucleus has no cytoplasm.

    Raises
    ------
    ValueError
        If the shapes differ.

    """
    cells, nuclei = np.asarray(cells), np.asarray(nuclei)
    if cells.shape != nuclei.shape:
        raise ValueError(f"Cell labels of shape {cells.shape} do not fit nuclei of {nuclei.shape}.")
    return np.where(nuclei > 0, 0, cells).astype(cells.dtype, copy=False)


def ratio_column(channel: str) -> str:
    """Name of the nucleus/cytoplasm mean-intensity ratio column of `channel`."""
    return f"nucleus_cytoplasm_ratio_{channel}"


def measure_cells(
    nuclei: Any,
    cells: Any,
    image: Any = None,
    *,
    axes: str | None = None,
    channel_axis: int | None = None,
    channel_names: Sequence[str] | None = None,
    spacing: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Measure every cell and its nucleus and cytoplasm: one row per cell.

    Parameters
    ----------
    nuclei, cells : array_like of int
        Nucleus and cell labels of the same shape; cell ``k`` holds nucleus ``k``.
    image : array_like, optional
        Intensities, as in :func:`napari_segnet.measure.measure`.
    axes, channel_axis, channel_names, spacing
        As in :func:`napari_segnet.measure.measure`.

    Returns
    -------
    pandas.DataFrame
        One row per cell, sorted by ``frame`` (with a T axis) then ``label``:

        - the nucleus, with :func:`~napari_segnet.measure.measure`'s columns
          and names unchanged (``area_px``, ``intensity_mean_<channel>``, ...);
        - ``cell_<column>`` for every one of those columns of the cell;
        - the cytoplasm's size and intensities: ``cytoplasm_area_px``
          [``cytoplasm_area_um2``] (``volume`` in 3-D) and
          ``cytoplasm_intensity_{mean,max,min,std,sum}_<channel>``, NaN for a
          cell without cytoplasm (size 0);
        - ``nucleus_cytoplasm_ratio_<channel>``: the nucleus' mean intensity
          over the cytoplasm's, NaN where the cytoplasm is empty or its mean
          is zero.

        A cell whose nucleus is missing from `nuclei` has NaN nucleus columns.

    Raises
    ------
    ValueError
        If the labels' shapes differ, or as :func:`~napari_segnet.measure.measure`.

    """
    nuclei, cells = np.asarray(nuclei), np.asarray(cells)
    if nuclei.shape != cells.shape:
        raise ValueError(f"Cell labels of shape {cells.shape} do not fit nuclei of {nuclei.shape}.")
    options = dict(
        axes=axes, channel_axis=channel_axis, channel_names=channel_names, spacing=spacing
    )
    nucleus = measure(nuclei, image, **options)
    cell = measure(cells, image, **options)
    cytoplasm = measure(cytoplasm_labels(cells, nuclei), image, **options)
    keys = [k for k in _KEYS if k in cell.columns]
    cytoplasm = cytoplasm[
        keys + [c for c in cytoplasm.columns if c in _SIZE or c.startswith(_INTENSITY)]
    ]
    table = cell[keys].merge(nucleus, on=keys, how="left")
    table = table.merge(_prefixed(cell, "cell", keys), on=keys, how="left")
    table = table.merge(_prefixed(cytoplasm, "cytoplasm", keys), on=keys, how="left")
    for column in (c for c in cytoplasm.columns if c in _SIZE):
        table[f"cytoplasm_{column}"] = table[f"cytoplasm_{column}"].fillna(0)
        if column.endswith("_px"):
            table[f"cytoplasm_{column}"] = table[f"cytoplasm_{column}"].astype(np.int64)
    for column in nucleus.columns:
        if column.startswith("intensity_mean_"):
            channel = column.removeprefix("intensity_mean_")
            inner = table[column].to_numpy(dtype=np.float64)
            outer = table[f"cytoplasm_{column}"].to_numpy(dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(np.isfinite(outer) & (outer != 0), inner / outer, np.nan)
            table[ratio_column(channel)] = ratio
    return table.reset_index(drop=True)


def _prefixed(table: pd.DataFrame, word: str, keys: list[str]) -> pd.DataFrame:
    return table.rename(columns={c: f"{word}_{c}" for c in table.columns if c not in keys})
