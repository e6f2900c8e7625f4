"""One input of ``segment``: segment it (whole or block by block) and write its outputs.

Used by the local loop and by the cluster's tasks alike; it knows the job, not the
command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cells_step import cell_growth, check_markers, grow_and_measure
from .common import UserError, measure_every_channel, run_with_progress_bar
from .exports import write_exports
from .job import SegmentJob


def segment_one(path: Path, stem: str, job: SegmentJob, model, device) -> int:
    """Segment one file and write its outputs, all or none; return the number of objects."""
    from napari_segnet.inference.fallback import iter_segment_with_fallback
    from napari_segnet.io import atomic_paths, read_image, write_labels
    from napari_segnet.measure import write_csv

    image = read_image(path)
    check_markers(image, job.cells)
    if block_by_block(image, job.block):
        return segment_streamed(image, path, stem, job, model, device)
    events = iter_segment_with_fallback(image, model, job.settings, device=device)
    result = run_with_progress_bar(events, path.name)
    spatial = "".join(a for a in result.axes if a in "ZYX")
    spacing = image.spacing if image.spacing and len(image.spacing) == len(spatial) else None
    table = cells = None
    if job.cells is not None:
        cells, table = grow_and_measure(
            image, result.labels, result.axes, spacing, job.cells, job.outputs.measure
        )
    elif job.outputs.measure:
        table = measure_every_channel(result.labels, result.axes, image, spacing)
    if table is not None:
        if result.classes:
            classes = dict(
                zip(
                    result.classes["label"],
                    zip(result.classes["class"], result.classes["class_probability"]),
                )
            )
            table["class"] = [classes[label][0] for label in table["label"]]
            table["class_probability"] = [classes[label][1] for label in table["label"]]
    outputs = job.outputs.paths(stem)
    exports = job.outputs.export_paths(stem)
    identity = getattr(model, "identity", None)  # the model, named in every output
    with atomic_paths(*outputs, *exports) as temporaries:
        write_labels(
            temporaries[0],
            result.labels,
            axes=result.axes,
            spacing=spacing,
            time_interval=image.pixel_size.get("T"),
            model=identity,
        )
        if table is not None:
            write_csv(table, temporaries[1], model=identity)
        if cells is not None:
            write_labels(
                temporaries[len(outputs) - 1],
                cells,
                axes=result.axes,
                spacing=spacing,
                time_interval=image.pixel_size.get("T"),
                model=identity,
            )
        labels_axes = "".join(a for a in result.axes if a in "TZYX")
        outlines = job.outputs.outline_exports(stem)
        for temporary, (name, _, which) in zip(temporaries[len(outputs) :], outlines):
            write_exports(
                [temporary],
                [name],
                cells if which == "cells" else result.labels,
                axes=labels_axes,
                table=table,
                model=identity,
            )
    return int(result.labels.max())


def block_by_block(image, block: int | None) -> bool:
    """Whether to segment ``image`` block by block.

    By default (``block`` None) a plane over ``STREAM_PIXELS`` pixels or a Z-stack over
    ``STREAM_VOXELS`` voxels; with ``block`` N any image whose planes are larger than one
    block (time series are then refused in one sentence); never with ``block`` 0.
    """
    from napari_segnet.inference.stream import should_stream

    if block is None:
        return should_stream(image)
    shape = dict(zip(image.axes, image.data.shape))
    return block != 0 and max(shape["Y"], shape["X"]) > block


def segment_streamed(image, path: Path, stem: str, job: SegmentJob, model, device) -> int:
    """Segment a plane or Z-stack block by block, streaming every output to disk."""
    from napari_segnet.inference.stream_outputs import iter_segment_to_files, labels_spacing

    paths = job.outputs.paths(stem, streamed=True)
    spacing = labels_spacing(image)
    cells = None if job.cells is None else cell_growth(image, job.cells, spacing)
    events = iter_segment_to_files(
        image,
        model,
        job.settings,
        paths[0],
        paths[1] if job.outputs.measure else None,
        labels_format=job.outputs.labels_format,
        device=device,
        block=job.block,
        halo=job.halo,
        spacing=spacing,
        cells_path=None if cells is None else paths[-1],
        cells=cells,
        exports=job.outputs.outline_exports(stem),
    )
    summary = run_with_progress_bar(events, path.name)
    if summary.oversized:
        print(oversized_warning(path, summary), file=sys.stderr)
    return summary.objects


def oversized_warning(path: Path, summary) -> str:
    """Say that some objects may be cut at block borders, and what to do."""
    return (
        f"{path.name}: warning: {summary.oversized} objects reach the edge of their block's "
        f"{summary.halo}-pixel halo and may be cut; segment again with a larger --halo."
    )


def describe_failure(path: Path, error: BaseException) -> str:
    """Say in one sentence why ``path`` could not be segmented."""
    from napari_segnet.inference.fallback import is_out_of_memory
    from napari_segnet.inference.segment import PlaneTooLargeError
    from napari_segnet.messages import one_sentence

    if isinstance(error, PlaneTooLargeError):
        return f"{path.name}: {one_sentence(error)}"
    if is_out_of_memory(error):
        detail = f" ({one_sentence(error).rstrip('.')})" if str(error).strip() else ""
        return (
            f"{path.name}: not enough memory to segment it{detail}; try a smaller --tile, "
            "or split the image."
        )
    if type(error).__name__ == "KilledWorker":  # distributed's, not imported without a cluster
        return (
            f"{path.name}: every dask worker that segmented it died, so it was given up "
            "(a worker may need more memory for it); the other inputs were done."
        )
    if isinstance(error, OSError) and error.strerror and not error.filename:
        return f"{path.name}: {error.strerror} (nothing was written for it)."
    text = one_sentence(error)
    if isinstance(error, UserError | ValueError | OSError):
        return text if path.name in text else f"{path.name}: {text}"
    return f"{path.name}: unexpected {type(error).__name__}: {text} (run with --debug for details)"
