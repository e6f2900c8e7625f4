"""npe2 writers: a labels layer as a TIFF, or as outlines for QuPath or Fiji.

The TIFF opens in Fiji with the right calibration; the outlines are a GeoJSON file of
QuPath detections or an ImageJ ROI set for Fiji's ROI Manager. Labels made by Segment
carry the model that made them in their metadata, and every file records it.
"""

from __future__ import annotations

import numpy as np

from napari_segnet.io import write_labels as write_labels_tiff
from napari_segnet.io.metadata import length_in_um, time_in_s

from .layers import layer_model

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
    write_labels_tiff(
        path,
        labels,
        axes=axes,
        spacing=spacing,
        time_interval=sizes.get("T"),
        model=layer_model(attributes.get("metadata")),
    )
    return [path]


def write_geojson(path: str, data, attributes: dict) -> list[str]:
    """Write one labels layer's objects as QuPath detections, with its features as measurements."""
    from napari_segnet.io.geojson import write_geojson as write

    labels, axes, boxes = _outline_source(data, attributes)
    table = _features(attributes)
    model = layer_model(attributes.get("metadata"))
    write(path, labels, axes=axes, table=table, boxes=boxes(table), model=model)
    return [path]


def write_imagej_rois(path: str, data, attributes: dict) -> list[str]:
    """Write one labels layer's objects as an ImageJ ROI set (``.zip``)."""
    from napari_segnet.io.imagej_rois import write_imagej_rois as write

    labels, axes, boxes = _outline_source(data, attributes)
    model = layer_model(attributes.get("metadata"))
    write(path, labels, axes=axes, boxes=boxes(_features(attributes)), model=model)
    return [path]


def _outline_source(data, attributes: dict):
    """Full-resolution labels, their axes, and how to find objects in them.

    Labels held in memory are searched whole; lazy ones (multiscale, big planes) are
    read one object at a time from the bounding boxes of their measurements.
    """
    from napari_segnet.io.outlines import boxes_from_table

    multiscale = isinstance(data, list)
    labels = data[0] if multiscale else data
    axes = _axes(attributes.get("axis_labels"), labels.ndim)

    def boxes(table):
        if isinstance(labels, np.ndarray) or table is None or "bbox_y_min" not in table:
            return None
        return boxes_from_table(table, axes)

    return labels, axes, boxes


def _features(attributes: dict):
    import pandas as pd

    features = attributes.get("features")
    if features is None or len(features) == 0:
        return None
    table = pd.DataFrame(features)
    return table if "label" in table.columns else None


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
