"""Objects as an ImageJ ROI set (a ``.zip`` for Fiji's ROI Manager), and back.

One ROI per object and plane, written with :mod:`roifile`:

- an object in one piece without holes is a traced polygon (what ImageJ's wand
  makes), with integer vertices on pixel corners;
- an object with holes or in several pieces is a composite ROI (ImageJ's
  ``ShapeRoi``), whose rings combine by the even-odd rule, so it stays one ROI;
- the name is the label, ``"0007"``, followed for stacks by the plane's 1-based
  numbers: ``"0007-z0003"``, ``"0007-t0002"``, ``"0007-t0002-z0003"``;
- the position follows ImageJ's own convention, a stack position *or* a hyperstack
  position, never both: a Z-stack or a time series (one axis besides Y and X) opens
  in ImageJ as a plain stack, and its ROIs get the slice number (``position``); a
  time series of Z-stacks gets ``z_position`` and ``t_position``;
- the model that made the objects is in every ROI's properties (``model: nuclei@2``,
  ``model_name``, ``model_version``, ``model_sha256``; ImageJ's ``Roi.getProperty``,
  shown by the ROI Manager's *Properties…*), and so are an object's ``phenotype``
  and semantic ``class`` when the measurements hold them.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from roifile import ROI_TYPE, ImagejRoi, roiread, roiwrite

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

# Operations of a composite ROI's path (java.awt.geom.PathIterator).
_MOVE, _LINE, _CLOSE = 0.0, 1.0, 4.0
# ImageJ stores integer coordinates as 16-bit numbers relative to the ROI's box.
_INTEGER_LIMIT = 32000
_NAME = re.compile(r"^(?:label-)?(\d+)(?:-[tz]\d+)*$", re.IGNORECASE)
_AREA_TYPES = (ROI_TYPE.POLYGON, ROI_TYPE.RECT, ROI_TYPE.OVAL, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)


def write_imagej_rois(
    path: str | os.PathLike,
    labels,
    *,
    axes: str | None = None,
    boxes=None,
    model: ModelIdentity | None = None,
    table=None,
) -> Path:
    """Write every object of ``labels`` as ImageJ ROIs in one ``.zip``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, usually ``<stem>_rois.zip``. It appears only once complete.
    labels : array_like of int
        Instance labels: ``YX``, ``ZYX``, ``TYX`` or ``TZYX``.
    axes : str, optional
        The labels' axes (default ``"YX"`` for 2-D, ``"ZYX"`` for 3-D labels).
    boxes : iterable, optional
        ``(label, box)`` pairs, to read only those regions of lazy labels (see
        :func:`napari_segnet.io.outlines.iter_outlines`).
    model : ModelIdentity, optional
        The model that made the labels: every ROI's properties.
    table : pandas.DataFrame, optional
        Measurements, one row per object (per ``frame`` and object with a T
        axis): their ``phenotype`` and ``class`` go into each ROI's properties.

    Returns
    -------
    pathlib.Path
        The written file.

    """
    destination = writable_destination(path)
    axes = label_axes(axes, np.ndim(labels))
    outlines = list(iter_outlines(labels, axes=axes, boxes=boxes))
    width = max(4, len(str(max((o.label for o in outlines), default=0))))
    rois = [outline_roi(o, axes=axes, width=width) for o in outlines]
    words = _object_words(table)
    for outline, roi in zip(outlines, rois):
        _describe(roi, outline, words, model)
    with atomic_path(destination) as temporary:
        if rois:
            roiwrite(temporary, rois, mode="w")
        else:  # an empty ROI set is still a valid zip, with nothing in it
            zipfile.ZipFile(temporary, "w").close()
    return destination


class ImagejRoiStream:
    """Write an ROI set entry by entry, as blocks of a big image come.

    ROIs go first to a spool zip beside ``path``; :meth:`close` copies them, one at a
    time, into ``path`` under the names :func:`write_imagej_rois` gives them (the label's
    digits depend on the largest label, known only at the end), then removes the spool.
    Write into a temporary (see :func:`napari_segnet.io.atomic_paths`).

    Parameters
    ----------
    path : str or os.PathLike
    axes : str
        The labels' axes, for each ROI's position.
    model : ModelIdentity, optional
        The model that made the objects: every ROI's properties.

    """

    def __init__(self, path: str | os.PathLike, *, axes: str, model: ModelIdentity | None = None):
        self.path, self.axes, self.model = Path(path), axes, model
        self.spool = self.path.with_name(self.path.name + ".spool")
        self._zip = zipfile.ZipFile(self.spool, "w")
        self._top = 0

    def add(self, outlines: Iterable[ObjectOutline], table=None) -> None:
        """Append the ROIs of ``outlines`` (with the words of their rows of ``table``)."""
        words = _object_words(table)
        for outline in outlines:
            roi = outline_roi(outline, axes=self.axes, width=1)
            _describe(roi, outline, words, self.model)
            with self._zip.open(f"{len(self._zip.filelist):09d}.roi", "w") as file:
                file.write(roi.tobytes())
            self._top = max(self._top, outline.label)

    def close(self) -> None:
        """Write the ROI set under its final names and remove the spool."""
        self._zip.close()
        width = max(4, len(str(self._top)))
        try:
            with zipfile.ZipFile(self.spool) as spool, zipfile.ZipFile(self.path, "w") as out:
                for entry in spool.infolist():
                    roi = ImagejRoi.frombytes(spool.read(entry))
                    label, _, plane = roi.name.partition("-")
                    roi.name = f"{int(label):0{width}d}" + (f"-{plane}" if plane else "")
                    with out.open(roi.name + ".roi", "w") as file:
                        file.write(roi.tobytes())
        finally:
            self.spool.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop writing and remove the spool."""
        self._zip.close()
        self.spool.unlink(missing_ok=True)


