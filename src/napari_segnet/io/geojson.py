"""Objects as a GeoJSON FeatureCollection that QuPath imports as detections, and back.

Each object becomes one Feature per plane it occupies, in QuPath's terms:

- ``geometry``: a ``Polygon`` (outer ring, then holes) or, for an object in several
  pieces, a ``MultiPolygon`` (one QuPath object, measured as a whole); ``(x, y)``
  pixel coordinates with the origin at the image's top-left pixel corner; for
  stacks and time series, QuPath's ``"plane": {"c": -1, "z": z, "t": t}`` (0-based);
- ``properties``: ``"objectType": "detection"``, ``"name"`` (the label as text),
  ``"label"`` (the label as a number), ``"classification"`` (``name`` and ``color``)
  when the object has a class, ``"measurements"``: the numeric columns of its
  measurement-table row (those that are finite), and ``"metadata"``: the model that
  made the objects (``model``, ``model_name``, ``model_version``, ``model_sha256``, as
  text), which QuPath keeps as each object's metadata;
- ``id``: a UUID, as QuPath writes them.

See :mod:`napari_segnet.io.outlines` for how outlines follow the pixels.
"""

from __future__ import annotations

import json
import math
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .atomic import atomic_path, writable_destination
from .model_identity import ModelIdentity
from .outlines import (
    ObjectOutline,
    draw_outlines,
    iter_outlines,
    label_axes,
    outlines_extent,
    plane_name,
)

# Colours for classes (RGB), chosen by a checksum of the class name so that a class keeps
# its colour from one file to the next.
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
)
_IDS = uuid.UUID("5c3e7f0e-3a52-4f7b-9a8e-6e6f3d1b2a90")  # namespace of our feature ids


def write_geojson(
    path: str | os.PathLike,
    labels,
    *,
    axes: str | None = None,
    table=None,
    boxes=None,
    model: ModelIdentity | None = None,
) -> Path:
    """Write every object of ``labels`` as QuPath detections in a GeoJSON file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, usually ``<stem>.geojson``. It appears only once complete.
    labels : array_like of int
        Instance labels: ``YX``, ``ZYX``, ``TYX`` or ``TZYX``.
    axes : str, optional
        The labels' axes (default ``"YX"`` for 2-D, ``"ZYX"`` for 3-D labels).
    table : pandas.DataFrame, optional
        Measurements, one row per object (per ``frame`` and object with a T axis),
        as :func:`napari_segnet.measure.measure` makes them; its numeric columns
        become each feature's ``measurements``; its ``phenotype`` column (cells
        classified by their markers, ``"CD8+ Ki67-"``), or else its ``class``
        column, the ``classification``.
    boxes : iterable, optional
        ``(label, box)`` pairs, to read only those regions of lazy labels (see
        :func:`napari_segnet.io.outlines.iter_outlines`).
    model : ModelIdentity, optional
        The model that made the labels: every feature's ``metadata``.

    Returns
    -------
    pathlib.Path
        The written file.

    """
    destination = writable_destination(path)
    axes = label_axes(axes, np.ndim(labels))
    outlines = iter_outlines(labels, axes=axes, boxes=boxes)
    features = outline_features(outlines, table=table, with_plane=axes != "YX", model=model)
    collection = {"type": "FeatureCollection", "features": list(features)}
    with atomic_path(destination) as temporary:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(collection, file, allow_nan=False, separators=(",", ":"))
    return destination


