"""Segment a big plane or Z-stack block by block in bounded memory, with the whole image's objects.

Three things make the blocks add up to what :func:`~napari_segnet.inference.segment.iter_segment`
gives for the whole plane (up to the numbering of the objects):

- the normalisation comes from the same sample of the whole plane
  (:func:`~napari_segnet.inference.normalise.normalisation_of`);
- network outputs come from :class:`~napari_segnet.inference.tiling.TiledPredictor`, whose tiles lie
  on the whole plane's grid and are blended in the same order, so they are the same numbers (tiles
  shared by neighbouring blocks are kept, not computed twice);
- instances are made on each block's context (its core plus a halo), and each object is kept by the
  block that holds its first pixel (see :mod:`napari_segnet.inference.blocks`).

When objects are not the size the model was trained at, the network sees the plane zoomed (a
given diameter, or ``"auto"``: measured once on a central window of the image, see
:mod:`napari_segnet.inference.diameter`). The predictor reads the zoomed plane region by region and
resamples its outputs back to the plane's pixels with the function that whole-plane segmentation
uses (:func:`~napari_segnet.inference.tiling.resample_window`), so blocks still see the whole
plane's numbers, and instances are made at the plane's resolution.

Objects that reach the edge of a context may be larger than the halo and cut: they are counted,
and the caller says so. Blocks whose context is one constant value (a slide's empty background) are
not segmented.

A Z-stack is cut into blocks in Y and X only; each block holds every plane. Its planes are
segmented one by one as above (each with its own normalisation, as in the whole stack) and linked
into 3-D objects on the block's context (:func:`~napari_segnet.postprocess.stack.link_planes`),
which, for objects that lie whole in the context, links exactly what the whole stack links.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace

import numpy as np

from napari_segnet.io import MicroscopyImage
from napari_segnet.progress import Progress, drain, relay

from .augment import VIEWS
from .block_cells import (
    CellGrowth,
    add_cells,
    cell_margin,
    settle_growth,
    stain_region,
    survey_window,
)
from .blocks import BLOCK, Block, BlockObjects, default_halo, kept_objects, plan_blocks
from .diameter import AUTO, DiameterEstimate, iter_estimate_diameter
from .fallback import Attempt, fall_back, next_attempt
from .normalise import Normalisation, network_shape, normalisation_of, spatial_key
from .segment import (
    SegmentSettings,
    choose_channel,
    instance_method_of,
    instance_settings_of,
    make_instances,
    rescale_factor,
)
from .tiling import TiledPredictor

# Planes with more pixels than this are segmented block by block by the command line,
STREAM_PIXELS = 4096 * 4096
# and Z-stacks with more voxels than this.
STREAM_VOXELS = 8 * STREAM_PIXELS
# Voxels of one block's context of a Z-stack: the block edge shrinks for deep stacks.
# Peak memory follows it (16 × 4096² uint16, measurements on: 3.38 GiB at 48 Mi voxels,
# 2.88 GiB at 32 Mi; benchmarks/bench_big_plane.py --stacks).
STACK_CONTEXT_VOXELS = 32 * 2**20
# Memory for network outputs of tiles that the next blocks share.
TILE_CACHE_BYTES = 512 * 2**20


def should_stream(image: MicroscopyImage) -> bool:
    """Whether to segment ``image`` in blocks.

    True for one plane of more than :data:`STREAM_PIXELS` pixels, and for a
    Z-stack of more than :data:`STREAM_VOXELS` voxels or with such planes.
    """
    planar = image.axes.replace("C", "").replace("S", "")
    shape = dict(zip(image.axes, image.data.shape))
    if planar not in ("YX", "ZYX"):
        return False
    pixels = shape["Y"] * shape["X"]
    return pixels > STREAM_PIXELS or pixels * shape.get("Z", 1) > STREAM_VOXELS


class PlaneSource:
    """What blocks read from a (lazy) single-plane image or Z-stack.

    A block's reads (its tiles, its constant check, its measurements) are served
    from one region read ahead with :meth:`read_ahead`, so a compressed file is
    decoded about once per block, not once per batch of tiles.

    Parameters
    ----------
    image : MicroscopyImage
        The image; its ``data`` may be lazy (dask, zarr, memory map).
    channel : int or None
        The channel segmented.
    normalisation : Normalisation or tuple of Normalisation
        For the whole plane; for a Z-stack, one per plane.
    scale : float
        Zoom of the plane that the network sees (1: as it is).

    Attributes
    ----------
    shape : tuple of int
        ``(Y, X)``: what blocks cut.
    planes : int
        Planes of the stack (1 for a single plane).
    labels_shape : tuple of int
        ``(Z, Y, X)`` of a stack, ``(Y, X)`` of a plane.

    """

    def __init__(
        self,
        image: MicroscopyImage,
        channel: int | None,
        normalisation: Normalisation | tuple[Normalisation, ...],
        scale: float = 1.0,
    ):
        self.image, self.channel, self.normalisation = image, channel, normalisation
        self.scale = float(scale)
        axes, shape = image.axes, image.data.shape
        self.shape = (shape[axes.index("Y")], shape[axes.index("X")])
        self.stacked = "Z" in axes
        self.planes = shape[axes.index("Z")] if self.stacked else 1
        self.labels_shape = (self.planes, *self.shape) if self.stacked else self.shape
        if self.stacked and len(normalisation) != self.planes:
            raise ValueError("A Z-stack needs one normalisation per plane.")
        self._ahead: tuple[slice, slice, np.ndarray] | None = None

    def read_ahead(self, rows: slice, columns: slice) -> None:
        """Read a region (every channel) that the next reads will come from."""
        self._ahead = None
        self._ahead = (rows, columns, self._read(rows, columns))

    def region(self, rows: slice, columns: slice, *, every_channel: bool = False) -> np.ndarray:
        """Read a region (every plane of a stack): of the segmented channel, or every channel."""
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

    def normalised(self, rows: slice, columns: slice, plane: int = 0) -> np.ndarray:
        """Return the network's input for a region of a plane (of the stack).

        ``(rows, columns)``, or ``(C, rows, columns)`` for a network that reads C channels.
        """
        region = self.region(rows, columns)
        if not self.stacked:
            return self.normalisation.apply(region)
        axes = self.image.axes if self.channel is None else self.image.axes.replace("C", "")
        region = np.take(region, plane, axis=axes.index("Z"))
        return self.normalisation[plane].apply(region)

    def reader(self, plane: int):
        """Return ``read(rows, columns)``: the network's input of one plane."""
        return lambda rows, columns: self.normalised(rows, columns, plane)

    def normalised_plane(self, plane: int = 0) -> NormalisedPlane:
        """Return one plane's network input as a lazy array: indexing reads only that region."""
        return NormalisedPlane(self, plane)

    def _index(self, rows: slice, columns: slice) -> tuple:
        return tuple({"Y": rows, "X": columns}.get(a, slice(None)) for a in self.image.axes)

    def _read(self, rows: slice, columns: slice) -> np.ndarray:
        return np.asarray(self.image.data[self._index(rows, columns)])


