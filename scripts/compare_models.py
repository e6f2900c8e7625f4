"""Compare a candidate model with a reference on a split of DSB2018 (paired bootstrap intervals).

    python scripts/compare_models.py REFERENCE.safetensors CANDIDATE.safetensors \
        [--split report] [--bootstrap 2000]

Each model segments the split's images with the thresholds stored in its file (what a user
gets). Per modality and for all images: pooled AP (StarDist's matching) of both models at IoU
0.5, 0.9 and averaged over 0.5–0.9, the candidate's difference with a 95 % interval from a paired
bootstrap over images (pooled AP recomputed on every resample), and how many images the
candidate does better / worse on. The splits are those of `scripts/train_nuclei.py`; images are
sized as `--diameter` says (see `scripts/score_nuclei.py`; `--diameter-reference` for the
reference if it differs); `--tta` gives the candidate test-time flips and rotations (the same
file as both models measures them). Each model is given the images as it reads them (one
plane, or colour as R, G, B for a model with three input channels).
"""

import argparse
from pathlib import Path

import numpy as np
from compare_colour_inputs import match_counts, mean_ap, paired_bootstrap
from score_nuclei import DIAMETERS, segmented
from train_nuclei import CLASS_SHARES, pairs_by_channels, split_rows

from napari_segnet.inference.precision import PRECISIONS
from napari_segnet.models import load_model

SCORES = {"AP@0.5": [0], "AP@0.9": [-1], "mean AP": slice(None)}  # indices of the thresholds


def counts_of(
    path: Path, pairs_for, diameter: str = "auto", precision: str = "auto", tta: bool = False
) -> np.ndarray:
    """Per-image TP/FP/FN at each IoU threshold, shape (images, thresholds, 3).

    ``pairs_for(channels)`` returns the split's pairs as a model reading that
    many channels sees them (see ``train_nuclei.pairs_by_channels``).
    """
    model, _ = load_model(path)
    pairs = pairs_for(model.config.in_channels)
    labels = segmented(model.eval(), pairs, diameter, precision, tta)
    return np.array([match_counts(p.labels, found) for p, found in zip(pairs, labels)], float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--split", choices=("tuning", "report"), default="tuning")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--diameter", choices=DIAMETERS, default="auto")
    parser.add_argument("--diameter-reference", choices=DIAMETERS)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="both models")
    parser.add_argument(
        "--tta", action="store_true", help="the candidate with test-time flips and rotations"
    )
    args = parser.parse_args()

    rows = split_rows(args.data)[args.split]
    pairs_for = pairs_by_channels(args.data, rows)
    sizing = args.diameter_reference or args.diameter
    reference = counts_of(args.reference, pairs_for, sizing, args.precision)
    candidate = counts_of(args.candidate, pairs_for, args.diameter, args.precision, args.tta)
    groups = [row["class"] for row in rows]  # each pair's group, in the same order
    print(
        f"{args.candidate} ({args.diameter}{', tta' if args.tta else ''}) against "
        f"{args.reference} ({sizing}), "
        f"{args.split} split:\n"
    )
    print("| images | n | score | reference | candidate | Δ (95 % interval) | better / worse |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for group in ("all", *CLASS_SHARES):
        chosen = [i for i, kind in enumerate(groups) if group == "all" or kind == group]
        ref, cand = reference[chosen], candidate[chosen]
        for name, thresholds in SCORES.items():
            before, after = mean_ap(ref, thresholds), mean_ap(cand, thresholds)
            low, high = paired_bootstrap(cand, ref, args.bootstrap, thresholds=thresholds)
            each = [
                mean_ap(cand[[i]], thresholds) - mean_ap(ref[[i]], thresholds)
                for i in range(len(chosen))
            ]
            better, worse = sum(d > 0 for d in each), sum(d < 0 for d in each)
            print(
                f"| {group} | {len(chosen)} | {name} | {before:.3f} | {after:.3f} | "
                f"{after - before:+.3f} ({low:+.3f} … {high:+.3f}) | {better} / {worse} |"
            )


if __name__ == "__main__":
    main()