def _describe(roi: ImagejRoi, outline: ObjectOutline, words: dict, model) -> None:
    """Put the model and the object's phenotype and class into the ROI's properties."""
    own = words.get((outline.plane.get("T"), outline.label)) or words.get((None, outline.label))
    lines = [model.as_text()] if model is not None else []
    lines += [f"{key}: {value}" for key, value in (own or {}).items()]
    if lines:
        roi.props = "\n".join(lines)


def outline_roi(outline: ObjectOutline, *, axes: str, width: int = 4) -> ImagejRoi:
    """One object's outline in one plane as an ImageJ ROI.

    Parameters
    ----------
    outline : ObjectOutline
        One object in one plane.
    axes : str
        Axes of the labels it comes from, for its position.
    width : int
        Digits of the label in the ROI's name.

    Returns
    -------
    roifile.ImagejRoi

    """
    name = f"{outline.label:0{width}d}"
    if outline.plane:
        name += "-" + plane_name(outline.plane)
    rings = [ring for piece in outline.pieces for ring in piece]
    points = np.concatenate(rings)
    integer = np.all(points == np.round(points)) and np.ptp(points, axis=0).max() < _INTEGER_LIMIT
    if len(rings) == 1 and integer:
        roi = ImagejRoi.frompoints(rings[0].astype(np.int32), name=name)
        roi.roitype = ROI_TYPE.TRACED
    elif len(rings) == 1:
        roi = ImagejRoi.frompoints(rings[0].astype(np.float32), name=name)
        roi.roitype = ROI_TYPE.POLYGON
    else:
        roi = _composite(rings, name)
    planes = [a for a in axes if a in "TZ"]
    if len(planes) == 1:
        roi.position = outline.plane.get(planes[0], 0) + 1
    elif len(planes) == 2:
        roi.z_position = outline.plane.get("Z", 0) + 1
        roi.t_position = outline.plane.get("T", 0) + 1
    return roi


def read_imagej_rois(path: str | os.PathLike, shape: tuple[int, ...], *, axes: str | None = None):
    """Draw the area ROIs of an ImageJ ROI zip (ours or Fiji's) into a labels array.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.zip`` of ``.roi`` files (or one ``.roi`` file).
    shape : tuple of int
        The labels' shape: that of the image the ROIs were drawn on.
    axes : str, optional
        Axes of ``shape`` (default ``"YX"`` for 2-D, ``"ZYX"`` for 3-D).

    Returns
    -------
    numpy.ndarray
        Labels: each ROI named by a label (``"7"``, ``"0007"``, ``"0007-z0003"``,
        ``"label-7"``) gets it, others numbers after the largest of those, in file
        order; ROI positions put them on their planes.

    Raises
    ------
    ValueError
        If the file is not an ImageJ ROI set, or a ROI lies on a plane ``shape`` lacks.

    """
    axes = label_axes(axes, len(shape))
    size = dict(zip(axes, shape))
    outlines = read_imagej_roi_outlines(path, axes=axes, slices=size.get("Z", 1))
    return draw_outlines(outlines, tuple(shape), axes=axes)


def imagej_rois_extent(path: str | os.PathLike) -> tuple[str, tuple[int, ...]]:
    """Return the axes and the smallest shape that hold every ROI of a ROI set whole.

    A plain stack position counts as a Z plane; a hyperstack position as Z and T.

    Returns
    -------
    tuple
        ``(axes, shape)``, axes ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``.

    """
    rois = _read(Path(path))
    z = any(r.z_position > 1 or (r.position > 1 and r.t_position <= 1) for r in rois)
    t = any(r.t_position > 1 for r in rois)
    axes = ("T" if t else "") + ("Z" if z else "") + "YX"
    return axes, outlines_extent(_outlines(rois, axes=axes, slices=1), axes)


