"""Link per-plane labels of a Z-stack into 3-D objects by overlap."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential

from napari_segnet.metrics import iou_matrix

LINK_IOU = 0.25


def link_planes(labels: np.ndarray, axis: int, min_iou: float = LINK_IOU) -> np.ndarray:
    """Give overlapping objects of neighbouring planes along ``axis`` the same label.

    Labels must be unique across planes on input. Each object takes the label
    of the object in the previous plane that it overlaps best, if their IoU is
    at least ``min_iou`` and that object is not claimed by a better match.
    The result is relabelled 1..n.
    """
    labels = np.moveaxis(np.asarray(labels), axis, 0).copy()
    for z in range(1, labels.shape[0]):
        previous, current = labels[z - 1], labels[z]
        prev_ids, cur_ids = np.unique(previous[previous > 0]), np.unique(current[current > 0])
        if prev_ids.size == 0 or cur_ids.size == 0:
            continue
        iou = iou_matrix(previous, current)  # rows: previous ids, columns: current ids
        best_prev = iou.argmax(axis=0)
        best_cur = iou.argmax(axis=1)
        lookup = np.arange(int(current.max()) + 1, dtype=labels.dtype)
        for column, row in enumerate(best_prev):
            if iou[row, column] >= min_iou and best_cur[row] == column:
                lookup[cur_ids[column]] = prev_ids[row]
        labels[z] = lookup[current]
    linked, _, _ = relabel_sequential(labels)
    return np.moveaxis(linked, 0, axis)
