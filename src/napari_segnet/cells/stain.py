"""Membrane or cytoplasm: what a cell stain looks like, and the cell foreground it gives."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu, threshold_triangle

StainKind = Literal["membrane", "cytoplasm"]

# A dim region around a nucleus this many times the nucleus' size is a cell interior enclosed by
# rims; a cytoplasm stain leaves at most the (unstained) nucleus itself dim, a ratio near 1.
ENCLOSURE_RATIO = 1.5


def smooth(stain: np.ndarray, smoothing: float | None, sampling: np.ndarray | None) -> np.ndarray:
    """Gaussian-smoothed stain as float32; `smoothing` in the units of `sampling`.

    The default, ``None``, is one pixel along the finest axis.
    """
    stain = np.asarray(stain)
    if stain.dtype.kind not in "biuf":
        raise ValueError(f"The stain must hold real numbers, not {stain.dtype}.")
    pixel = np.ones(stain.ndim) if sampling is None else np.asarray(sampling, dtype=np.float64)
    if smoothing is None:
        smoothing = float(pixel.min())
    if isinstance(smoothing, bool) or not isinstance(smoothing, int | float | np.number):
        raise ValueError(f"The smoothing must be a number, not {smoothing!r}.")
    if not (np.isfinite(smoothing) and smoothing >= 0):
        raise ValueError(f"The smoothing must be zero or positive, not {smoothing!r}.")
    image = stain.astype(np.float32, copy=False)
    if smoothing == 0:
        return image
    return ndi.gaussian_filter(image, sigma=tuple(smoothing / pixel))


def default_threshold(smoothed: np.ndarray, kind: StainKind) -> float:
    """Level of the smoothed stain above which a pixel is stained, for each kind of stain.

    Membrane: the triangle threshold, the base of the histogram's dominant dim
    peak (cell interiors and background). Rims between two cells hold two
    membranes and the outer rim of a cell facing background only one, half as
    bright; Otsu's threshold, halfway between the populations, loses the
    single ones and lets cells out into the background. Cytoplasm: Otsu's
    threshold, as a fill and the background are two populations of similar weight.
    """
    values = np.asarray(smoothed)
    if values.size == 0 or values.min() == values.max():
        return float(values.min()) if values.size else 0.0
    if kind == "membrane":
        return float(threshold_triangle(values))
    return float(threshold_otsu(values))


def detect_stain_kind(
    nuclei: np.ndarray,
    stain: np.ndarray,
    *,
    spacing=None,
    smoothing: float | None = None,
    threshold: float | None = None,
    smoothed: bool = False,
) -> StainKind:
    """Tell a membrane stain (a ridge at the outline) from a cytoplasm stain (a fill).

    The rule: threshold the smoothed stain (Otsu unless `threshold` is given)
    and, for every nucleus, find the dim region around it (the connected region
    below the threshold that holds most of its pixels). Membrane rims enclose a
    dim cell interior larger than the nucleus; a cytoplasm stain is bright
    right up to the nucleus, so the dim region is the nucleus itself, or there
    is none when the stain also fills the nucleus. The stain is a membrane stain
    when, for more than half of the nuclei, the dim region is at least
    :data:`ENCLOSURE_RATIO` times the nucleus' size.

    Parameters
    ----------
    nuclei : ndarray of int
        Nucleus labels, 2-D or 3-D.
    stain : ndarray
        The cell stain, same shape.
    spacing : sequence of float, optional
        Pixel size per axis, for `smoothing`.
    smoothing : float, optional
        Gaussian standard deviation in the units of `spacing`; default one pixel.
    threshold : float, optional
        Level of the smoothed stain that separates stain from the rest.
    smoothed : bool
        `stain` is already smoothed: use it as is.

    Returns
    -------
    {"membrane", "cytoplasm"}
        The kind of stain; ``"cytoplasm"`` when there is no nucleus to judge by.

    Notes
    -----
    The rule misreads a cytoplasm stain where most nuclei touch unstained
    background or where most cells are dimmer than the threshold, and a
    membrane stain whose rims press against most nuclei. Pass the kind
    explicitly when it is known.

    """
    nuclei = np.asarray(nuclei)
    sampling = None if spacing is None else np.asarray(spacing, dtype=np.float64)
    image = np.asarray(stain, dtype=np.float32) if smoothed else smooth(stain, smoothing, sampling)
    if image.shape != nuclei.shape:
        raise ValueError(f"The stain's shape {image.shape} is not the nuclei's {nuclei.shape}.")
    inside = nuclei > 0
    if not inside.any():
        return "cytoplasm"
    if threshold is None:
        threshold = default_threshold(image, "cytoplasm")
    dim, _ = ndi.label(image <= threshold)
    ids, nucleus_index = np.unique(nuclei[inside], return_inverse=True)
    region = dim[inside].astype(np.int64)
    region_size = np.bincount(dim.reshape(-1))
    # Pair every nucleus pixel with the dim region it lies in; the commonest pair per nucleus wins.
    pairs, counts = np.unique(np.stack([nucleus_index, region]), axis=1, return_counts=True)
    order = np.lexsort((-counts, pairs[0]))
    first = order[np.r_[True, pairs[0][order][1:] != pairs[0][order][:-1]]]
    nucleus_size = np.bincount(nucleus_index, minlength=ids.size)
    ratio = np.zeros(ids.size)
    chosen_region = pairs[1][first]
    has_dim = chosen_region > 0
    ratio[pairs[0][first][has_dim]] = (
        region_size[chosen_region[has_dim]] / nucleus_size[pairs[0][first][has_dim]]
    )
    return "membrane" if np.mean(ratio >= ENCLOSURE_RATIO) > 0.5 else "cytoplasm"


def stain_foreground(nuclei: np.ndarray, bright: np.ndarray, kind: StainKind) -> np.ndarray:
    """Return the pixels a cell may take, given where the smoothed stain is above its threshold.

    Membrane: the rims and every dim region that holds a nucleus (what the rims
    enclose), not the dim space outside them. Cytoplasm: the stain, and the dim
    holes the nuclei leave in it (dim regions less than
    :data:`ENCLOSURE_RATIO` times the nucleus pixels they hold). The nuclei
    always belong.
    """
    inside = nuclei > 0
    dim, _ = ndi.label(~bright)
    size = np.bincount(dim.reshape(-1))
    held = np.bincount(dim[inside], minlength=size.size)  # nucleus pixels in each dim region
    if kind == "membrane":
        keep = held > 0
    else:
        # Only the hole the nucleus leaves in a fill, not the dim space it may touch.
        keep = (held > 0) & (size < ENCLOSURE_RATIO * held)
    keep[0] = True  # label 0: the stained pixels themselves
    return keep[dim] | inside
