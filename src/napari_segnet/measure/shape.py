"""Shape descriptors of every labelled object at once: inertia, perimeter and solidity.

Each value follows :func:`skimage.measure.regionprops` exactly, but is computed
for all objects together with array operations instead of one region at a time.
The only per-object loop left is the 3D convex hull of solidity.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

# scikit-image's weights for the 4-connected perimeter, indexed by the neighbourhood code.
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2
_ABSENT = np.iinfo(np.int64).min // 4  # "no pixel in this row"; doubling it cannot overflow


def shape_columns(ndim: int, spacing: np.ndarray | None) -> list[str]:
    """Names of :func:`shape_descriptors`' float columns, in output order."""
    columns = ["perimeter_px"] if ndim == 2 else []
    if ndim == 2 and spacing is not None and np.all(spacing == spacing[0]):
        columns.append("perimeter_um")  # the perimeter weights assume square pixels
    columns += ["eccentricity"] if ndim == 2 else []
    columns += ["solidity", "major_axis_length_px", "minor_axis_length_px"]
    columns += ["major_axis_length_um", "minor_axis_length_um"] if spacing is not None else []
    return columns + (["orientation"] if ndim == 2 else [])


def shape_descriptors(
    shape: tuple[int, ...],
    coords: tuple[np.ndarray, ...],
    idx: np.ndarray,
    counts: np.ndarray,
    centroid: list[np.ndarray],
    spacing: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Perimeter, solidity, axis lengths, eccentricity and orientation of every object.

    Parameters
    ----------
    shape : tuple of int
        Shape of the 2D or 3D label image.
    coords : tuple of ndarray
        Coordinates of the foreground pixels, one array per axis.
    idx : ndarray of int
        Row index 0..n-1 of each foreground pixel's object.
    counts : ndarray of float
        Pixel count of each object.
    centroid : list of ndarray
        Centroid of each object, one array per axis, in pixels.
    spacing : ndarray, optional
        Pixel size per axis; adds the ``*_um`` columns.

    Returns
    -------
    dict of str to ndarray
        The shape columns, one value per object.

    """
    ndim, n = len(shape), counts.size
    # Second moments on centred coordinates: no cancellation for objects far from the origin.
    delta = [c - m[idx] for c, m in zip(coords, centroid)]
    cov = np.empty((n, ndim, ndim))
    for i in range(ndim):
        for j in range(i, ndim):
            cov[:, i, j] = cov[:, j, i] = (
                np.bincount(idx, delta[i] * delta[j], minlength=n) / counts
            )
    out = inertia_shape(cov, "px")
    if spacing is not None:
        # Calibrated eccentricity and orientation replace the pixel-grid ones.
        out |= inertia_shape(cov * np.outer(spacing, spacing), "um")
    dtype = np.int32 if n < 2**31 else np.int64
    if ndim == 3:
        compact = np.zeros(shape, dtype=dtype)
        compact[coords] = idx + 1
        out["solidity"] = _solidities_3d(compact, n)
        return out
    # Rows 1..n on a zero border: label ids of any size or dtype, neighbours never out of bounds.
    width = shape[1] + 2
    flat = np.zeros((shape[0] + 2) * width, dtype=dtype)
    pos = coords[0] * width + coords[1] + (width + 1)  # raster order, as the coordinates
    lab = (idx + 1).astype(dtype)
    flat[pos] = lab
    out["solidity"] = counts / hull_areas(flat, width, pos, lab, n)
    out["perimeter_px"] = perimeters(flat, width, pos, lab, n)
    if spacing is not None:
        out["perimeter_um"] = out["perimeter_px"] * spacing[0]
    return out


def inertia_shape(cov: np.ndarray, unit: str) -> dict[str, np.ndarray]:
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


def perimeters(
    flat: np.ndarray, width: int, pos: np.ndarray, lab: np.ndarray, n: int
) -> np.ndarray:
    """``skimage.measure.perimeter(mask, 4)`` of every object of a zero-bordered 2D image.

    `flat` is the raveled image, `width` its row length, `pos` the flat indices
    of all its non-zero pixels in increasing order and `lab` their values 1..n.
    """
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


def hull_areas(
    flat: np.ndarray, width: int, pos: np.ndarray, lab: np.ndarray, n: int
) -> np.ndarray:
    """Pixel count of ``convex_hull_image`` of every object of a zero-bordered 2D image.

    The arguments are those of :func:`perimeters`.

    scikit-image's hull is the polygon around the edge midpoints of the object's
    pixels, (r ± 1/2, c) and (r, c ± 1/2), and its pixels are the centres inside
    it or on its boundary. So in each row y from the object's top to its bottom
    the hull holds the columns ``ceil(left(y))..floor(right(y))``, where ``right``
    is the upper concave envelope of the right-hand points and ``left`` the lower
    convex one of the left-hand points. Coordinates are doubled to integers, so
    every step is exact integer arithmetic.

    scikit-image finds the same polygon with qhull and tests the pixel centres
    exactly (half-integer coordinates), so the counts are equal whenever qhull
    finds the exact hull. Its round-off tolerance is ~1e-13 of the coordinates,
    and a point off a hull edge of length L lies at least 1 / (4 L) pixels from
    it, so only objects of astronomical size could ever differ.
    """
    # Horizontal runs in raster order: the k-th start and the k-th end belong together.
    starts = flat[pos - 1] != lab
    start, end = pos[starts], pos[flat[pos + 1] != lab]
    obj = lab[starts].astype(np.intp) - 1  # 0..n-1
    row, first_col = np.divmod(start, width)
    last_col = end - row * width
    top, bottom = np.full(n, np.iinfo(np.intp).max), np.full(n, -1)
    np.minimum.at(top, obj, row)
    np.maximum.at(bottom, obj, row)
    # Rows top..bottom of each object, then one empty row that ends the object's chain.
    offset = np.concatenate([[0], np.cumsum(bottom - top + 2)])
    dense = offset[obj] + row - top[obj]
    right = np.full(offset[-1], _ABSENT, dtype=np.int64)
    np.maximum.at(right, dense, last_col)
    neg_left = np.full(offset[-1], _ABSENT, dtype=np.int64)
    np.maximum.at(neg_left, dense, -first_col)
    # floor(right) - ceil(left) + 1 = floor(right) + floor(-left) + 1 per row.
    columns = _envelope_floors(right, offset) + _envelope_floors(neg_left, offset) + 1
    rows = np.ones(offset[-1], dtype=bool)
    rows[offset[1:] - 1] = False
    return np.bincount(np.repeat(np.arange(n), np.diff(offset))[rows], columns[rows], minlength=n)


def _envelope_floors(values: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Floor of the right edge of each row's hull, given each row's rightmost pixel.

    ``values`` holds one column per row of each object (``_ABSENT`` for rows
    without pixels) and one ``_ABSENT`` row after each object, which starts at
    ``offset[k]``. The hull's right edge is the upper concave envelope, as a
    function of the row, of the points (2r - 1, 2c), (2r, 2c + 1) and (2r + 1, 2c)
    in doubled coordinates; it is returned for every entry of ``values``
    (meaningless at the separating rows).
    """
    previous = np.concatenate([[_ABSENT], values[:-1]])
    # Slot 2i: between row i - 1 and row i (y = 2r - 1); slot 2i + 1: row i's centre (y = 2r).
    slot_x = np.stack([2 * np.maximum(previous, values), 2 * values + 1], axis=1).reshape(-1)
    slot_y = np.flatnonzero(slot_x > _ABSENT)  # slot numbers double as y within an object
    x = slot_x[slot_y]
    fixed = np.zeros(slot_x.size, dtype=bool)
    fixed[2 * offset[:-1]] = fixed[2 * offset[1:] - 2] = True  # y = 2 top - 1 and 2 bottom + 1
    fixed = fixed[slot_y]
    # Drop the points on or below the chord of their neighbours until there are none: each is
    # under a chord of original points, so never a vertex of the envelope, and all drop at once.
    prev, nxt = np.arange(-1, x.size - 1), np.arange(1, x.size + 1)
    alive = np.ones(x.size, dtype=bool)
    candidates = np.flatnonzero(~fixed)
    while candidates.size:
        a, c = prev[candidates], nxt[candidates]
        ya, xa = slot_y[a], x[a]
        below = (x[candidates] - xa) * (slot_y[c] - ya) <= (x[c] - xa) * (slot_y[candidates] - ya)
        gone = candidates[below]
        alive[gone] = False
        # Unlink each run of consecutive dropped points from the survivors around it.
        before = prev[gone[alive[prev[gone]]]]
        after = nxt[gone[alive[nxt[gone]]]]
        nxt[before], prev[after] = after, before
        # Only the survivors next to a dropped run have new neighbours to test.
        candidates = np.concatenate([before, after])
        candidates.sort(kind="stable")  # merges the two sorted halves
        keep = ~fixed[candidates]
        keep[1:] &= candidates[1:] != candidates[:-1]
        candidates = candidates[keep]
    y, x = slot_y[alive], x[alive]
    # At each row's centre (slot 2i + 1), interpolate on the envelope segment around it.
    query = np.arange(1, 2 * values.size, 2)
    b = np.minimum(np.searchsorted(y, query, side="right"), y.size - 1)
    a = b - 1
    dy = y[b] - y[a]
    return (x[a] * dy + (x[b] - x[a]) * (query - y[a])) // (2 * dy)


def _solidities_3d(compact: np.ndarray, n: int) -> np.ndarray:
    """Voxel count over ``convex_hull_image`` voxel count, one object at a time."""
    out = np.empty(n)
    with warnings.catch_warnings():
        # Flat 3D objects make qhull fail; scikit-image warns and returns an empty hull.
        warnings.simplefilter("ignore", UserWarning)
        for i, box in enumerate(ndi.find_objects(compact)):
            mask = compact[box] == i + 1
            if min(mask.shape) == 1:
                # One voxel thick: the 3D hull is flat, the hull of the 2D slice is the answer.
                mask = np.take(mask, 0, axis=int(np.argmin(mask.shape)))
            hull = np.count_nonzero(convex_hull_image(mask))
            out[i] = np.count_nonzero(mask) / hull if hull else np.nan
    return out
