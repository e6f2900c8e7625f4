"""Score what the instance step alone could add to a trained model, on a split of DSB2018.

    python scripts/inference_levers.py MODEL.safetensors [--split tuning] \
        [--levers min_size,tta,zoom,distance_seeds]

Every lever starts from the same network outputs and changes only what is done with them:

- ``min_size``: fixed minimum sizes, and a minimum size relative to each image's own objects
  (a fraction of the median object area, never above the model's own minimum);
- ``tta``: class probabilities averaged over 4 flips or all 8 rotations and flips;
- ``zoom``: each image zoomed so that its *true* median nucleus diameter (read from its
  annotation) matches the model's training size, only upwards: an upper bound of what an
  automatic object-size estimate could give;
- ``distance_seeds``: for a model with the star head, whose object probability is trained on
  each nucleus's normalised distance to the background, seeds are that map's cores
  (probability above 0.3–0.6) instead of the interior class; the 3-class maps still place
  the edges.

Scores are pooled AP (StarDist's matching) per modality, one JSON line per variant.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from score_nuclei import scores
from train_nuclei import CLASS_SHARES, load_pairs, split_rows

from napari_segnet.inference.segment import instance_settings_of, segment_normalised
from napari_segnet.inference.tiling import iter_predict_tiled
from napari_segnet.models import load_model
from napari_segnet.postprocess import probabilities_to_instances
from napari_segnet.postprocess.instances import (
    _remove_small_and_fill_holes,
    relabelled,
    seeded_watershed,
)
from napari_segnet.progress import drain

DIHEDRAL = [(turns, flip) for turns in range(4) for flip in (False, True)]
FLIPS = [(0, False), (0, True), (2, False), (2, True)]
MAX_ZOOM = 3.0


def predicted(model, image: np.ndarray) -> dict[str, np.ndarray]:
    return drain(iter_predict_tiled(model, np.ascontiguousarray(image)))


def watershed_labels(probabilities, settings, min_size=None, seeds=None) -> np.ndarray:
    """The 3-class watershed, with another minimum size or other seeds if given."""
    interior, boundary = probabilities[1], probabilities[2]
    foreground = (interior + boundary) > settings.foreground_threshold
    if seeds is None:
        seeds, _ = ndimage.label(interior > settings.seed_threshold)
    labels = seeded_watershed(-interior, seeds, foreground)
    if min_size is None:
        min_size = settings.min_size
    elif callable(min_size):
        min_size = min_size(labels)
    return relabelled(_remove_small_and_fill_holes(labels, min_size))


def relative_min_size(fraction: float, ceiling: int):
    """Minimum size: ``fraction`` × the median area of an image's objects, at most ``ceiling``."""

    def rule(labels: np.ndarray) -> int:
        areas = np.bincount(labels.ravel())[1:]
        areas = areas[areas > 0]
        return int(min(ceiling, fraction * np.median(areas))) if areas.size else ceiling

    return rule


def median_diameter(labels: np.ndarray) -> float:
    areas = np.bincount(labels.ravel())[1:]
    return float(np.sqrt(4 * np.median(areas[areas > 0]) / np.pi))


def lever_variants(model, pairs, levers: list[str]) -> dict[str, list[np.ndarray]]:
    settings = instance_settings_of(model)
    variants: dict[str, list[np.ndarray]] = {}

    def add(name, labels):
        variants.setdefault(name, []).append(labels)

    for pair in pairs:
        outputs = predicted(model, pair.image)
        add("watershed, the model's thresholds", watershed_labels(outputs["instance"], settings))
        if "min_size" in levers:
            for size in (15, 25):
                add(f"min size {size}", watershed_labels(outputs["instance"], settings, size))
            for fraction in (0.1, 0.2, 0.3):
                rule = relative_min_size(fraction, settings.min_size)
                add(
                    f"min size {fraction} × median",
                    watershed_labels(outputs["instance"], settings, rule),
                )
        if "tta" in levers:
            averaged = {(0, False): outputs["instance"]}
            for turns, flip in DIHEDRAL[1:]:
                image = np.rot90(pair.image, turns)
                out = predicted(model, image[:, ::-1] if flip else image)["instance"]
                averaged[(turns, flip)] = np.rot90(out[..., ::-1] if flip else out, -turns, (1, 2))
            for name, transforms in (("tta 4 flips", FLIPS), ("tta 8 dihedral", DIHEDRAL)):
                mean = np.mean([averaged[t] for t in transforms], axis=0)
                add(name, probabilities_to_instances(mean, settings))
        if "zoom" in levers:
            scale = min(
                MAX_ZOOM, max(1.0, model.config.object_diameter_px / median_diameter(pair.labels))
            )
            zoomed = drain(
                segment_normalised(model, pair.image, instance_settings=settings, scale=scale)
            )[0]
            add("zoom to the true diameter (oracle)", zoomed)
        if "distance_seeds" in levers:
            for core in (0.3, 0.4, 0.5, 0.6):
                seeds, _ = ndimage.label(outputs["star_prob"] > core)
                add(
                    f"distance cores > {core}",
                    watershed_labels(outputs["instance"], settings, seeds=seeds),
                )
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--split", choices=("tuning", "report"), default="tuning")
    parser.add_argument("--levers", default="min_size,tta,zoom")
    args = parser.parse_args()

    model, _ = load_model(args.model)
    model.eval()
    levers = args.levers.split(",")
    if "distance_seeds" in levers and not model.config.has_star_head:
        parser.error("distance_seeds needs a model with the star head.")
    pairs = load_pairs(args.data, split_rows(args.data)[args.split])
    truths = [p.labels for p in pairs]
    for name, predictions in lever_variants(model, pairs, levers).items():
        record = {"model": str(args.model), "variant": name, "split": args.split}
        record["all"] = scores(truths, predictions)
        for group in CLASS_SHARES:
            chosen = [i for i, p in enumerate(pairs) if p.group == group]
            record[group] = scores([truths[i] for i in chosen], [predictions[i] for i in chosen])
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
