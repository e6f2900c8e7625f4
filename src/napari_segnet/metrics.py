"""Instance matching and the detection metrics used in the literature (StarDist's conventions).

A predicted and a true object match when their IoU is at least τ; the pairs
are chosen by a Hungarian assignment that maximises the number of matches (for
τ ≥ 0.5 matches are unique anyway). TP, FP and FN are pooled over all images:

- AP_τ = TP / (TP + FP + FN)  (the "average precision" of the DSB2018 challenge)
- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2TP / (2TP + FP + FN)
- PQ = (sum of IoUs of the matched pairs / TP) × F1  (panoptic quality)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.91, 0.05), 2))


@dataclass(frozen=True)
class MatchCounts:
    """Matching result of one image at one IoU threshold."""

    tp: int
    fp: int
    fn: int
    sum_iou: float


def iou_matrix(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """IoU between every true object (rows) and every predicted object (columns).

    Labels need not be consecutive; row ``i`` is the ``i``-th smallest true
    label, column ``j`` the ``j``-th smallest predicted label.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"Shapes differ: truth {truth.shape}, prediction {prediction.shape}.")
    true_ids, t = np.unique(truth, return_inverse=True)
    pred_ids, p = np.unique(prediction, return_inverse=True)
    overlap = coo_matrix(
        (np.ones(t.size, np.int64), (t.ravel(), p.ravel())),
        shape=(true_ids.size, pred_ids.size),
    ).toarray()
    if true_ids[0] == 0:
        overlap = overlap[1:]
    if pred_ids[0] == 0:
        overlap = overlap[:, 1:]
    true_sizes = np.bincount(t.ravel(), minlength=true_ids.size)[int(true_ids[0] == 0) :]
    pred_sizes = np.bincount(p.ravel(), minlength=pred_ids.size)[int(pred_ids[0] == 0) :]
    union = true_sizes[:, None] + pred_sizes[None, :] - overlap
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, overlap / union, 0.0)


def match(iou: np.ndarray, threshold: float) -> MatchCounts:
    """Count TP/FP/FN for one image by maximum-cardinality matching at ``threshold``."""
    n_true, n_pred = iou.shape
    if n_true == 0 or n_pred == 0:
        return MatchCounts(0, n_pred, n_true, 0.0)
    eligible = iou >= threshold
    # Maximise the number of matches first, then the summed IoU among equally many.
    cost = -(eligible * (1.0 + iou / (2 * max(n_true, n_pred))))
    rows, cols = linear_sum_assignment(cost)
    keep = eligible[rows, cols]
    tp = int(keep.sum())
    return MatchCounts(tp, n_pred - tp, n_true - tp, float(iou[rows[keep], cols[keep]].sum()))


def scores(tp: int, fp: int, fn: int, sum_iou: float) -> dict[str, float]:
    """AP, precision, recall, F1 and PQ from pooled counts."""

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "ap": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": f1,
        "pq": ratio(sum_iou, tp) * f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def evaluate(
    truths: Iterable[np.ndarray],
    predictions: Iterable[np.ndarray],
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, dict]:
    """Pooled and per-image-mean metrics over pairs of instance label images.

    Parameters
    ----------
    truths, predictions : iterables of ndarray
        Matching sequences of label images (0 = background).
    thresholds : sequence of float
        IoU thresholds (default 0.50, 0.55, ..., 0.90).

    Returns
    -------
    dict
        ``{"pooled": {τ: scores}, "per_image_mean": {τ: scores}, "n_images": n}``
        where scores hold ``ap``, ``precision``, ``recall``, ``f1``, ``pq``
        (and pooled ``tp``, ``fp``, ``fn``).

    """
    totals = {t: np.zeros(4) for t in thresholds}
    per_image: dict[float, list[dict]] = {t: [] for t in thresholds}
    n_images = 0
    for truth, prediction in zip(truths, predictions, strict=True):
        iou = iou_matrix(truth, prediction)
        n_images += 1
        for t in thresholds:
            counts = match(iou, t)
            totals[t] += (counts.tp, counts.fp, counts.fn, counts.sum_iou)
            per_image[t].append(scores(counts.tp, counts.fp, counts.fn, counts.sum_iou))
    pooled = {t: scores(int(c[0]), int(c[1]), int(c[2]), float(c[3])) for t, c in totals.items()}
    mean = {
        t: {
            k: float(np.mean([s[k] for s in rows])) if rows else 0.0
            for k in ("ap", "precision", "recall", "f1", "pq")
        }
        for t, rows in per_image.items()
    }
    return {"pooled": pooled, "per_image_mean": mean, "n_images": n_images}
