"""Measure fine-tuning recipes on a modality a model is weak at, with images held out from it.

    python scripts/finetune_levers.py ARM [ARM ...] [--model nuclei] [--out training-runs/finetune]
    python scripts/finetune_levers.py --table ARM [ARM ...]     # compare arms with `none`

The 15 H&E-like colour images of the tuning and report splits of `scripts/train_nuclei.py`
(images no bundled model trained on) are shuffled once (seed 0) into three folds of five. For
each fold an arm fine-tunes the model on the fold's five images through the code path the Train
widget and `train --from` run (`training.session.iter_training`, so a recipe's validation
split is the one a user gets) and the fine-tuned model segments the other ten as a user would
(automatic object size, the model's thresholds). Each image is thus scored twice, by models
that never saw it. `none` scores the model as it is. `--diameter oracle` scores with each
image's true nucleus size instead (records `OUT/ARM-oracle.json`; a fine-tuned model already
in OUT is scored, not trained again), which tells segmentation from the size estimate.
Per image TP / FP / FN at each IoU are written to `OUT/ARM.json` (a finished fold is not run
again); `--table` prints pooled AP@0.5, AP@0.75 and mean AP of each arm against `none` with a
95 % paired bootstrap interval over the (fold, image) scores.
"""

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import tifffile
from compare_colour_inputs import match_counts, mean_ap, paired_bootstrap
from score_nuclei import segmented
from train_nuclei import load_pairs, split_rows

from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain
from napari_segnet.training.session import ArraySource, TrainingRequest, iter_training
from napari_segnet.training.settings import VALIDATION_FRACTION, default_settings

FOLDS = 3
# Each arm: changes to the fine-tuning defaults (TrainSettings), and the validation fraction.
ARMS = {
    "none": None,
    "default": {},
    "sizenorm": {"size_normalise": True},
    "sizenorm-all": {"size_normalise": True, "validation_fraction": 0.0},
    "sizenorm-rgb": {"size_normalise": True, "colour_input": True},
    "sizenorm-anchor": {"size_normalise": True, "anchor": 0.01},
    "sizenorm-lr3e-4": {"size_normalise": True, "learning_rate": 3e-4},
    "sizenorm-frozen": {"size_normalise": True, "freeze_encoder": True},
    "sizenorm-thresholds": {"size_normalise": True, "tune_thresholds": True},
    # The model as it was teaches the one being fine-tuned (learning without forgetting).
    "sizenorm-self-teacher": {"size_normalise": True, "teacher": "start"},
    # A moving average of the weights (about the last 50 steps) is validated and kept.
    "sizenorm-average": {"size_normalise": True, "average_decay": 0.98},
}
RECORD_SUFFIX = {"auto": "", "oracle": "-oracle"}  # how test images are sized, and their record
SCORES = {"AP@0.5": [0], "AP@0.75": [5], "mean AP": slice(None)}  # indices of the thresholds


def colour_folds(root: Path) -> list[list[dict]]:
    """The held-out colour rows, shuffled once and dealt into :data:`FOLDS` folds."""
    splits = split_rows(root)
    rows = sorted(
        (r for split in ("tuning", "report") for r in splits[split] if r["class"] == "color"),
        key=lambda r: r["id"],
    )
    random.Random(0).shuffle(rows)
    return [rows[k::FOLDS] for k in range(FOLDS)]


def fine_tuned(model_path: Path, rows: list[dict], root: Path, arm: dict, out: Path) -> Path:
    """Fine-tune ``model_path`` on ``rows`` with the arm's recipe; return the model written."""
    changes = dict(arm)
    fraction = changes.pop("validation_fraction", VALIDATION_FRACTION)
    teacher = model_path if changes.pop("teacher", None) == "start" else None
    sources = [
        ArraySource(
            r["id"],
            tifffile.imread(root / "images" / f"{r['id']}.tif"),
            tifffile.imread(root / "masks" / f"{r['id']}.tif"),
        )
        for r in rows
    ]
    request = TrainingRequest(
        sources=sources,
        start=model_path,
        encoder="compact",
        name=None,
        settings=default_settings(fine_tune=True, **changes),
        validation_fraction=fraction,
        out=out,
        device="cpu",
        teacher=teacher,
    )
    drain(iter_training(request))
    out.with_name(out.name + ".resume.pt").unlink(missing_ok=True)
    return out


def run_arm(name: str, model_path: Path, root: Path, out: Path, diameter: str = "auto") -> None:
    record_path = out / f"{name}{RECORD_SUFFIX[diameter]}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"folds": {}}
    folds = colour_folds(root)
    for k, fold in enumerate(folds):
        if str(k) in record["folds"]:
            continue
        started = time.process_time()
        trained = out / f"{name}-fold{k}.safetensors"
        if ARMS[name] is None:
            path = model_path
        elif diameter != "auto" and trained.exists():
            path = trained
        else:
            path = fine_tuned(model_path, fold, root, ARMS[name], trained)
        seconds = time.process_time() - started
        model, _ = load_model(path)
        test = [r for j, other in enumerate(folds) if j != k for r in other]
        pairs = load_pairs(root, test, model.config.in_channels)
        found = segmented(model.eval(), pairs, diameter)
        record["folds"][str(k)] = {
            "cpu_seconds": round(seconds),
            "images": [r["id"] for r in test],
            "counts": [match_counts(p.labels, f).tolist() for p, f in zip(pairs, found)],
        }
        record_path.write_text(json.dumps(record))
        print(name, k, f"{seconds:.0f} CPU s", flush=True)


def counts(out: Path, name: str, diameter: str = "auto") -> np.ndarray:
    record = json.loads((out / f"{name}{RECORD_SUFFIX[diameter]}.json").read_text())
    return np.array([c for k in sorted(record["folds"]) for c in record["folds"][k]["counts"]])


def table(arms: list[str], out: Path, diameter: str = "auto", resamples: int = 2000) -> None:
    reference = counts(out, "none", diameter)
    print("| recipe | score | model as it is | fine-tuned | Δ (95 % interval) | better / worse |")
    print("|---|---|---:|---:|---:|---:|")
    for name in arms:
        candidate = counts(out, name, diameter)
        for score, thresholds in SCORES.items():
            before, after = mean_ap(reference, thresholds), mean_ap(candidate, thresholds)
            low, high = paired_bootstrap(candidate, reference, resamples, thresholds=thresholds)
            each = [
                mean_ap(candidate[[i]], thresholds) - mean_ap(reference[[i]], thresholds)
                for i in range(len(candidate))
            ]
            print(
                f"| {name} | {score} | {before:.3f} | {after:.3f} | {after - before:+.3f} "
                f"({low:+.3f} … {high:+.3f}) | {sum(d > 0 for d in each)} / "
                f"{sum(d < 0 for d in each)} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", choices=ARMS)
    parser.add_argument("--model", default="nuclei", help="a bundled name or a model file")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--out", type=Path, default=Path("training-runs/finetune"))
    parser.add_argument("--diameter", choices=tuple(RECORD_SUFFIX), default="auto")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    out = args.out
    if args.table:
        table(args.arms, out, args.diameter)
        return
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model)
    if not model_path.exists():
        model_path = bundled_model_path(args.model)
    for name in args.arms:
        run_arm(name, model_path, args.data, out, args.diameter)


if __name__ == "__main__":
    main()
