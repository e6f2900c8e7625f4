"""Segment a big plane or Z-stack block by block in bounded memory, with the whole image's objects.

This module plans the blocks and segments them in order; the plane is read by
:mod:`napari_segnet.inference.plane_source` and each block segmented by
:mod:`napari_segnet.inference.stream_block`. Three things make the blocks add up to what
:func:`~napari_segnet.inference.segment.iter_segment` gives for the whole plane (up to the
numbering of the objects):

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
uses (:func:`~napari_segnet.inference.resample.resample_window`), so blocks still see the whole
plane's numbers, and instances are made at the plane's resolution.

A Z-stack is cut into blocks in Y and X only; each block holds every plane, and its planes are
linked into 3-D objects on the block's context (see :mod:`napari_segnet.inference.stream_block`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace

import numpy as np

from napari_segnet.io import MicroscopyImage
from napari_segnet.progress import Progress, drain, relay

from .augment import VIEWS
from .block_cells import CellGrowth, cell_margin, settle_growth, stain_region, survey_window
from .blocks import BLOCK, Block, BlockObjects, default_halo, plan_blocks
from .diameter import AUTO, DiameterEstimate, iter_estimate_diameter
from .fallback import Attempt, next_attempt
from .plane_source import PlaneSource, plane_source
from .segment import SegmentSettings, instance_settings_of, rescale_factor
from .stream_block import BlockSettings, block_settings, iter_context_labels, iter_segment_block
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
