"""Train the bundled `nuclei` model on DSB2018 (all modalities), holding out a validation split.

    python scripts/train_nuclei.py --data ../shared/data/dsb2018/train --out nuclei.safetensors \
        [--epochs 60 --steps 100 --resume nuclei.safetensors.resume.pt --device auto]

The split is a stable hash of each image id (15 % held out), plus the bundled sample image,
so the demo shows an image the model never trained on. The held-out images are split again, by
the same kind of hash: a *tuning* half (validation during training: the best epoch, and later
thresholds, are chosen on it) and a *report* half that nothing is chosen on (published numbers).
`--heads star` adds the star-convex head and `--full-resolution N` a full-resolution path of N
channels (starting from `--from`'s weights for the rest). `--encoder-widths` sets the stages of a
new compact network, `--size-normalise D` rescales every image (training and tuning) so that its
median nucleus is D pixels wide (crops are then zoomed by `--scale-range` around that size), and
`--object-centred F` places a share F of the crops on a nucleus.
`--rgb` trains a network that reads colour images as R, G, B (grey ones as the same plane in all
three channels); with `--from` a one-channel model's first convolutions are given three channels
(`models.network.with_rgb_input`: it computes what it did on grey images) and training goes on.
Modalities are sampled with fixed shares (fluorescence 60 %, H&E-like colour 25 %,
brightfield 15 %) since the classes are very unequal in size.
"""

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile

from napari_segnet.inference.devices import select_device
from napari_segnet.models import (
    ModelConfig,
    create_model,
    load_model,
    with_full_resolution_path,
    with_star_head,
)
from napari_segnet.models.network import with_rgb_input
from napari_segnet.progress import drain
from napari_segnet.training.data import (
    make_pair,
    median_diameter,
    size_normalised,
    split_validation,
)
from napari_segnet.training.loop import TrainSettings, iter_train, validate

SAMPLE_ID = "6fe2df6de1d962b90146c822bcefc84d0d3d6926fdfbacd3acdc9de830ee5622"
CLASS_SHARES = {"fluo": 0.60, "color": 0.25, "gray_brightbg": 0.15}
VALIDATION_FRACTION = 0.15
REPORT_FRACTION = 0.5  # of the held-out images
SIZE_NORMALISED_TOLERANCE = 1.25


