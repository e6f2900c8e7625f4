"""Outlines of labelled objects as polygons, and labels drawn back from polygons.

An outline follows the pixel edges of an object (the "crack" between object and
background pixels), with its vertices on pixel corners: pixel ``(row, column)``
covers ``[column, column + 1) × [row, row + 1)`` in ``(x, y)``. That is how QuPath
and ImageJ place pixels, and how their own tracing tools (QuPath's label-to-object
conversion, ImageJ's wand) outline a mask; drawing such a polygon back, pixel
centres inside it are exactly the object's pixels, so the round trip loses nothing.

An object is one connected piece under full (8-) connectivity, as in
:func:`skimage.measure.label`. Pixels of one object that meet only at a corner are
one piece whose ring touches itself at that corner. Holes are the 4-connected
background regions inside a piece. An object with several pieces keeps them all
(one outline, several polygons): dropping all but the largest would change its
area, and its measurements, which are of the whole object.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as polygon_indices

PLANE_AXES = "TZ"
# Directions of travel along pixel edges, each a right turn from the one before (y down).
_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))  # (row, column): east, south, west, north
_EIGHT = np.ones((3, 3), bool)
# Label ids larger than this many times their count are compacted before find_objects.
_SPARSE = 4


Ring = np.ndarray  # (n, 2) float (x, y) vertices, not closed
Piece = tuple[Ring, ...]  # the outer ring, then the holes


@dataclass(frozen=True)
class ObjectOutline:
    """The outline of one object in one plane.

    Attributes
    ----------
    label : int
        The object's label.
    pieces : tuple of tuple of numpy.ndarray
        One entry per connected piece, the largest first: its outer ring, then its
        holes. Each ring is an ``(n, 2)`` array of ``(x, y)`` pixel-corner vertices,
        not closed (the first vertex is not repeated). Outer rings have a positive
        signed area (counter-clockwise when ``y`` points up), holes a negative one.
    plane : dict
        0-based index of the plane along each axis other than Y and X (``"T"``,
        ``"Z"``); empty for a 2-D image.

    """

    label: int
    pieces: tuple[Piece, ...]
    plane: dict[str, int] = field(default_factory=dict)


def trace_mask(mask) -> list[Piece]:
    """Outline a 2-D mask: one polygon with holes per connected piece.

    Parameters
    ----------
    mask : array_like of bool
        ``(rows, columns)``; ``True`` inside.

    Returns
    -------
    list of tuple of numpy.ndarray
        One ``(outer ring, *holes)`` per piece (8-connected), the largest first;
        ``(x, y)`` pixel-corner coordinates relative to ``mask``.

    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"A mask to outline must be 2-D, not {mask.ndim}-D.")
    pieces, _ = ndimage.label(mask, structure=_EIGHT)
    result = []
    for index, box in enumerate(ndimage.find_objects(pieces), start=1):
        if box is None:
            continue
        rings = _trace_piece(pieces[box] == index)
        offset = np.array([box[1].start, box[0].start], float)
        outer = [r for r in rings if _signed_area(r) > 0]
        holes = [r for r in rings if _signed_area(r) < 0]
        result.append(tuple(r + offset for r in (*outer, *holes)))
    result.sort(key=lambda piece: -_signed_area(piece[0]))
    return result


def iter_outlines(
    labels,
    *,
    axes: str | None = None,
    boxes: Iterable[tuple[int, tuple[slice, ...]]] | None = None,
) -> Iterator[ObjectOutline]:
    """Yield the outline of every object in every plane it occupies.

    Objects are found by their bounding boxes (:func:`scipy.ndimage.find_objects`)
    and each is traced in its own box only, so the work grows with the objects'
    size, not with the image's.

    Parameters
    ----------
    labels : array_like of int
        Instance labels, 0 is background: ``YX``, ``ZYX``, ``TYX`` or ``TZYX``.
    axes : str, optional
        The labels' axes (default ``"YX"`` for 2-D and ``"ZYX"`` for 3-D labels).
    boxes : iterable of (int, tuple of slice), optional
        ``(label, box)`` pairs with one slice per axis of ``labels``, for labels
        that do not fit in memory (a lazy array, e.g. from the bounding boxes of a
        measurement table); only these regions are read. Default: found with
        :func:`scipy.ndimage.find_objects` on the whole array.

    Yields
    ------
    ObjectOutline
        By label, then plane.

    """
    axes = label_axes(axes, np.ndim(labels))
    planes = [a for a in axes if a in PLANE_AXES]
    if boxes is None:
        boxes = _find_boxes(np.asarray(labels))
    for label, box in boxes:
        crop = np.asarray(labels[box]) == label
        ranges = [range(s.start, s.stop) for a, s in zip(axes, box) if a in PLANE_AXES]
        y0, x0 = box[axes.index("Y")].start, box[axes.index("X")].start
        for position in np.ndindex(*(len(r) for r in ranges)):
            plane_mask = crop[position] if position else crop
            if not plane_mask.any():
                continue
            offset = np.array([x0, y0], float)
            pieces = tuple(tuple(ring + offset for ring in p) for p in trace_mask(plane_mask))
            plane = {a: r[i] for a, r, i in zip(planes, ranges, position)}
            yield ObjectOutline(int(label), pieces, plane)


