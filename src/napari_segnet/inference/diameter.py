"""Estimate the typical object diameter of an image, so that it can be rescaled to the model's.

A network sees objects best at the size it was trained at
(``config.object_diameter_px``). Users rarely know their nuclei's diameter in
pixels, and a lab imaging at 20× instead of 40× halves it. So segmentation
first measures it: the network segments a window of the image (at most
``WINDOW`` pixels square, from its centre) as it is; the median
equivalent diameter of the objects found gives the zoom to the trained size.
Nuclei far larger than the model's break into pieces of about its size, so
unless the objects found are clearly small, the window is also measured at
half the zoom (a quarter of the cost), and taken from there when the objects
are whole there: clearly larger. When the zoom differs from 1, objects found at the wrong size are
unreliable, so the window is segmented once more at that zoom and measured
again (nothing found there: no rescaling). The zoom stays within
:data:`ZOOM_RANGE`. Objects are made with the model's own thresholds
(``config.instance_settings``), whatever thresholds the image is then segmented with:
the size is the image's, and trying other thresholds on the same network outputs (see
:mod:`napari_segnet.inference.reuse`) never changes the zoom. A model
sees sizes within ``config.object_diameter_tolerance`` of its own well, so no
rescaling happens there (and a whole small image's first pass is its result).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from napari_segnet.progress import Progress

AUTO = "auto"
WINDOW = 512  # edge of the window measured, in the network's pixels
MIN_OBJECTS = 5  # fewer objects away from the window's edge: edge objects count too
FALLBACK_ZOOMS = (0.25, 2.0)  # tried in turn when no pass has found anything
FRAGMENTED = 1.5  # objects this much larger at half the zoom were cut into pieces at zoom 1
ZOOM_RANGE = (0.25, 4.0)  # automatic sizing zooms no further than this


@dataclass(frozen=True)
class DiameterEstimate:
    """What :func:`iter_estimate_diameter` measured.

    Attributes
    ----------
    diameter : float or None
        Median equivalent diameter of the objects, in the image's pixels (None:
        no object was found, and the image is segmented as it is).
    objects : int
        How many objects the median is over.
    scale : float
        Zoom that brings the objects to the model's size; 1 within the model's
        tolerance.
    first_pass : tuple or None
        ``(labels, probabilities)`` of the first pass when it covered the
        whole plane at zoom 1 and no rescaling is needed: the plane's network
        outputs, and its labels with the model's own thresholds.

    """

    diameter: float | None
    objects: int
    scale: float = 1.0
    first_pass: tuple | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """E.g. ``'estimated object diameter 23.4 px from 118 objects, zoom 0.73'``."""
        if self.diameter is None:
            return "no objects found to estimate their diameter: the image was not rescaled"
        zoom = f", zoom {self.scale:.2f}" if self.scale != 1.0 else ", not rescaled"
        return f"estimated object diameter {self.diameter:.1f} px from {self.objects} objects{zoom}"


def zoom_for(model, diameter: float | None) -> float:
    """Zoom that brings objects of ``diameter`` pixels to the model's size (1 within tolerance)."""
    trained = getattr(model.config, "object_diameter_px", None)
    if not diameter or not trained:
        return 1.0
    zoom = float(np.clip(trained / diameter, *ZOOM_RANGE))
    tolerance = getattr(model.config, "object_diameter_tolerance", 1.5)
    return 1.0 if 1 / tolerance <= zoom <= tolerance else zoom


def median_object_diameter(labels: np.ndarray) -> tuple[float | None, int]:
    """Median equivalent diameter of the objects in a label image, and how many.

    Objects touching the edge are cut, so they are left out when at least
    :data:`MIN_OBJECTS` others remain.
    """
    areas = np.bincount(labels.ravel())
    present = areas > 0
    present[0] = False
    edge = np.zeros_like(present)
    for border in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[np.unique(border)] = True
    inner = present & ~edge
    chosen = inner if inner.sum() >= MIN_OBJECTS else present
    if not chosen.any():
        return None, 0
    return float(2 * np.sqrt(np.median(areas[chosen]) / np.pi)), int(chosen.sum())


def central_window(shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """Return the centred region of at most ``size`` × ``size`` pixels of a plane."""
    return tuple(
        slice(max(0, (n - size) // 2), max(0, (n - size) // 2) + min(n, size)) for n in shape
    )


def iter_estimate_diameter(
    model,
    plane,
    *,
    device=None,
    window: int = WINDOW,
    **segment_options,
) -> Generator[Progress, None, DiameterEstimate]:
    """Measure the typical object diameter of a normalised plane; yield progress.

    Parameters
    ----------
    model : SegNet
        The network that will segment the plane (its size and tolerance are
        read from its config).
    plane : array-like, shape (Y, X) or (C, Y, X)
        The normalised plane (channels-first for a network that reads several);
        only a central window of about ``window`` pixels square is read
        (``plane[..., rows, columns]``), so it may be a lazy array of any size.
    device : torch.device, optional
        Where the model runs.
    window : int
        Edge of the measured window in the network's pixels.
    **segment_options
        Passed to :func:`~napari_segnet.inference.segment.segment_normalised`
        (tiling and precision, so that a first pass over a whole plane has its
        network outputs), except thresholds: objects are made with the model's
        own (``instance_settings`` and ``star_settings`` are replaced).

    Returns
    -------
    DiameterEstimate

    """
    from .plane import instance_settings_of, segment_normalised

    segment_options = {
        **segment_options,
        "instance_settings": instance_settings_of(model),
        "star_settings": None,
    }
    rows, columns = central_window(plane.shape[-2:], window)
    sample = np.asarray(plane[..., rows, columns], dtype=np.float32)
    whole = sample.shape[-2:] == tuple(plane.shape[-2:])

    def measure(zoom: float):
        # Keep the network's input within `window` pixels square.
        part = central_window(sample.shape[-2:], max(32, int(window / max(zoom, 1.0))))
        result = yield from segment_normalised(
            model, sample[(..., *part)], device=device, scale=zoom, **segment_options
        )
        return (*median_object_diameter(result[0]), result)

    diameter, objects, first = yield from measure(1.0)
    trained = getattr(model.config, "object_diameter_px", None) or 0
    if diameter is None or objects < MIN_OBJECTS or diameter * FRAGMENTED >= trained:
        # Nuclei far larger than the model's fall apart into pieces of about its size, or
        # into a few odd shapes: at half the zoom they are whole again, and clearly larger
        # (merged pairs of small nuclei would be √2 larger, less than FRAGMENTED).
        halved, found, _ = yield from measure(0.5)
        few = diameter is None or objects < MIN_OBJECTS
        if halved is not None and (few or halved >= FRAGMENTED * diameter):
            diameter, objects = halved, found
    for zoom in FALLBACK_ZOOMS:
        if diameter is not None:
            break
        diameter, objects, _ = yield from measure(zoom)
    if diameter is None:
        return DiameterEstimate(None, 0)
    zoom = zoom_for(model, diameter)
    if zoom != 1.0:  # measured at the wrong size: measure again near the right one
        again, found, _ = yield from measure(zoom)
        if again is None:  # nothing at that zoom: the estimate was wrong
            return DiameterEstimate(round(diameter, 1), objects)
        diameter, objects = again, found
        zoom = zoom_for(model, diameter)
    reuse = first if whole and zoom == 1.0 else None
    return DiameterEstimate(round(diameter, 1), objects, zoom, reuse)