class NormalisedPlane:
    """One plane of a :class:`PlaneSource` as the network's input, read when indexed.

    ``view[..., rows, columns]`` (or ``view[rows, columns]``; two slices) reads and
    normalises that region only, so a window of a multi-GB plane can be handed to
    functions that take an array. Its ``shape`` is ``(Y, X)``, or ``(C, Y, X)`` for
    a network that reads C channels.
    """

    def __init__(self, source: PlaneSource, plane: int = 0):
        self.source, self.plane = source, plane
        first = source.normalisation[plane] if source.stacked else source.normalisation
        self.shape = network_shape(source.shape, first.channels)
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        rows, columns = (
            slice(*window.indices(n)[:2])
            for window, n in zip(spatial_key(key), self.source.shape, strict=True)
        )
        return self.source.normalised(rows, columns, self.plane)


def _within(inner: slice, outer: slice) -> bool:
    return outer.start <= inner.start and inner.stop <= outer.stop


def plane_source(
    image: MicroscopyImage, model, settings: SegmentSettings, scale: float = 1.0
) -> PlaneSource:
    """Check that ``image`` can be segmented block by block and prepare reading it.

    ``scale`` is the zoom the network sees the planes at (see :func:`iter_plan_stream`).

    Raises
    ------
    ValueError
        For time series.

    """
    channel = choose_channel(image, settings.channel)
    planar = image.axes.replace("C", "").replace("S", "")
    if planar not in ("YX", "ZYX"):
        raise ValueError(
            f"Block-by-block segmentation takes a 2-D plane or a Z-stack, not axes {image.axes}; "
            "segment the time points one at a time."
        )
    data = image.data
    if channel is not None:
        data = data[tuple(channel if a == "C" else slice(None) for a in image.axes)]
    percentiles = model.config.normalise_percentiles
    options = dict(invert=settings.invert, channels=model.config.in_channels)
    if "Z" not in image.axes:
        return PlaneSource(image, channel, normalisation_of(data, percentiles, **options), scale)
    z = (image.axes if channel is None else image.axes.replace("C", "")).index("Z")
    normalisations = tuple(
        normalisation_of(data[(slice(None),) * z + (plane,)], percentiles, **options)
        for plane in range(data.shape[z])
    )
    return PlaneSource(image, channel, normalisations, scale)