def patch_outlines(
    patch: np.ndarray, origin: Sequence[int], *, first: int = 0
) -> Iterator[ObjectOutline]:
    """Yield the outlines of a patch of labels in the coordinates of the whole image.

    Parameters
    ----------
    patch : ndarray of int
        Labels of a region of a plane ``(Y, X)`` or of a Z-stack ``(Z, Y, X)``, e.g. the
        objects a block keeps.
    origin : sequence of int
        Where the patch's first pixel is in the image (one index per axis).
    first : int
        Added to every label (the objects numbered before the patch's).

    Yields
    ------
    ObjectOutline
        As :func:`iter_outlines` yields them for the whole image, by label then plane.

    """
    axes = "ZYX"[-np.ndim(patch) :]
    offset = np.array([origin[-1], origin[-2]], float)
    for outline in iter_outlines(patch, axes=axes):
        pieces = tuple(tuple(ring + offset for ring in piece) for piece in outline.pieces)
        plane = {a: i + origin[0] for a, i in outline.plane.items()}  # only Z, in a stack
        yield ObjectOutline(outline.label + first, pieces, plane)


def draw_pieces(pieces: Iterable[Sequence], shape: tuple[int, int]) -> np.ndarray:
    """Draw polygons back into a 2-D mask: the pixels whose centres lie inside.

    Rings are combined by the even-odd rule (as ImageJ's composite shapes are), so
    holes and separate pieces need no particular orientation. Parts outside
    ``shape`` are clipped.

    Parameters
    ----------
    pieces : iterable of sequence of array_like
        Polygons, each an outer ring followed by its holes; rings are ``(n, 2)``
        ``(x, y)`` arrays in pixel-corner coordinates, closed or not.
    shape : tuple of int
        ``(rows, columns)`` of the mask.

    Returns
    -------
    numpy.ndarray of bool

    """
    mask = np.zeros(shape, bool)
    for piece in pieces:
        for ring in piece:
            ring = np.asarray(ring, float)
            if len(ring) < 3:
                continue
            # Pixel centres sit at half-integer corner coordinates; skimage puts them at integers.
            rows, columns = polygon_indices(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape=shape)
            mask[rows, columns] ^= True
    return mask


def draw_outlines(
    outlines: Iterable[ObjectOutline], shape: tuple[int, ...], *, axes: str | None = None
) -> np.ndarray:
    """Draw outlines into a labels array; where objects overlap, the later one wins.

    Parameters
    ----------
    outlines : iterable of ObjectOutline
        Their ``plane`` indices must fit ``shape``; a missing plane axis means 0.
    shape : tuple of int
        The labels' shape (for example an image's, without channels).
    axes : str, optional
        Axes of ``shape`` (default ``"YX"`` for 2-D and ``"ZYX"`` for 3-D).

    Returns
    -------
    numpy.ndarray
        uint32 labels (uint16 when every label fits).

    Raises
    ------
    ValueError
        If an outline lies on a plane that ``shape`` does not have.

    """
    axes = label_axes(axes, len(shape))
    outlines = list(outlines)
    top = max((o.label for o in outlines), default=0)
    labels = np.zeros(shape, np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)
    planes = [a for a in axes if a in PLANE_AXES]
    for outline in outlines:
        extra = set(outline.plane) - set(planes)
        if any(outline.plane[a] for a in extra):
            raise ValueError(
                f"Object {outline.label} lies on plane {_plane_text(outline.plane)}, but the "
                f"image ({axes} {tuple(shape)}) has no {'/'.join(sorted(extra))} axis."
            )
        index = []
        for axis in planes:
            i = outline.plane.get(axis, 0)
            n = shape[axes.index(axis)]
            if not 0 <= i < n:
                raise ValueError(
                    f"Object {outline.label} lies on {axis} plane {i + 1}, but the image "
                    f"({axes} {tuple(shape)}) has {n}."
                )
            index.append(i)
        plane = labels[tuple(index)] if index else labels
        _paint(plane, outline)
    return labels


