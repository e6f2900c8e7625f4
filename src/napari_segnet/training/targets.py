"""Training targets from instance labels: background / interior / boundary, and pixel weights.

Each object's outer rim becomes the boundary class: 2 pixels wide for objects
large enough to keep an interior, 1 pixel for small ones, so that every object
keeps interior pixels (its seed at inference). Pixels in narrow gaps between
touching or nearly touching objects get a higher loss weight (the U-Net weight
map idea): that is where merges happen.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
THICK_BOUNDARY_MIN_AREA = 100  # px; smaller objects get a 1-pixel rim


def instance_targets(labels: np.ndarray, gap_weight: float = 5.0, gap_width: float = 3.0):
    """Class map and loss weights for one 2-D label image.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Instance labels, 0 = background.
    gap_weight : float
        Extra weight for background pixels between two objects and for boundary pixels.
    gap_width : float
        Distance in pixels within which a background pixel counts as "between objects".

    Returns
    -------
    classes : ndarray of int64
        0 background, 1 interior, 2 boundary.
    weights : ndarray of float32

    """
    labels = np.asarray(labels)
    foreground = labels > 0
    rim = find_boundaries(labels, mode="inner") & foreground
    depth = ndimage.distance_transform_edt(~rim & foreground)  # 0 on the rim and outside
    areas = np.bincount(labels.ravel())
    thick = areas[labels] >= THICK_BOUNDARY_MIN_AREA
    boundary = foreground & (rim | (thick & (depth <= 1.0)))
    classes = np.where(foreground, INTERIOR, BACKGROUND)
    classes[boundary] = BOUNDARY

    weights = np.ones(labels.shape, np.float32)
    weights[boundary] += gap_weight / 2
    if foreground.any() and not foreground.all():
        # Background pixels close to two different objects: the touching gaps.
        distance, indices = ndimage.distance_transform_edt(~foreground, return_indices=True)
        nearest = labels[tuple(indices)]
        second = ndimage.grey_dilation(nearest, size=3) != ndimage.grey_erosion(nearest, size=3)
        gaps = ~foreground & second & (distance <= gap_width)
        weights[gaps] += gap_weight
    return classes.astype(np.int64), weights