@dataclass(frozen=True)
class BlockSettings:
    """How :func:`iter_segment_block` makes and keeps objects."""

    method: str
    instances: object
    star: object = None
    class_names: tuple[str, ...] = ()
    measure: bool = True
    channel_names: tuple[str, ...] = ()
    spacing: tuple[float, ...] | None = None
    link_z: bool = True
    cells: CellGrowth | None = None


def block_settings(
    model, source: PlaneSource, settings: SegmentSettings, *, measure: bool = True, spacing=None
) -> BlockSettings:
    """Return the :class:`BlockSettings` of a model and image."""
    return BlockSettings(
        method=instance_method_of(model),
        instances=(settings.instances or instance_settings_of(model)).at_zoom(source.scale),
        star=settings.star,
        class_names=tuple(getattr(model.config, "semantic_classes", ()) or ()),
        measure=measure,
        channel_names=tuple(source.image.channel_names),
        spacing=tuple(spacing) if spacing is not None else None,
        link_z=settings.link_z,
    )


def iter_segment_block(
    predictors: list[TiledPredictor], source: PlaneSource, block: Block, settings: BlockSettings
) -> Generator[Progress, None, BlockObjects]:
    """Segment one block's context; return the objects the block keeps, measured.

    ``predictors`` holds one predictor per plane (see :meth:`StreamPlan.predictors`).
    When the network runs out of memory, the block is segmented again with smaller
    tiles, then on the CPU (see :func:`~napari_segnet.inference.fallback.fall_back`),
    each retry announced by an event whose ``info["warning"]`` says so; the
    predictors are replaced in the list, so that the blocks after keep that setting.
    """
    while True:
        try:
            return (yield from _iter_segment_block(predictors, source, block, settings))
        except Exception as error:
            warning = fall_back(predictors, error)
        yield Progress(0, 1, "retrying the block", {"warning": warning})