def outlines_extent(outlines: Iterable[ObjectOutline], axes: str) -> tuple[int, ...]:
    """Return the smallest labels shape, along ``axes``, that holds every outline whole.

    Parameters
    ----------
    outlines : iterable of ObjectOutline
        The objects.
    axes : str
        The shape's axes, e.g. ``"YX"`` or ``"ZYX"``.

    Returns
    -------
    tuple of int
        At least one pixel and one plane along each axis.

    """
    size = dict.fromkeys(axes, 1)
    for outline in outlines:
        for axis, i in outline.plane.items():
            if axis in size:
                size[axis] = max(size[axis], i + 1)
        for ring in (ring for piece in outline.pieces for ring in piece):
            high = np.asarray(ring, float).max(axis=0)
            size["X"] = max(size["X"], math.ceil(high[0]))
            size["Y"] = max(size["Y"], math.ceil(high[1]))
    return tuple(size[a] for a in axes)


def label_axes(axes: str | None, ndim: int) -> str:
    """Check (or default) the axes of labels: ``YX``, ``ZYX``, ``TYX`` or ``TZYX``."""
    if axes is None:
        if ndim not in (2, 3):
            raise ValueError(f"Labels with {ndim} dimensions need their axes (e.g. 'TZYX').")
        return "YX" if ndim == 2 else "ZYX"
    axes = axes.upper()
    if axes not in ("YX", "ZYX", "TYX", "TZYX") or len(axes) != ndim:
        raise ValueError(
            f"Axes {axes!r} do not fit labels with {ndim} dimensions; "
            "expected YX, ZYX, TYX or TZYX."
        )
    return axes


def plane_name(plane: dict[str, int]) -> str:
    """``"t0002-z0003"``: the plane's 1-based numbers, as ImageJ counts slices and frames."""
    return "-".join(f"{a.lower()}{plane[a] + 1:04d}" for a in PLANE_AXES if a in plane)


def _plane_text(plane: dict[str, int]) -> str:
    return ", ".join(f"{a}={i + 1}" for a, i in sorted(plane.items())) or "1"


def _paint(plane: np.ndarray, outline: ObjectOutline) -> None:
    """Set the pixels inside ``outline`` to its label, drawing only within its box."""
    rings = [np.asarray(ring, float) for piece in outline.pieces for ring in piece]
    if not rings:
        return
    points = np.concatenate(rings)
    low = np.clip(np.floor(points.min(axis=0)).astype(int), 0, None)
    high = np.minimum(np.ceil(points.max(axis=0)).astype(int), plane.shape[::-1])
    if np.any(high <= low):
        return
    box = (slice(low[1], high[1]), slice(low[0], high[0]))
    shifted = [[np.asarray(r, float) - low for r in piece] for piece in outline.pieces]
    inside = draw_pieces(shifted, (high[1] - low[1], high[0] - low[0]))
    plane[box][inside] = outline.label


def _find_boxes(labels: np.ndarray) -> Iterator[tuple[int, tuple[slice, ...]]]:
    """``(label, box)`` of every object; sparse label ids are compacted first."""
    if labels.dtype.kind not in "iu":
        raise ValueError(f"Labels must be integers, not {labels.dtype}.")
    if not labels.size:
        return
    if labels.min() < 0:
        raise ValueError("Labels must not be negative.")
    top = int(labels.max())
    if top == 0:
        return
    if top > _SPARSE * 1024 and top > _SPARSE * labels.size**0.5:
        ids = np.unique(labels)
        ids = ids[ids > 0]
        if top > _SPARSE * len(ids):  # find_objects would make a list as long as the top id
            compact = np.where(labels > 0, np.searchsorted(ids, labels) + 1, 0)
            for index, box in enumerate(ndimage.find_objects(compact)):
                if box is not None:
                    yield int(ids[index]), box
            return
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            yield index, box


