"""Star-convex polygons to instance labels, and polygons as seeds of the 3-class watershed.

A star head predicts, at every pixel, the probability that the pixel is an
object's centre region (StarDist's ``edt_prob``) and the distances from it to
the object's edge along ``R`` rays (ray ``k`` at angle 2πk/R, Δrow = sin,
Δcolumn = cos). Pixels above the probability threshold propose polygons
(every second pixel in both directions, and every local maximum of the
probability); non-maximum suppression keeps the most probable of overlapping ones
(stardist's compiled NMS); the kept polygons are drawn, the more probable on
top. The stardist package is needed and is imported only when these functions
run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .instances import (
    InstanceSettings,
    _remove_small_and_fill_holes,
    relabelled,
    seeded_watershed,
)

MIN_DISTANCE = 1e-3  # px; StarDist clamps predicted distances to this before NMS
STARDIST_MISSING = (
    "This model separates objects with star-convex polygons, which needs the stardist "
    'package: pip install "napari-segnet[star]".'
)


class StardistMissingError(ImportError, ValueError):
    """The stardist package, needed for star-convex polygons, is not installed."""


@dataclass(frozen=True)
class StarSettings:
    """Thresholds of the polygons-to-instances step.

    Attributes
    ----------
    prob_threshold : float
        Object probability above which a pixel proposes a polygon.
    nms_threshold : float
        A polygon is dropped when its overlap with a more probable kept one,
        divided by the smaller of the two areas, exceeds this.

    """

    prob_threshold: float = 0.5
    nms_threshold: float = 0.4


def star_polygons(
    prob: np.ndarray, dist: np.ndarray, settings: StarSettings = StarSettings()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polygons kept by non-maximum suppression, most probable first.

    Parameters
    ----------
    prob : ndarray, shape (Y, X)
        Object probability.
    dist : ndarray, shape (R, Y, X)
        Ray distances in pixels.
    settings : StarSettings
        Thresholds.

    Returns
    -------
    points : ndarray of int, shape (n, 2)
        Centre (row, column) of each polygon.
    probabilities : ndarray, shape (n,)
        Their probabilities, falling.
    distances : ndarray of float32, shape (n, R)
        Their ray distances.

    Raises
    ------
    StardistMissingError
        When stardist is not installed (a ``ValueError`` and an ``ImportError``).

    """
    prob, dist = _check(prob, dist)
    nms, _ = _stardist()  # also when there is nothing to find: the missing package shows early
    n_rays = dist.shape[0]
    points = np.argwhere((prob > settings.prob_threshold) & _candidates(prob))
    if points.size == 0:
        return np.zeros((0, 2), np.intp), np.zeros(0, np.float32), np.zeros((0, n_rays), np.float32)
    rows, cols = points.T
    candidates = np.maximum(dist[:, rows, cols].T, MIN_DISTANCE).astype(np.float32)
    # b=0: candidates next to the image edge stay; objects cut by the edge peak there.
    kept_points, kept_prob, kept_dist, _ = nms(
        candidates, prob[rows, cols], points, b=0, nms_thresh=settings.nms_threshold
    )
    return kept_points, kept_prob, kept_dist


def star_to_instances(
    prob: np.ndarray, dist: np.ndarray, settings: StarSettings = StarSettings()
) -> np.ndarray:
    """Instance labels from the star head's prediction: NMS, then the polygons drawn.

    Parameters
    ----------
    prob : ndarray, shape (Y, X)
        Object probability.
    dist : ndarray, shape (R, Y, X)
        Ray distances in pixels.
    settings : StarSettings
        Thresholds.

    Returns
    -------
    ndarray of uint16 or uint32
        Labels 1..n (1 = the most probable object), 0 for background; uint32
        only when n > 65535. Where polygons overlap, the more probable wins.

    Raises
    ------
    StardistMissingError
        When stardist is not installed (a ``ValueError`` and an ``ImportError``).

    """
    points, probabilities, distances = star_polygons(prob, dist, settings)
    return relabelled(_draw(points, probabilities, distances, np.shape(prob)))


