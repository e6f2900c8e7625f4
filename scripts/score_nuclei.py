"""Score model files on a split of DSB2018 with each instance method, per modality.

    python scripts/score_nuclei.py MODEL.safetensors [MODEL ...] \
        [--split tuning] [--methods watershed,star,star_seeds]

The splits are those of `scripts/train_nuclei.py`. Choose checkpoints, methods and thresholds on
`tuning`; `--split report` is for the numbers that are published, once the choice is made.
`--split report --store` writes the report split's scores into the model file
(`provenance["report"]`), where `napari-segnet models` and exported model cards show them.
`--split train --sample N` scores N training images (a fixed random draw): how well a model
fits the images it learned from, against how well it does on unseen ones.
Scores are pooled AP (StarDist's matching) at IoU 0.5, 0.75 and 0.9 and the mean over 0.5–0.9,
with the instance thresholds stored in each model file.
`--diameter` says how each image is sized for the network: `auto` (the default: measured on the
image, as segmentation does), `oracle` (zoomed so that its annotated median nucleus has the
model's diameter: what a perfect estimate would give) or `none` (as it is).
`--magnification F` scores the images and their masks resized by F, as if taken with another
objective (0.5: a 20× objective instead of 40×).
Each model is given the images as it reads them: a model with three input channels gets colour
images as R, G, B (`train_nuclei.load_pairs` with its `in_channels`), the others one plane.
"""

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

import numpy as np
from train_nuclei import CLASS_SHARES, pairs_by_channels, split_rows

from napari_segnet.inference.augment import VIEWS
from napari_segnet.inference.diameter import iter_estimate_diameter
from napari_segnet.inference.precision import PRECISIONS
from napari_segnet.inference.segment import instance_settings_of, segment_normalised
from napari_segnet.metrics import evaluate
from napari_segnet.models import load_model
from napari_segnet.models.model_file import update_provenance
from napari_segnet.progress import drain
from napari_segnet.training.data import median_diameter, zoomed

DIAMETERS = ("auto", "oracle", "none")


def scores(truths, predictions) -> dict[str, float]:
    pooled = evaluate(truths, predictions)["pooled"]
    return {
        "ap50": round(pooled[0.5]["ap"], 4),
        "ap75": round(pooled[0.75]["ap"], 4),
        "ap90": round(pooled[0.9]["ap"], 4),
        "ap_mean": round(float(np.mean([r["ap"] for r in pooled.values()])), 4),
    }


def segmented(
    model, pairs, diameter: str = "auto", precision: str = "auto", tta: bool = False
) -> list[np.ndarray]:
    """Labels of each pair's image, with the thresholds stored in the model (what a user gets).

    ``diameter`` is one of :data:`DIAMETERS` (see the module's description), ``precision``
    the network's number format (``inference.precision``); ``tta`` averages each tile over its
    eight flips and rotations, as ``segment --tta`` does (the size estimate never does).
    """
    thresholds = instance_settings_of(model)
    views = VIEWS if tta else 1
    return [sized_labels(model, p, diameter, thresholds, precision, views) for p in pairs]


def sized_labels(
    model, pair, diameter: str, thresholds, precision: str = "auto", views: int = 1
) -> np.ndarray:
    scale = 1.0
    if diameter == "auto":
        estimate = drain(iter_estimate_diameter(model, pair.image, precision=precision))
        if estimate.first_pass is not None and views == 1:
            return estimate.first_pass[0]
        scale = estimate.scale
    elif diameter == "oracle" and model.config.object_diameter_px:
        scale = model.config.object_diameter_px / median_diameter([pair])
    labels, _ = drain(
        segment_normalised(
            model,
            pair.image,
            instance_settings=thresholds,
            scale=scale,
            precision=precision,
            views=views,
        )
    )
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--split", choices=("tuning", "report", "train"), default="tuning")
    parser.add_argument("--sample", type=int, help="score this many images of the split")
    parser.add_argument("--methods", default="")
    parser.add_argument("--diameter", choices=DIAMETERS, default="auto")
    parser.add_argument("--magnification", type=float, default=1.0)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--tta", action="store_true", help="test-time flips and rotations")
    parser.add_argument(
        "--store", action="store_true", help="write the report split's scores into the model file"
    )
    args = parser.parse_args()
    if args.store and (args.split != "report" or args.methods or args.sample):
        parser.error("--store keeps the whole report split scored with the model's own method.")

    rows = split_rows(args.data)[args.split]
    if args.sample:
        rows = random.Random(0).sample(rows, min(args.sample, len(rows)))
    loaded, sized = pairs_by_channels(args.data, rows), {}
    for path in args.models:
        model = load_model(path)[0].eval()
        channels = model.config.in_channels
        if channels not in sized:
            pairs = loaded(channels)
            if args.magnification != 1:
                pairs = [zoomed(p, args.magnification) for p in pairs]
            sized[channels] = pairs
        pairs = sized[channels]
        methods = args.methods.split(",") if args.methods else [model.config.instance_method]
        for method in methods:
            model.config = dataclasses.replace(model.config, instance_method=method)
            started = time.perf_counter()
            predictions = segmented(model, pairs, args.diameter, args.precision, args.tta)
            seconds = time.perf_counter() - started
            truths = [p.labels for p in pairs]
            record = {
                "model": str(path),
                "method": method,
                "split": args.split,
                "diameter": args.diameter,
                "magnification": args.magnification,
                "precision": args.precision,
                "tta": args.tta,
            }
            record["all"] = scores(truths, predictions)
            for group in CLASS_SHARES:
                chosen = [i for i, p in enumerate(pairs) if p.group == group]
                record[group] = scores(
                    [truths[i] for i in chosen], [predictions[i] for i in chosen]
                )
                record[group]["images"] = len(chosen)
            record["images"] = len(pairs)
            record["seconds"] = round(seconds, 1)
            print(json.dumps(record), flush=True)
            if args.store:
                kept = {k: v for k, v in record.items() if k not in ("model", "seconds")}
                update_provenance(path, report=kept)


if __name__ == "__main__":
    main()
