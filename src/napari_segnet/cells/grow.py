"""Cells from nuclei: every nucleus grows into its cell and keeps its id.

Two ways, both limited to a distance from the nucleus (µm when a pixel size is
given, pixels otherwise; 5 µm by default, as in QuPath's cell expansion):

- :func:`expand_nuclei` grows every nucleus by the distance and splits the space
  between neighbours where they meet (:func:`skimage.segmentation.expand_labels`).
- :func:`grow_on_stain` floods from the nuclei on a membrane or cytoplasm channel
  (seeded watershed on the smoothed stain), inside the cell foreground found on
  that channel, so a cell follows its real outline and never swallows background.

Cell ``k`` always holds nucleus ``k`` whole, and every pixel belongs to at most
one cell. Everything here is a pure function of arrays, 2-D or 3-D (with
anisotropic pixel sizes); :func:`grow_cells` adds time series, frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.graph import MCP_Geometric
from skimage.segmentation import expand_labels, watershed

from napari_segnet.cells.stain import (
    StainKind,
    default_threshold,
    detect_stain_kind,
    smooth,
    stain_foreground,
)
from napari_segnet.measure.properties import check_label_axes, check_spacing

DEFAULT_DISTANCE = 5.0
# Propagation on a cytoplasm stain: crossing an edge of full contrast costs this many distance
# limits of travel, so cells stop at edges but still fill their own fainter corners.
EDGE_COST = 4.0

__all__ = ["DEFAULT_DISTANCE", "expand_nuclei", "grow_cells", "grow_on_stain"]


def expand_nuclei(
    nuclei: np.ndarray,
    distance: float = DEFAULT_DISTANCE,
    *,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Grow every nucleus by `distance`, split between neighbours where they meet.

    Parameters
    ----------
    nuclei : ndarray of int, shape (Y, X) or (Z, Y, X)
        Nucleus labels, 0 is background.
    distance : float
        How far each nucleus grows: micrometres when `spacing` is given, pixels
        otherwise. Must be positive.
    spacing : sequence of float, optional
        Pixel size in micrometres along each axis, e.g. ``(z, y, x)`` for an
        anisotropic stack.

    Returns
    -------
    ndarray
        Cell labels, same shape and dtype as `nuclei`: cell ``k`` holds nucleus ``k``.

    Raises
    ------
    ValueError
        If the distance is not positive or the spacing does not fit the labels.

    """
    nuclei = _check_nuclei(nuclei)
    distance = check_distance(distance)
    sampling = check_spacing(spacing, nuclei.ndim)
    return expand_labels(nuclei, distance=distance, spacing=1 if sampling is None else sampling)


def grow_on_stain(
    nuclei: np.ndarray,
    stain: np.ndarray,
    distance: float = DEFAULT_DISTANCE,
    *,
    kind: StainKind | Literal["auto"] = "auto",
    spacing: Sequence[float] | None = None,
    smoothing: float | None = None,
    threshold: float | None = None,
    contrast: float | None = None,
) -> np.ndarray:
    """Grow every nucleus into its cell on a membrane or cytoplasm stain.

    Seeded growth from the nuclei on the smoothed stain, limited to the cell
    foreground and to at most `distance` from each cell's own nucleus:

    - ``"membrane"``: the stain is a ridge at the cell outline. Cells flood the
      dim interior and meet on the bright rims; the foreground is the rims plus
      what they enclose (every dim region that holds a nucleus), never the dim
      space outside. Where a rim has a gap, the distance limit bounds the cell.
    - ``"cytoplasm"``: the stain fills the cell. Each pixel goes to the nucleus
      with the cheapest path to it, a path costing its length plus the stain's
      changes along it (CellProfiler's propagation), so cells meet at the
      edges and valleys between them; the foreground is the stain above the
      threshold, plus the unstained hole each nucleus leaves in it.

    Parameters
    ----------
    nuclei : ndarray of int, shape (Y, X) or (Z, Y, X)
        Nucleus labels, 0 is background.
    stain : ndarray
        The membrane or cytoplasm channel, same shape as `nuclei`.
    distance : float
        Largest distance from a pixel of a cell to that cell's nucleus:
        micrometres when `spacing` is given, pixels otherwise.
    kind : {"auto", "membrane", "cytoplasm"}
        The kind of stain; ``"auto"`` decides with
        :func:`~napari_segnet.cells.stain.detect_stain_kind`.
    spacing : sequence of float, optional
        Pixel size in micrometres along each axis.
    smoothing : float, optional
        Standard deviation of the Gaussian that smooths the stain, in the units
        of `distance`. Default: one pixel (along the finest axis).
    threshold : float, optional
        Smoothed-stain level that separates stain from the rest (rims for a
        membrane, cell foreground for a cytoplasm stain). Default:
        :func:`~napari_segnet.cells.stain.default_threshold`. Pass one value
        for all blocks when an image is processed block by block, so that the
        blocks agree.
    contrast : float, optional
        The smoothed stain's full contrast, which scales a cytoplasm stain's
        edges (see :func:`stain_contrast`, the default). Pass one value for all
        blocks, as the threshold.

    Returns
    -------
    ndarray
        Cell labels, same shape and dtype as `nuclei`: cell ``k`` holds nucleus
        ``k`` whole and is connected.

    Raises
    ------
    ValueError
        If the distance, smoothing, threshold, kind or shapes are invalid.

    """
    nuclei = _check_nuclei(nuclei)
    distance = check_distance(distance)
    sampling = check_spacing(spacing, nuclei.ndim)
    stain = np.asarray(stain)
    if stain.shape != nuclei.shape:
        raise ValueError(f"The stain's shape {stain.shape} is not the nuclei's {nuclei.shape}.")
    if kind not in ("auto", "membrane", "cytoplasm"):
        raise ValueError(f"kind must be 'auto', 'membrane' or 'cytoplasm', not {kind!r}.")
    if threshold is not None and not _is_real(threshold):
        raise ValueError(f"The stain threshold must be a number, not {threshold!r}.")
    if not nuclei.any():
        return np.zeros_like(nuclei)
    smoothed = smooth(stain, smoothing, sampling)
    if kind == "auto":
        kind = detect_stain_kind(nuclei, smoothed, threshold=threshold, smoothed=True)
    level = float(threshold) if threshold is not None else default_threshold(smoothed, kind)
    bright = smoothed > level
    foreground = stain_foreground(nuclei, bright, kind)
    near = ndi.distance_transform_edt(nuclei == 0, sampling=sampling) <= distance
    mask = (foreground & near) | (nuclei > 0)
    if kind == "membrane":
        cells = watershed(smoothed, markers=nuclei, mask=mask)
    else:
        scale = stain_contrast(smoothed) if contrast is None else float(contrast)
        cells = _propagate(nuclei, smoothed, mask, distance, sampling, scale)
    return _limit_to_own_nucleus(cells.astype(nuclei.dtype, copy=False), nuclei, distance, sampling)


