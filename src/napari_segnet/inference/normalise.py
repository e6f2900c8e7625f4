"""Turn any microscopy plane into the network's input: robustly scaled, one or three channels.

Every modality is mapped to "bright objects on a dark background": an image
whose background is brighter than its objects (brightfield, H&E) is inverted.
A network that reads one channel sees colour images as their luminance; one
that reads three (``config.in_channels == 3``) sees them as their R, G and B,
each scaled with the luminance's low and high (so hue is kept) and inverted
when the luminance is, and sees a grey image as its normalised plane three
times. The same function prepares training and inference data, so the network
always sees what it was trained on.

A normalised plane is ``(Y, X)`` float32 for one channel and channels-first
``(C, Y, X)`` float32 for more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB_LUMINANCE = np.array([0.299, 0.587, 0.114])
CHANNELS = (1, 3)  # what a network can read: one plane, or R, G, B


def to_gray(plane: np.ndarray) -> np.ndarray:
    """Collapse a trailing RGB(A) sample axis into luminance (float32); pass 2-D planes through."""
    plane = np.asarray(plane)
    if plane.ndim == 3:
        return (plane[..., :3].astype(np.float32) @ RGB_LUMINANCE.astype(np.float32)).astype(
            np.float32
        )
    return plane.astype(np.float32, copy=False)


def normalise(
    plane: np.ndarray,
    percentiles: tuple[float, float] = (1.0, 99.8),
    *,
    invert: bool | None = None,
    channels: int = 1,
) -> np.ndarray:
    """Scale a 2-D (or RGB) plane so that the given percentiles map to 0 and 1.

    Parameters
    ----------
    plane : ndarray
        ``(Y, X)`` or ``(Y, X, 3|4)``; any numeric dtype. NaNs are treated as 0.
    percentiles : tuple of float
        Low and high percentiles (of the luminance, for colour images).
    invert : bool, optional
        Invert (``1 - x``) after scaling. By default decided from the image: if
        its most common intensity (the background) lies in the upper half of the
        range, the background is bright and the objects dark. The most common
        intensity, unlike the median, stays on the background when objects cover
        most of the image (confluent cells).
    channels : {1, 3}
        The channels the network reads (its ``config.in_channels``). 1: colour
        becomes luminance. 3: colour is kept as R, G, B, each scaled with the
        same low and high as the luminance and inverted with it; a grey plane is
        repeated in all three channels.

    Returns
    -------
    ndarray of float32
        ``(Y, X)`` for one channel, ``(3, Y, X)`` for three.

    """
    return normalisation_of(plane, percentiles, invert=invert, channels=channels).apply(plane)


@dataclass(frozen=True)
class Normalisation:
    """How a plane is scaled: ``low`` and ``high`` map to 0 and 1, then maybe inverted.

    ``channels`` is what the network reads: 1 (the luminance of colour images)
    or 3 (R, G, B; a grey plane three times), see :func:`normalise`.
    """

    low: float
    high: float
    invert: bool
    channels: int = 1

    def __post_init__(self):
        if self.channels not in CHANNELS:
            raise ValueError(
                f"A network reads one channel or three (R, G, B), not {self.channels}."
            )

    def apply(self, plane: np.ndarray) -> np.ndarray:
        """Return a plane, or any region of it, scaled to the network's float32 input.

        ``(Y, X)`` for one channel, channels-first ``(3, Y, X)`` for three.
        """
        plane = np.asarray(plane)
        if self.channels == 1:
            values = to_gray(plane)
        elif plane.ndim == 3:  # R, G, B (alpha dropped), each scaled as the luminance is
            values = np.ascontiguousarray(np.moveaxis(plane[..., :3], -1, 0), dtype=np.float32)
        else:
            values = to_gray(plane)
        scaled = (_finite(values) - self.low) / max(float(self.high - self.low), 1e-6)
        scaled = (1.0 - scaled if self.invert else scaled).astype(np.float32, copy=False)
        if self.channels > 1 and scaled.ndim == 2:  # a grey plane: the same in every channel
            return np.repeat(scaled[None], self.channels, axis=0)
        return scaled


class NormalisedView:
    """A plane (any array-like, lazy ones too) normalised region by region when indexed.

    ``view[..., rows, columns]`` (or ``view[rows, columns]``) reads that region
    of the plane and applies the normalisation to it only, so a window of a
    multi-GB plane can be handed to functions that take an array. Its
    ``shape`` is that of the network's input: ``(Y, X)``, or ``(C, Y, X)`` for
    a normalisation of several channels.
    """

    def __init__(self, plane, normalisation: Normalisation):
        self.plane, self.normalisation = plane, normalisation
        self.shape = network_shape(plane.shape[:2], normalisation.channels)
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        rows, columns = spatial_key(key)
        return self.normalisation.apply(np.asarray(self.plane[rows, columns]))


def network_shape(shape: tuple[int, int], channels: int) -> tuple[int, ...]:
    """Shape of the normalised plane of a ``(Y, X)`` plane: ``(Y, X)`` or ``(C, Y, X)``."""
    shape = tuple(int(n) for n in shape)
    return shape if channels == 1 else (channels, *shape)


def spatial_key(key) -> tuple:
    """Return the ``(rows, columns)`` of an index ``[rows, columns]`` or ``[..., rows, columns]``.

    Raises
    ------
    IndexError
        For any other index (normalised planes are read a region at a time).
    """
    key = key if isinstance(key, tuple) else (key,)
    if key and key[0] is Ellipsis:
        key = key[1:]
    if len(key) != 2:
        raise IndexError("A normalised plane is indexed by rows and columns: [..., rows, columns].")
    return key


def normalisation_of(
    plane,
    percentiles: tuple[float, float] = (1.0, 99.8),
    *,
    invert: bool | None = None,
    channels: int = 1,
) -> Normalisation:
    """Return the :class:`Normalisation` of a plane (see :func:`normalise`).

    Only a regular grid of about 512 × 512 of its pixels is read, so ``plane``
    may be a lazy (dask, zarr, memory-mapped) array of any size. ``low``,
    ``high`` and ``invert`` come from the luminance whatever ``channels`` is.
    """
    step_y, step_x = (max(1, n // 512) for n in plane.shape[:2])
    sample = _finite(to_gray(np.asarray(plane[::step_y, ::step_x])))
    low, high = np.percentile(sample, percentiles)
    if invert is None:
        invert = bool(high > low and _background_level(sample, low, high) > (low + high) / 2)
    return Normalisation(low, high, bool(invert), int(channels))


def _finite(gray: np.ndarray) -> np.ndarray:
    if not np.isfinite(gray).all():
        return np.nan_to_num(gray, nan=0.0, posinf=0.0, neginf=0.0)
    return gray


def _background_level(sample: np.ndarray, low: float, high: float) -> float:
    """Return the most common intensity between ``low`` and ``high`` (smoothed histogram)."""
    counts, edges = np.histogram(np.clip(sample, low, high), bins=64, range=(low, high + 1e-6))
    peak = int(np.argmax(np.convolve(counts, np.ones(3) / 3, mode="same")))
    return float(edges[peak] + edges[peak + 1]) / 2
