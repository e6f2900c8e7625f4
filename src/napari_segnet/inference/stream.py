"""Segment a big plane block by block in bounded memory, with the objects of the whole plane.

Three things make the blocks add up to what :func:`~napari_segnet.inference.segment.iter_segment`
gives for the whole plane (up to the numbering of the objects):

- the normalisation comes from the same sample of the whole plane
  (:func:`~napari_segnet.inference.normalise.normalisation_of`);
- network outputs come from :class:`~napari_segnet.inference.tiling.TiledPredictor`, whose tiles lie
  on the whole plane's grid and are blended in the same order, so they are the same numbers (tiles
  shared by neighbouring blocks are kept, not computed twice);
- instances are made on each block's context (its core plus a halo), and each object is kept by the
  block that holds its first pixel (see :mod:`napari_segnet.inference.blocks`).

Objects that reach the edge of a context may be larger than the halo and cut: they are counted,
and the caller says so. Blocks whose context is one constant value (a slide's empty background) are
not segmented.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from napari_segnet.io import MicroscopyImage
from napari_segnet.progress import Progress, relay

from .blocks import BLOCK, Block, BlockObjects, default_halo, kept_objects, plan_blocks
from .normalise import Normalisation, normalisation_of
from .segment import (
    SegmentSettings,
    choose_channel,
    instance_method_of,
    instance_settings_of,
    make_instances,
    rescale_factor,
)
from .tiling import TiledPredictor

# Planes with more pixels than this are segmented block by block by the command line.
STREAM_PIXELS = 4096 * 4096
# Memory for network outputs of tiles that the next blocks share.
TILE_CACHE_BYTES = 512 * 2**20


def should_stream(image: MicroscopyImage) -> bool:
    """Whether ``image`` is one plane of more than :data:`STREAM_PIXELS` (segment it in blocks)."""
    planar = image.axes.replace("C", "").replace("S", "")
    shape = dict(zip(image.axes, image.data.shape))
    return planar == "YX" and shape["Y"] * shape["X"] > STREAM_PIXELS


class PlaneSource:
    """What blocks read from a (lazy) single-plane image.

    A block's reads (its tiles, its constant check, its measurements) are served
    from one region read ahead with :meth:`read_ahead`, so a compressed file is
    decoded about once per block, not once per batch of tiles.

    Parameters
    ----------
    image : MicroscopyImage
        The image; its ``data`` may be lazy (dask, zarr, memory map).
    channel : int or None
        The channel segmented.
    normalisation : Normalisation
        For the whole plane.

    """

    def __init__(self, image: MicroscopyImage, channel: int | None, normalisation: Normalisation):
        self.image, self.channel, self.normalisation = image, channel, normalisation
        axes, shape = image.axes, image.data.shape
        self.shape = (shape[axes.index("Y")], shape[axes.index("X")])
        self._ahead: tuple[slice, slice, np.ndarray] | None = None

    def read_ahead(self, rows: slice, columns: slice) -> None:
        """Read a region (every channel) that the next reads will come from."""
        self._ahead = None
        self._ahead = (rows, columns, self._read(rows, columns))

    def region(self, rows: slice, columns: slice, *, every_channel: bool = False) -> np.ndarray:
        """Read a region: of the segmented channel, or with every channel."""
        data = None
        if self._ahead is not None:
            ahead_rows, ahead_columns, ahead = self._ahead
            if _within(rows, ahead_rows) and _within(columns, ahead_columns):
                data = ahead[
                    self._index(
                        slice(rows.start - ahead_rows.start, rows.stop - ahead_rows.start),
                        slice(
                            columns.start - ahead_columns.start, columns.stop - ahead_columns.start
                        ),
                    )
                ]
        if data is None:
            data = self._read(rows, columns)
        if "C" in self.image.axes and self.channel is not None and not every_channel:
            data = np.take(data, self.channel, axis=self.image.axes.index("C"))
        return data

    def normalised(self, rows: slice, columns: slice) -> np.ndarray:
        """Return the network's input for a region."""
        return self.normalisation.apply(self.region(rows, columns))

    def _index(self, rows: slice, columns: slice) -> tuple:
        return tuple({"Y": rows, "X": columns}.get(a, slice(None)) for a in self.image.axes)

    def _read(self, rows: slice, columns: slice) -> np.ndarray:
        return np.asarray(self.image.data[self._index(rows, columns)])


def _within(inner: slice, outer: slice) -> bool:
    return outer.start <= inner.start and inner.stop <= outer.stop


def plane_source(image: MicroscopyImage, model, settings: SegmentSettings) -> PlaneSource:
    """Check that ``image`` can be segmented block by block and prepare reading it.

    Raises
    ------
    ValueError
        For images with more than one plane, and for a ``diameter`` that asks
        for rescaling (not done block by block).

    """
    channel = choose_channel(image, settings.channel)
    planar = image.axes.replace("C", "").replace("S", "")
    if planar != "YX":
        raise ValueError(
            f"Block-by-block segmentation takes one 2-D plane, not axes {image.axes}; "
            "segment the planes one at a time."
        )
    if rescale_factor(model, image, settings) != 1.0:
        raise ValueError(
            "Block-by-block segmentation does not rescale: leave out the diameter, "
            "or rescale the image first."
        )
    data = image.data
    if channel is not None:
        data = data[tuple(channel if a == "C" else slice(None) for a in image.axes)]
    percentiles = model.config.normalise_percentiles
    return PlaneSource(image, channel, normalisation_of(data, percentiles, invert=settings.invert))


