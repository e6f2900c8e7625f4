"""Time and ceiling of the star-convex instance methods on perfect predictions.

A "perfect" prediction is the training target of true labels: stardist's
``edt_prob`` and ``star_dist`` (32 rays) for the star head, and
``instance_targets`` as one-hot probabilities for the 3-class head. Prints

- the AP at IoU 0.5 / 0.75 / 0.9 that each method reaches on the bundled sample
  (520 x 696, 206 nuclei): the ceiling of the representation plus method;
- the time of each method on a 1024 x 1024 mosaic of the sample (about 640 nuclei).

Run from the repository root, on the number of cores to report (stardist's NMS uses OpenMP)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_star_postprocess.py
"""

from __future__ import annotations

import os
import platform
import time
from importlib.resources import files

import numpy as np
import tifffile
from skimage.segmentation import relabel_sequential
from stardist import __version__ as stardist_version
from stardist import edt_prob
from stardist.geometry import star_dist

from napari_segnet.metrics import evaluate
from napari_segnet.postprocess.instances import probabilities_to_instances
from napari_segnet.postprocess.star import star_seeded_watershed, star_to_instances
from napari_segnet.training.targets import instance_targets

N_RAYS = 32
REPEATS = 5
THRESHOLDS = (0.5, 0.75, 0.9)


def perfect(labels: np.ndarray):
    """(class probabilities, star probability, star distances) of the true labels."""
    labels = labels.astype(np.int32)
    classes, _ = instance_targets(labels)
    onehot = np.moveaxis(np.eye(3, dtype=np.float32)[classes], -1, 0)
    return onehot, edt_prob(labels), np.moveaxis(star_dist(labels, N_RAYS), -1, 0)


def mosaic(labels: np.ndarray) -> np.ndarray:
    """1024 x 1024 from the four 512 x 512 corners of the sample, mirrored into place."""
    corners = (
        labels[:512, :512],
        labels[:512, -512:][:, ::-1],
        labels[-512:, :512][::-1],
        labels[-512:, -512:][::-1, ::-1],
    )
    out = np.zeros((1024, 1024), np.int32)
    offset = 0
    for (row, col), corner in zip(((0, 0), (0, 512), (512, 0), (512, 512)), corners):
        corner = relabel_sequential(corner.astype(np.int32))[0]
        out[row : row + 512, col : col + 512] = np.where(corner > 0, corner + offset, 0)
        offset += int(corner.max())
    return out


def methods(classes, prob, dist):
    return {
        "3-class watershed": lambda: probabilities_to_instances(classes),
        "star polygons": lambda: star_to_instances(prob, dist),
        "star-seeded watershed": lambda: star_seeded_watershed(classes, prob, dist),
    }


def main() -> None:
    sample = tifffile.imread(files("napari_segnet.data") / "nuclei_fluo_labels.tif")
    print(
        f"Python {platform.python_version()}, stardist {stardist_version}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(f"\nCeiling on the sample ({len(np.unique(sample)) - 1} nuclei), AP@0.5/0.75/0.9:")
    for name, run in methods(*perfect(sample)).items():
        pooled = evaluate([sample], [run()], thresholds=THRESHOLDS)["pooled"]
        print(f"  {name:22s} " + " / ".join(f"{pooled[t]['ap']:.3f}" for t in THRESHOLDS))

    big = mosaic(sample)
    print(f"\n1024 x 1024, {len(np.unique(big)) - 1} nuclei, best and median of {REPEATS} runs:")
    for name, run in methods(*perfect(big)).items():
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            labels = run()
            times.append(time.perf_counter() - start)
        ap = evaluate([big], [labels], thresholds=(0.5,))["pooled"][0.5]["ap"]
        print(
            f"  {name:22s} {min(times):6.2f} s  {np.median(times):6.2f} s  "
            f"({int(labels.max())} objects, AP@0.5 {ap:.3f})"
        )


if __name__ == "__main__":
    main()
