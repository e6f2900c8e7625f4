"""Blocks of a big plane or Z-stack: their geometry, and which objects each block keeps.

A block is a *core* (the blocks' cores tile the plane) and a *context*: the
core with a halo around it. Instances are made on the whole context, and a
block keeps the objects whose first pixel (in raster order) lies in its core,
so every object is kept by exactly one block and is whole, unless it reaches
the edge of the context: then it may be larger than the halo and is counted as
*oversized*. Blocks of a Z-stack cut only Y and X: each holds every plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BLOCK = 2048  # core edge in pixels
MIN_HALO = 128


@dataclass(frozen=True)
class Block:
    """One block: ``core`` and ``context`` are ``(rows, columns)`` slices of the plane."""

    index: int
    core: tuple[slice, slice]
    context: tuple[slice, slice]


@dataclass
class BlockObjects:
    """The objects a block keeps.

    Attributes
    ----------
    block : Block
    origin : tuple of int
        Coordinates of the patch's first pixel in the plane ``(y, x)`` (or the
        stack, ``(z, y, x)``).
    patch : ndarray of uint32
        The kept objects numbered ``1..count`` (0 elsewhere), cut to their
        bounding box; ``(Z, Y, X)`` for a stack.
    count : int
        Number of objects kept.
    oversized : int
        Kept objects that reach the edge of the context (they may be cut).
    table : pandas.DataFrame or None
        Their measurements (``label`` 1..count, plane coordinates).
    classes : dict
        Semantic class per kept object (``label``, ``class``,
        ``class_probability``), for models with semantic classes.
    skipped : bool
        The context was one constant value and was not segmented.
    source_ids : ndarray
        The label each kept object had in the context (object ``i`` was ``source_ids[i - 1]``).
    edge_ids : ndarray
        The kept objects (1..count) that reach the edge of the context.
    cells : ndarray of uint32 or None
        The kept objects' cells numbered as their nuclei, cut to their bounding box
        (None: no cells were grown).
    cells_origin : tuple of int
        Coordinates of ``cells``' first pixel in the plane (or stack).

    """

    block: Block
    origin: tuple[int, int] = (0, 0)
    patch: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint32))
    count: int = 0
    oversized: int = 0
    table: object = None
    classes: dict = field(default_factory=dict)
    skipped: bool = False
    source_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    edge_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    cells: np.ndarray | None = None
    cells_origin: tuple[int, ...] = ()


def default_halo(model, scale: float = 1.0) -> int:
    """Halo for a model: six of its typical object diameters, at least ``MIN_HALO`` pixels.

    In the plane's pixels: when the network sees the plane zoomed by ``scale``,
    objects of the model's size are ``1 / scale`` times that size in the plane.
    """
    diameter = (getattr(model.config, "object_diameter_px", None) or 32) / scale
    return max(MIN_HALO, int(math.ceil(6 * diameter / 16) * 16))


def plan_blocks(shape: tuple[int, int], block: int = BLOCK, halo: int = MIN_HALO) -> list[Block]:
    """Cut a plane into blocks in raster order."""
    if block < 16 or halo < 0:
        raise ValueError(f"Blocks need an edge of at least 16 pixels and a halo ≥ 0, not {block}.")
    height, width = shape
    blocks = []
    for y in range(0, height, block):
        for x in range(0, width, block):
            core = (slice(y, min(y + block, height)), slice(x, min(x + block, width)))
            context = (
                slice(max(0, y - halo), min(y + block + halo, height)),
                slice(max(0, x - halo), min(x + block + halo, width)),
            )
            blocks.append(Block(len(blocks), core, context))
    return blocks


def kept_objects(labels: np.ndarray, block: Block, shape: tuple[int, int]) -> BlockObjects:
    """Return the objects of a context's labels that ``block`` keeps, numbered 1..n.

    ``labels`` is the context's ``(Y, X)`` plane or ``(Z, Y, X)`` stack (blocks cut
    only Y and X). An object's first pixel is its first in raster order over every
    axis, so in a stack it is the same pixel in every context that holds it whole.
    """
    rows, columns = block.context
    flat = labels.ravel()
    foreground = np.flatnonzero(flat)
    if foreground.size == 0:
        return BlockObjects(block)
    ids, first = np.unique(flat[foreground], return_index=True)
    *_, y, x = np.unravel_index(foreground[first], labels.shape)
    y, x = y + rows.start, x + columns.start
    core_rows, core_columns = block.core
    kept = (
        (core_rows.start <= y)
        & (y < core_rows.stop)
        & (core_columns.start <= x)
        & (x < core_columns.stop)
    )
    count = int(kept.sum())
    if count == 0:
        return BlockObjects(block)
    lookup = np.zeros(int(ids[-1]) + 1, np.uint32)
    lookup[ids[kept]] = np.arange(1, count + 1, dtype=np.uint32)
    local = lookup[labels]
    box = []
    for axis in range(local.ndim):
        others = tuple(a for a in range(local.ndim) if a != axis)
        inside = np.flatnonzero(local.any(axis=others))
        box.append(slice(int(inside[0]), int(inside[-1]) + 1))
    patch = np.ascontiguousarray(local[tuple(box)])
    # Kept objects on an edge of the context that is not the plane's edge may be cut.
    edges = []
    if rows.start > 0:
        edges.append(local[..., 0, :])
    if rows.stop < shape[0]:
        edges.append(local[..., -1, :])
    if columns.start > 0:
        edges.append(local[..., :, 0])
    if columns.stop < shape[1]:
        edges.append(local[..., :, -1])
    on_edge = np.unique(np.concatenate([e.ravel() for e in edges])) if edges else np.zeros(0)
    on_edge = on_edge[on_edge > 0].astype(np.uint32)
    starts = [b.start for b in box]
    starts[-2] += rows.start
    starts[-1] += columns.start
    return BlockObjects(
        block,
        tuple(int(n) for n in starts),
        patch,
        count,
        int(on_edge.size),
        source_ids=ids[kept].astype(np.int64),
        edge_ids=on_edge,
    )
