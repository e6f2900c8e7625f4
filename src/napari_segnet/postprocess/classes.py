"""Semantic class of each instance: majority vote of its pixels."""

from __future__ import annotations

import numpy as np


def classify_instances(
    labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Majority-vote class and mean class probability for every instance.

    Parameters
    ----------
    labels : ndarray of int
        Instance labels (any shape).
    probabilities : ndarray, shape (K, *labels.shape)
        Per-pixel semantic class probabilities.
    class_names : tuple of str
        Names of the K classes.

    Returns
    -------
    dict
        ``label`` (ids present), ``class`` (names) and ``class_probability``
        (mean probability of the chosen class over the instance's pixels).
    """
    flat = labels.ravel()
    inside = flat > 0
    ids = np.unique(flat[inside])
    if ids.size == 0:
        empty = np.array([], dtype=object)
        return {"label": ids, "class": empty, "class_probability": np.array([], float)}
    index = np.searchsorted(ids, flat[inside])
    k = probabilities.shape[0]
    per_pixel = probabilities.reshape(k, -1)[:, inside]
    votes = np.zeros((ids.size, k))
    np.add.at(votes, (index, per_pixel.argmax(axis=0)), 1)
    winner = votes.argmax(axis=1)
    sums = np.stack([np.bincount(index, per_pixel[c], minlength=ids.size) for c in range(k)], 1)
    counts = np.bincount(index, minlength=ids.size)
    probability = sums[np.arange(ids.size), winner] / counts
    return {
        "label": ids,
        "class": np.array(class_names, dtype=object)[winner],
        "class_probability": probability,
    }