def grow_cells(
    nuclei: np.ndarray,
    stain: np.ndarray | None = None,
    *,
    axes: str | None = None,
    distance: float = DEFAULT_DISTANCE,
    kind: StainKind | Literal["auto"] = "auto",
    spacing: Sequence[float] | None = None,
    smoothing: float | None = None,
    threshold: float | None = None,
    contrast: float | None = None,
) -> np.ndarray:
    """Cells from nuclei for 2-D, 3-D and time series: expansion, or growth on a stain.

    Without `stain` every nucleus is expanded (:func:`expand_nuclei`); with it,
    grown on the stain (:func:`grow_on_stain`). A time series is processed one
    frame at a time; with ``kind="auto"`` and no `threshold`, both are chosen
    once from the first frame that has nuclei, so that every frame is treated alike.

    Parameters
    ----------
    nuclei : ndarray of int
        Nucleus labels with axes `axes`.
    stain : ndarray, optional
        A membrane or cytoplasm channel, same shape as `nuclei`.
    axes : str, optional
        ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``. Default ``"YX"`` for 2-D
        and ``"ZYX"`` for 3-D labels; required for 4-D labels.
    distance, kind, spacing, smoothing, threshold, contrast
        As in :func:`grow_on_stain`; `spacing` covers the spatial axes only.

    Returns
    -------
    ndarray
        Cell labels, same shape and dtype as `nuclei`.

    Raises
    ------
    ValueError
        If the axes, shapes or options are invalid.

    """
    nuclei = _check_nuclei(nuclei, spatial=False)
    axes = check_label_axes(axes, nuclei.ndim)
    distance = check_distance(distance)
    if stain is not None and np.shape(stain) != nuclei.shape:
        raise ValueError(f"The stain's shape {np.shape(stain)} is not the nuclei's {nuclei.shape}.")
    if not axes.startswith("T"):
        return _grow_frame(nuclei, stain, distance, kind, spacing, smoothing, threshold, contrast)
    check_spacing(spacing, nuclei.ndim - 1)
    if stain is not None and (kind == "auto" or threshold is None):
        kind, threshold = _settle_series(nuclei, stain, kind, spacing, smoothing, threshold)
    out = np.zeros_like(nuclei)
    for t in range(nuclei.shape[0]):
        frame_stain = None if stain is None else np.asarray(stain[t])
        out[t] = _grow_frame(
            nuclei[t], frame_stain, distance, kind, spacing, smoothing, threshold, contrast
        )
    return out


def check_distance(distance: float) -> float:
    """Return `distance` as a float, or raise a one-sentence ValueError if it is not positive."""
    if not _is_real(distance) or not distance > 0 or not np.isfinite(distance):
        raise ValueError(f"The cell distance must be a positive number, not {distance!r}.")
    return float(distance)


