"""Turn any microscopy plane into the network's input: one channel, robustly scaled.

Every modality is mapped to "bright objects on a dark background": colour
images become their luminance, and an image whose background is brighter than
its objects (brightfield, H&E) is inverted. The same function prepares training
and inference data, so the network always sees what it was trained on.
"""

from __future__ import annotations

import numpy as np

RGB_LUMINANCE = np.array([0.299, 0.587, 0.114])


def to_gray(plane: np.ndarray) -> np.ndarray:
    """Collapse a trailing RGB(A) sample axis into luminance (float32); pass 2-D planes through."""
    plane = np.asarray(plane)
    if plane.ndim == 3:
        return (plane[..., :3].astype(np.float32) @ RGB_LUMINANCE.astype(np.float32)).astype(
            np.float32
        )
    return plane.astype(np.float32, copy=False)


def normalise(
    plane: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.8), *, invert: bool | None = None
) -> np.ndarray:
    """Scale a 2-D (or RGB) plane so that the given percentiles map to 0 and 1.

    Parameters
    ----------
    plane : ndarray
        ``(Y, X)`` or ``(Y, X, 3|4)``; any numeric dtype. NaNs are treated as 0.
    percentiles : tuple of float
        Low and high percentiles.
    invert : bool, optional
        Invert (``1 - x``) after scaling. By default decided from the image: if
        its most common intensity (the background) lies in the upper half of the
        range, the background is bright and the objects dark. The most common
        intensity, unlike the median, stays on the background when objects cover
        most of the image (confluent cells).

    Returns
    -------
    ndarray of float32

    """
    gray = to_gray(plane)
    if not np.isfinite(gray).all():
        gray = np.nan_to_num(gray, nan=0.0, posinf=0.0, neginf=0.0)
    sample = gray[:: max(1, gray.shape[0] // 512), :: max(1, gray.shape[1] // 512)]
    low, high = np.percentile(sample, percentiles)
    scaled = (gray - low) / max(float(high - low), 1e-6)
    if invert is None:
        invert = bool(high > low and _background_level(sample, low, high) > (low + high) / 2)
    return (1.0 - scaled if invert else scaled).astype(np.float32, copy=False)


def _background_level(sample: np.ndarray, low: float, high: float) -> float:
    """Return the most common intensity between ``low`` and ``high`` (smoothed histogram)."""
    counts, edges = np.histogram(np.clip(sample, low, high), bins=64, range=(low, high + 1e-6))
    peak = int(np.argmax(np.convolve(counts, np.ones(3) / 3, mode="same")))
    return float(edges[peak] + edges[peak + 1]) / 2
