"""Time ``napari_segnet.measure.measure`` on 100,000 objects in a 4-channel image.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_measure.py
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import pandas as pd
import scipy
import skimage

from napari_segnet.measure import measure

ROWS, COLS, CELL = 400, 250, 16  # 100,000 grid cells of 16 x 16 pixels, one object each
CHANNELS = 4
SEED = 0


def make_data(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Jittered grid of rotated ellipses (labels) and a noisy 4-channel uint16 image (CYX)."""
    rng = np.random.default_rng(seed)
    n = ROWS * COLS
    centre = CELL / 2 + rng.uniform(-1.5, 1.5, (2, n))
    semi = rng.uniform(3.0, 6.0, (2, n))
    angle = rng.uniform(0, np.pi, n)
    labels = np.zeros((ROWS * CELL, COLS * CELL), dtype=np.uint32)
    ly, lx = np.mgrid[0:CELL, 0:CELL].astype(np.float32)
    # One band of cells at a time keeps the float temporaries small.
    for row in range(ROWS):
        cells = row * COLS + np.arange(COLS)
        dy = ly[None] - centre[0, cells, None, None]
        dx = lx[None] - centre[1, cells, None, None]
        cos, sin = np.cos(angle[cells])[:, None, None], np.sin(angle[cells])[:, None, None]
        u, v = (
            (dy * cos + dx * sin) / semi[0, cells, None, None],
            (dx * cos - dy * sin) / semi[1, cells, None, None],
        )
        inside = u * u + v * v <= 1
        band = np.where(inside, (cells + 1)[:, None, None], 0)  # (COLS, CELL, CELL)
        labels[row * CELL : (row + 1) * CELL] = band.transpose(1, 0, 2).reshape(CELL, -1)
    brightness = rng.uniform(500, 3000, (CHANNELS, n + 1)).astype(np.float32)
    brightness[:, 0] = 0
    image = np.empty((CHANNELS, *labels.shape), dtype=np.uint16)
    for c in range(CHANNELS):
        noise = rng.normal(100, 20, labels.shape).astype(np.float32)
        image[c] = np.clip(brightness[c][labels] + noise, 0, 65535).astype(np.uint16)
    return labels, image


def best_time(func, repeats: int = 3, slow_s: float = 20.0) -> tuple[float, object, int]:
    """Best wall time of up to `repeats` runs; a single run when one takes over `slow_s`."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
        if times[-1] > slow_s:
            break
    return min(times), result, len(times)


def main() -> None:
    print(f"platform: {platform.platform()}  python {platform.python_version()}")
    print(f"cpu: {platform.processor() or platform.machine()}  logical cores: {os.cpu_count()}")
    print(
        f"numpy {np.__version__}  scipy {scipy.__version__}  scikit-image {skimage.__version__}  "
        f"pandas {pd.__version__}"
    )
    start = time.perf_counter()
    labels, image = make_data()
    n_objects = int(labels.max())
    print(
        f"data: labels {labels.shape} {labels.dtype}, image {image.shape} {image.dtype}, "
        f"{n_objects:,} objects, built in {time.perf_counter() - start:.1f} s"
    )
    cases = {
        "2D, 4 channels, uncalibrated": {},
        "2D, 4 channels, spacing (0.5, 0.25) um": {"spacing": (0.5, 0.25)},
    }
    for name, options in cases.items():
        seconds, table, runs = best_time(lambda o=options: measure(labels, image, **o))
        assert len(table) == n_objects, len(table)
        print(
            f"{name}: {seconds:.2f} s (best of {runs}), {n_objects / seconds:,.0f} objects/s, "
            f"{table.shape[1]} columns"
        )


if __name__ == "__main__":
    main()
