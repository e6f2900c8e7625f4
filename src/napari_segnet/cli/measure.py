"""``napari-segnet measure``: a CSV of per-object measurements of existing labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UserError, measure_every_channel, prepare_output_folder, run_with_progress_bar
from .exports import add_export_option, export_paths, write_exports


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """Register ``measure``."""
    parser = commands.add_parser(
        "measure",
        parents=[common],
        help="measure every labelled object in an image",
        description="Write one CSV row per object: size, shape, position and, for every "
        "channel of IMAGE, intensity statistics. Physical units come from IMAGE's calibration. "
        "Labels of one plane over 4096 × 4096 pixels are measured block by block, in bounded "
        "memory, every object whole. Labels written by napari-segnet segment name the model "
        "that made them: the CSV and the exports name it too.",
    )
    parser.add_argument(
        "--image", required=True, type=Path, help="intensity image (TIFF or OME-Zarr)"
    )
    parser.add_argument(
        "--labels", required=True, type=Path, help="instance labels (TIFF or OME-Zarr)"
    )
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
    parser.add_argument(
        "--block",
        type=int,
        default=None,
        metavar="N",
        help="measure 2-D labels larger than N × N block by block (default: over 4096 × 4096; "
        "0: always at once)",
    )
    add_export_option(
        parser,
        "beside the CSV, named after it without _measurements (cells_measurements.csv → "
        "cells.geojson, cells_rois.zip)",
    )
    parser.set_defaults(command="measure", run=run)


def run(args: argparse.Namespace) -> int:
    """Measure ``--labels`` against every channel of ``--image``."""
    from napari_segnet.io import atomic_paths, read_image
    from napari_segnet.io.atomic import writable_destination
    from napari_segnet.io.model_identity import METADATA_KEY, ModelIdentity, with_model_columns
    from napari_segnet.io.outlines import boxes_from_table
    from napari_segnet.measure.blocks import BLOCKWISE_PIXELS, iter_measure_blocks

    image = read_image(args.image)
    labels = read_image(args.labels)
    if labels.channel_axis is not None:
        raise UserError(
            f"{args.labels.name} has channels ({labels.axes}); labels must be one channel "
            "of integers."
        )
    if labels.data.dtype.kind not in "iu":
        raise UserError(
            f"{args.labels.name} holds {labels.data.dtype} values; labels must be integers."
        )
    image_axes = image.axes.replace("C", "").replace("S", "")
    if image_axes != labels.axes or _shape_without_channels(image) != labels.data.shape:
        raise UserError(
            f"{args.image.name} ({image.axes} {tuple(image.data.shape)}) and {args.labels.name} "
            f"({labels.axes} {tuple(labels.data.shape)}) do not cover the same pixels."
        )
    spacing = image.spacing or labels.spacing
    if args.block is not None and 0 < args.block < 64:
        raise UserError("--block must be 0 or at least 64 pixels.")
    blockwise = labels.data.size > BLOCKWISE_PIXELS if args.block is None else args.block > 0
    blockwise = labels.axes == "YX" and blockwise and max(labels.data.shape) > (args.block or 0)
    if blockwise:
        events = iter_measure_blocks(
            labels.data,
            image.data,
            channel_axis=image.channel_axis,
            channel_names=list(image.channel_names) or None,
            spacing=spacing,
            block=args.block or None,
        )
        table = run_with_progress_bar(events, args.labels.name)
    else:
        table = measure_every_channel(labels.data, labels.axes, image, spacing)
    # Labels of ours name the model that made them; labels made elsewhere name none.
    model = ModelIdentity.from_metadata(labels.metadata.get(METADATA_KEY))
    prepare_output_folder(args.out.parent)
    exports = export_paths(args.out.parent, export_stem(args.out), args.export)
    writable_destination(args.out)
    with atomic_paths(args.out, *exports) as temporaries:
        with_model_columns(table, model).to_csv(temporaries[0], index=False)
        # Objects of labels measured block by block are read back one box at a time.
        write_exports(
            temporaries[1:],
            args.export,
            labels.data,
            axes=labels.axes,
            table=table,
            boxes=(lambda: boxes_from_table(table, labels.axes)) if blockwise else None,
            model=model,
        )
    written = ", ".join(str(p) for p in (args.out, *exports))
    print(f"Measured {len(table)} objects; wrote {written}", file=sys.stderr)
    return 0


def export_stem(csv: Path) -> str:
    """``cells_measurements.csv`` → ``cells``: the stem of the exports written beside a CSV."""
    stem = csv.stem
    suffix = "_measurements"
    return stem[: -len(suffix)] if stem.endswith(suffix) and len(stem) > len(suffix) else stem


def _shape_without_channels(image) -> tuple[int, ...]:
    axis = image.channel_axis
    return tuple(n for i, n in enumerate(image.data.shape) if i != axis)
