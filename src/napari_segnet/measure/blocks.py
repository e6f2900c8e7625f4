"""Measure a big 2-D label image block by block, in bounded memory, every object whole.

Two passes over the labels, a block at a time. The first finds every object's bounding
box. The second measures, for each block, the objects whose bounding box starts in it,
reading just the region their boxes cover: so every object is measured once and whole,
however large it is, and even when its pixels are not connected (labels painted by hand).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np
import pandas as pd

from napari_segnet.inference.blocks import BLOCK, plan_blocks
from napari_segnet.progress import Progress

from .properties import measure

# Label images with more pixels than this are measured block by block by the Measure widget.
BLOCKWISE_PIXELS = 4096 * 4096


def iter_measure_blocks(
    labels,
    image=None,
    *,
    channel_axis: int | None = None,
    channel_names: Sequence[str] | None = None,
    spacing: Sequence[float] | None = None,
    block: int | None = None,
) -> Generator[Progress, None, pd.DataFrame]:
    """Measure a 2-D label image (any array-like, e.g. dask or zarr) block by block.

    Parameters
    ----------
    labels : array_like of int, shape (Y, X)
        Instance labels, read a block at a time.
    image : array_like, optional
        Intensities with the labels' shape, or one extra channel axis.
    channel_axis, channel_names, spacing
        As in :func:`~napari_segnet.measure.measure`.
    block : int, optional
        Block edge in pixels (default :data:`~napari_segnet.inference.blocks.BLOCK`).

    Yields
    ------
    Progress
        One per block and pass.

    Returns
    -------
    pandas.DataFrame
        What :func:`~napari_segnet.measure.measure` returns for the whole image.

    """
    if len(labels.shape) != 2:
        raise ValueError(f"Measuring block by block takes 2-D labels, not shape {labels.shape}.")
    shape = tuple(int(n) for n in labels.shape)
    blocks = plan_blocks(shape, block or BLOCK, 0)
    n = len(blocks)
    boxes = []
    for number, current in enumerate(blocks):
        boxes.append(_boxes(np.asarray(labels[current.core]), current.core))
        yield Progress(number + 1, 2 * n, f"finding objects in block {number + 1} of {n}")
    boxes = (
        pd.concat(boxes)
        .groupby(level=0)
        .agg({"top": "min", "left": "min", "bottom": "max", "right": "max"})
    )
    parts = []
    for number, current in enumerate(blocks):
        rows, columns = current.core
        starts = boxes[
            (boxes["top"] >= rows.start)
            & (boxes["top"] < rows.stop)
            & (boxes["left"] >= columns.start)
            & (boxes["left"] < columns.stop)
        ]
        if len(starts):
            top, left = int(starts["top"].min()), int(starts["left"].min())
            bottom, right = int(starts["bottom"].max()), int(starts["right"].max())
            region = np.asarray(labels[top:bottom, left:right])
            region = np.where(np.isin(region, starts.index.to_numpy()), region, 0)
            parts.append(
                _measure_patch(region, (top, left), image, channel_axis, channel_names, spacing)
            )
        yield Progress(n + number + 1, 2 * n, f"measuring block {number + 1} of {n}")
    if not parts:
        return _measure_patch(
            np.zeros((1, 1), np.uint32), (0, 0), image, channel_axis, channel_names, spacing
        )
    return pd.concat(parts, ignore_index=True).sort_values("label", ignore_index=True)


def _boxes(labels: np.ndarray, core: tuple[slice, slice]) -> pd.DataFrame:
    """Bounding boxes (plane coordinates, stops exclusive) of the labels in one block."""
    flat = labels.ravel()
    foreground = np.flatnonzero(flat)
    y, x = np.unravel_index(foreground, labels.shape)
    table = pd.DataFrame(
        {
            "top": y + core[0].start,
            "left": x + core[1].start,
            "bottom": y + core[0].start + 1,
            "right": x + core[1].start + 1,
        },
        index=flat[foreground],
    )
    return table.groupby(level=0).agg(
        {"top": "min", "left": "min", "bottom": "max", "right": "max"}
    )


def _measure_patch(patch, origin, image, channel_axis, channel_names, spacing) -> pd.DataFrame:
    """Measure the objects of a patch of labels at ``origin`` against the same part of ``image``."""
    (top, left), (height, width) = origin, patch.shape
    region = None
    if image is not None:
        index = [slice(top, top + height), slice(left, left + width)]
        if channel_axis is not None:
            index.insert(channel_axis, slice(None))
        region = np.asarray(image[tuple(index)])
    return measure_patch(patch, origin, region, channel_axis, channel_names, spacing)


def measure_patch(patch, origin, intensities, channel_axis, channel_names, spacing) -> pd.DataFrame:
    """Measure the objects of a patch of labels, in the coordinates of the whole image.

    Parameters
    ----------
    patch : ndarray of int
        Labels of a region of a plane ``(Y, X)`` or of a Z-stack ``(Z, Y, X)``.
    origin : tuple of int
        Where the region's first pixel is in the image (one index per axis).
    intensities : ndarray or None
        The same region of the image (with its channel axis ``channel_axis``).
    channel_axis, channel_names, spacing
        As in :func:`~napari_segnet.measure.measure`.

    Returns
    -------
    pandas.DataFrame
        Centroids and bounding boxes in image pixels (and µm).

    """
    axes = "ZYX"[-patch.ndim :]
    table = measure(
        patch,
        intensities,
        axes=axes,
        channel_axis=channel_axis,
        channel_names=channel_names,
        spacing=spacing,
    )
    for axis, offset in zip(axes.lower(), origin):
        for column in (f"centroid_{axis}_px", f"bbox_{axis}_min", f"bbox_{axis}_max"):
            table[column] += offset
    if spacing is not None:
        for axis, size in zip(axes.lower(), spacing):
            table[f"centroid_{axis}_um"] = table[f"centroid_{axis}_px"] * size
    return table
