"""``napari-segnet train``: the Train widget's training set-up, from folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import prepare_output_folder, run_with_progress_bar


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """Register ``train``."""
    from napari_segnet.training.settings import VALIDATION_FRACTION, TrainSettings, default_settings

    new, tuned = default_settings(fine_tune=False), default_settings(fine_tune=True)
    parser = commands.add_parser(
        "train",
        parents=[common],
        help="train a model on image/mask pairs",
        description="Pairs share a file stem: images/<stem>.tif and masks/<stem>.tif. A "
        "validation split is held out; the model with the best validation AP is kept.",
    )
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, metavar="MODEL_FILE")
    parser.add_argument("--encoder", default="compact")
    parser.add_argument("--encoder-weights", type=Path, help="local ImageNet weights (.pth)")
    parser.add_argument("--freeze-encoder", action="store_true")
    parser.add_argument(
        "--star-rays",
        type=int,
        metavar="N",
        help="add a star-convex head with N rays (8-128, a power of two), whose polygons seed "
        "the watershed; needs the star extra",
    )
    parser.add_argument("--from", dest="start_from", help="fine-tune this model (name or file)")
    options = {
        "--epochs": "epochs",
        "--steps-per-epoch": "steps_per_epoch",
        "--learning-rate": "learning_rate",
    }
    for option, field in options.items():
        kind = float if field == "learning_rate" else int
        defaults = f"default {getattr(new, field):g}, fine-tuning {getattr(tuned, field):g}"
        parser.add_argument(option, dest=field, type=kind, default=None, help=defaults)
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument(
        "--crop", type=int, default=TrainSettings.crop, help="crop edge (less for small images)"
    )
    parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--resume", type=Path, help="a .resume.pt file written by a previous run")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=TrainSettings.precision,
        help="number format of the forward pass; auto: bfloat16 where the GPU or CPU computes "
        "it in hardware (AMX, AVX-512 BF16), float32 elsewhere",
    )
    parser.set_defaults(command="train", run=run)


def run(args: argparse.Namespace) -> int:
    """Train, keeping the model with the best validation AP in ``--out``."""
    from napari_segnet.models.bundled import resolve_model
    from napari_segnet.training.session import FolderSource, TrainingRequest, iter_training
    from napari_segnet.training.settings import default_settings

    given = {k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "learning_rate")}
    settings = default_settings(
        fine_tune=args.start_from is not None,
        **{k: v for k, v in given.items() if v is not None},
        batch_size=args.batch_size,
        crop=args.crop,
        freeze_encoder=args.freeze_encoder,
        seed=args.seed,
        precision=args.precision,
    )
    prepare_output_folder(args.out.parent)
    request = TrainingRequest(
        sources=[FolderSource(args.images, args.masks)],
        start=resolve_model(args.start_from) if args.start_from else None,
        encoder=args.encoder,
        name=None if args.start_from else args.out.stem,
        settings=settings,
        validation_fraction=args.validation_fraction,
        out=args.out,
        device=args.device,
        encoder_weights=args.encoder_weights,
        resume=args.resume,
        star_rays=args.star_rays,
    )
    result = run_with_progress_bar(_with_epoch_lines(iter_training(request)), "training")
    print(
        f"Best mean AP {result['best_ap_mean']:.3f} (epoch {result['best_epoch']}); "
        f"model written to {args.out}",
        file=sys.stderr,
    )
    return 0


def _with_epoch_lines(events):
    """Turn validations into lines above the bar, which keeps counting steps."""
    from napari_segnet.progress import Progress, relay

    steps = Progress(0, 1)

    def convert(event):
        nonlocal steps
        if event.stage != "validated":
            steps = event
            return event
        line = f"epoch {event.done}: AP@0.5 {event.info['ap50']:.3f}, "
        line += f"mean AP {event.info['ap_mean']:.3f}"
        return Progress(steps.done, steps.total, event.stage, {"message": line})

    return relay(events, convert)