def split_rows(root: Path) -> dict[str, list[dict]]:
    """The manifest rows of each split: ``train``, ``tuning`` and ``report``."""
    with open(root / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    held_out = split_validation(
        [r["id"] for r in rows],
        VALIDATION_FRACTION,
        groups=[r["class"] for r in rows],
        always=(SAMPLE_ID,),
    )
    held = [r for r in rows if r["id"] in held_out]
    report = split_validation(
        [r["id"] for r in held],
        REPORT_FRACTION,
        groups=[r["class"] for r in held],
        always=(SAMPLE_ID,),
    )
    return {
        "train": [r for r in rows if r["id"] not in held_out],
        "tuning": [r for r in held if r["id"] not in report],
        "report": [r for r in held if r["id"] in report],
    }


def load_pairs(root: Path, rows: list[dict], channels: int = 1):
    """The rows' pairs, normalised for a network that reads ``channels`` channels (1 or 3)."""
    pairs = []
    for row in rows:
        image = tifffile.imread(root / "images" / f"{row['id']}.tif")
        labels = tifffile.imread(root / "masks" / f"{row['id']}.tif")
        pairs.append(
            make_pair(image, labels, name=row["id"], group=row["class"], channels=channels)
        )
    return pairs


def pairs_by_channels(root: Path, rows: list[dict]):
    """Return ``pairs(channels)``: :func:`load_pairs` of the rows, each channel count loaded once.

    Scripts that score several models give each the images as it reads them
    (``pairs(model.config.in_channels)``); the labels and the order are the same.
    """
    loaded: dict[int, list] = {}

    def pairs(channels: int = 1) -> list:
        if channels not in loaded:
            loaded[channels] = load_pairs(root, rows, channels)
        return loaded[channels]

    return pairs


def load_dsb(root: Path, channels: int = 1):
    """Training and tuning pairs, and the report ids (never loaded: nothing is chosen on them)."""
    splits = split_rows(root)
    report_ids = sorted(r["id"] for r in splits["report"])
    train = load_pairs(root, splits["train"], channels)
    return train, load_pairs(root, splits["tuning"], channels), report_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--resume", type=Path)
    parser.add_argument(
        "--from",
        dest="start_from",
        type=Path,
        help="continue training this model file with a new schedule",
    )
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument(
        "--teacher",
        type=Path,
        help="a trained model whose class probabilities the network also learns (distillation)",
    )
    parser.add_argument(
        "--distil-weight",
        type=float,
        default=TrainSettings.distil_weight,
        help="share of the teacher's term in the loss, with --teacher",
    )
    parser.add_argument(
        "--average-decay",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="validate and keep a moving average of the weights with this decay a step (0: none)",
    )
    parser.add_argument(
        "--validate-raw",
        action="store_true",
        help="with --average-decay, also validate the weights as they are (ap_mean_raw in the log)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heads", choices=("classes", "star"), default="classes")
    parser.add_argument("--star-rays", type=int, default=32)
    parser.add_argument(
        "--full-resolution",
        type=int,
        default=0,
        metavar="CHANNELS",
        help="add a full-resolution path of this width (0: none)",
    )
    parser.add_argument(
        "--instance-method", choices=("watershed", "star", "star_seeds"), default="watershed"
    )
    parser.add_argument(
        "--encoder-widths",
        type=lambda text: tuple(int(w) for w in text.split(",")),
        help="stages of a new compact encoder, e.g. 32,64,128,256 (default 16,32,64,128)",
    )
    parser.add_argument(
        "--size-normalise",
        type=float,
        metavar="DIAMETER",
        help="rescale each image so that its median nucleus is this many pixels wide",
    )
    parser.add_argument(
        "--scale-range",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        help="random zoom of the crops, e.g. 0.625,1.6 (default 0.6,1.6)",
    )
    parser.add_argument("--object-centred", type=float, default=0.0, metavar="SHARE")
    parser.add_argument(
        "--rgb",
        action="store_true",
        help="read colour images as R, G, B (a new network, or --from's with three input channels)",
    )
    args = parser.parse_args()

    if args.start_from:
        model, earlier = load_model(args.start_from)
        if args.rgb:
            model = with_rgb_input(model)
        channels = model.config.in_channels
    else:
        channels = 3 if args.rgb else 1
    train, validation, report_ids = load_dsb(args.data, channels)
    if args.size_normalise:
        train = size_normalised(train, args.size_normalise)
        validation = size_normalised(validation, args.size_normalise)
    counts = {c: sum(p.group == c for p in train) for c in CLASS_SHARES}
    weights = np.array([CLASS_SHARES[p.group] / counts[p.group] for p in train])
    if args.start_from:
        if args.heads == "star":
            model = with_star_head(model, args.star_rays, args.instance_method)
        if args.full_resolution:
            model = with_full_resolution_path(model, args.full_resolution)
        if args.size_normalise:  # the images it now learns from have this size
            model.config = replace(
                model.config,
                object_diameter_px=args.size_normalise,
                object_diameter_tolerance=SIZE_NORMALISED_TOLERANCE,
            )
        history = [
            *earlier.get("history", []),
            {k: earlier.get(k) for k in ("command", "epoch", "validation", "training_seconds")},
        ]
    else:
        config = ModelConfig(
            encoder="compact",
            in_channels=channels,
            encoder_widths=args.encoder_widths,
            name="nuclei",
            full_resolution_channels=args.full_resolution,
            object_diameter_px=args.size_normalise or median_diameter(train),
            # A size-normalised network saw every nucleus near one size: rescale sooner.
            object_diameter_tolerance=SIZE_NORMALISED_TOLERANCE if args.size_normalise else 1.5,
            heads=("classes", "star") if args.heads == "star" else ("classes",),
            star_rays=args.star_rays,
            instance_method=args.instance_method,
        )
        model, history = create_model(config), []
    settings = TrainSettings(
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        learning_rate=args.learning_rate,
        object_centred=args.object_centred,
        precision=args.precision,
        distil_weight=args.distil_weight,
        average_decay=args.average_decay,
        **({"scale_range": args.scale_range} if args.scale_range else {}),
    )
    provenance = {
        "data": "DSB2018 stage1_train with community fixes (CC0)",
        "train_images": len(train),
        "validation_ids": sorted(p.name for p in validation),  # the tuning split
        "report_ids": report_ids,
        "command": " ".join(sys.argv),
        "history": history,
    }
    device = select_device(args.device)
    print(
        f"train {len(train)} images {counts}, validation {len(validation)}, device {device}",
        flush=True,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    events = iter_train(
        model,
        train,
        validation,
        settings,
        out=args.out,
        device=device,
        sample_weights=weights,
        resume=args.resume,
        provenance=provenance,
        teacher=load_model(args.teacher)[0] if args.teacher else None,
    )

    def log(event):
        if event.stage == "validated" or event.done % 20 == 0:
            elapsed = time.perf_counter() - started
            record = {
                "stage": event.stage,
                "done": event.done,
                "total": event.total,
                "seconds": round(elapsed),
                "cpu_seconds": round(time.process_time() - cpu_started),
                **event.info,
            }
            if event.stage == "validated" and args.validate_raw:  # the model being trained
                raw = validate(model, validation, device)
                record |= {"ap50_raw": raw["ap50"], "ap_mean_raw": raw["ap_mean"]}
            print(json.dumps(record), flush=True)

    drain(events, log)


if __name__ == "__main__":
    main()