@dataclass(frozen=True)
class BlockSettings:
    """How :func:`iter_segment_block` makes and keeps objects."""

    method: str
    instances: object
    star: object = None
    class_names: tuple[str, ...] = ()
    measure: bool = True
    channel_names: tuple[str, ...] = ()
    spacing: tuple[float, float] | None = None


def block_settings(
    model, source: PlaneSource, settings: SegmentSettings, *, measure: bool = True, spacing=None
) -> BlockSettings:
    """Return the :class:`BlockSettings` of a model and image."""
    return BlockSettings(
        method=instance_method_of(model),
        instances=settings.instances or instance_settings_of(model),
        class_names=tuple(getattr(model.config, "semantic_classes", ()) or ()),
        measure=measure,
        channel_names=tuple(source.image.channel_names),
        spacing=tuple(spacing) if spacing is not None else None,
    )


def iter_segment_block(
    predictor: TiledPredictor, source: PlaneSource, block: Block, settings: BlockSettings
) -> Generator[Progress, None, BlockObjects]:
    """Segment one block's context; return the objects the block keeps, measured."""
    from napari_segnet.postprocess.classes import classify_instances

    rows, columns = block.context
    source.read_ahead(*predictor.reads(rows, columns))
    context = source.region(rows, columns)
    if context.min() == context.max():  # e.g. a slide's empty background
        return BlockObjects(block, skipped=True)
    del context
    outputs = yield from predictor.iter_window(rows, columns)
    labels = make_instances(outputs, settings.method, settings.instances, settings.star)
    kept = kept_objects(labels, block, source.shape)
    if kept.count == 0:
        return kept
    y0, x0 = kept.origin[0] - rows.start, kept.origin[1] - columns.start
    inside = (slice(y0, y0 + kept.patch.shape[0]), slice(x0, x0 + kept.patch.shape[1]))
    if "semantic" in outputs:
        kept.classes = classify_instances(
            kept.patch, outputs["semantic"][(slice(None), *inside)], settings.class_names
        )
    if settings.measure:
        kept.table = _measure(kept, source, settings)
    return kept


def _measure(kept: BlockObjects, source: PlaneSource, settings: BlockSettings):
    """Measure the kept objects against every channel, in plane coordinates."""
    from napari_segnet.measure.blocks import measure_patch

    (top, left), (height, width) = kept.origin, kept.patch.shape
    intensities = source.region(
        slice(top, top + height), slice(left, left + width), every_channel=True
    )
    return measure_patch(
        kept.patch,
        kept.origin,
        intensities,
        source.image.channel_axis,
        list(settings.channel_names) or None,
        settings.spacing,
    )


@dataclass
class StreamSummary:
    """What block-by-block segmentation found: objects, cut ones, empty blocks."""

    objects: int = 0
    oversized: int = 0
    blocks: int = 0
    skipped: int = 0
    halo: int = 0

    def add(self, objects: BlockObjects) -> None:
        """Count one block's objects."""
        self.objects += objects.count
        self.oversized += objects.oversized
        self.skipped += objects.skipped


@dataclass
class StreamPlan:
    """The blocks of a plane and how each is segmented (see :func:`plan_stream`)."""

    source: PlaneSource
    blocks: list[Block]
    block_settings: BlockSettings
    halo: int

    def final_row(self, number: int) -> int:
        """Return the first row that the blocks after block ``number`` may still paint."""
        later = self.blocks[number + 1 :]
        return min((b.context[0].start for b in later), default=self.source.shape[0])

    def predictor(self, model, settings: SegmentSettings, device=None) -> TiledPredictor:
        """Return a :class:`TiledPredictor` over the plane, caching shared tiles."""
        return TiledPredictor(
            model,
            self.source.normalised,
            self.source.shape,
            tile=settings.tile,
            overlap=settings.overlap,
            batch_size=settings.batch_size,
            device=device,
            cache_bytes=TILE_CACHE_BYTES,
        )


def plan_stream(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings,
    *,
    block: int = BLOCK,
    halo: int | None = None,
    measure: bool = True,
    spacing=None,
) -> StreamPlan:
    """Plan block-by-block segmentation: read the normalisation, cut the blocks."""
    source = plane_source(image, model, settings)
    halo = default_halo(model) if halo is None else int(halo)
    return StreamPlan(
        source,
        plan_blocks(source.shape, block, halo),
        block_settings(model, source, settings, measure=measure, spacing=spacing),
        halo,
    )


def iter_segment_streamed(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings,
    add: Callable[[BlockObjects, int], object],
    *,
    device=None,
    block: int = BLOCK,
    halo: int | None = None,
    measure: bool = True,
    spacing=None,
) -> Generator[Progress, None, StreamSummary]:
    """Segment a single-plane image block by block; hand each block's objects to ``add``.

    ``add(objects, final_row)`` is called for every block in raster order;
    ``objects.patch`` holds labels 1..count, to be shifted by the number of
    objects handed over before; no later block paints rows above
    ``final_row``. Yields progress in thousandths of a block.

    Returns
    -------
    StreamSummary

    """
    plan = plan_stream(
        image, model, settings, block=block, halo=halo, measure=measure, spacing=spacing
    )
    predictor = plan.predictor(model, settings, device)
    n = len(plan.blocks)
    summary = StreamSummary(blocks=n, halo=plan.halo)
    for number, current in enumerate(plan.blocks):
        objects = yield from relay(
            iter_segment_block(predictor, plan.source, current, plan.block_settings),
            lambda event, number=number: Progress(
                number * 1000 + int(1000 * event.done / max(event.total, 1)),
                n * 1000,
                f"segmenting block {number + 1} of {n}",
            ),
        )
        add(objects, plan.final_row(number))
        summary.add(objects)
        yield Progress((number + 1) * 1000, n * 1000, f"segmented block {number + 1}")
    return summary
