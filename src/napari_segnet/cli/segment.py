"""``napari-segnet segment``: labels and measurements for every input, file by file."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from .cluster import add_options as add_cluster_options
from .cluster import run_on_cluster, wants_cluster
from .common import (
    UserError,
    engine_options,
    load_model_and_device,
    measure_every_channel,
    prepare_output_folder,
    run_with_progress_bar,
    segment_settings,
)
from .exports import add_export_option, export_paths, write_exports
from .naming import output_stems


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
        "next to the labels (images segmented whole; not with block-by-block segmentation)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip inputs whose outputs are already complete"
    )
    add_cluster_options(parser)
    parser.set_defaults(command="segment", run=run)


def run(args: argparse.Namespace) -> int:
    """Segment every input; return 1 if any of them failed."""
    if args.block is not None and 0 < args.block < 64:
        raise UserError("--block must be 0 or at least 64 pixels.")
    if args.halo is not None and args.halo < 0:
        raise UserError("--halo must not be negative.")
    prepare_output_folder(args.out)
    inputs = _distinct(args.inputs)
    stems = output_stems(inputs)
    if wants_cluster(args):
        failures, tried = run_on_cluster(args, inputs, stems)
        if failures and tried > 1:
            print(f"napari-segnet: {failures} of {tried} inputs failed.", file=sys.stderr)
        return 1 if failures else 0
    model, device = load_model_and_device(args)
    settings = segment_settings(args)
    failures = 0
    for path in inputs:
        if args.resume and already_done(args, stems[path]):
            print(f"{path.name}: already done", file=sys.stderr)
            continue
        try:
            n = segment_one(path, stems[path], args, model, settings, device)
            print(f"{path.name}: {n} objects", file=sys.stderr)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # one file's failure must not end the batch
            failures += 1
            if args.debug:
                traceback.print_exc()
            print(f"napari-segnet: error: {describe_failure(path, error)}", file=sys.stderr)
    if failures and len(inputs) > 1:
        print(f"napari-segnet: {failures} of {len(inputs)} inputs failed.", file=sys.stderr)
    return 1 if failures else 0


def output_paths(args, stem: str, *, streamed: bool = False) -> list[Path]:
    """Return the files written for one input: labels, and measurements unless --no-measure.

    Labels of block-by-block segmentation (``streamed``) take ``--labels-format``.
    """
    from napari_segnet.inference.stream_outputs import LABEL_SUFFIXES

    suffix = LABEL_SUFFIXES[args.labels_format if streamed else "tiff"]
    labels = args.out / f"{stem}{suffix}"
    return [labels] if args.no_measure else [labels, args.out / f"{stem}_measurements.csv"]


def already_done(args, stem: str) -> bool:
    """Whether ``--resume`` may skip an input: its outputs, of either kind, are all there.

    That includes the ``--export`` files asked for this time.
    """
    exports = export_paths(args.out, stem, getattr(args, "export", ()))
    return all(path.exists() for path in exports) and any(
        all(path.exists() for path in output_paths(args, stem, streamed=streamed))
        for streamed in (False, True)
    )


def refuse_export_block_by_block(path: Path, args) -> None:
    """Say, in one sentence, that ``--export`` is not available for a block-by-block image."""
    if getattr(args, "export", ()):
        raise UserError(
            f"{path.name} is segmented block by block, where --export is not available; "
            "segment it without --export, then run napari-segnet measure --export on its labels."
        )


def segment_one(path: Path, stem: str, args, model, settings, device) -> int:
    """Segment one file and write its outputs, all or none; return the number of objects."""
    from napari_segnet.inference.fallback import iter_segment_with_fallback
    from napari_segnet.io import atomic_paths, read_image, write_labels
    from napari_segnet.measure import write_csv

    image = read_image(path)
    if block_by_block(image, args):
        refuse_export_block_by_block(path, args)
        return segment_streamed(image, path, stem, args, model, settings, device)
    events = iter_segment_with_fallback(image, model, settings, device=device)
    result = run_with_progress_bar(events, path.name)
    spatial = "".join(a for a in result.axes if a in "ZYX")
    spacing = image.spacing if image.spacing and len(image.spacing) == len(spatial) else None
    table = None
    if not args.no_measure:
        table = measure_every_channel(result.labels, result.axes, image, spacing)
        if result.classes:
            classes = dict(
                zip(
                    result.classes["label"],
                    zip(result.classes["class"], result.classes["class_probability"]),
                )
            )
            table["class"] = [classes[label][0] for label in table["label"]]
            table["class_probability"] = [classes[label][1] for label in table["label"]]
    outputs = output_paths(args, stem)
    exports = export_paths(args.out, stem, args.export)
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
        labels_axes = "".join(a for a in result.axes if a in "TZYX")
        write_exports(
            temporaries[len(outputs) :],
            args.export,
            result.labels,
            axes=labels_axes,
            table=table,
            model=identity,
        )
    return int(result.labels.max())


def block_by_block(image, args) -> bool:
    """Whether to segment ``image`` block by block.

    By default a plane over ``STREAM_PIXELS`` pixels or a Z-stack over ``STREAM_VOXELS``
    voxels; with ``--block N`` any image whose planes are larger than one block (time
    series are then refused in one sentence); never with ``--block 0``.
    """
    from napari_segnet.inference.stream import should_stream

    if args.block is None:
        return should_stream(image)
    shape = dict(zip(image.axes, image.data.shape))
    return args.block != 0 and max(shape["Y"], shape["X"]) > args.block


def segment_streamed(image, path: Path, stem: str, args, model, settings, device) -> int:
    """Segment a plane or Z-stack block by block, streaming both outputs to disk."""
    from napari_segnet.inference.stream_outputs import iter_segment_to_files

    outputs = output_paths(args, stem, streamed=True)
    events = iter_segment_to_files(
        image,
        model,
        settings,
        *outputs,
        labels_format=args.labels_format,
        device=device,
        block=args.block,
        halo=args.halo,
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
    if isinstance(error, OSError) and error.strerror and not error.filename:
        return f"{path.name}: {error.strerror} (nothing was written for it)."
    text = one_sentence(error)
    if isinstance(error, UserError | ValueError | OSError):
        return text if path.name in text else f"{path.name}: {text}"
    return f"{path.name}: unexpected {type(error).__name__}: {text} (run with --debug for details)"


def _distinct(paths: list[Path]) -> list[Path]:
    """Drop inputs given more than once (the same file, however it is spelled)."""
    seen, distinct = set(), []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            distinct.append(path)
    return distinct