def _iter_segment_block(
    predictors: list[TiledPredictor], source: PlaneSource, block: Block, settings: BlockSettings
) -> Generator[Progress, None, BlockObjects]:
    from napari_segnet.postprocess.classes import classify_instances

    rows, columns = block.context
    source.read_ahead(*predictors[0].reads(rows, columns))
    context = source.region(rows, columns)
    if context.min() == context.max():  # e.g. a slide's empty background
        return BlockObjects(block, skipped=True)
    del context
    labels, semantic = yield from iter_context_labels(predictors, source, block, settings)
    kept = kept_objects(labels, block, source.shape)
    if kept.count == 0:
        return kept
    starts = (0,) * (labels.ndim - 2) + (rows.start, columns.start)
    inside = tuple(
        slice(o - s, o - s + n) for o, s, n in zip(kept.origin, starts, kept.patch.shape)
    )
    if semantic:
        probabilities = np.stack(semantic, axis=1) if source.stacked else semantic[0]
        kept.classes = classify_instances(
            kept.patch, probabilities[(slice(None), *inside)], settings.class_names
        )
    del semantic
    if settings.cells is not None:
        add_cells(
            kept,
            labels,
            source,
            settings.cells,
            measure=settings.measure,
            channel_names=settings.channel_names,
        )
    elif settings.measure:
        kept.table = _measure(kept, source, settings)
    return kept


def iter_context_labels(
    predictors: list[TiledPredictor], source: PlaneSource, block: Block, settings: BlockSettings
) -> Generator[Progress, None, tuple[np.ndarray, list[np.ndarray]]]:
    """Make the instances of a block's context; return them and the semantic outputs."""
    from napari_segnet.postprocess.stack import link_planes

    rows, columns = block.context
    planes, semantic, offset, n = [], [], 0, len(predictors)
    for z, predictor in enumerate(predictors):
        outputs = yield from relay(
            predictor.iter_window(rows, columns),
            lambda event, z=z: Progress(
                z * 1000 + int(1000 * event.done / max(event.total, 1)), n * 1000, event.stage
            ),
        )
        labels = make_instances(outputs, settings.method, settings.instances, settings.star)
        if source.stacked:  # numbered on from the planes before, as the whole stack is
            labels = labels.astype(np.uint32)
            labels[labels > 0] += offset
            offset = max(offset, int(labels.max(initial=0)))
        planes.append(labels)
        if "semantic" in outputs:
            semantic.append(outputs["semantic"])
        del outputs
    labels = np.stack(planes) if source.stacked else planes[0]
    del planes
    if source.stacked and settings.link_z:
        labels = link_planes(labels, 0)
    return labels, semantic


def _measure(kept: BlockObjects, source: PlaneSource, settings: BlockSettings):
    """Measure the kept objects against every channel, in image coordinates."""
    from napari_segnet.measure.blocks import measure_patch

    *_, top, left = kept.origin
    *_, height, width = kept.patch.shape
    intensities = source.region(
        slice(top, top + height), slice(left, left + width), every_channel=True
    )
    if source.stacked:
        z = source.image.axes.index("Z")
        planes = slice(kept.origin[0], kept.origin[0] + kept.patch.shape[0])
        intensities = intensities[(slice(None),) * z + (planes,)]
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
    """What block-by-block segmentation found: objects, cut ones, empty blocks.

    ``scale`` is the zoom the network saw the image at; ``diameter_estimate``
    what automatic sizing measured (None when a diameter was given).
    """

    objects: int = 0
    oversized: int = 0
    blocks: int = 0
    skipped: int = 0
    halo: int = 0
    scale: float = 1.0
    diameter_estimate: DiameterEstimate | None = None

    def add(self, objects: BlockObjects) -> None:
        """Count one block's objects."""
        self.objects += objects.count
        self.oversized += objects.oversized
        self.skipped += objects.skipped


@dataclass
class StreamPlan:
    """The blocks of a plane and how each is segmented (see :func:`plan_stream`).

    The network sees the planes zoomed by ``source.scale``; ``diameter_estimate``
    is what automatic sizing measured (None when a diameter was given).
    """

    source: PlaneSource
    blocks: list[Block]
    block_settings: BlockSettings
    halo: int
    diameter_estimate: DiameterEstimate | None = None

    @property
    def scale(self) -> float:
        """The zoom the network sees the planes at."""
        return self.source.scale

    def final_row(self, number: int) -> int:
        """Return the first row that the blocks after block ``number`` may still paint."""
        later = self.blocks[number + 1 :]
        return min((b.context[0].start for b in later), default=self.source.shape[0])

    def predictors(self, model, settings: SegmentSettings, device=None) -> list[TiledPredictor]:
        """Return one :class:`TiledPredictor` per plane, caching shared tiles."""
        return plane_predictors(model, self.source, settings, device)


