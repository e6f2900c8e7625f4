"""Accuracy of cells from nuclei and of automatic marker positivity, on synthetic tissue.

The tissue (``tests/cells/synthetic_cells.py``) has irregular cells with
off-centre nuclei, membrane rims with 10 % gaps, a cytoplasm fill, a
cytoplasmic marker (CD8, 30 % positive) and a nuclear marker (Ki67, 40 %
positive); one image of the batch has no positive cell at all. Nuclei are the
true ones, so the figures measure the growth step alone. Prints AP@0.5/0.75
(pooled over the images) of fixed expansions and of growth on the membrane and
cytoplasm channels, and the share of matched cells whose positivity is right,
with thresholds chosen over the pooled batch and, for contrast, per image.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_cells.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cells"))

from napari_segnet.cells import (
    Marker,
    PhenotypeDefinition,
    classify,
    expand_nuclei,
    grow_on_stain,
    measure_cells,
    resolve_thresholds,
)
from napari_segnet.metrics import evaluate, iou_matrix
from synthetic_cells import CHANNELS, synthetic_cells

SEEDS = range(8)
SHAPE = (384, 384)
SPACING = (0.5, 0.5)
LIMIT = 15.0  # µm: the distance limit of growth on a stain
MARKERS = (("CD8", "cytoplasm"), ("Ki67", "nucleus"))


def make_batch():
    batch = []
    for seed in SEEDS:
        fraction = (0.0, 0.0) if seed == 0 else (0.3, 0.4)  # one well without positives
        batch.append(
            synthetic_cells(
                SHAPE, spacing=SPACING, rim_gaps=0.1, positive_fraction=fraction, seed=seed
            )
        )
    return batch


def segmentation_table(batch) -> dict:
    methods = {
        "expand 3 um": lambda s: expand_nuclei(s.nuclei, 3.0, spacing=s.spacing),
        "expand 5 um": lambda s: expand_nuclei(s.nuclei, 5.0, spacing=s.spacing),
        f"expand {LIMIT:g} um": lambda s: expand_nuclei(s.nuclei, LIMIT, spacing=s.spacing),
        "membrane (auto kind)": lambda s: grow_on_stain(
            s.nuclei, s.channel("membrane"), LIMIT, spacing=s.spacing
        ),
        "cytoplasm (auto kind)": lambda s: grow_on_stain(
            s.nuclei, s.channel("cytoplasm"), LIMIT, spacing=s.spacing
        ),
    }
    results = {}
    for name, grow in methods.items():
        cells = [grow(s) for s in batch]
        inside = all(
            np.array_equal(c[s.nuclei > 0], s.nuclei[s.nuclei > 0]) for c, s in zip(cells, batch)
        )
        pooled = evaluate([s.cells for s in batch], cells, thresholds=(0.5, 0.75))["pooled"]
        results[name] = (pooled[0.5]["ap"], pooled[0.75]["ap"], inside, cells)
    return results


def positivity(batch, cells_per_image, method: str) -> dict:
    tables = [
        measure_cells(s.nuclei, cells, s.image, channel_names=CHANNELS, spacing=s.spacing)
        for s, cells in zip(batch, cells_per_image)
    ]
    definition = PhenotypeDefinition(tuple(Marker(c, k, method=method) for c, k in MARKERS))
    pooled = resolve_thresholds(tables, definition)
    out = {}
    for mode in ("over the pooled batch", "per image"):
        right = {c: 0 for c, _ in MARKERS}
        total = 0
        for s, cells, table in zip(batch, cells_per_image, tables):
            settled = pooled if mode.startswith("over") else resolve_thresholds(table, definition)
            labelled = classify(table, settled).set_index("label")
            matched = _matched_labels(s.cells, cells)
            total += matched.size
            for channel, _ in MARKERS:
                called = labelled.loc[matched, f"{channel}_positive"].to_numpy()
                truth = np.array([s.positive[channel][k] for k in matched])
                right[channel] += int(np.sum(called == truth))
        out[mode] = {c: right[c] / total for c in right}
    return out


def _matched_labels(truth: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Cells (same id as their true cell, as they grow from the true nuclei) with IoU >= 0.5."""
    iou = iou_matrix(truth, cells)
    ids = np.unique(truth[truth > 0])
    pred_ids = np.unique(cells[cells > 0])
    rows = np.searchsorted(ids, pred_ids)
    good = iou[rows, np.arange(pred_ids.size)] >= 0.5
    return pred_ids[good]


def main() -> None:
    batch = make_batch()
    n_cells = sum(int(s.cells.max()) for s in batch)
    print(
        f"{len(batch)} synthetic images {SHAPE[0]}x{SHAPE[1]} px at {SPACING[0]} um/px, "
        f"{n_cells} cells; growth on a stain limited to {LIMIT:g} um from the nucleus"
    )
    results = segmentation_table(batch)
    print(f"{'cells':<24}{'AP@0.5':>8}{'AP@0.75':>9}  every nucleus inside its cell")
    for name, (ap50, ap75, inside, _) in results.items():
        print(f"{name:<24}{ap50:>8.3f}{ap75:>9.3f}  {inside}")
    membrane_cells = results["membrane (auto kind)"][3]
    for method in ("otsu", "triangle"):
        scores = positivity(batch, membrane_cells, method)
        for mode, accuracy in scores.items():
            figures = ", ".join(f"{c} {v:.1%}" for c, v in accuracy.items())
            print(f"positivity right ({method}, thresholds chosen {mode}): {figures}")


if __name__ == "__main__":
    main()
