"""Seeded watershed: interior probabilities give seeds, foreground bounds the flooding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential, watershed

from napari_segnet.io.writer import labels_dtype


@dataclass(frozen=True)
class InstanceSettings:
    """Thresholds of the probabilities-to-instances step.

    Attributes
    ----------
    seed_threshold : float
        Interior probability above which a pixel may seed an object.
    foreground_threshold : float
        Interior + boundary probability above which a pixel belongs to an object.
    min_size : int
        Objects smaller than this many pixels are removed.

    """

    seed_threshold: float = 0.5
    foreground_threshold: float = 0.5
    min_size: int = 15


def probabilities_to_instances(
    probabilities: np.ndarray, settings: InstanceSettings = InstanceSettings()
) -> np.ndarray:
    """Turn per-class probabilities into instance labels.

    Parameters
    ----------
    probabilities : ndarray, shape (3, Y, X)
        Background, interior and boundary probabilities (summing to 1).
    settings : InstanceSettings
        Thresholds.

    Returns
    -------
    ndarray of uint16 or uint32
        Labels 1..n, 0 for background; uint32 only when n > 65535.

    """
    interior, boundary = probabilities[1], probabilities[2]
    foreground = (interior + boundary) > settings.foreground_threshold
    seeds, _ = ndimage.label(interior > settings.seed_threshold)
    # Flood from the seeds downhill in interior probability, never past the foreground.
    labels = watershed(-interior, markers=seeds, mask=foreground)
    return relabelled(_remove_small_and_fill_holes(labels, settings.min_size))


def relabelled(labels: np.ndarray) -> np.ndarray:
    """Return ``labels`` renumbered 1..n, as uint16 (uint32 only when n > 65535)."""
    labels, _, _ = relabel_sequential(labels)
    return labels.astype(labels_dtype(int(labels.max(initial=0))), copy=False)


def _remove_small_and_fill_holes(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels = np.where(small[labels], 0, labels)
    # A hole is background enclosed by one object: give it to the object around it.
    # Background enclosed by several touching objects (a gap among them) stays background.
    holes, n_holes = ndimage.label(ndimage.binary_fill_holes(labels > 0) & (labels == 0))
    if n_holes:
        # (hole, object) pairs of 4-neighbours; holes never touch the image's edge.
        pairs = []
        for a, b in ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))):
            for hole, other in ((holes[a], labels[b]), (holes[:, a], labels[:, b])):
                touching = (hole > 0) & (other > 0)
                pairs.append(np.stack([hole[touching], other[touching]]))
        hole_ids, objects = np.unique(np.concatenate(pairs, axis=1), axis=1)
        single = np.bincount(hole_ids, minlength=n_holes + 1) == 1
        owner = np.zeros(n_holes + 1, labels.dtype)
        owner[hole_ids[single[hole_ids]]] = objects[single[hole_ids]]
        labels = np.where(holes > 0, owner[holes], labels)
    return labels