def _trace_piece(mask: np.ndarray) -> list[Ring]:
    """Every closed ring of pixel edges around ``mask`` (one piece), object on the right.

    Walking with the object on the right-hand side (``y`` down), outer rings come out
    with a positive signed area and holes with a negative one. Where two object
    pixels meet only at a corner, the walk turns left, onto the other pixel: the
    object stays 8-connected.
    """
    inside = np.pad(mask, 1)
    width = inside.shape[1] + 1  # vertices: the (rows + 1) × (columns + 1) pixel corners
    outgoing: dict[int, list[int]] = {}
    edges = (
        (inside[1:, :] & ~inside[:-1, :], 1, 0, 0),  # top edges, heading east
        (inside[:, :-1] & ~inside[:, 1:], 0, 1, 1),  # right edges, heading south
        (inside[:-1, :] & ~inside[1:, :], 1, 1, 2),  # bottom edges, heading west
        (inside[:, 1:] & ~inside[:, :-1], 1, 1, 3),  # left edges, heading north
    )
    for found, dr, dc, direction in edges:
        r, c = np.nonzero(found)
        for start in ((r + dr) * width + c + dc).tolist():
            outgoing.setdefault(start, []).append(direction)

    def turn(vertex: int, heading: int) -> int:
        options = outgoing[vertex]
        if len(options) == 1:
            return options[0]
        left = (heading + 3) % 4  # two object pixels meet at this corner only
        return left if left in options else options[0]

    used: set[tuple[int, int]] = set()
    rings = []
    for start_vertex, directions in outgoing.items():
        for start_direction in directions:
            if (start_vertex, start_direction) in used:
                continue
            vertex, direction = start_vertex, start_direction
            corners = [vertex]
            while True:
                used.add((vertex, direction))
                dr, dc = _STEPS[direction]
                vertex += dr * width + dc
                following = turn(vertex, direction)
                if (vertex, following) == (start_vertex, start_direction):
                    break
                if following != direction:
                    corners.append(vertex)
                direction = following
            ring = np.array([(v % width, v // width) for v in corners], float) - 1.0
            rings.append(_without_straight_corners(ring))
    return rings


def _without_straight_corners(ring: np.ndarray) -> np.ndarray:
    """Drop vertices where the ring goes straight on (the walk's first vertex may be one)."""
    if len(ring) < 4:
        return ring
    before = np.roll(ring, 1, axis=0)
    after = np.roll(ring, -1, axis=0)
    cross = (ring - before)[:, 0] * (after - ring)[:, 1] - (ring - before)[:, 1] * (after - ring)[
        :, 0
    ]
    return ring[cross != 0]


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area of an open ring: positive for outer rings here."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def boxes_from_table(table, axes: str) -> Iterator[tuple[int, tuple[slice, ...]]]:
    """``(label, box)`` pairs from a measurement table's bounding-box columns.

    Parameters
    ----------
    table : pandas.DataFrame
        With ``label`` and ``bbox_{z,y,x}_{min,max}`` columns (max exclusive), and
        ``frame`` for labels with a T axis, as :func:`napari_segnet.measure.measure`
        writes them.
    axes : str
        The labels' axes.

    Yields
    ------
    tuple
        ``(label, box)`` with one slice per axis, for :func:`iter_outlines`.

    """
    axes = label_axes(axes, len(axes))
    needed = ["label"] + [f"bbox_{a.lower()}_{e}" for a in axes if a != "T" for e in ("min", "max")]
    if "T" in axes:
        needed.append("frame")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"The measurement table has no {', '.join(missing)} column.")
    for row in table[needed].itertuples(index=False):
        values = dict(zip(needed, row))
        box = []
        for axis in axes:
            if axis == "T":
                box.append(slice(int(values["frame"]), int(values["frame"]) + 1))
            else:
                a = axis.lower()
                box.append(slice(int(values[f"bbox_{a}_min"]), int(values[f"bbox_{a}_max"])))
        yield int(values["label"]), tuple(box)
