"""``napari-segnet evaluate``: instance metrics of a model on image/mask pairs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import engine_options, run_with_progress_bar, segment_settings
from .job import model_request


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """Register ``evaluate``."""
    parser = commands.add_parser(
        "evaluate",
        parents=[common, engine_options()],
        help="AP, precision, recall, F1, PQ on a labelled set",
        description="Segments every image of --images and compares it with the mask of the "
        "same stem in --masks. Counts are pooled over all images (StarDist's conventions).",
    )
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument(
        "--json", type=Path, help="also write the metrics (and the model's identity) to this file"
    )
    parser.set_defaults(command="evaluate", run=run)


def run(args: argparse.Namespace) -> int:
    """Print a table of metrics at IoU 0.5–0.9 (and write it as JSON with ``--json``)."""
    from napari_segnet.inference.segment import iter_segment
    from napari_segnet.io import atomic_path, read_image
    from napari_segnet.metrics import evaluate
    from napari_segnet.training.data import pair_paths

    pairs = pair_paths(args.images, args.masks)
    model, device = model_request(args).load(tta=args.tta)
    settings = segment_settings(args)
    truths, predictions = [], []
    for _, image_path, mask_path in pairs:
        events = iter_segment(read_image(image_path), model, settings, device=device)
        predictions.append(run_with_progress_bar(events, image_path.name).labels)
        truths.append(read_image(mask_path).data)
    metrics = evaluate(truths, predictions)
    print(format_table(metrics))
    if args.json:
        serialisable = {
            key: ({str(t): row for t, row in value.items()} if isinstance(value, dict) else value)
            for key, value in metrics.items()
        }
        identity = getattr(model, "identity", None)
        if identity is not None:  # which model the scores are of: name, version, weights hash
            serialisable["model"] = identity.as_metadata()
        with atomic_path(args.json) as temporary:
            temporary.write_text(json.dumps(serialisable, indent=2))
    return 0


def format_table(metrics: dict) -> str:
    """Return the printed table of :func:`napari_segnet.metrics.evaluate`'s result."""
    lines = [
        f"{metrics['n_images']} images; pooled over images (StarDist conventions), "
        "and AP averaged per image:",
        f"{'IoU':>5} {'AP':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'PQ':>6} {'AP/img':>7}",
    ]
    for threshold, row in metrics["pooled"].items():
        mean_ap = metrics["per_image_mean"][threshold]["ap"]
        lines.append(
            f"{threshold:5.2f} {row['ap']:6.3f} {row['precision']:6.3f} {row['recall']:6.3f} "
            f"{row['f1']:6.3f} {row['pq']:6.3f} {mean_ap:7.3f}"
        )
    return "\n".join(lines)
