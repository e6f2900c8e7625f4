"""One image's cells: grow them from its nuclei, measure them, and check its markers."""

from __future__ import annotations

import numpy as np

from .cells_options import CellSettings
from .common import UserError


def check_markers(image, cells: CellSettings | None) -> None:
    """Refuse, before anything is computed, a stain or marker channel the image lacks.

    Raises
    ------
    UserError
        Naming the channel and the image's channels.
    """
    if cells is None:
        return
    if cells.stain is not None:
        stain_channel(image, cells.stain)
    if cells.phenotypes is None:
        return
    names = measured_channel_names(image)
    for marker in cells.phenotypes.markers:
        if marker.channel not in names:
            raise UserError(
                f"The image has no channel {marker.channel!r} to read a marker from "
                f"(its channels: {', '.join(names)})."
            )


def measured_channel_names(image) -> list[str]:
    """Return the channel names that measurement columns carry for ``image``."""
    from napari_segnet.measure import sanitise_channel_names

    n = image.n_channels if "C" in image.axes and not image.is_rgb else 1
    names = list(image.channel_names) or [f"ch{i}" for i in range(n)]
    return sanitise_channel_names(names)


def stain_channel(image, key: int | str) -> int:
    """Index of the ``--cells`` channel, or one sentence why there is none."""
    if image.is_rgb or "C" not in image.axes:
        raise UserError(
            "--cells with a channel needs an image with several channels; "
            "this one has one (use --cells expand)."
        )
    try:
        return image.channel_index(key)
    except ValueError as error:
        raise UserError(f"--cells: {error}") from None


def grow_and_measure(
    image, nuclei: np.ndarray, axes: str, spacing, cells: CellSettings, measure: bool
):
    """Return the cells of ``nuclei`` and their table (None without measuring).

    The table holds one row per cell: the nucleus columns as without cells, then the
    cell's and the cytoplasm's (see :func:`napari_segnet.cells.measure_cells`); with
    markers whose thresholds are all given, also their positivity and the phenotype.
    """
    from napari_segnet.cells import classify, grow_cells, measure_cells

    stain = None
    if cells.stain is not None:
        index = stain_channel(image, cells.stain)
        where = tuple(index if a == "C" else slice(None) for a in image.axes)
        stain = np.asarray(image.data[where])
    try:
        grown = grow_cells(
            nuclei,
            stain,
            axes=axes,
            distance=cells.distance,
            kind=cells.kind,
            spacing=spacing,
        )
    except ValueError as error:
        raise UserError(f"Cannot grow cells: {error}") from None
    if not measure:
        return grown, None
    table = measure_cells(
        nuclei,
        grown,
        image.data,
        axes=axes,
        channel_axis=image.channel_axis,
        channel_names=list(image.channel_names) or None,
        spacing=spacing,
    )
    if cells.phenotypes is not None and cells.phenotypes.is_resolved:
        table = classify(table, cells.phenotypes)
    return grown, table


def cell_growth(image, cells: CellSettings, spacing):
    """Return how the blocks of a big image grow its cells (stain and kind still to choose).

    Thresholds of markers that are all given classify every block's rows; automatic ones
    are chosen over the batch afterwards (see :mod:`~napari_segnet.cli.phenotype_batch`).
    """
    from napari_segnet.inference.block_cells import CellGrowth

    stain = None if cells.stain is None else stain_channel(image, cells.stain)
    phenotypes = cells.phenotypes
    resolved = phenotypes if phenotypes is not None and phenotypes.is_resolved else None
    return CellGrowth(
        stain=stain,
        distance=cells.distance,
        kind=cells.kind,
        spacing=None if spacing is None else tuple(spacing),
        phenotypes=resolved,
    )
