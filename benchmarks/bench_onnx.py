"""Speed of segmenting with the ONNX export (onnxruntime) against the torch model, same image.

    python benchmarks/bench_onnx.py [--model nuclei] [--size 2048] [--threads 2] [--repeats 3]

The model is exported to ONNX in a temporary folder (`napari_segnet.models.export`); both
runs are end to end as `napari-segnet segment` does them (read TIFF → normalise → network →
instances → write TIFF) on one CPU device with the same number of threads (torch's intra-op
threads and onnxruntime's), on a mosaic of flipped copies of the bundled fluorescence
sample. Prints megapixels per second for each, the best of `--repeats` runs after a warm-up,
and F1 at IoU 0.5 between the two label images (1.0: the same objects).
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_segnet.data import sample_path
from napari_segnet.inference.segment import segment
from napari_segnet.io import read_image, write_labels
from napari_segnet.metrics import evaluate
from napari_segnet.models import load_model
from napari_segnet.models.bundled import resolve_model
from napari_segnet.models.export import export_onnx


def mosaic(size: int) -> np.ndarray:
    """A size × size image tiled with the sample and its mirror images."""
    sample = tifffile.imread(sample_path("nuclei"))
    tiles = [sample, sample[:, ::-1], sample[::-1], sample[::-1, ::-1]]
    height, width = sample.shape
    canvas = np.zeros((size, size), sample.dtype)
    for i, y in enumerate(range(0, size, height)):
        for j, x in enumerate(range(0, size, width)):
            tile = tiles[(i * 2 + j) % len(tiles)]
            h, w = min(height, size - y), min(width, size - x)
            canvas[y : y + h, x : x + w] = tile[:h, :w]
    return canvas


def timed(run, repeats: int) -> tuple[float, np.ndarray]:
    labels = run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        labels = run()
        times.append(time.perf_counter() - started)
    return min(times), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # onnxruntime takes torch's thread count
    source = resolve_model(args.model)
    image = mosaic(args.size)
    megapixels = image.size / 1e6
    cpu = platform.processor() or platform.machine()
    print(
        f"machine: {platform.platform()}, {cpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model, provenance = load_model(source)
        check = export_onnx(model, folder / "model.onnx", provenance=provenance)
        print(f"export: {check.summary()}")
        models = {
            "torch (fused)": load_model(source, fuse=True)[0],
            "onnxruntime": load_model(folder / "model.onnx")[0],
        }
        path, target = folder / "mosaic.tif", folder / "mosaic_labels.tif"
        tifffile.imwrite(path, image, compression="zlib")
        print("\n| runtime | image | time | throughput | objects |\n|---|---|---:|---:|---:|")
        labels = {}
        for name, network in models.items():

            def end_to_end(network=network):
                result = segment(read_image(path), network, device=torch.device("cpu"))
                write_labels(target, result.labels)
                return result.labels

            best, labels[name] = timed(end_to_end, args.repeats)
            print(
                f"| {name} | {args.size}×{args.size} | {best:.2f} s | "
                f"{megapixels / best:.2f} MP/s | {int(labels[name].max())} |"
            )
    first, second = labels.values()
    f1 = evaluate([first], [second], thresholds=(0.5,))["pooled"][0.5]["f1"]
    print(f"\nF1 at IoU 0.5, onnxruntime's objects against torch's: {f1:.4f}")


if __name__ == "__main__":
    main()
