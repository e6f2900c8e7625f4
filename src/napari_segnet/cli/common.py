"""What the sub-commands share: the error type, progress bars, options and output folders."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; printed as one sentence without a traceback."""


def run_with_progress_bar(events, description: str):
    """Drain a progress generator into a bar on stderr; return the generator's result.

    Events with ``info["message"]`` or ``info["warning"]`` are also printed as lines.
    """
    from tqdm import tqdm

    from napari_segnet.progress import drain

    bar = tqdm(total=1, desc=description, file=sys.stderr, leave=False, disable=None)

    def show(event) -> None:
        bar.total, bar.n = max(event.total, 1), event.done
        if "loss" in event.info:
            bar.set_postfix(loss=f"{event.info['loss']:.3f}", refresh=False)
        for key in ("message", "warning"):
            if key in event.info:
                bar.write(f"{description}: {event.info[key]}", file=sys.stderr)
        bar.refresh()

    try:
        return drain(events, show)
    finally:
        bar.close()


def engine_options() -> argparse.ArgumentParser:
    """Return the options of the commands that run a model: model, device, channel, tiling."""
    from napari_segnet.inference.tiling import TILE

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--model", default=None, help="bundled model name or model file (default: nuclei)"
    )
    options.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps"
    )
    options.add_argument("--channel", default=None, help="channel index or name to segment")
    options.add_argument("--tile", type=int, default=TILE, help=f"tile size in pixels ({TILE})")
    options.add_argument(
        "--diameter",
        default="auto",
        metavar="auto|none|D",
        help="typical object diameter, to rescale images to the size the model was trained at: "
        "auto (default) measures it on a central window of each image (of the middle plane "
        "of a stack) and rescales when it differs clearly from the model's; none segments "
        "images as they are; a number is the diameter in --diameter-unit",
    )
    options.add_argument(
        "--diameter-unit",
        choices=("px", "um"),
        default="px",
        help="unit of a numeric --diameter (um needs a calibrated image)",
    )
    options.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="objects darker than the background (brightfield, H&E): "
        "auto decides from each image's histogram",
    )
    options.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="number format of the network: auto is bf16 (fp16 on older GPUs) on CUDA "
        "and fp32 elsewhere; fp32 reproduces a CPU's results most closely",
    )
    options.add_argument(
        "--prob-threshold",
        type=float,
        default=None,
        metavar="P",
        help="star-head models: object probability above which a polygon is proposed (0.5)",
    )
    options.add_argument(
        "--overlap-threshold",
        type=float,
        default=None,
        metavar="T",
        help="star-head models: a polygon overlapping a more probable one by more than "
        "this share of the smaller area is dropped (0.4)",
    )
    options.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average every tile over its 8 flips and rotations "
        "(8 times the network's cost)",
    )
    return options


def segment_settings(args: argparse.Namespace):
    """Return the :class:`SegmentSettings` that the engine options ask for."""
    from napari_segnet.inference.segment import SegmentSettings

    if args.tile < 32:
        raise UserError("--tile must be at least 32 pixels.")
    return SegmentSettings(
        invert={"auto": None, "yes": True, "no": False}[args.invert],
        channel=args.channel,
        diameter=parse_diameter(args.diameter),
        diameter_unit=args.diameter_unit,
        tile=args.tile,
        tta=args.tta,
        star=star_settings(args),
        precision=getattr(args, "precision", "auto"),
    )


def star_settings(args: argparse.Namespace):
    """Return the star-head thresholds asked for, or None for the defaults."""
    from napari_segnet.postprocess import StarSettings

    prob = getattr(args, "prob_threshold", None)
    overlap = getattr(args, "overlap_threshold", None)
    if prob is None and overlap is None:
        return None
    for name, value in (("--prob-threshold", prob), ("--overlap-threshold", overlap)):
        if value is not None and not 0 <= value <= 1:
            raise UserError(f"{name} must be between 0 and 1, not {value}.")
    defaults = StarSettings()
    return StarSettings(
        prob_threshold=defaults.prob_threshold if prob is None else prob,
        nms_threshold=defaults.nms_threshold if overlap is None else overlap,
    )


def parse_diameter(text) -> float | str | None:
    """Return the engine's ``diameter`` for ``--diameter``: "auto", None or a positive number."""
    from napari_segnet.inference.diameter import AUTO

    value = str(text).strip().casefold()
    if value == AUTO:
        return AUTO
    if value == "none":
        return None
    try:
        diameter = float(value)
    except ValueError:
        diameter = float("nan")
    if not (diameter > 0 and math.isfinite(diameter)):
        raise UserError(f"--diameter must be auto, none or a positive number, not {text!r}.")
    return diameter


def prepare_output_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents), or say in one sentence why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"Cannot create the output folder {folder}: {error.strerror}.") from error
    if not folder.is_dir():
        raise UserError(f"Cannot write into {folder}: it is a file, not a folder.")


def measure_every_channel(labels, axes: str, image, spacing):
    """Measure ``labels`` against every channel of a MicroscopyImage, named from the file."""
    from napari_segnet.measure import measure

    names = list(image.channel_names) or None
    return measure(
        labels,
        image.data,
        axes=axes,
        channel_axis=image.channel_axis,
        channel_names=names,
        spacing=spacing,
    )