class GeoJsonStream:
    """Write a FeatureCollection feature by feature, as blocks of a big image come.

    The file holds the text :func:`write_geojson` writes for the same outlines in the
    same order; no more than one block's features are in memory. Write into a
    temporary (see :func:`napari_segnet.io.atomic_paths`) and call :meth:`close`.

    Parameters
    ----------
    path : str or os.PathLike
    with_plane : bool
        Give every geometry QuPath's ``plane`` (labels with axes besides Y and X).
    model : ModelIdentity, optional
        The model that made the objects, as each feature's ``metadata``.

    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        with_plane: bool = False,
        model: ModelIdentity | None = None,
    ):
        self.with_plane, self.model = with_plane, model
        self._file = open(path, "w", encoding="utf-8")
        self._file.write('{"type":"FeatureCollection","features":[')
        self._first = True

    def add(self, outlines: Iterable[ObjectOutline], table=None) -> None:
        """Append the features of ``outlines`` (with their rows of ``table``, by label)."""
        features = outline_features(
            outlines, table=table, with_plane=self.with_plane, model=self.model
        )
        for feature in features:
            if not self._first:
                self._file.write(",")
            json.dump(feature, self._file, allow_nan=False, separators=(",", ":"))
            self._first = False

    def close(self) -> None:
        """End the collection and the file."""
        self._file.write("]}")
        self._file.close()

    def abort(self) -> None:
        """Stop writing; the file is incomplete."""
        self._file.close()


def outline_features(
    outlines: Iterable[ObjectOutline],
    *,
    table=None,
    with_plane: bool = False,
    model: ModelIdentity | None = None,
) -> Iterator[dict]:
    """Turn outlines into QuPath detection Features (see the module's description).

    Parameters
    ----------
    outlines : iterable of ObjectOutline
        The objects, e.g. from :func:`napari_segnet.io.outlines.iter_outlines`.
    table : pandas.DataFrame, optional
        Measurements by ``label`` (and ``frame``), see :func:`write_geojson`.
    with_plane : bool
        Give every geometry QuPath's ``plane``, even on the first plane.
    model : ModelIdentity, optional
        The model that made the objects, as each feature's ``metadata``.

    Yields
    ------
    dict
        One GeoJSON Feature per outline.

    """
    rows = _rows_by_object(table)
    # QuPath keeps an object's metadata as text only.
    metadata = {k: str(v) for k, v in model.as_metadata().items()} if model else None
    for outline in outlines:
        polygons = [[_closed(ring) for ring in piece] for piece in outline.pieces]
        if len(polygons) == 1:
            geometry = {"type": "Polygon", "coordinates": polygons[0]}
        else:
            geometry = {"type": "MultiPolygon", "coordinates": polygons}
        if with_plane or outline.plane:
            geometry["plane"] = {
                "c": -1,
                "z": outline.plane.get("Z", 0),
                "t": outline.plane.get("T", 0),
            }
        properties: dict = {
            "objectType": "detection",
            "name": str(outline.label),
            "label": outline.label,
        }
        row = rows.get((outline.plane.get("T"), outline.label)) or rows.get((None, outline.label))
        if row is not None:
            name = row.get("phenotype") or row.get("class")
            if isinstance(name, str) and name:
                properties["classification"] = {"name": name, "color": class_colour(name)}
            properties["measurements"] = _measurements(row)
        if metadata:
            properties["metadata"] = dict(metadata)
        key = f"{outline.label}/{plane_name(outline.plane)}/{polygons[0][0][0]}"
        yield {
            "type": "Feature",
            "id": str(uuid.uuid5(_IDS, key)),
            "geometry": geometry,
            "properties": properties,
        }


def read_geojson(path: str | os.PathLike, shape: tuple[int, ...], *, axes: str | None = None):
    """Draw the objects of a GeoJSON file (ours or QuPath's) into a labels array.

    Parameters
    ----------
    path : str or os.PathLike
        A FeatureCollection, one Feature, or a list of Features (QuPath exports all
        three).
    shape : tuple of int
        The labels' shape: that of the image the objects were drawn on.
    axes : str, optional
        Axes of ``shape`` (default ``"YX"`` for 2-D, ``"ZYX"`` for 3-D).

    Returns
    -------
    numpy.ndarray
        Labels: each object gets its ``label`` (or a number as its ``name``), others
        numbers after the largest of those, in file order; QuPath's ``plane`` puts an
        object on its Z plane and time point.

    Raises
    ------
    ValueError
        If the file is not GeoJSON, or an object lies on a plane ``shape`` lacks.

    """
    return draw_outlines(read_geojson_outlines(path), tuple(shape), axes=axes)


def geojson_extent(path: str | os.PathLike, axes: str = "YX") -> tuple[int, ...]:
    """Return the smallest shape, along ``axes``, that holds every object of a GeoJSON file."""
    return outlines_extent(read_geojson_outlines(path), axes)


def read_geojson_outlines(path: str | os.PathLike) -> list[ObjectOutline]:
    """Read the area objects (polygons) of a GeoJSON file as outlines.

    Points and lines are skipped: they cover no pixels.

    Raises
    ------
    ValueError
        If the file is not JSON, or holds no GeoJSON Features.

    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not a GeoJSON file (it is not text).") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path.name} is not a GeoJSON file (invalid JSON at line {error.lineno})."
        ) from None
    features = _features(document, path)
    found = []
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict):
            raise ValueError(f"{path.name}: feature {number} is not a GeoJSON Feature.")
        geometry = feature.get("geometry") or {}
        try:
            pieces = tuple(_polygons(geometry))
        except (TypeError, ValueError, IndexError, KeyError):
            raise ValueError(
                f"{path.name}: feature {number} has a malformed {geometry.get('type')} geometry."
            ) from None
        if pieces:
            found.append((_label(feature.get("properties") or {}), pieces, _plane(geometry)))
    top = max((label for label, _, _ in found if label is not None), default=0)
    outlines = []
    for label, pieces, plane in found:
        if label is None:
            top += 1
            label = top
        outlines.append(ObjectOutline(label, pieces, plane))
    return outlines