def star_seeded_watershed(
    class_probabilities: np.ndarray,
    prob: np.ndarray,
    dist: np.ndarray,
    star_settings: StarSettings = StarSettings(),
    instance_settings: InstanceSettings | None = None,
) -> np.ndarray:
    """Polygons decide how many objects there are; the 3-class maps place their edges.

    Each polygon kept by NMS gives one marker: its pixels whose interior
    probability exceeds ``instance_settings.seed_threshold`` (its centre pixel
    when it has none). The watershed of ``postprocess.instances`` then floods
    from the markers downhill in interior probability inside the 3-class
    foreground, so two polygons always give two objects, even where the
    interior map runs across the gap between them. Small objects are removed
    and holes filled as there.

    Parameters
    ----------
    class_probabilities : ndarray, shape (3, Y, X)
        Background, interior and boundary probabilities.
    prob : ndarray, shape (Y, X)
        Object probability of the star head.
    dist : ndarray, shape (R, Y, X)
        Ray distances in pixels.
    star_settings : StarSettings
        Thresholds of the polygons.
    instance_settings : InstanceSettings, optional
        Seed and foreground thresholds and minimum size of the watershed
        (default: ``InstanceSettings()``).

    Returns
    -------
    ndarray of uint16 or uint32
        Labels 1..n, 0 for background; uint32 only when n > 65535.

    Raises
    ------
    StardistMissingError
        When stardist is not installed (a ``ValueError`` and an ``ImportError``).

    """
    instance_settings = instance_settings or InstanceSettings()
    class_probabilities = np.asarray(class_probabilities)
    if class_probabilities.shape != (3, *np.shape(prob)):
        raise ValueError(
            f"Class probabilities of shape {class_probabilities.shape} do not fit "
            f"a star prediction of shape {np.shape(prob)}."
        )
    interior, boundary = class_probabilities[1], class_probabilities[2]
    foreground = (interior + boundary) > instance_settings.foreground_threshold
    points, probabilities, distances = star_polygons(prob, dist, star_settings)
    polygons = _draw(points, probabilities, distances, interior.shape)
    markers = np.where(interior > instance_settings.seed_threshold, polygons, 0)
    present = np.zeros(len(points) + 1, bool)
    present[markers.ravel()] = True
    missing = np.flatnonzero(~present[1:])  # polygons with no confident interior pixel
    if missing.size:
        rows, cols = points[missing].T
        free = markers[rows, cols] == 0
        markers[rows[free], cols[free]] = missing[free] + 1
    labels = seeded_watershed(-interior, markers, foreground)
    return relabelled(_remove_small_and_fill_holes(labels, instance_settings.min_size))


def _candidates(prob: np.ndarray) -> np.ndarray:
    """Every second pixel in both directions, and every local maximum.

    A quarter of the pixels give the same polygons as all of them, three times
    faster; the maxima keep the small objects that the grid would miss.
    """
    grid = np.zeros(prob.shape, bool)
    grid[::2, ::2] = True
    return grid | (prob == ndimage.maximum_filter(prob, size=3))


def _check(prob, dist) -> tuple[np.ndarray, np.ndarray]:
    prob, dist = np.asarray(prob, np.float32), np.asarray(dist, np.float32)
    if prob.ndim != 2 or dist.ndim != 3 or dist.shape[1:] != prob.shape:
        raise ValueError(
            f"Star prediction shapes do not fit: probability {prob.shape} should be (Y, X) "
            f"and distances {dist.shape} should be (rays, Y, X)."
        )
    return prob, dist


def _draw(points, probabilities, distances, shape) -> np.ndarray:
    """int32 image of the polygons, polygon ``i`` (in NMS order) as ``i + 1``."""
    if len(points) == 0:
        return np.zeros(shape, np.int32)
    _, polygons_to_label = _stardist()
    return polygons_to_label(distances, points, shape=shape, prob=probabilities)


def _stardist():
    """Stardist's NMS and polygon drawing, or one sentence on how to install stardist."""
    try:
        from stardist.geometry import polygons_to_label
        from stardist.nms import non_maximum_suppression_sparse
    except ImportError as error:
        raise StardistMissingError(STARDIST_MISSING) from error
    return non_maximum_suppression_sparse, polygons_to_label
