"""Test-time augmentation: the dihedral views of a tile, and their inverses.

The network is not exactly equivariant to flips and rotations: each of the
eight views of a tile (four rotations, each with and without a flip) gives
slightly different probabilities, and their average is smoother at object
edges. :class:`~napari_segnet.inference.tiling.TiledPredictor` averages them
tile by tile, before blending, so whole planes and blocks stay equal. It costs
one prediction per view, so it is off by default (``--tta`` in the CLI).
"""

from __future__ import annotations

import numpy as np

VIEWS = 8  # the dihedral group of the square: 4 rotations, each with and without a flip


def view(array, index: int):
    """Return view ``index`` of the last two axes: rotated ``index % 4`` × 90°, then flipped.

    Works on numpy arrays and torch tensors alike.
    """
    if isinstance(array, np.ndarray):
        viewed = np.rot90(array, index % 4, axes=(-2, -1))
        return viewed[..., ::-1] if index >= 4 else viewed
    viewed = array.rot90(index % 4, dims=(-2, -1))
    return viewed.flip(-1) if index >= 4 else viewed


def unview(array, index: int):
    """Undo :func:`view`."""
    if isinstance(array, np.ndarray):
        if index >= 4:
            array = array[..., ::-1]
        return np.rot90(array, -(index % 4), axes=(-2, -1))
    if index >= 4:
        array = array.flip(-1)
    return array.rot90(-(index % 4), dims=(-2, -1))


def check_views(model, views: int) -> None:
    """Refuse a number of views outside 1–8, and views of a star-head model.

    Raises
    ------
    ValueError
        With one sentence saying why.
    """
    if not 1 <= views <= VIEWS:
        raise ValueError(f"Test-time augmentation averages 1 to {VIEWS} views, not {views}.")
    if views > 1 and getattr(getattr(model, "config", None), "has_star_head", False):
        raise ValueError(
            "Test-time augmentation is not available for models with a star head "
            "(their ray distances would need reordering in every view)."
        )
