"""``napari-segnet segment``: labels and measurements for every input, file by file."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .cells_options import add_cells_options
from .cluster import add_options as add_cluster_options
from .cluster import cluster_settings, run_on_cluster, wants_cluster
from .common import UserError, engine_options, prepare_output_folder
from .exports import add_export_option
from .job import segment_job
from .naming import output_stems
from .one_file import describe_failure, segment_one
from .phenotype_batch import classify_batch


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """Register ``segment``."""
    parser = commands.add_parser(
        "segment",
        parents=[common, engine_options()],
        help="segment images, write labels and measurements",
        description="Writes DIR/<stem>_labels.tif and, unless --no-measure, "
        "DIR/<stem>_measurements.csv for every INPUT. A file that fails is reported "
        "and the others are still done; the exit status is 1 if any failed.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--no-measure", action="store_true", help="write labels only")
    parser.add_argument(
        "--block",
        type=int,
        default=None,
        metavar="N",
        help="segment planes larger than N × N pixels block by block, in bounded memory; "
        "their labels are then a tiled BigTIFF (default: planes over 4096 × 4096 pixels, "
        "in 2048-pixel blocks; 0: always the whole plane in memory)",
    )
    parser.add_argument(
        "--halo",
        type=int,
        default=None,
        metavar="N",
        help="context around each block, at least the largest object's size in pixels "
        "(default: six of the model's object diameters, at least 128)",
    )
    parser.add_argument(
        "--labels-format",
        choices=("tiff", "zarr"),
        default="tiff",
        help="labels of block-by-block segmentation: a tiled BigTIFF (default), or OME-Zarr "
        "with a pyramid (<stem>_labels.zarr); planes segmented whole are always TIFF",
    )
    add_export_option(
        parser,
        "next to the labels (also block by block, written as the blocks are done)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip inputs whose outputs are already complete"
    )
    add_cells_options(parser)
    add_cluster_options(parser)
    parser.set_defaults(command="segment", run=run)


def run(args: argparse.Namespace) -> int:
    """Segment every input; return 1 if any of them failed."""
    job = segment_job(args)
    prepare_output_folder(job.outputs.folder)
    inputs = [Path(os.path.abspath(path)) for path in _distinct(args.inputs)]
    stems = output_stems(inputs)
    if wants_cluster(args):
        failed, tried = run_on_cluster(job, inputs, stems, cluster_settings(args), args.resume)
        if failed and tried > 1:
            print(f"napari-segnet: {len(failed)} of {tried} inputs failed.", file=sys.stderr)
        return _phenotypes(job, [p for p in inputs if p not in failed], stems, len(failed))
    if args.resume:  # what a killed run of this batch left half-written goes first
        job.outputs.remove_temporaries([stems[p] for p in inputs])
    model, device = job.model.load(tta=job.settings.tta)
    failed = set()
    for path in inputs:
        if args.resume and job.outputs.done(stems[path]):
            print(f"{path.name}: already done", file=sys.stderr)
            continue
        try:
            n = segment_one(path, stems[path], job, model, device)
            print(f"{path.name}: {n} objects", file=sys.stderr)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # one file's failure must not end the batch
            failed.add(path)
            if args.debug:
                traceback.print_exc()
            print(f"napari-segnet: error: {describe_failure(path, error)}", file=sys.stderr)
    if failed and len(inputs) > 1:
        print(f"napari-segnet: {len(failed)} of {len(inputs)} inputs failed.", file=sys.stderr)
    return _phenotypes(job, [p for p in inputs if p not in failed], stems, len(failed))


def _phenotypes(job, inputs: list[Path], stems: dict[Path, str], failures: int) -> int:
    """Classify the cells of the inputs done (now, or before with --resume); return the status.

    Inputs that failed this time are left out, even when an earlier run left their tables.
    """
    if job.cells is not None and job.cells.phenotypes is not None:
        try:
            classify_batch(job, inputs, stems)
        except UserError as error:
            print(f"napari-segnet: error: {error}", file=sys.stderr)
            return 1
    return 1 if failures else 0


def _distinct(paths: list[Path]) -> list[Path]:
    """Drop inputs given more than once (the same file, however it is spelled)."""
    seen, distinct = set(), []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            distinct.append(path)
    return distinct