def stain_contrast(smoothed: np.ndarray) -> float:
    """Return a smoothed stain's full contrast: its 99th percentile minus its 1st.

    Taken over the whole image (not only the cells), so that a block-by-block run
    can choose it once, on a window, as it chooses the threshold.
    """
    values = np.asarray(smoothed, dtype=np.float64)
    return float(np.percentile(values, 99) - np.percentile(values, 1)) or 1.0


def _propagate(
    nuclei: np.ndarray,
    smoothed: np.ndarray,
    mask: np.ndarray,
    distance: float,
    sampling: np.ndarray | None,
    scale: float,
) -> np.ndarray:
    """Give every pixel to the nucleus with the cheapest path to it across the stain's edges.

    A fill has no ridge to flood up to, and flooding its intensity fails: the
    nucleus is a dim hole in it, and a bright cell would flood a dimmer
    neighbour before that neighbour's own front leaves its hole. Instead, as in
    CellProfiler's propagation, a path costs its length plus the stain's
    change along it (the gradient), so a step across a full-contrast edge costs
    as much as :data:`EDGE_COST` times the distance limit of plain travel; the
    full contrast is ``scale`` (see :func:`stain_contrast`).
    """
    pixel = np.ones(nuclei.ndim) if sampling is None else sampling
    scale = scale or 1.0
    gradient = np.sqrt(sum(g**2 for g in np.gradient(smoothed, *pixel)))
    cost = np.where(mask, 1 + (EDGE_COST * distance / scale) * gradient, np.inf)
    travelled, _ = MCP_Geometric(cost, sampling=tuple(pixel)).find_costs(np.argwhere(nuclei > 0))
    return watershed(travelled, markers=nuclei, mask=mask & np.isfinite(travelled))


def _grow_frame(
    nuclei, stain, distance, kind, spacing, smoothing, threshold, contrast=None
) -> np.ndarray:
    if stain is None:
        return expand_nuclei(nuclei, distance, spacing=spacing)
    return grow_on_stain(
        nuclei,
        stain,
        distance,
        kind=kind,
        spacing=spacing,
        smoothing=smoothing,
        threshold=threshold,
        contrast=contrast,
    )


def _settle_series(nuclei, stain, kind, spacing, smoothing, threshold):
    """Choose one stain kind and threshold for a whole time series."""
    for t in range(nuclei.shape[0]):
        frame = np.asarray(nuclei[t])
        if frame.any():
            sampling = check_spacing(spacing, frame.ndim)
            smoothed = smooth(np.asarray(stain[t]), smoothing, sampling)
            if kind == "auto":
                kind = detect_stain_kind(frame, smoothed, threshold=threshold, smoothed=True)
            level = default_threshold(smoothed, kind) if threshold is None else float(threshold)
            return kind, level
    return ("cytoplasm" if kind == "auto" else kind), threshold


def _limit_to_own_nucleus(
    cells: np.ndarray, nuclei: np.ndarray, distance: float, sampling: np.ndarray | None
) -> np.ndarray:
    """Drop the pixels farther than `distance` from their own nucleus, keep each cell connected.

    The watershed mask only bounds the distance to the nearest nucleus; a cell
    may run past a neighbour's nucleus, so each cell is checked against its own,
    inside its bounding box (a cell is never larger than its nucleus plus the limit).
    """
    out = cells.copy()
    boxes = ndi.find_objects(cells)
    for index, box in enumerate(boxes):
        if box is None:
            continue
        k = index + 1
        mine = cells[box] == k
        own = nuclei[box] == k
        if not own.any():
            out[box][mine] = 0
            continue
        far = ndi.distance_transform_edt(~own, sampling=sampling) > distance
        keep = mine & ~far
        pieces, n = ndi.label(keep)
        if n > 1:
            # Only the part joined to the nucleus: trimming may leave islands cut off from it.
            touching = np.unique(pieces[own])
            keep = np.isin(pieces, touching[touching > 0])
        out[box][mine & ~keep] = 0
    return out


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _check_nuclei(nuclei, *, spatial: bool = True) -> np.ndarray:
    nuclei = np.asarray(nuclei)
    if not (np.issubdtype(nuclei.dtype, np.integer) or nuclei.dtype == bool):
        raise ValueError(f"Nucleus labels must be integers, not {nuclei.dtype}.")
    if nuclei.dtype == bool:
        nuclei = nuclei.astype(np.uint8)
    if spatial and nuclei.ndim not in (2, 3):
        raise ValueError(f"Nucleus labels must be 2-D or 3-D here, not {nuclei.ndim}-D.")
    if nuclei.size and np.issubdtype(nuclei.dtype, np.signedinteger) and nuclei.min() < 0:
        raise ValueError("Nucleus labels must be non-negative (0 is background).")
    return nuclei
