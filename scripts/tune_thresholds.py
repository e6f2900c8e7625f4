"""Choose a model's instance thresholds on its validation images, and store them in its file.

    python scripts/tune_thresholds.py runs/nuclei.safetensors --data ../shared/data/dsb2018/train

Probabilities are predicted once per validation image; every combination of seed threshold,
foreground threshold and minimum size is then scored (mean AP over IoU 0.5–0.9, pooled), and
the best is written into the model file's config. Only the images listed in the file's
`provenance["validation_ids"]` are used: for models of `scripts/train_nuclei.py`, the tuning
split (the report split stays unseen).
"""

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import tifffile

from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.tiling import iter_predict_tiled
from napari_segnet.metrics import evaluate
from napari_segnet.models import load_model, save_model
from napari_segnet.postprocess import InstanceSettings, probabilities_to_instances
from napari_segnet.progress import drain

SEEDS = (0.3, 0.4, 0.5, 0.6)
FOREGROUNDS = (0.5, 0.6, 0.7, 0.8)
MIN_SIZES = (25, 40, 60, 90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    args = parser.parse_args()
    model, provenance = load_model(args.model)
    ids = provenance["validation_ids"]
    truths, probabilities = [], []
    for image_id in ids:
        image = tifffile.imread(args.data / "images" / f"{image_id}.tif")
        truths.append(tifffile.imread(args.data / "masks" / f"{image_id}.tif"))
        plane = normalise(image, model.config.normalise_percentiles)
        probabilities.append(drain(iter_predict_tiled(model, plane))["instance"])
    results = []
    for seed, foreground, min_size in itertools.product(SEEDS, FOREGROUNDS, MIN_SIZES):
        settings = InstanceSettings(seed, foreground, min_size)
        predictions = [probabilities_to_instances(p, settings) for p in probabilities]
        pooled = evaluate(truths, predictions)["pooled"]
        score = float(np.mean([row["ap"] for row in pooled.values()]))
        results.append((score, pooled[0.5]["ap"], settings))
        print(
            f"seed {seed} foreground {foreground} min_size {min_size}: "
            f"mean AP {score:.4f}, AP@0.5 {pooled[0.5]['ap']:.4f}",
            flush=True,
        )
    score, ap50, best = max(results, key=lambda r: r[0])
    print(f"best: {best} mean AP {score:.4f} AP@0.5 {ap50:.4f}")
    config = dataclasses.replace(model.config, instance_settings=dataclasses.asdict(best))
    model.config = config
    tuning = {
        "grid": {"seed": SEEDS, "foreground": FOREGROUNDS, "min_size": MIN_SIZES},
        "validation_mean_ap": score,
        "validation_ap50": ap50,
    }
    save_model(model, args.model, provenance={**provenance, "threshold_tuning": tuning})


if __name__ == "__main__":
    main()
