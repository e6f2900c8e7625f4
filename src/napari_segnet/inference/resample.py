"""Bilinear resampling of a plane, window by window, with the same numbers as the whole plane.

A plane is predicted zoomed (objects brought to the size the network was trained
at) by resampling it with :func:`resample_window` and resampling the network's
outputs back with the same function. Every resampled value depends only on its
own position in the whole plane, so a window of the plane gives exactly the
numbers of the whole plane: tiles and blocks can be zoomed one by one.
"""

from __future__ import annotations

import numpy as np


def zoomed_shape(shape: tuple[int, ...], scale: float) -> tuple[int, ...]:
    """Shape of a plane zoomed by ``scale``: ``round(n × scale)`` pixels an axis, at least 1.

    The rounding of :func:`scipy.ndimage.zoom`.
    """
    return tuple(max(1, round(float(n * scale))) for n in shape)


def resample_window(
    read,
    in_shape: tuple[int, int],
    out_shape: tuple[int, int],
    rows: slice,
    columns: slice,
    *,
    mirror: bool = False,
) -> np.ndarray:
    """Return a window of a plane resampled (bilinearly) from ``in_shape`` to ``out_shape``.

    Pixels are aligned as areas: output pixel ``o`` of an axis samples the input
    at ``(o + 0.5) × n_in / n_out - 0.5``. Samples up to half a pixel beyond the
    plane's first or last pixel centre take the edge pixel's value, or with
    ``mirror`` the value mirrored about it. That is what
    ``ndimage.zoom(plane, z, order=1, grid_mode=True, mode="nearest")`` and
    ``skimage.transform.resize(plane, shape, order=1, anti_aliasing=False)``
    compute, to float rounding. Rows are interpolated first, then columns, in
    float32. A value depends only on where it lies in the whole plane, so any
    window is exactly that window of the whole resampled plane.

    Parameters
    ----------
    read : callable
        ``read(rows, columns)`` returns the input's region ``(..., rows, columns)``
        (two slices within ``in_shape``); leading axes (e.g. classes) are kept.
    in_shape, out_shape : tuple of int
        ``(Y, X)`` of the whole input and the whole output plane.
    rows, columns : slice
        The window of the output plane to compute (non-empty, within ``out_shape``).
    mirror : bool
        Mirror the plane about its edge pixels instead of repeating them.

    Returns
    -------
    ndarray of float32, shape (..., rows, columns)

    """
    (row_span, *row_samples), (column_span, *column_samples) = (
        _samples(window.start, window.stop, n_in, n_out, mirror)
        for window, n_in, n_out in zip((rows, columns), in_shape, out_shape)
    )
    region = np.asarray(read(row_span, column_span), dtype=np.float32)
    return _interpolate(_interpolate(region, -2, *row_samples), -1, *column_samples)


def resample(array: np.ndarray, shape: tuple[int, int], *, mirror: bool = False) -> np.ndarray:
    """Return a whole ``(..., Y, X)`` array resampled to ``shape`` (see :func:`resample_window`)."""
    return resample_window(
        lambda rows, columns: array[..., rows, columns],
        array.shape[-2:],
        shape,
        slice(0, shape[0]),
        slice(0, shape[1]),
        mirror=mirror,
    )


def source_span(start: int, stop: int, n_in: int, n_out: int, *, mirror: bool = False) -> slice:
    """Return the input pixels that output pixels ``start:stop`` of an axis interpolate between."""
    return _samples(start, stop, n_in, n_out, mirror)[0]


def _samples(start: int, stop: int, n_in: int, n_out: int, mirror: bool = False):
    """Where output pixels ``start:stop`` of an axis sample the input.

    Returns the input's span read, the two neighbours of every sample (relative
    to the span) and the weight of the second one.
    """
    where = (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if mirror and n_in > 1:  # at most half a pixel beyond an edge: one reflection is enough
        where = np.where(where < 0, -where, where)
        where = np.where(where > n_in - 1, 2 * (n_in - 1) - where, where)
    where = np.clip(where, 0.0, n_in - 1)
    first = np.floor(where).astype(np.intp)
    weight = (where - first).astype(np.float32)
    second = np.minimum(first + 1, n_in - 1)
    span = slice(int(first.min()), int(second.max()) + 1)
    return span, first - span.start, second - span.start, weight


def _interpolate(values, axis, first, second, weight) -> np.ndarray:
    """Linear interpolation along ``axis``: ``values[first] × (1 - w) + values[second] × w``."""
    shape = [1] * values.ndim
    shape[axis] = -1
    weight = weight.reshape(shape)
    result = np.take(values, first, axis=axis)
    result *= 1 - weight
    other = np.take(values, second, axis=axis)
    other *= weight
    result += other
    return result
