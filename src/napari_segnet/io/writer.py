"""Write instance labels as TIFF files that Fiji opens with the right calibration."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from .atomic import atomic_path
from .axes import AxesError
from .model_identity import ModelIdentity

LABEL_AXES = "TZYX"


def labels_dtype(max_label: int) -> np.dtype:
    """Smallest unsigned type that Fiji reads for labels up to ``max_label``."""
    return np.dtype(np.uint16 if max_label <= np.iinfo(np.uint16).max else np.uint32)


def write_labels(
    path: str | os.PathLike,
    labels,
    *,
    axes: str | None = None,
    spacing: tuple[float, ...] | None = None,
    time_interval: float | None = None,
    model: ModelIdentity | None = None,
) -> Path:
    """Write instance labels to an ImageJ-style TIFF, atomically.

    uint16 is used when every label fits, uint32 otherwise. Both carry an ImageJ
    description (axes, micrometre unit, z step, frame interval) and resolution
    tags, so Fiji shows the same calibration as the source image. The model
    that made the labels, if given, is in the description too (``model=nuclei@2``,
    ``model_name``, ``model_version``, ``model_sha256``: keys ImageJ ignores) and
    in the image's Info, which Fiji shows under *Image > Show Info*.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.tif`` file. It appears only once completely written.
    labels : array-like of int
        Instance labels; 0 is background. Negative values, and values above
        the uint32 range, are rejected.
    axes : str, optional
        Axes of ``labels`` from ``"TZYX"``, in any order (default ``"YX"`` for
        2-D and ``"ZYX"`` for 3-D data). The file stores them in ImageJ's
        ``T``, ``Z``, ``Y``, ``X`` order.
    spacing : tuple of float, optional
        Pixel size in micrometres along the spatial axes (``(y, x)`` or
        ``(z, y, x)``).
    time_interval : float, optional
        Seconds between frames, for data with a ``T`` axis.
    model : ModelIdentity, optional
        The model that made the labels.

    Returns
    -------
    pathlib.Path
        The written file.

    """
    labels = np.asarray(labels)
    given = _label_axes(axes, labels.ndim)
    axes = "".join(sorted(given, key=LABEL_AXES.index))  # ImageJ requires T, Z, Y, X order
    labels = np.transpose(labels, [given.index(a) for a in axes])
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Labels must be integers, not {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise ValueError("Labels must not be negative.")
    max_label = int(labels.max()) if labels.size else 0
    if max_label > np.iinfo(np.uint32).max:
        raise ValueError(f"Label {max_label} is too large for a TIFF file (at most 4294967295).")
    dtype = labels_dtype(max_label)
    spatial = "".join(a for a in axes if a in "ZYX")
    if spacing is not None and len(spacing) != len(spatial):
        raise ValueError(f"Spacing {tuple(spacing)} does not match the spatial axes {spatial}.")
    if spacing is not None and not all(0 < float(s) < float("inf") for s in spacing):
        raise ValueError(f"Spacing {tuple(spacing)} must be positive and finite.")

    metadata: dict = {"axes": axes}
    resolution = None
    if spacing is not None:
        size = dict(zip(spatial, spacing))
        resolution = (1.0 / size["X"], 1.0 / size["Y"])
        metadata["unit"] = "micron"
        if "Z" in size:
            metadata["spacing"] = size["Z"]
    if time_interval is not None and "T" in axes:
        metadata["finterval"] = time_interval
    info = {}
    if model is not None:
        metadata |= model.as_metadata()
        info = {"Info": f"Instance labels made by napari-segnet with {model.describe()}."}

    path = Path(path)
    data = labels.astype(dtype, copy=False)
    with atomic_path(path) as temporary:
        if dtype == np.uint16:
            tifffile.imwrite(
                temporary,
                data,
                imagej=True,
                resolution=resolution,
                metadata=metadata | info,
                compression="zlib",
            )
        else:
            # The ImageJ writer refuses 32-bit integers, yet ImageJ reads them: write a
            # plain TIFF carrying the same ImageJ description so Fiji keeps the calibration.
            description = tifffile.imagej_description(data.shape, **metadata)
            tifffile.imwrite(
                temporary,
                data,
                description=description,
                metadata=None,
                photometric="minisblack",
                resolution=resolution,
                resolutionunit="NONE",
                compression="zlib",
                extratags=tifffile.imagej_metadata_tag(info, "<") if info else (),
            )
    return path


def _label_axes(axes: str | None, ndim: int) -> str:
    if axes is None:
        if ndim not in (2, 3):
            raise AxesError(f"Labels with {ndim} dimensions need explicit axes (e.g. 'TZYX').")
        return "YX" if ndim == 2 else "ZYX"
    axes = axes.upper()
    if (
        len(axes) != ndim
        or len(set(axes)) != ndim
        or not {"Y", "X"} <= set(axes)
        or not set(axes) <= set(LABEL_AXES)
    ):
        raise AxesError(f"Axes {axes!r} do not fit labels with {ndim} dimensions.")
    return axes
