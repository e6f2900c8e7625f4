"""npe2 writer: a labels layer to a TIFF that Fiji opens with the right calibration."""

from __future__ import annotations

import numpy as np

from napari_segnet.io import write_labels as write_labels_tiff
from napari_segnet.io.metadata import length_in_um, time_in_s

NAPARI_AXES = "TZYX"


def write_labels(path: str, data, attributes: dict) -> list[str]:
    """Write one labels layer; calibration comes from the layer's scale and units."""
    labels = np.asarray(data[0] if isinstance(data, list) else data)  # multiscale: full res
    axes = _axes(attributes.get("axis_labels"), labels.ndim)
    scale = attributes.get("scale") or (1.0,) * labels.ndim
    units = [str(u) for u in attributes.get("units") or ("pixel",) * labels.ndim]
    sizes = {}
    for axis, step, unit in zip(axes, scale, units):
        convert = time_in_s if axis == "T" else length_in_um
        size = convert(step, _unit_symbol(unit))
        if size is not None:
            sizes[axis] = size
    spatial = [a for a in axes if a in "ZYX"]
    spacing = tuple(sizes[a] for a in spatial) if all(a in sizes for a in spatial) else None
    write_labels_tiff(path, labels, axes=axes, spacing=spacing, time_interval=sizes.get("T"))
    return [path]


def _axes(axis_labels, ndim: int) -> str:
    letters = "".join(str(label).upper() for label in axis_labels or ())
    if len(letters) == ndim and set(letters) <= set(NAPARI_AXES) and len(set(letters)) == ndim:
        return letters
    return NAPARI_AXES[-ndim:]  # napari's default labels (-2, -1, ...) say nothing: assume TZYX


def _unit_symbol(unit: str) -> str | None:
    """Translate pint names ('micrometer', 'second') to the symbols our converters know."""
    symbols = {
        "micrometer": "µm",
        "nanometer": "nm",
        "millimeter": "mm",
        "meter": "m",
        "second": "s",
        "millisecond": "ms",
        "minute": "min",
        "hour": "h",
    }
    return symbols.get(unit, unit)
