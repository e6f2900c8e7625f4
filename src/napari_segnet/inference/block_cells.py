"""Cells of a big plane or Z-stack, block by block, as the whole image would give them.

Every nucleus a block keeps grows into its cell on the block's context, and the block
keeps the cells of the nuclei it keeps. Two things make the blocks agree with the whole
image (see :func:`napari_segnet.cells.grow_cells`):

- the halo grows by :func:`cell_margin`: twice the cell distance (a cell reaches the
  distance from its nucleus, and its split with a neighbour depends on nuclei up to the
  distance farther), plus what the stain's smoothing reads around a pixel;
- the stain's kind and threshold are chosen once per image, on a central window of at
  most :data:`SURVEY` pixels a side (the whole plane when it is smaller), and every block
  grows its cells with them (:func:`settle_growth`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .blocks import Block, BlockObjects

# Edge of the central window on which the stain's kind and threshold are chosen.
SURVEY = 2048
# Pixels a one-pixel Gaussian (truncated at four standard deviations) reads around a pixel.
SMOOTHING_REACH = 5
# Plane-coordinate columns of a measurement table, without and with the cell's prefix.
_COORDINATES = ("centroid_{}_px", "bbox_{}_min", "bbox_{}_max")


@dataclass(frozen=True)
class CellGrowth:
    """How every block grows its cells (see :func:`napari_segnet.cells.grow_cells`).

    Attributes
    ----------
    stain : int or None
        Index of the membrane or cytoplasm channel; None expands the nuclei.
    distance : float
        How far a cell reaches from its nucleus: µm with ``spacing``, else pixels.
    kind : {"auto", "membrane", "cytoplasm"}
        The stain's kind; ``"auto"`` until :func:`settle_growth` chooses it.
    threshold : float or None
        The smoothed stain's foreground level; None until :func:`settle_growth` chooses it.
    contrast : float or None
        The smoothed stain's full contrast (:func:`~napari_segnet.cells.grow.stain_contrast`),
        which scales a cytoplasm stain's edges; None until :func:`settle_growth` chooses it.
    spacing : tuple of float or None
        Pixel (voxel) size in µm, one per spatial axis.
    phenotypes : PhenotypeDefinition or None
        Markers whose thresholds are all given: every cell's row is classified.
    """

    stain: int | None = None
    distance: float = 5.0
    kind: str = "auto"
    threshold: float | None = None
    contrast: float | None = None
    spacing: tuple[float, ...] | None = None
    phenotypes: object = None

    @property
    def settled(self) -> bool:
        """Whether every block can grow its cells alike: nothing is left to choose."""
        chosen = self.kind != "auto" and self.threshold is not None
        return self.stain is None or (chosen and self.contrast is not None)


def cell_margin(growth: CellGrowth) -> int:
    """Pixels the halo grows by for cells: twice the distance, plus the smoothing's reach.

    Rounded up to a multiple of 16, in the plane's pixels (the finest of Y and X).
    """
    pixel = 1.0 if growth.spacing is None else float(min(growth.spacing[-2:]))
    reach = 2 * growth.distance / pixel + (SMOOTHING_REACH if growth.stain is not None else 0)
    return int(math.ceil(reach / 16) * 16)


def survey_window(shape: tuple[int, int]) -> tuple[slice, slice]:
    """Return the central window of a plane, at most :data:`SURVEY` pixels a side."""
    window = []
    for n in shape:
        edge = min(n, SURVEY)
        start = (n - edge) // 2
        window.append(slice(start, start + edge))
    return tuple(window)


def stain_region(source, growth: CellGrowth, rows: slice, columns: slice) -> np.ndarray | None:
    """Read the stain over a region (every plane of a stack), or None to expand."""
    if growth.stain is None:
        return None
    data = source.region(rows, columns, every_channel=True)
    return np.take(data, growth.stain, axis=source.image.axes.index("C"))


def settle_growth(growth: CellGrowth, stain: np.ndarray | None, nuclei) -> CellGrowth:
    """Choose the stain's kind, threshold and contrast once, on a window's stain and nuclei.

    As :func:`~napari_segnet.cells.grow_on_stain` chooses them for the whole image
    (smoothed stain, :func:`~napari_segnet.cells.detect_stain_kind`,
    :func:`~napari_segnet.cells.default_threshold`); ``nuclei`` may be None when the
    kind is given.
    """
    if growth.settled:
        return growth
    from napari_segnet.cells.grow import stain_contrast
    from napari_segnet.cells.stain import default_threshold, detect_stain_kind, smooth
    from napari_segnet.measure.properties import check_spacing

    smoothed = smooth(stain, None, check_spacing(growth.spacing, stain.ndim))
    kind = growth.kind
    if kind == "auto":
        kind = detect_stain_kind(nuclei, smoothed, threshold=growth.threshold, smoothed=True)
    threshold = growth.threshold
    if threshold is None:
        threshold = default_threshold(smoothed, kind)
    contrast = stain_contrast(smoothed) if growth.contrast is None else growth.contrast
    return replace(growth, kind=kind, threshold=float(threshold), contrast=float(contrast))


def add_cells(
    kept: BlockObjects,
    labels: np.ndarray,
    source,
    growth: CellGrowth,
    *,
    measure: bool,
    channel_names=(),
) -> None:
    """Grow the context's cells and give ``kept`` those of its nuclei (and their rows).

    ``labels`` are the context's nuclei; ``kept.cells`` becomes the kept cells numbered as
    their nuclei (``1..count``) cut to their bounding box, at ``kept.cells_origin``; with
    ``measure``, ``kept.table`` holds one row per cell
    (:func:`~napari_segnet.cells.measure_cells`) in the image's coordinates.
    """
    from napari_segnet.cells import classify, grow_cells, measure_cells

    block: Block = kept.block
    rows, columns = block.context
    grown = grow_cells(
        labels,
        stain_region(source, growth, rows, columns),
        axes="ZYX"[-labels.ndim :],
        distance=growth.distance,
        kind="cytoplasm" if growth.kind == "auto" else growth.kind,
        spacing=growth.spacing,
        threshold=growth.threshold,
        contrast=growth.contrast,
    )
    lookup = np.zeros(max(int(grown.max(initial=0)), int(labels.max(initial=0))) + 1, np.uint32)
    lookup[kept.source_ids] = np.arange(1, kept.count + 1, dtype=np.uint32)
    local = lookup[grown]
    del grown
    box = _bounding_box(local)
    kept.cells = np.ascontiguousarray(local[box])
    starts = [b.start for b in box]
    starts[-2] += rows.start
    starts[-1] += columns.start
    kept.cells_origin = tuple(int(n) for n in starts)
    if not measure:
        return
    nuclei = lookup[labels[box]]
    region = source.region(
        slice(starts[-2], starts[-2] + kept.cells.shape[-2]),
        slice(starts[-1], starts[-1] + kept.cells.shape[-1]),
        every_channel=True,
    )
    if source.stacked:
        z = source.image.axes.index("Z")
        region = region[(slice(None),) * z + (box[0],)]
    table = measure_cells(
        nuclei,
        kept.cells,
        region,
        axes="ZYX"[-labels.ndim :],
        channel_axis=source.image.channel_axis,
        channel_names=list(channel_names) or None,
        spacing=growth.spacing,
    )
    kept.table = _in_image_coordinates(table, kept.cells_origin, growth.spacing)
    if growth.phenotypes is not None:
        kept.table = classify(kept.table, growth.phenotypes)


def _bounding_box(labels: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(labels.ndim):
        others = tuple(a for a in range(labels.ndim) if a != axis)
        inside = np.flatnonzero(labels.any(axis=others))
        box.append(slice(int(inside[0]), int(inside[-1]) + 1))
    return tuple(box)


def _in_image_coordinates(table, origin, spacing):
    """Shift the nucleus' and the cell's centroids and boxes by ``origin``."""
    axes = "zyx"[-len(origin) :]
    for prefix in ("", "cell_"):
        for axis, offset in zip(axes, origin):
            for column in _COORDINATES:
                name = prefix + column.format(axis)
                if name in table.columns:
                    table[name] += offset
        if spacing is not None:
            for axis, size in zip(axes, spacing):
                name = f"{prefix}centroid_{axis}_um"
                if name in table.columns:
                    table[name] = table[f"{prefix}centroid_{axis}_px"] * size
    return table
