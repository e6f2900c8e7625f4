"""Overlapping tiles with smooth blending, so that tiled and whole-image predictions agree.

A plane can also be predicted zoomed (objects brought to the size the network
was trained at): the network sees the plane resampled by
:func:`~napari_segnet.inference.resample.resample_window` and its outputs are
resampled back to the plane's grid by the same function, so tiles zoom exactly
as the whole plane would.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Generator

import numpy as np

from napari_segnet.progress import Progress

from .augment import check_views, unview, view
from .precision import autocast, autocast_dtype, check_precision
from .resample import resample_window, source_span, zoomed_shape

# The tiling defaults of every entry point (library, CLI, widgets), kept here only.
TILE = 512
OVERLAP = 64
BATCH_SIZE = 4


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``size`` with tiles of ``tile`` overlapping by ≥ ``overlap``."""
    if size <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(
            f"The tile overlap ({overlap}) must be at least 0 and less than the tile ({tile})."
        )
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def blending_window(tile: tuple[int, int], overlap: int) -> np.ndarray:
    """Weights that fall smoothly to a small value over ``overlap`` pixels at each edge.

    Predictions near a tile's border see less context; the window lets the
    neighbouring tile dominate there. It never reaches zero, so image borders
    (covered by one tile only) are still weighted.
    """
    axes = []
    for length in tile:
        ramp = np.ones(length, np.float32)
        n = min(overlap, length // 2)
        if n > 0:
            edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n + 2, dtype=np.float32)[1:-1])
            ramp[:n], ramp[-n:] = edge, edge[::-1]
        axes.append(np.maximum(ramp, 1e-3))
    return np.outer(axes[0], axes[1])


