"""Per-object properties of a label image: shape, in pixels and micrometres, and intensities."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from napari_segnet.measure.shape import shape_columns, shape_descriptors

LABEL_AXES = ("YX", "ZYX", "TYX", "TZYX")
_STATS = ("mean", "max", "min", "std", "sum")
# Label ids up to this many per pixel are mapped with a lookup table, larger ones by sorting.
_LUT_SLACK = 2


def sanitise_channel_names(names: Sequence[Any]) -> list[str]:
    """Turn channel names into unique strings usable inside column names.

    Every run of characters other than ``[A-Za-z0-9]`` becomes ``"_"``, leading
    and trailing ``"_"`` are stripped, an empty result becomes ``ch{i}`` and
    repeated names get ``_2``, ``_3``, ... appended in order.

    Parameters
    ----------
    names : sequence
        One name per channel; non-strings are converted with :func:`str`.

    Returns
    -------
    list of str
        The sanitised, unique names, in the same order.

    Examples
    --------
    >>> sanitise_channel_names(["DAPI", "Alexa Fluor 488", "Alexa Fluor 488", ""])
    ['DAPI', 'Alexa_Fluor_488', 'Alexa_Fluor_488_2', 'ch3']

    """
    result: list[str] = []
    for i, name in enumerate(names):
        clean = re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_") or f"ch{i}"
        unique, k = clean, 2
        while unique in result:
            unique, k = f"{clean}_{k}", k + 1
        result.append(unique)
    return result


def measure(
    labels: Any,
    image: Any = None,
    *,
    axes: str | None = None,
    channel_axis: int | None = None,
    channel_names: Sequence[str] | None = None,
    spacing: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Measure every labelled object: size, position, shape and intensities.

    Parameters
    ----------
    labels : array_like of int
        Instance labels, 0 is background. ``(Y, X)`` or ``(Z, Y, X)``, optionally
        with a leading time axis. NumPy, dask or any array-like: frames are read
        one at a time with :func:`numpy.asarray`.
    image : array_like, optional
        Intensities with the labels' shape (one channel) or with one extra
        channel axis.
    axes : str, optional
        The labels' axes: ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``. Default
        ``"YX"`` for 2D and ``"ZYX"`` for 3D labels; required for 4D labels.
        With ``"T"`` every frame is measured separately.
    channel_axis : int, optional
        Position of the channel axis in `image`. Default: the first axis whose
        removal leaves the labels' shape.
    channel_names : sequence of str, optional
        One name per channel, sanitised with :func:`sanitise_channel_names`.
        Default ``ch0``, ``ch1``, ...
    spacing : sequence of float, optional
        Pixel size in micrometres along each spatial axis (``(Y, X)`` or
        ``(Z, Y, X)``, never T). Adds the ``*_um*`` columns.

    Returns
    -------
    pandas.DataFrame
        One row per object, sorted by ``frame`` (only with a T axis) then
        ``label``. Columns, 2D: ``label``, ``area_px``, [``area_um2``],
        ``centroid_{y,x}_px``, [``centroid_{y,x}_um``], ``bbox_{y,x}_min``,
        ``bbox_{y,x}_max`` (pixel indices, max exclusive), ``perimeter_px``,
        [``perimeter_um``], ``eccentricity``, ``solidity``,
        ``{major,minor}_axis_length_px``, [``{major,minor}_axis_length_um``],
        ``orientation`` (radians, scikit-image convention). 3D: ``volume_px``,
        [``volume_um3``], z/y/x centroid and bbox, ``solidity`` and axis
        lengths. Then ``intensity_{mean,max,min,std,sum}_<channel>`` per
        channel (float64, population std). Bracketed columns need `spacing`.

    Raises
    ------
    ValueError
        If axes, shapes, spacing or channel names are inconsistent, or labels
        are negative.
    TypeError
        If labels are not integers or the image is not numeric.

    Notes
    -----
    Every column is computed for all objects at once with array operations
    (see :mod:`napari_segnet.measure.shape`), with the definitions of
    :func:`skimage.measure.regionprops`: the 4-connected ``perimeter``, the
    inertia tensor for axis lengths, eccentricity and orientation, and
    ``solidity``, the area over the pixel count of
    :func:`skimage.morphology.convex_hull_image` (in 3D one object at a time).

    With `spacing`, eccentricity and orientation describe the object in
    physical space (a round nucleus imaged with rectangular pixels has
    eccentricity ~0), and axis lengths in µm come from the calibrated inertia
    tensor, so they are right for anisotropic pixels. ``perimeter_um`` is only
    given for isotropic spacing: the perimeter estimate weights steps on a
    square grid, and scikit-image refuses anisotropic spacing for it.

    3D objects one voxel thick get the solidity of their 2D slice, as their 3D
    hull is flat; other flat ones (e.g. three voxels on a diagonal plane) get NaN.

    """
    labels = _as_array(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise TypeError(f"labels must be integers, not {labels.dtype}.")
    axes = check_label_axes(axes, labels.ndim)
    has_t = axes.startswith("T")
    ndim = len(axes) - has_t
    spacing_arr = check_spacing(spacing, ndim)

    image = None if image is None else _as_array(image)
    axis = _channel_axis(labels.shape, image, channel_axis)
    n_channels = 0 if image is None else (1 if axis is None else image.shape[axis])
    if channel_names is None:
        channel_names = [f"ch{i}" for i in range(n_channels)]
    if len(channel_names) != n_channels:
        raise ValueError(f"Got {len(channel_names)} channel names for {n_channels} channel(s).")
    names = sanitise_channel_names(channel_names)

    spec = _column_spec(ndim, names, spacing_arr)
    parts = []
    for t in range(labels.shape[0]) if has_t else [None]:
        frame_labels = np.asarray(labels if t is None else labels[t])
        columns = _measure_frame(frame_labels, _frame_channels(image, axis, t), names, spacing_arr)
        if has_t:
            columns["frame"] = np.full(columns["label"].size, t, dtype=np.int64)
        parts.append(columns)
    if has_t:
        spec.insert(0, ("frame", np.int64))
    data = {name: np.concatenate([p[name] for p in parts]).astype(dtype) for name, dtype in spec}
    return pd.DataFrame(data)


def _as_array(data: Any) -> Any:
    # Keep lazy arrays lazy: only the frame being measured is loaded.
    if all(hasattr(data, attr) for attr in ("shape", "dtype", "ndim", "__getitem__")):
        return data
    return np.asarray(data)


def check_label_axes(axes: str | None, ndim: int) -> str:
    """Return the labels' axes (``YX`` or ``ZYX`` by default), or raise ValueError."""
    if axes is None:
        if ndim not in (2, 3):
            raise ValueError(f"labels have {ndim} dimensions; pass axes, e.g. 'TZYX'.")
        return "YX" if ndim == 2 else "ZYX"
    axes = axes.upper()
    if axes not in LABEL_AXES or len(axes) != ndim:
        raise ValueError(f"axes {axes!r} must be one of {LABEL_AXES} with {ndim} letters.")
    return axes


def check_spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray | None:
    """Return ``spacing`` as ``ndim`` positive sizes (None stays None), or raise ValueError."""
    if spacing is None:
        return None
    values = np.asarray(spacing, dtype=np.float64)
    if values.shape != (ndim,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(
            f"spacing must be {ndim} finite positive pixel sizes (one per spatial axis), "
            f"got {spacing!r}."
        )
    return values


def _channel_axis(labels_shape: tuple, image: Any, channel_axis: int | None) -> int | None:
    if image is None:
        return None
    kind = np.dtype(image.dtype).kind
    if kind not in "biuf":
        raise TypeError(f"image must hold real numbers, not {image.dtype}.")
    shape, labels_shape = tuple(image.shape), tuple(labels_shape)
    if channel_axis is None and shape == labels_shape:
        return None
    if len(shape) == len(labels_shape) + 1:
        candidates = range(len(shape)) if channel_axis is None else [channel_axis % len(shape)]
        for i in candidates:
            if shape[:i] + shape[i + 1 :] == labels_shape and channel_axis in (
                None,
                i,
                i - len(shape),
            ):
                return i
    raise ValueError(
        f"image shape {shape} does not fit labels shape {labels_shape}: expected the "
        "same shape, or that shape plus one channel axis (at channel_axis if given)."
    )


def _frame_channels(image: Any, axis: int | None, t: int | None) -> list[np.ndarray]:
    if image is None:
        return []
    if t is not None:
        # The time axis is the image's first one unless channels come first.
        image = image[:, t] if axis == 0 else image[t]
        axis = None if axis is None else max(axis - 1, 0)
    frame = np.asarray(image)
    return [frame] if axis is None else list(np.moveaxis(frame, axis, 0))


def _compact_ids(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted label ids present and, per pixel, its row index 0..n-1."""
    if values.dtype == bool:
        values = values.view(np.uint8)
    if np.issubdtype(values.dtype, np.signedinteger) and values.min() < 0:
        raise ValueError("labels must be non-negative (0 is background).")
    top = int(values.max())
    if top <= _LUT_SLACK * size + 65536:
        values = values.astype(np.intp, copy=False)
        ids = np.flatnonzero(np.bincount(values, minlength=top + 1))
        lut = np.zeros(top + 1, dtype=np.intp)
        lut[ids] = np.arange(ids.size)
        return ids, lut[values]
    # Huge, sparse ids (e.g. hashes): sort instead of a table of `top` entries.
    ids, inverse = np.unique(values, return_inverse=True)
    return ids, inverse.reshape(-1)


def _measure_frame(
    labels: np.ndarray, channels: list[np.ndarray], names: list[str], spacing: np.ndarray | None
) -> dict[str, np.ndarray]:
    flat = labels.reshape(-1)
    fg = np.flatnonzero(flat)
    if fg.size == 0:
        return {name: np.empty(0, dt) for name, dt in _column_spec(labels.ndim, names, spacing)}
    ids, idx = _compact_ids(flat[fg], flat.size)
    counts = np.bincount(idx, minlength=ids.size).astype(np.float64)
    coords = np.unravel_index(fg, labels.shape)
    columns = {"label": ids.astype(np.int64)} | _geometry(idx, counts, coords, spacing)
    centroid = [columns[f"centroid_{a}_px"] for a in "zyx"[-labels.ndim :]]
    columns |= shape_descriptors(labels.shape, coords, idx, counts, centroid, spacing)
    for name, channel in zip(names, channels):
        values = np.asarray(channel).reshape(-1)[fg].astype(np.float64)
        columns |= _intensity(idx, counts, values, name)
    return columns


def _geometry(
    idx: np.ndarray, counts: np.ndarray, coords: tuple, spacing: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Size, centroid and bounding box of every object."""
    ndim, n = len(coords), counts.size
    size, unit = ("area", "um2") if ndim == 2 else ("volume", "um3")
    out: dict[str, np.ndarray] = {f"{size}_px": counts.astype(np.int64)}
    centroid = [np.bincount(idx, c, minlength=n) / counts for c in coords]
    for a, c, m in zip("zyx"[-ndim:], coords, centroid):
        low, high = np.full(n, np.iinfo(np.intp).max), np.full(n, -1)
        np.minimum.at(low, idx, c)
        np.maximum.at(high, idx, c)
        out |= {f"centroid_{a}_px": m, f"bbox_{a}_min": low, f"bbox_{a}_max": high + 1}
    if spacing is not None:
        out[f"{size}_{unit}"] = counts * np.prod(spacing)
        out |= {f"centroid_{a}_um": m * s for a, m, s in zip("zyx"[-ndim:], centroid, spacing)}
    return out


def _intensity(
    idx: np.ndarray, counts: np.ndarray, values: np.ndarray, name: str
) -> dict[str, np.ndarray]:
    n = counts.size
    total = np.bincount(idx, values, minlength=n)
    mean = total / counts
    # Two passes (mean, then squared deviations) keep the std exact for bright, flat objects.
    deviation = values - mean[idx]
    np.square(deviation, out=deviation)
    std = np.sqrt(np.bincount(idx, deviation, minlength=n) / counts)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, idx, values)
    np.maximum.at(high, idx, values)
    stats = {"mean": mean, "max": high, "min": low, "std": std, "sum": total}
    return {f"intensity_{stat}_{name}": stats[stat] for stat in _STATS}


def _column_spec(ndim: int, names: list[str], spacing: np.ndarray | None) -> list[tuple]:
    """Return ``(column, dtype)`` in output order; the one place the layout lives."""
    letters = "zyx"[-ndim:]
    size, unit = ("area", "um2") if ndim == 2 else ("volume", "um3")
    calibrated = spacing is not None
    i8, f8 = np.int64, np.float64
    spec: list[tuple] = [("label", i8), (f"{size}_px", i8)]
    spec += [(f"{size}_{unit}", f8)] if calibrated else []
    spec += [(f"centroid_{a}_px", f8) for a in letters]
    spec += [(f"centroid_{a}_um", f8) for a in letters] if calibrated else []
    spec += [(f"bbox_{a}_min", i8) for a in letters] + [(f"bbox_{a}_max", i8) for a in letters]
    spec += [(name, f8) for name in shape_columns(ndim, spacing)]
    spec += [(f"intensity_{stat}_{name}", f8) for name in names for stat in _STATS]
    return spec
