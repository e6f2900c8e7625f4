"""Test-time augmentation: average the network's outputs over flips and 90° rotations.

The network is not exactly equivariant to flips and rotations: each of the
eight dihedral views of a plane gives slightly different probabilities, and
their average is smoother at object edges. It costs one prediction per view,
so it is off by default (``--tta`` in the CLI).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from napari_segnet.progress import Progress, relay

from .tiling import iter_predict_tiled

VIEWS = 8  # the dihedral group of the square: 4 rotations, each with and without a flip


def _view(array: np.ndarray, index: int) -> np.ndarray:
    """Return view ``index`` of the last two axes: rotated ``index % 4`` × 90°, then flipped."""
    viewed = np.rot90(array, index % 4, axes=(-2, -1))
    return viewed[..., ::-1] if index >= 4 else viewed


def _unview(array: np.ndarray, index: int) -> np.ndarray:
    """Undo :func:`_view`."""
    if index >= 4:
        array = array[..., ::-1]
    return np.rot90(array, -(index % 4), axes=(-2, -1))


def iter_predict_augmented(
    model, plane: np.ndarray, *, views: int = VIEWS, **tiling
) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Predict a normalised plane in ``views`` dihedral views and average the outputs.

    Parameters
    ----------
    model : SegNet
        In ``eval`` mode; models with the star head are refused (their ray
        distances would need permuting under each view).
    plane : ndarray, shape (Y, X) or (C, Y, X)
        The normalised input (channels-first for a network that reads several;
        the views turn the last two axes).
    views : int
        How many of the eight views to average (1 to 8; 1 is the plane itself).
    **tiling
        Passed to :func:`~napari_segnet.inference.tiling.iter_predict_tiled`.

    Returns
    -------
    dict
        The same outputs as :func:`~napari_segnet.inference.tiling.iter_predict_tiled`.

    Raises
    ------
    ValueError
        For a model with the star head, or ``views`` outside 1–8.

    """
    if getattr(model.config, "has_star_head", False):
        raise ValueError("Test-time augmentation is not available for models with a star head.")
    if not 1 <= views <= VIEWS:
        raise ValueError(f"Test-time augmentation averages 1 to {VIEWS} views, not {views}.")
    sums: dict[str, np.ndarray] = {}
    for index in range(views):
        outputs = yield from relay(
            iter_predict_tiled(model, np.ascontiguousarray(_view(plane, index)), **tiling),
            lambda event, index=index: Progress(
                index * max(event.total, 1) + event.done,
                views * max(event.total, 1),
                f"predicting view {index + 1} of {views}",
            ),
        )
        for key, value in outputs.items():
            back = _unview(value, index)
            sums[key] = sums[key] + back if key in sums else back.astype(np.float32)
    return {key: np.ascontiguousarray(value / views) for key, value in sums.items()}
