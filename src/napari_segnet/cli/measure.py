"""``napari-segnet measure``: a CSV of per-object measurements of existing labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .cells_options import CellSettings, add_cells_options, cell_settings, phenotype_definition
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
    add_cells_options(parser)
    parser.add_argument(
        "--cell-labels",
        type=Path,
        default=None,
        metavar="FILE",
        help="cells made elsewhere, cell k holding nucleus k of --labels (instead of --cells)",
    )
    parser.set_defaults(command="measure", run=run)


def run(args: argparse.Namespace) -> int:
    """Measure ``--labels`` against every channel of ``--image``."""
    from napari_segnet.io import atomic_paths, read_image, write_labels
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
    cells = _cells_of(args, image, labels, spacing, blockwise)
    if cells is not None:
        table = _measure_cells(args, image, labels, cells, spacing)
    elif blockwise:
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
    grown = [args.out.parent / f"{export_stem(args.out)}_cells.tif"] if args.cells else []
    writable_destination(args.out)
    with atomic_paths(args.out, *exports, *grown) as temporaries:
        with_model_columns(table, model).to_csv(temporaries[0], index=False)
        if grown:
            write_labels(temporaries[-1], cells, axes=labels.axes, spacing=spacing, model=model)
        temporaries = temporaries[: len(temporaries) - len(grown)]
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
    written = ", ".join(str(p) for p in (args.out, *exports, *grown))
    kind = "cells" if cells is not None else "objects"
    print(f"Measured {len(table)} {kind}; wrote {written}", file=sys.stderr)
    return 0


def _cells_of(args, image, labels, spacing, blockwise: bool):
    """Return the cells to measure: grown from the labels, read from a file, or None."""
    from napari_segnet.io import read_image

    from .cells_step import check_markers, grow_and_measure

    if args.cell_labels is not None and args.cells is not None:
        raise UserError("Give --cells (to grow cells) or --cell-labels (cells made elsewhere).")
    if args.cell_labels is None and args.cells is None:
        cell_settings(args)  # markers without cells are refused in one sentence
        return None
    if blockwise:
        raise UserError(
            f"{args.labels.name} is measured block by block, where cells are not available; "
            "measure with --block 0 if it fits in memory."
        )
    if args.cell_labels is not None:
        given = read_image(args.cell_labels)
        if given.axes != labels.axes or given.data.shape != labels.data.shape:
            raise UserError(
                f"{args.cell_labels.name} ({given.axes} {tuple(given.data.shape)}) and "
                f"{args.labels.name} ({labels.axes} {tuple(labels.data.shape)}) do not cover "
                "the same pixels."
            )
        if given.data.dtype.kind not in "iu":
            raise UserError(f"{args.cell_labels.name} holds {given.data.dtype} values, not labels.")
        check_markers(image, CellSettings(phenotypes=phenotype_definition(args)))
        cells = np.asarray(given.data)
        check_cell_numbering(np.asarray(labels.data), cells, args.cell_labels.name)
        return cells
    settings = cell_settings(args)
    check_markers(image, settings)
    cells, _ = grow_and_measure(
        image, np.asarray(labels.data), labels.axes, spacing, settings, measure=False
    )
    return cells


def check_cell_numbering(nuclei: np.ndarray, cells: np.ndarray, name: str) -> None:
    """Refuse cells not numbered after their nuclei (cell k must hold nucleus k).

    Cells from other tools number their objects their own way; measured as they are,
    cell 5 would be joined with whatever nucleus 5 is. Most of the nuclei must lie
    mostly in the cell of their own number; nuclei outside every cell are named.
    """
    inside = nuclei > 0
    if not inside.any():
        return
    ids = nuclei[inside]
    own = np.bincount(ids, weights=cells[inside] == ids)
    sizes = np.bincount(ids)
    present = sizes > 0
    share = own[present] / sizes[present]
    if np.mean(share >= 0.5) < 0.9:
        raise UserError(
            f"{name} is not numbered after the nuclei: cell k must hold nucleus k, but only "
            f"{np.mean(share >= 0.5):.0%} of the nuclei lie mostly in the cell of their number."
        )
    outside = np.bincount(ids, weights=cells[inside] == 0)[present] == sizes[present]
    if outside.any():
        print(
            f"{name}: warning: {int(outside.sum())} nuclei lie in no cell; they have no row.",
            file=sys.stderr,
        )


def _measure_cells(args, image, labels, cells, spacing):
    """One row per cell; with markers, classified (thresholds chosen over these cells)."""
    from napari_segnet.cells import classify, measure_cells, resolve_thresholds

    from .phenotype_batch import describe_thresholds

    table = measure_cells(
        np.asarray(labels.data),
        cells,
        image.data,
        axes=labels.axes,
        channel_axis=image.channel_axis,
        channel_names=list(image.channel_names) or None,
        spacing=spacing,
    )
    definition = phenotype_definition(args)
    if definition is None:
        return table
    try:
        resolved = resolve_thresholds(table, definition)
    except ValueError as error:
        raise UserError(f"Cannot choose the marker thresholds: {error}") from None
    print(describe_thresholds(definition, resolved, len(table)), file=sys.stderr)
    return classify(table, resolved)


def export_stem(csv: Path) -> str:
    """``cells_measurements.csv`` → ``cells``: the stem of the exports written beside a CSV."""
    stem = csv.stem
    suffix = "_measurements"
    return stem[: -len(suffix)] if stem.endswith(suffix) and len(stem) > len(suffix) else stem


def _shape_without_channels(image) -> tuple[int, ...]:
    axis = image.channel_axis
    return tuple(n for i, n in enumerate(image.data.shape) if i != axis)
