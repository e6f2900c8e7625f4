"""Turn any microscopy plane into the network's input: one channel, robustly scaled.

Every modality is mapped to "bright objects on a dark background": colour
images become their luminance, and an image whose background is brighter than
its objects (brightfield, H&E) is inverted. The same function prepares training
and inference data, so the network always sees what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    return normalisation_of(plane, percentiles, invert=invert).apply(plane)


@dataclass(frozen=True)
class Normalisation:
    """How a plane is scaled: ``low`` and ``high`` map to 0 and 1, then maybe inverted."""

    low: float
    high: float
    invert: bool

    def apply(self, plane: np.ndarray) -> np.ndarray:
        """Return a plane, or any region of it, scaled to the network's float32 input."""
        gray = _finite(to_gray(plane))
        scaled = (gray - self.low) / max(float(self.high - self.low), 1e-6)
        return (1.0 - scaled if self.invert else scaled).astype(np.float32, copy=False)


def normalisation_of(
    plane, percentiles: tuple[float, float] = (1.0, 99.8), *, invert: bool | None = None
) -> Normalisation:
    """Return the :class:`Normalisation` of a plane (see :func:`normalise`).

    Only a regular grid of about 512 × 512 of its pixels is read, so ``plane``
    may be a lazy (dask, zarr, memory-mapped) array of any size.
    """
    step_y, step_x = (max(1, n // 512) for n in plane.shape[:2])
    sample = _finite(to_gray(np.asarray(plane[::step_y, ::step_x])))
    low, high = np.percentile(sample, percentiles)
    if invert is None:
        invert = bool(high > low and _background_level(sample, low, high) > (low + high) / 2)
    return Normalisation(low, high, bool(invert))


def _finite(gray: np.ndarray) -> np.ndarray:
    if not np.isfinite(gray).all():
        return np.nan_to_num(gray, nan=0.0, posinf=0.0, neginf=0.0)
    return gray


def _background_level(sample: np.ndarray, low: float, high: float) -> float:
    """Return the most common intensity between ``low`` and ``high`` (smoothed histogram)."""
    counts, edges = np.histogram(np.clip(sample, low, high), bins=64, range=(low, high + 1e-6))
    peak = int(np.argmax(np.convolve(counts, np.ones(3) / 3, mode="same")))
    return float(edges[peak] + edges[peak + 1]) / 2
