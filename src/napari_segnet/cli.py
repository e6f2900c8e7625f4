"""The ``napari-segnet`` command line: the same engine as the napari widgets.

Errors a user can cause end in one sentence on stderr and exit status 1
(2 for wrong arguments); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_segnet import __version__


class UserError(Exception):
    """A problem the user can fix; printed as one sentence without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("napari-segnet: interrupted.", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        if not isinstance(error, UserError | ValueError | OSError):
            error = f"unexpected {type(error).__name__}: {error} (run with --debug for details)"
        print(f"napari-segnet: error: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="napari-segnet",
        description="Segment nuclei and cells, measure them, export labels and tables.",
    )
    parser.add_argument("--version", action="version", version=f"napari-segnet {__version__}")
    parser.set_defaults(command=None)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    measure = commands.add_parser(
        "measure",
        parents=[common],
        help="measure every labelled object in an image",
        description="Write one CSV row per object: size, shape, position and, for every "
        "channel of IMAGE, intensity statistics. Physical units come from IMAGE's calibration.",
    )
    measure.add_argument("--image", required=True, type=Path, help="intensity image (TIFF)")
    measure.add_argument("--labels", required=True, type=Path, help="instance labels (TIFF)")
    measure.add_argument("--out", required=True, type=Path, help="CSV file to write")
    measure.set_defaults(command="measure", run=run_measure)

    info = commands.add_parser(
        "info", parents=[common], help="versions, and which devices torch can use (and why not)"
    )
    info.set_defaults(command="info", run=run_info)
    from napari_segnet import _cli_engine

    _cli_engine.add_commands(commands, common)
    return parser


def run_measure(args: argparse.Namespace) -> int:
    """``napari-segnet measure``: a CSV of per-object measurements."""
    from napari_segnet.io import read_image
    from napari_segnet.measure import write_csv

    image = read_image(args.image)
    labels = read_image(args.labels)
    if labels.channel_axis is not None:
        raise UserError(
            f"{args.labels.name} has channels ({labels.axes}); labels must be one "
            "channel of integers."
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
    table = _measure_every_channel(labels.data, labels.axes, image, image.spacing or labels.spacing)
    _prepare_output_folder(args.out)
    write_csv(table, args.out)
    print(f"Measured {len(table)} objects; wrote {args.out}", file=sys.stderr)
    return 0


def _measure_every_channel(labels, axes: str, image, spacing):
    """Measure ``labels`` against every channel of a MicroscopyImage, named from the file."""
    from napari_segnet.measure import measure

    return measure(
        labels,
        image.data,
        axes=axes,
        channel_axis=image.channel_axis,
        channel_names=list(image.channel_names) or None,
        spacing=spacing,
    )


def _shape_without_channels(image) -> tuple[int, ...]:
    axis = image.channel_axis
    return tuple(n for i, n in enumerate(image.data.shape) if i != axis)


def _prepare_output_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"Cannot create the output folder {path.parent}: {error.strerror}."
        ) from error


def run_info(args: argparse.Namespace) -> int:
    """``napari-segnet info``: versions and device availability."""
    from importlib.metadata import PackageNotFoundError, version

    from napari_segnet.inference import device_report

    print(f"napari-segnet {__version__}")
    print(f"python {sys.version.split()[0]} ({sys.platform})")
    for package in (
        "numpy",
        "tifffile",
        "scikit-image",
        "pandas",
        "torch",
        "torchvision",
        "napari",
    ):
        try:
            print(f"{package} {version(package)}")
        except PackageNotFoundError:
            print(f"{package} not installed")
    print("devices:")
    for device in device_report():
        state = "usable" if device.available else "not usable"
        print(f"  {device.name:<5} {state}: {device.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
