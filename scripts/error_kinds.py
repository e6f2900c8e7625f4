"""What kind of error each missed nucleus is, for models on a split of DSB2018.

    python scripts/error_kinds.py MODEL [MODEL ...] [--split tuning]

Each model segments the split's images with the thresholds stored in its file. A true nucleus
is missed when no object matches it at IoU ≥ 0.5. A missed nucleus is *merged* when the
object covering most of it also covers at least half of another true nucleus, *split* when two
or more objects each cover at least a quarter of it, *not found* when objects cover less than
half of it altogether, and a *poor fit* otherwise. Counts per modality, with how many missed
nuclei are smaller than 80 pixels and the median size of true and missed nuclei.
"""

import argparse
from pathlib import Path

import numpy as np
from score_nuclei import segmented
from train_nuclei import CLASS_SHARES, load_pairs, split_rows

from napari_segnet.models import load_model

KINDS = ("merged", "split", "not found", "poor fit")


def missed_kinds(
    truth: np.ndarray, prediction: np.ndarray
) -> tuple[list[str], list[int], list[int]]:
    """Kinds and sizes of the true objects no prediction matches at IoU ≥ 0.5; all true sizes."""
    n_true, n_pred = int(truth.max()) + 1, int(prediction.max()) + 1
    overlap = np.bincount(
        truth.ravel().astype(np.int64) * n_pred + prediction.ravel(), minlength=n_true * n_pred
    ).reshape(n_true, n_pred)[1:, 1:]  # (true objects, predicted objects), pixels shared
    true_area = np.bincount(truth.ravel(), minlength=n_true)[1:]
    pred_area = np.bincount(prediction.ravel(), minlength=n_pred)[1:]
    present = true_area > 0
    iou = overlap / np.maximum(true_area[:, None] + pred_area[None, :] - overlap, 1)
    kinds, sizes = [], []
    for t in np.flatnonzero(present & (iou.max(axis=1, initial=0) < 0.5)):
        cover = overlap[t] / true_area[t]  # fraction of this nucleus in each object
        main = int(np.argmax(cover)) if cover.size else -1
        others = np.delete(np.arange(len(true_area)), t)
        if (
            main >= 0
            and cover[main] >= 0.5
            and np.any(overlap[others, main] >= 0.5 * np.maximum(true_area[others], 1))
        ):
            kinds.append("merged")
        elif np.sum(cover >= 0.25) >= 2:
            kinds.append("split")
        elif cover.sum() < 0.5:
            kinds.append("not found")
        else:
            kinds.append("poor fit")
        sizes.append(int(true_area[t]))
    return kinds, sizes, true_area[present].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--split", choices=("tuning", "report"), default="tuning")
    args = parser.parse_args()

    pairs = load_pairs(args.data, split_rows(args.data)[args.split])
    print(
        f"| model | images | true | missed | {' | '.join(KINDS)} | missed < 80 px | "
        "median true / missed px |"
    )
    print("|---|---|---:|---:|" + "---:|" * len(KINDS) + "---:|---:|")
    for path in args.models:
        model, _ = load_model(path)
        labels = segmented(model.eval(), pairs)
        found = {p.name: missed_kinds(p.labels, lab) for p, lab in zip(pairs, labels)}
        for group in ("all", *CLASS_SHARES):
            chosen = [found[p.name] for p in pairs if group == "all" or p.group == group]
            kinds = [k for c in chosen for k in c[0]]
            missed = [s for c in chosen for s in c[1]]
            true = [s for c in chosen for s in c[2]]
            counts = " | ".join(str(kinds.count(k)) for k in KINDS)
            small = sum(s < 80 for s in missed)
            median_missed = f"{np.median(missed):.0f}" if missed else "—"
            print(
                f"| {path.name} | {group} ({len(chosen)}) | {len(true)} | {len(missed)} | "
                f"{counts} | {small} | {np.median(true):.0f} / {median_missed} |"
            )


if __name__ == "__main__":
    main()
