"""Per-object properties of a label image: shape, in pixels and micrometres, and intensities."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

_AXES = ("YX", "ZYX", "TYX", "TZYX")
_STATS = ("mean", "max", "min", "std", "sum")
# Label ids up to this many per pixel are mapped with a lookup table, larger ones by sorting.
_LUT_SLACK = 2
# scikit-image's weights for the 4-connected perimeter, indexed by the neighbourhood code.
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2


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
    Everything but solidity is computed for all objects at once (bincounts),
    with the formulas of :func:`skimage.measure.regionprops`: the 4-connected
    ``perimeter`` and the inertia tensor for axis lengths, eccentricity and
    orientation. Solidity needs one :func:`skimage.morphology.convex_hull_image`
    per object, which is most of the run time.

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
    axes = _check_axes(axes, labels.ndim)
    has_t = axes.startswith("T")
    ndim = len(axes) - has_t
    spacing_arr = _check_spacing(spacing, ndim)

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


def _check_axes(axes: str | None, ndim: int) -> str:
    if axes is None:
        if ndim not in (2, 3):
            raise ValueError(f"labels have {ndim} dimensions; pass axes, e.g. 'TZYX'.")
        return "YX" if ndim == 2 else "ZYX"
    axes = axes.upper()
    if axes not in _AXES or len(axes) != ndim:
        raise ValueError(f"axes {axes!r} must be one of {_AXES} with {ndim} letters (labels ndim).")
    return axes


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray | None:
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
    # Rows 1..n on a zero border: label ids of any size or dtype, neighbours never out of bounds.
    padded = np.zeros(
        [s + 2 for s in labels.shape], dtype=np.int32 if ids.size < 2**31 else np.int64
    )
    padded[tuple(c + 1 for c in coords)] = idx + 1
    columns["solidity"] = _solidities(padded[(slice(1, -1),) * labels.ndim])
    if labels.ndim == 2:
        columns["perimeter_px"] = _perimeters(padded, ids.size)
        if spacing is not None:
            columns["perimeter_um"] = columns["perimeter_px"] * spacing[0]
    for name, channel in zip(names, channels):
        values = np.asarray(channel).reshape(-1)[fg].astype(np.float64)
        columns |= _intensity(idx, counts, values, name)
    return columns


def _geometry(
    idx: np.ndarray, counts: np.ndarray, coords: tuple, spacing: np.ndarray | None
) -> dict[str, np.ndarray]:
    ndim, n = len(coords), counts.size
    size, unit = ("area", "um2") if ndim == 2 else ("volume", "um3")
    out: dict[str, np.ndarray] = {f"{size}_px": counts.astype(np.int64)}
    centroid = [np.bincount(idx, c, minlength=n) / counts for c in coords]
    # Second pass on centred coordinates: no cancellation for objects far from the origin.
    delta = [c - m[idx] for c, m in zip(coords, centroid)]
    cov = np.empty((n, ndim, ndim))
    for i in range(ndim):
        for j in range(i, ndim):
            cov[:, i, j] = cov[:, j, i] = (
                np.bincount(idx, delta[i] * delta[j], minlength=n) / counts
            )
    for a, c, m in zip("zyx"[-ndim:], coords, centroid):
        low, high = np.full(n, np.iinfo(np.intp).max), np.full(n, -1)
        np.minimum.at(low, idx, c)
        np.maximum.at(high, idx, c)
        out |= {f"centroid_{a}_px": m, f"bbox_{a}_min": low, f"bbox_{a}_max": high + 1}
    out |= _inertia_shape(cov, "px")
    if spacing is not None:
        out[f"{size}_{unit}"] = counts * np.prod(spacing)
        out |= {f"centroid_{a}_um": m * s for a, m, s in zip("zyx"[-ndim:], centroid, spacing)}
        # Calibrated eccentricity and orientation replace the pixel-grid ones.
        out |= _inertia_shape(cov * np.outer(spacing, spacing), "um")
    return out


def _inertia_shape(cov: np.ndarray, unit: str) -> dict[str, np.ndarray]:
    """Axis lengths, eccentricity and orientation with scikit-image's formulas.

    ``cov`` is the per-object covariance of the pixel coordinates, shape
    ``(n, ndim, ndim)``; scikit-image's inertia tensor is ``trace(cov) * I - cov``.
    """
    ndim = cov.shape[-1]
    tensor = -cov  # kept negated, not 0 - cov: the sign of a zero picks orientation's branch
    tensor[:, range(ndim), range(ndim)] += np.trace(cov, axis1=1, axis2=2)[:, None]
    ev = np.clip(np.linalg.eigvalsh(tensor), 0, None)[:, ::-1]  # descending
    if ndim == 3:
        major = np.sqrt(np.clip(10 * (ev[:, 0] + ev[:, 1] - ev[:, 2]), 0, None))
        minor = np.sqrt(np.clip(10 * (-ev[:, 0] + ev[:, 1] + ev[:, 2]), 0, None))
        return {f"major_axis_length_{unit}": major, f"minor_axis_length_{unit}": minor}
    with np.errstate(divide="ignore", invalid="ignore"):
        eccentricity = np.where(ev[:, 0] == 0, 0.0, np.sqrt(1 - ev[:, 1] / ev[:, 0]))
    a, b, c = tensor[:, 0, 0], tensor[:, 0, 1], tensor[:, 1, 1]
    orientation = np.where(
        a - c == 0, np.where(b < 0, np.pi / 4, -np.pi / 4), 0.5 * np.arctan2(-2 * b, c - a)
    )
    return {
        f"major_axis_length_{unit}": 4 * np.sqrt(ev[:, 0]),
        f"minor_axis_length_{unit}": 4 * np.sqrt(ev[:, 1]),
        "eccentricity": eccentricity,
        "orientation": orientation + 0.0,  # -0.0 -> 0.0
    }


def _solidities(compact: np.ndarray) -> np.ndarray:
    """Pixel count over convex hull pixel count, as ``regionprops(...).solidity``."""
    # Convex hulls are per object by nature: this loop is most of measure()'s time.
    out = np.empty(int(compact.max()))
    with warnings.catch_warnings():
        # Flat 3D objects make qhull fail; scikit-image warns and returns an empty hull.
        warnings.simplefilter("ignore", UserWarning)
        for i, box in enumerate(ndi.find_objects(compact)):
            mask = compact[box] == i + 1
            if mask.ndim == 3 and min(mask.shape) == 1:
                # One voxel thick: the 3D hull is flat, the hull of the 2D slice is the answer.
                mask = np.take(mask, 0, axis=int(np.argmin(mask.shape)))
            hull = np.count_nonzero(convex_hull_image(mask))
            out[i] = np.count_nonzero(mask) / hull if hull else np.nan
    return out


def _perimeters(padded: np.ndarray, n: int) -> np.ndarray:
    """``skimage.measure.perimeter(mask, 4)`` of every object of a zero-bordered 2D image."""
    flat, width = padded.reshape(-1), padded.shape[1]
    pos = np.flatnonzero(flat)
    lab = flat[pos]
    # Border pixels: those that a 4-connected erosion of their own object removes.
    edge = np.zeros(pos.size, dtype=bool)
    for step in (-width, width, -1, 1):
        edge |= flat[pos + step] != lab
    pos, lab = pos[edge], lab[edge]
    border = np.zeros_like(flat)
    border[pos] = lab
    # The code scikit-image gets by convolving the border with [[10,2,10],[2,1,2],[10,2,10]].
    code = np.ones(pos.size, dtype=np.intp)
    diagonals = (-width - 1, -width + 1, width - 1, width + 1)
    for step, weight in [(s, 2) for s in (-width, width, -1, 1)] + [(s, 10) for s in diagonals]:
        code += weight * (border[pos + step] == lab)
    return np.bincount(lab - 1, _PERIMETER_WEIGHTS[code], minlength=n)


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
    if ndim == 2:
        spec.append(("perimeter_px", f8))
        if calibrated and np.all(spacing == spacing[0]):
            spec.append(("perimeter_um", f8))
        spec.append(("eccentricity", f8))
    spec.append(("solidity", f8))
    lengths = ["major_axis_length_px", "minor_axis_length_px"]
    lengths += ["major_axis_length_um", "minor_axis_length_um"] if calibrated else []
    spec += [(name, f8) for name in lengths]
    spec += [("orientation", f8)] if ndim == 2 else []
    spec += [(f"intensity_{stat}_{name}", f8) for name in names for stat in _STATS]
    return spec