def iter_predict_tiled(
    model,
    plane: np.ndarray,
    *,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH_SIZE,
    device=None,
    precision: str = "auto",
    scale: float = 1.0,
    views: int = 1,
) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Predict class probabilities of a normalised plane tile by tile.

    Yields one :class:`Progress` per batch of tiles and returns float32 arrays
    blended over the tiles: ``"instance"``: (3, Y, X) softmax probabilities;
    with semantic classes ``"semantic"``: (K, Y, X) softmax probabilities; with
    the star head ``"star_prob"``: (Y, X) sigmoid object probability and
    ``"star_dist"``: (R, Y, X) ray distances in the plane's pixels.

    Parameters
    ----------
    model : SegNet
        In ``eval`` mode, on ``device``.
    plane : ndarray of float32, shape (Y, X) or (C, Y, X)
        The normalised input (see :func:`~napari_segnet.inference.normalise.normalise`):
        ``(Y, X)`` for a network that reads one channel, channels-first for more.
    tile : int
        Tile edge in pixels (rounded up to the network's size multiple).
    overlap : int
        Overlap between neighbouring tiles in pixels.
    batch_size : int
        Tiles per forward pass.
    device : torch.device, optional
        Where the model runs (default: the model's device).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Number format of the network (see
        :func:`~napari_segnet.inference.precision.autocast_dtype`); ``auto`` is
        bfloat16 (or float16) on CUDA and float32 elsewhere.
    scale : float
        Zoom of the plane that the network sees (see :class:`TiledPredictor`);
        the outputs have the plane's shape whatever the zoom.
    views : int
        Test-time augmentation: average each tile's outputs over this many of
        its dihedral views (1: none; 8: every flip and 90° rotation).

    """
    predictor = TiledPredictor(
        model,
        lambda rows, columns: plane[..., rows, columns],
        plane.shape[-2:],
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        scale=scale,
        views=views,
    )
    height, width = plane.shape[-2:]
    return (yield from predictor.iter_window(slice(0, height), slice(0, width)))


class TiledPredictor:
    """Network outputs for any window of a plane, blended as over the whole plane.

    The tiles lie on one grid over the whole (padded) plane, whatever window is
    asked for, and every pixel sums its tiles in the same order: a window's
    outputs are those of :func:`iter_predict_tiled` on the whole plane, cut to
    the window. So a plane can be predicted block by block, reading only the
    tiles a block needs. Tiles shared by neighbouring windows are kept in a
    cache of at most ``cache_bytes`` (least recently used ones go first) instead
    of being computed again.

    With ``scale`` ≠ 1 the network sees the plane zoomed by ``scale`` (its
    ``network_shape`` is ``round(n × scale)`` an axis), read tile by tile through
    :func:`~napari_segnet.inference.resample.resample_window`, never whole; the
    tiles lie on the zoomed plane's grid, and a window's outputs are resampled
    back to the plane's pixels by the same function, mirrored at the plane's
    edges (star distances divided by ``scale``, so they are in the plane's
    pixels too). So windows are still exactly the whole plane's outputs.

    Parameters
    ----------
    model : SegNet
        In ``eval`` mode.
    read : callable
        ``read(rows, columns)`` returns the normalised float32 input of a
        region of the plane (two slices within ``shape``): ``(rows, columns)``,
        or ``(C, rows, columns)`` for a network that reads C channels.
    shape : tuple of int
        ``(Y, X)`` of the whole plane.
    tile, overlap, batch_size, device, precision
        As in :func:`iter_predict_tiled`.
    cache_bytes : int
        Memory for tiles kept for later windows (0: none).
    scale : float
        Zoom of the plane that the network sees.
    views : int
        Test-time augmentation: each tile's outputs are the average over this
        many of its dihedral views (:mod:`napari_segnet.inference.augment`),
        taken before blending, so windows still equal the whole plane.

    Raises
    ------
    ValueError
        For ``views`` outside 1–8, or above 1 with a star-head model.

    """

    def __init__(
        self,
        model,
        read,
        shape: tuple[int, int],
        *,
        tile: int = TILE,
        overlap: int = OVERLAP,
        batch_size: int = BATCH_SIZE,
        device=None,
        precision: str = "auto",
        cache_bytes: int = 0,
        scale: float = 1.0,
        views: int = 1,
    ):
        import torch

        check_views(model, views)
        # As asked, for replaced(): a predictor like this one with some options changed.
        self.options = dict(
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            precision=precision,
            cache_bytes=cache_bytes,
            scale=scale,
            views=views,
        )
        self.views = views
        self.model, self.read, self.shape = model, read, tuple(int(n) for n in shape)
        if not scale > 0:
            raise ValueError(f"The zoom must be positive, not {scale}.")
        self.scale = float(scale)
        # The plane the tiles cover: the zoomed one (never held whole).
        self.network_shape = self.shape if scale == 1 else zoomed_shape(self.shape, self.scale)
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.multiple = multiple = model.size_multiple
        tile = int(np.ceil(tile / multiple) * multiple)
        # Tiles that start on the network's stride grid compute exactly what the whole
        # image computes away from their borders: keep the overlap a multiple too.
        overlap = min(int(np.ceil(overlap / multiple) * multiple), tile - multiple)
        self.padded = tuple(
            max(int(np.ceil(n / multiple) * multiple), multiple) for n in self.network_shape
        )
        height, width = self.padded
        self.tile_shape = (min(tile, height), min(tile, width))
        self.rows = tile_starts(height, self.tile_shape[0], overlap)
        self.columns = tile_starts(width, self.tile_shape[1], overlap)
        several = len(self.rows) * len(self.columns) > 1
        self.window = blending_window(self.tile_shape, overlap if several else 0)
        self.batch_size, self.precision = batch_size, check_precision(precision)
        self.cache_bytes = cache_bytes
        # Batches: runs of ``batch_size`` tiles along each row of tiles.
        self._group = {
            corner: group
            for y in self.rows
            for start in range(0, len(self.columns), batch_size)
            for group in [tuple((y, x) for x in self.columns[start : start + batch_size])]
            for corner in group
        }
        self._cache: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0

    def replaced(self, *, model=None, **options) -> TiledPredictor:
        """Return a predictor of the same plane with ``model`` or some options changed.

        ``options`` are those of the constructor (``tile``, ``batch_size``,
        ``device``, ...); the new predictor starts with an empty cache.
        """
        unknown = set(options) - set(self.options)
        if unknown:
            raise TypeError(f"TiledPredictor has no option {', '.join(sorted(unknown))}.")
        return TiledPredictor(
            self.model if model is None else model,
            self.read,
            self.shape,
            **{**self.options, **options},
        )

    def network_window(self, rows: slice, columns: slice) -> tuple[slice, slice]:
        """Return the window of the network's (zoomed) plane that a window of the plane needs."""
        if self.scale == 1.0:
            return rows, columns
        return tuple(
            source_span(window.start, window.stop, zoomed, n, mirror=True)
            for window, zoomed, n in zip((rows, columns), self.network_shape, self.shape)
        )

    def corners(self, rows: slice, columns: slice) -> list[tuple[int, int]]:
        """Top-left corners of the tiles that overlap a window of the network's plane.

        In raster order; the window and the corners are in the network's (zoomed) pixels.
        """
        th, tw = self.tile_shape
        return [
            (y, x)
            for y in self.rows
            if y < rows.stop and y + th > rows.start
            for x in self.columns
            if x < columns.stop and x + tw > columns.start
        ]

    def reads(self, rows: slice, columns: slice) -> tuple[slice, slice]:
        """Return the region of the plane that predicting a window reads (at most)."""
        rows, columns = self.network_window(rows, columns)
        corners = [c for corner in self.corners(rows, columns) for c in self._group[corner]]
        (th, tw), pad = self.tile_shape, self.multiple
        extent = []
        for first, last, size, length in (
            (min(y for y, _ in corners), max(y for y, _ in corners), th, self.network_shape[0]),
            (min(x for _, x in corners), max(x for _, x in corners), tw, self.network_shape[1]),
        ):
            stop = last + size
            start = min(first, max(0, length - 2 * pad)) if stop > length else first
            extent.append(slice(start, min(stop, length)))
        if self.scale == 1.0:
            return extent[0], extent[1]
        return tuple(
            source_span(window.start, window.stop, n, zoomed)
            for window, n, zoomed in zip(extent, self.shape, self.network_shape)
        )

    def iter_window(
        self, rows: slice, columns: slice
    ) -> Generator[Progress, None, dict[str, np.ndarray]]:
        """Yield progress per batch of tiles; return the outputs of a window of the plane."""
        if self.scale == 1.0:
            return (yield from self._iter_network_window(rows, columns))
        zoomed_rows, zoomed_columns = self.network_window(rows, columns)
        outputs = yield from self._iter_network_window(zoomed_rows, zoomed_columns)
        result = {}
        for key in list(outputs):
            values = outputs.pop(key)  # one output at a time: the zoomed ones can be large
            result[key] = resample_window(
                lambda r, c, values=values: values[
                    ...,
                    r.start - zoomed_rows.start : r.stop - zoomed_rows.start,
                    c.start - zoomed_columns.start : c.stop - zoomed_columns.start,
                ],
                self.network_shape,
                self.shape,
                rows,
                columns,
                mirror=True,
            )
            del values
        if "star_dist" in result:
            result["star_dist"] /= self.scale  # from the network's pixels to the plane's
        return result

    def _iter_network_window(
        self, rows: slice, columns: slice
    ) -> Generator[Progress, None, dict[str, np.ndarray]]:
        """Yield progress per batch of tiles; return the outputs of a window of the zoomed plane."""
        th, tw = self.tile_shape
        corners = self.corners(rows, columns)
        height, width = rows.stop - rows.start, columns.stop - columns.start
        sums: dict[str, np.ndarray] = {}
        weight = np.zeros((height, width), np.float32)
        wanted = set(corners)
        # Batches to predict: those of the tiles not in the cache now. A cached tile can
        # still be dropped before its turn (the cache makes room for newer ones) and its
        # batch predicted again, so the count can grow on the way.
        batches = len({self._group[c] for c in corners if c not in self._cache})
        predicted = 0
        computed: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        for corner in corners:
            if corner not in computed and corner not in self._cache:
                # Always the same batches: a tile's outputs depend (in the last bits) on the
                # batch it is computed in, so that every window sees the same numbers.
                for member, outputs in self._predict(self._group[corner]).items():
                    if member in wanted:
                        computed[member] = outputs
                    else:
                        self._remember(member, outputs)  # for a later window
                predicted += 1
                batches = max(batches, predicted)
                yield Progress(predicted, batches, "predicting tiles")
            outputs = computed.pop(corner, None)
            if outputs is None:
                outputs = self._cache[corner]
                self._cache.move_to_end(corner)
            else:
                self._remember(corner, outputs)
            y, x = corner
            # The part of the tile inside the window, in window and in tile coordinates.
            y0, y1 = max(y, rows.start), min(y + th, rows.stop)
            x0, x1 = max(x, columns.start), min(x + tw, columns.stop)
            inside = (
                slice(y0 - rows.start, y1 - rows.start),
                slice(x0 - columns.start, x1 - columns.start),
            )
            part = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
            for key, weighted in outputs.items():
                total = sums.setdefault(
                    key, np.zeros((weighted.shape[0], height, width), np.float32)
                )
                total[(slice(None), *inside)] += weighted[(slice(None), *part)]
            weight[inside] += self.window[part]
        result = {}
        for key in list(sums):
            total = sums.pop(key)  # divide in place: star distances are large (R values a pixel)
            total /= weight
            result[key] = total[0] if key in SINGLE_CHANNEL else total
        return result

    def _predict(self, corners: list[tuple[int, int]]) -> dict[tuple[int, int], dict]:
        """Return the window-weighted network outputs of some tiles."""
        import torch

        th, tw = self.tile_shape
        top, left = min(y for y, _ in corners), min(x for _, x in corners)
        bottom, right = max(y for y, _ in corners) + th, max(x for _, x in corners) + tw
        region = self._read_padded(top, bottom, left, right)
        batch = np.stack(
            [region[..., y - top : y - top + th, x - left : x - left + tw] for y, x in corners]
        )
        if batch.ndim == 3:  # one channel: (B, th, tw) -> (B, 1, th, tw)
            batch = batch[:, None]
        _check_channels(self.model, batch.shape[1])
        inputs = torch.from_numpy(batch).to(self.device)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        device = self.device
        mixed = autocast(device, autocast_dtype(self.precision, device))
        # Exported models (OnnxModel) return their outputs already activated.
        activated = getattr(self.model, "outputs_activated", False)
        averaged: dict[str, np.ndarray] = {}
        for index in range(self.views):
            viewed = view(inputs, index).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), mixed:
                outputs = self.model(viewed)
            for key, raw in outputs.items():
                values = raw.float() if activated else _activation(key)(raw.float())
                values = unview(values, index).cpu().numpy()
                averaged[key] = averaged[key] + values if key in averaged else values
        result: dict[tuple[int, int], dict] = {corner: {} for corner in corners}
        for key, values in averaged.items():
            if self.views > 1:
                values = values / self.views
            for corner, v in zip(corners, values):
                result[corner][key] = v * self.window
        return result

    def _read_padded(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """Read a region of the network's plane, reflect-padded past its end as the whole one is."""
        height, width = self.network_shape
        # Reflection needs the rows (columns) it mirrors: read enough before the end
        # (the same rule as in reads()).
        pad = self.multiple
        rows = slice(
            min(top, max(0, height - 2 * pad)) if bottom > height else top, min(bottom, height)
        )
        columns = slice(
            min(left, max(0, width - 2 * pad)) if right > width else left, min(right, width)
        )
        region = np.asarray(self._read_network(rows, columns), dtype=np.float32)
        extra = [(0, max(0, bottom - height)), (0, max(0, right - width))]
        if any(after for _, after in extra):
            mode = "reflect" if min(height, width) > 1 else "edge"
            region = np.pad(region, [(0, 0)] * (region.ndim - 2) + extra, mode=mode)
        region = region[..., top - rows.start :, left - columns.start :]
        return np.ascontiguousarray(region, dtype=np.float32)

    def _read_network(self, rows: slice, columns: slice) -> np.ndarray:
        """Read a region of the network's (zoomed) plane."""
        if self.scale == 1.0:
            return self.read(rows, columns)
        return resample_window(self.read, self.shape, self.network_shape, rows, columns)

    def _remember(self, corner: tuple[int, int], outputs: dict[str, np.ndarray]) -> None:
        size = sum(v.nbytes for v in outputs.values())
        if size > self.cache_bytes:
            return
        self._cache[corner] = outputs
        self._cached_bytes += size
        while self._cached_bytes > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= sum(v.nbytes for v in dropped.values())


SINGLE_CHANNEL = {"star_prob"}  # returned as (Y, X)


def _check_channels(model, channels: int) -> None:
    """Refuse an input with other channels than the network reads, in one sentence."""
    expected = getattr(getattr(model, "config", None), "in_channels", None)
    if expected is not None and channels != expected:
        raise ValueError(
            f"The network reads {expected} channel(s) but was given {channels}: normalise "
            f"the image with channels={expected} (see napari_segnet.inference.normalise)."
        )


def _activation(key: str):
    """Return the function that turns the raw output ``key`` into the values blended."""
    import torch

    activations = {
        "instance": lambda t: torch.softmax(t, dim=1),
        "semantic": lambda t: torch.softmax(t, dim=1),
        "star_prob": torch.sigmoid,
        "star_dist": lambda t: t,  # already distances: blended linearly
    }
    if key not in activations:
        raise ValueError(f"The network returned an output {key!r} that cannot be tiled.")
    return activations[key]
