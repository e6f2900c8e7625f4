"""Segment one block of a big plane or Z-stack: the objects it keeps, measured.

Instances are made on the block's context (its core plus a halo), and each object is kept
by the block that holds its first pixel (see :mod:`napari_segnet.inference.blocks`).
Objects that reach the edge of a context may be larger than the halo and cut: they are
counted, and the caller says so. Blocks whose context is one constant value (a slide's
empty background) are not segmented.

A Z-stack block holds every plane. Its planes are segmented one by one (each with its own
normalisation, as in the whole stack) and linked into 3-D objects on the block's context
(:func:`~napari_segnet.postprocess.stack.link_planes`), which, for objects that lie whole
in the context, links exactly what the whole stack links.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from napari_segnet.progress import Progress, relay

from .block_cells import CellGrowth, add_cells
from .blocks import Block, BlockObjects, kept_objects
from .fallback import fall_back
from .plane_source import PlaneSource
from .segment import SegmentSettings, instance_method_of, instance_settings_of, make_instances
from .tiling import TiledPredictor


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

    ``predictors`` holds one predictor per plane (see
    :meth:`~napari_segnet.inference.stream.StreamPlan.predictors`).
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