def read_imagej_roi_outlines(
    path: str | os.PathLike, *, axes: str = "YX", slices: int = 1
) -> list[ObjectOutline]:
    """Read the area ROIs (polygons, rectangles, ovals, composites) of a ROI set.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.zip`` of ``.roi`` files (or one ``.roi`` file).
    axes : str
        Axes of the labels they are for: how a plain stack position is read (as Z,
        or as T for ``"TYX"``; as a frame and slice for ``"TZYX"``).
    slices : int
        Z planes per time point, for plain stack positions with ``"TZYX"``.

    Raises
    ------
    ValueError
        If the file is not an ImageJ ROI set.

    """
    path = Path(path)
    return _outlines(_read(path), axes=label_axes(axes, len(axes)), slices=slices)


def is_imagej_roi_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``.zip`` whose entries are ImageJ ``.roi`` files."""
    path = Path(path)
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if not names or not all(n.lower().endswith(".roi") for n in names):
                return False
            with archive.open(names[0]) as entry:
                return entry.read(4) == b"Iout"
    except (OSError, zipfile.BadZipFile):
        return False


def _read(path: Path) -> list[ImagejRoi]:
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
        except zipfile.BadZipFile:
            raise ValueError(f"{path.name} is not an ImageJ ROI set (not a zip file).") from None
        if any(not n.lower().endswith(".roi") for n in names):
            raise ValueError(
                f"{path.name} is not an ImageJ ROI set (it holds files other than .roi)."
            )
        if not names:
            return []
    try:
        rois = roiread(path)
    except (ValueError, OSError, EOFError, struct.error, IndexError) as error:
        raise ValueError(f"{path.name} is not a readable ImageJ ROI set ({error}).") from None
    return rois if isinstance(rois, list) else [rois]


def _outlines(rois: Iterable[ImagejRoi], *, axes: str, slices: int) -> list[ObjectOutline]:
    found = []
    for roi in rois:
        if roi.roitype not in _AREA_TYPES or (
            roi.roitype == ROI_TYPE.RECT and roi.composite and roi.multi_coordinates is None
        ):
            continue
        rings = [np.asarray(r, float) for r in roi.coordinates(multi=True) if len(r) >= 3]
        if not rings:
            continue
        found.append((_label(roi.name), ((*rings,),), _plane(roi, axes, slices)))
    top = max((label for label, _, _ in found if label is not None), default=0)
    outlines = []
    for label, pieces, plane in found:
        if label is None:
            top += 1
            label = top
        outlines.append(ObjectOutline(label, pieces, plane))
    return outlines


def _plane(roi: ImagejRoi, axes: str, slices: int) -> dict[str, int]:
    if roi.z_position > 0 or roi.t_position > 0:
        plane = {"Z": roi.z_position - 1, "T": roi.t_position - 1}
        return {a: i for a, i in plane.items() if i > 0}
    if roi.position <= 1:
        return {}
    index = roi.position - 1
    if axes == "TYX":
        return {"T": index}
    if axes == "TZYX":
        return {a: i for a, i in (("T", index // slices), ("Z", index % slices)) if i > 0}
    return {"Z": index}


def _object_words(table) -> dict:
    """``(frame or None, label)`` → the ``phenotype`` and ``class`` of each row that has them."""
    if table is None or not {"phenotype", "class"} & set(table.columns):
        return {}
    keys = [k for k in ("phenotype", "class") if k in table.columns]
    frames = table["frame"] if "frame" in table.columns else [None] * len(table)
    words = {}
    for frame, label, *values in zip(frames, table["label"], *(table[k] for k in keys)):
        found = {k: v for k, v in zip(keys, values) if isinstance(v, str) and v}
        if found:
            words[(None if frame is None else int(frame), int(label))] = found
    return words


def _label(name: str) -> int | None:
    match = _NAME.match(name.strip()) if name else None
    return int(match.group(1)) or None if match else None


def _composite(rings: list[np.ndarray], name: str) -> ImagejRoi:
    """Make a composite ROI (ImageJ's ShapeRoi) of several rings, combined by the even-odd rule."""
    path = []
    for ring in rings:
        (x0, y0), rest = ring[0], ring[1:]
        path += [_MOVE, x0, y0]
        for x, y in rest:
            path += [_LINE, x, y]
        path.append(_CLOSE)
    points = np.concatenate(rings)
    low, high = np.floor(points.min(axis=0)), np.ceil(points.max(axis=0))
    roi = ImagejRoi()
    roi.roitype = ROI_TYPE.RECT
    roi.name = name
    roi.left, roi.top = int(low[0]), int(low[1])
    roi.right, roi.bottom = int(high[0]), int(high[1])
    roi.multi_coordinates = np.asarray(path, np.float32)
    roi.shape_roi_size = len(path)
    return roi