def plane_predictors(
    model, source: PlaneSource, settings: SegmentSettings, device=None
) -> list[TiledPredictor]:
    """Return one :class:`TiledPredictor` per plane of ``source``, at its zoom.

    Their tile caches share :data:`TILE_CACHE_BYTES`.
    """
    return [
        TiledPredictor(
            model,
            source.reader(plane),
            source.shape,
            tile=settings.tile,
            overlap=settings.overlap,
            batch_size=settings.batch_size,
            device=device,
            cache_bytes=TILE_CACHE_BYTES // source.planes,
            scale=source.scale,
            views=VIEWS if settings.tta else 1,
            precision=settings.precision,
        )
        for plane in range(source.planes)
    ]


def stack_block(block: int, halo: int, planes: int, scale: float = 1.0) -> int:
    """Return the block edge for a stack of ``planes`` seen by the network at ``scale``.

    A block's context then holds at most :data:`STACK_CONTEXT_VOXELS` voxels;
    a zoom above 1 gives the network ``scale²`` times the context's pixels, so the
    edge shrinks by ``scale`` (for a single plane too). The edge is never below
    64 pixels.
    """
    enlarged = max(1.0, scale)
    if planes <= 1 and enlarged == 1.0:
        return block
    if planes > 1:
        fits = int(np.sqrt(STACK_CONTEXT_VOXELS / planes) / enlarged) - 2 * halo
        block = min(block, fits)
    else:
        block = int(block / enlarged)
    return max(64, block // 16 * 16)


def iter_plan_stream(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings,
    *,
    block: int = BLOCK,
    halo: int | None = None,
    measure: bool = True,
    spacing=None,
    scale: float | None = None,
    device=None,
    cells: CellGrowth | None = None,
) -> Generator[Progress, None, StreamPlan]:
    """Plan block-by-block segmentation: read the normalisation, size the objects, cut the blocks.

    The zoom is ``scale`` when given; otherwise that of ``settings.diameter``:
    for ``"auto"`` it is measured (yielding progress) on a central window of the
    middle plane, read lazily through the plane's normalisation, as
    :func:`~napari_segnet.inference.segment.iter_segment` measures it. The
    default halo is six object diameters in the plane's pixels. With ``cells``, the halo
    grows by :func:`~napari_segnet.inference.block_cells.cell_margin` and the stain's kind
    and threshold are chosen once, on a central window (segmented for its nuclei when the
    kind is ``"auto"``), for every block (see :mod:`~napari_segnet.inference.block_cells`).

    Returns
    -------
    StreamPlan

    """
    source = plane_source(image, model, settings)
    estimate = None
    if scale is None and settings.diameter == AUTO and model.config.object_diameter_px:
        estimate = yield from iter_estimate_diameter(
            model,
            source.normalised_plane(source.planes // 2),
            device=device,
            instance_settings=settings.instances or instance_settings_of(model),
            tile=settings.tile,
            overlap=settings.overlap,
            batch_size=settings.batch_size,
            precision=settings.precision,
            star_settings=settings.star,
        )
        scale = estimate.scale
        estimate = replace(estimate, first_pass=None)  # blocks are segmented anew: let it go
    elif scale is None:
        scale = rescale_factor(model, image, settings)
    source.scale = float(scale)
    halo = default_halo(model, source.scale) if halo is None else int(halo)
    if cells is not None:
        halo += cell_margin(cells)
    edge = stack_block(block, halo, source.planes, source.scale)
    plan = StreamPlan(
        source,
        plan_blocks(source.shape, edge, halo),
        block_settings(model, source, settings, measure=measure, spacing=spacing),
        halo,
        estimate,
    )
    if cells is not None:
        cells = yield from _iter_settle_cells(plan, model, settings, cells, device)
        plan.block_settings = replace(plan.block_settings, cells=cells)
    return plan


def _iter_settle_cells(
    plan: StreamPlan, model, settings: SegmentSettings, cells: CellGrowth, device
) -> Generator[Progress, None, CellGrowth]:
    """Choose the stain's kind and threshold on the plane's central window."""
    if cells.settled:
        return cells
    window = survey_window(plan.source.shape)
    stain = stain_region(plan.source, cells, *window)
    nuclei = None
    if cells.kind == "auto":
        yield Progress(0, 1, "finding the cell stain's kind")
        predictors = plan.predictors(model, settings, device)
        survey = Block(-1, window, window)
        nuclei, _ = yield from iter_context_labels(
            predictors, plan.source, survey, plan.block_settings
        )
        del predictors
    return settle_growth(cells, stain, nuclei)


def plan_stream(image: MicroscopyImage, model, settings: SegmentSettings, **options) -> StreamPlan:
    """Plan block-by-block segmentation without progress (options: :func:`iter_plan_stream`)."""
    return drain(iter_plan_stream(image, model, settings, **options))


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
    cells: CellGrowth | None = None,
) -> Generator[Progress, None, StreamSummary]:
    """Segment a plane or Z-stack block by block; hand each block's objects to ``add``.

    ``add(objects, final_row)`` is called for every block in raster order;
    ``objects.patch`` holds labels 1..count, to be shifted by the number of
    objects handed over before; no later block paints rows above
    ``final_row``. Yields progress in thousandths of a block. With
    ``settings.diameter="auto"`` the object size is measured first (see
    :func:`iter_plan_stream`); when that rescales the image, an event's
    ``info["message"]`` says what was measured. When the network runs out of
    memory, the work is done again with smaller tiles, then on the CPU, as
    whole planes are (see :mod:`napari_segnet.inference.fallback`); an event's
    ``info["warning"]`` says so, and the model stays on its device.
    With ``cells`` (:class:`~napari_segnet.inference.block_cells.CellGrowth`), every
    kept nucleus also brings its cell (``objects.cells``) and its row measures the cell.

    Returns
    -------
    StreamSummary

    """
    import torch

    device = torch.device(device) if device is not None else next(model.parameters()).device
    attempt = Attempt(settings.tile, settings.batch_size, device, model)
    while True:  # the object size is measured with the network: it may run out of memory too
        settings = replace(settings, tile=attempt.tile, batch_size=attempt.batch_size)
        try:
            plan = yield from relay(
                iter_plan_stream(
                    image,
                    attempt.model,
                    settings,
                    block=block,
                    halo=halo,
                    measure=measure,
                    spacing=spacing,
                    device=attempt.device,
                    cells=cells,
                ),
                lambda event: Progress(0, 1, "estimating the object size", event.info),
            )
            break
        except Exception as error:
            attempt, warning = next_attempt(attempt, error)
        yield Progress(0, 1, "estimating the object size", {"warning": warning})
    predictors = plan.predictors(attempt.model, settings, attempt.device)
    n = len(plan.blocks)
    summary = StreamSummary(
        blocks=n, halo=plan.halo, scale=plan.scale, diameter_estimate=plan.diameter_estimate
    )
    estimate = plan.diameter_estimate
    if estimate is not None and estimate.scale != 1.0:
        yield Progress(0, n * 1000, "estimated the object size", {"message": estimate.describe()})
    for number, current in enumerate(plan.blocks):
        objects = yield from relay(
            iter_segment_block(predictors, plan.source, current, plan.block_settings),
            lambda event, number=number: Progress(
                number * 1000 + int(1000 * event.done / max(event.total, 1)),
                n * 1000,
                f"segmenting block {number + 1} of {n}",
                event.info,  # a retry's warning
            ),
        )
        add(objects, plan.final_row(number))
        summary.add(objects)
        yield Progress((number + 1) * 1000, n * 1000, f"segmented block {number + 1}")
    return summary
