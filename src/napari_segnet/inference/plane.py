"""One normalised plane through the network and the instance step: labels and outputs.

The leaf of whole-image segmentation (:mod:`~napari_segnet.inference.segment`) and of
the object-size estimate (:mod:`~napari_segnet.inference.diameter`), which both use it.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from napari_segnet.postprocess import InstanceSettings, StarSettings, probabilities_to_instances
from napari_segnet.progress import Progress

from .tiling import BATCH_SIZE, OVERLAP, TILE, iter_predict_tiled


def instance_settings_of(model) -> InstanceSettings:
    """Return the thresholds stored with a model (defaults for models that have none)."""
    stored = getattr(model.config, "instance_settings", None) or {}
    return InstanceSettings(**stored)


def segment_normalised(
    model,
    plane: np.ndarray,
    *,
    instance_settings: InstanceSettings | None = None,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH_SIZE,
    device=None,
    scale: float = 1.0,
    star_settings=None,
    views: int = 1,
    precision: str = "auto",
) -> Generator[Progress, None, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield progress; return ``(labels, probabilities)`` for one normalised plane.

    ``plane`` is the network's input as
    :func:`~napari_segnet.inference.normalise.normalise` makes it for the
    model's ``config.in_channels``: ``(Y, X)``, or ``(C, Y, X)`` for a network
    that reads C channels; labels are ``(Y, X)``.

    ``probabilities`` holds the outputs of
    :func:`~napari_segnet.inference.tiling.iter_predict_tiled` (``"instance"``,
    and ``"semantic"``, ``"star_prob"``, ``"star_dist"`` where the model has
    them). With ``scale`` ≠ 1 the network sees the plane zoomed by that factor
    and its outputs are resampled back (both by
    :func:`~napari_segnet.inference.resample.resample_window`, as block-by-block
    segmentation does), so labels always have the plane's shape; star
    distances are then divided by ``scale``, so they are in the plane's pixels
    too. Labels are made as the model's ``config.instance_method`` says (see
    :func:`make_instances`; ``star_settings`` are the thresholds of the star
    methods). ``views`` > 1 averages each tile over that many flips and
    rotations (test-time augmentation); ``precision`` is the network's number
    format (see :func:`~napari_segnet.inference.precision.autocast_dtype`).
    """
    probabilities = yield from iter_predict_tiled(
        model,
        plane,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        scale=scale,
        views=views,
        precision=precision,
    )
    labels = make_instances(
        probabilities,
        instance_method_of(model),
        (instance_settings or InstanceSettings()).at_zoom(scale),
        star_settings,
    )
    return labels, probabilities


def instance_method_of(model) -> str:
    """How a model's outputs become labels (``"watershed"`` for models that do not say)."""
    return getattr(getattr(model, "config", None), "instance_method", "watershed")


def make_instances(
    probabilities: dict[str, np.ndarray],
    method: str = "watershed",
    instance_settings: InstanceSettings | None = None,
    star_settings=None,
) -> np.ndarray:
    """Instance labels of one plane from its predicted outputs.

    Parameters
    ----------
    probabilities : dict
        Outputs of :func:`~napari_segnet.inference.tiling.iter_predict_tiled`.
    method : {"watershed", "star", "star_seeds"}
        See :attr:`napari_segnet.models.ModelConfig.instance_method`.
    instance_settings : InstanceSettings, optional
        Thresholds of the 3-class watershed.
    star_settings : napari_segnet.postprocess.star.StarSettings, optional
        Thresholds of the star polygons.

    Raises
    ------
    ValueError
        For a star method without star outputs, or when stardist is missing.

    """
    settings = instance_settings or InstanceSettings()
    if method == "watershed":
        return probabilities_to_instances(probabilities["instance"], settings)
    if "star_dist" not in probabilities:
        raise ValueError(f"The instance method {method!r} needs a model with the star head.")
    from napari_segnet.postprocess.star import star_seeded_watershed, star_to_instances

    star_settings = star_settings or StarSettings()
    prob, dist = probabilities["star_prob"], probabilities["star_dist"]
    if method == "star":
        return star_to_instances(prob, dist, star_settings)
    if method == "star_seeds":
        return star_seeded_watershed(probabilities["instance"], prob, dist, star_settings, settings)
    raise ValueError(
        f"The instance method must be 'watershed', 'star' or 'star_seeds', not {method!r}."
    )