def class_colour(name: str) -> list[int]:
    """Return the RGB colour of a class in QuPath, the same in every file."""
    return list(_PALETTE[zlib.crc32(name.encode("utf-8")) % len(_PALETTE)])


def _features(document, path: Path) -> list:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if document.get("type") == "FeatureCollection" and isinstance(
            document.get("features"), list
        ):
            return document["features"]
        if document.get("type") == "Feature":
            return [document]
    raise ValueError(
        f"{path.name} is not a GeoJSON FeatureCollection, Feature or list of Features."
    )


def _polygons(geometry: dict) -> Iterator[tuple[np.ndarray, ...]]:
    kind = geometry.get("type")
    if kind == "Polygon":
        polygons = [geometry["coordinates"]]
    elif kind == "MultiPolygon":
        polygons = geometry["coordinates"]
    elif kind == "GeometryCollection":
        for part in geometry.get("geometries") or ():
            yield from _polygons(part)
        return
    else:
        return
    for rings in polygons:
        arrays = tuple(np.asarray(ring, float)[:, :2] for ring in rings)
        if arrays and all(np.isfinite(a).all() for a in arrays):
            yield arrays


def _plane(geometry: dict) -> dict[str, int]:
    plane = geometry.get("plane") or {}
    if not isinstance(plane, dict):
        return {}
    return {a: int(plane[k]) for a, k in (("T", "t"), ("Z", "z")) if int(plane.get(k) or 0) > 0}


def _label(properties: dict) -> int | None:
    """Return the ``label`` property, else a ``name`` that is a whole number, else None."""
    for value in (properties.get("label"), properties.get("name")):
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and value == int(value) and value > 0:
            return int(value)
        if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
            return int(value)
    return None


def _closed(ring: np.ndarray) -> list[list[float]]:
    points = [[_number(x), _number(y)] for x, y in ring]
    return [*points, points[0]]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _rows_by_object(table) -> dict[tuple, dict]:
    """Table rows by ``(frame or None, label)``."""
    if table is None or "label" not in table.columns:
        return {}
    records = table.to_dict("records")
    if "frame" in table.columns:
        return {(int(r["frame"]), int(r["label"])): r for r in records}
    return {(None, int(r["label"])): r for r in records}


def _measurements(row: dict) -> dict[str, float]:
    """Keep the finite numbers of a table row (QuPath's measurements are numbers only)."""
    values = {}
    for name, value in row.items():
        if isinstance(value, bool | np.bool_):
            value = float(value)
        if isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value):
            values[str(name)] = _number(value)
    return values
