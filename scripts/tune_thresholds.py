"""Choose a model's instance thresholds on its validation images, and store them in its file.

    python scripts/tune_thresholds.py runs/nuclei.safetensors --data ../shared/data/dsb2018/train

Only the images listed in the file's `provenance["validation_ids"]` are used: for models of
`scripts/train_nuclei.py`, the tuning split (the report split stays unseen). The choice is
`napari_segnet.training.thresholds.iter_tune_thresholds` on the grid the bundled models were
tuned on.
"""

import argparse
import dataclasses
from pathlib import Path

import tifffile

from napari_segnet.inference.normalise import normalise
from napari_segnet.models import load_model, save_model
from napari_segnet.progress import drain
from napari_segnet.training.data import Pair
from napari_segnet.training.thresholds import iter_tune_thresholds

SEEDS = (0.3, 0.4, 0.5, 0.6)
FOREGROUNDS = (0.5, 0.6, 0.7, 0.8)
MIN_SIZES = (25, 40, 60, 90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    args = parser.parse_args()
    model, provenance = load_model(args.model)
    pairs = [
        Pair(
            normalise(
                tifffile.imread(args.data / "images" / f"{i}.tif"),
                model.config.normalise_percentiles,
            ),
            tifffile.imread(args.data / "masks" / f"{i}.tif"),
        )
        for i in provenance["validation_ids"]
    ]
    best, tuning = drain(
        iter_tune_thresholds(
            model, pairs, seeds=SEEDS, foregrounds=FOREGROUNDS, min_sizes=MIN_SIZES
        )
    )
    print(f"best: {best} mean AP {tuning['mean_ap']:.4f} AP@0.5 {tuning['ap50']:.4f}")
    model.config = dataclasses.replace(model.config, instance_settings=dataclasses.asdict(best))
    save_model(model, args.model, provenance={**provenance, "threshold_tuning": tuning})


if __name__ == "__main__":
    main()
