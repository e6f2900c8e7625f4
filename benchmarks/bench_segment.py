"""Accuracy and speed of the segmentation engine, with a classical baseline measured alongside.

    python benchmarks/bench_segment.py --data ../shared/data/dsb2018/train [--model nuclei]
        [--device cpu] [--threads 2] [--size 2048] [--diameter auto|none] [--precision P] [--store]

Accuracy: the model's held-out report images (listed in the model file: the images nothing was
chosen on; models without that list name their validation images instead), per modality,
pooled AP at IoU 0.5…0.9 (StarDist's conventions), for the network and for Otsu threshold +
distance-transform watershed. Speed: end to end (read TIFF → normalise → network → instances
→ write TIFF) on a large fluorescence mosaic, in megapixels per second, with the baseline on
the same image. `--diameter` is segmentation's object size: `auto` (the default, as users get
it: measured on each image first) or `none` (images as they are). `--store` writes the speed
into the model file (`provenance["speed"]`, its weights untouched), where `napari-segnet models`
shows it; run it on an otherwise idle machine.
"""

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from napari_segnet.inference.devices import select_device
from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.precision import PRECISIONS, cpu_has_bf16_units
from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.io import read_image, write_labels
from napari_segnet.metrics import evaluate
from napari_segnet.models import load_model
from napari_segnet.models.bundled import resolve_model
from napari_segnet.models.model_file import update_provenance

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def otsu_watershed(image: np.ndarray, min_distance: int = 4, min_size: int = 15) -> np.ndarray:
    """Classical baseline: Otsu foreground, seeds at distance-transform maxima, watershed."""
    plane = ndimage.gaussian_filter(normalise(image), 1.0)
    foreground = plane > threshold_otsu(plane)
    distance = ndimage.distance_transform_edt(foreground)
    peaks = peak_local_max(
        distance,
        min_distance=min_distance,
        labels=ndimage.label(foreground)[0],
        exclude_border=False,
    )
    markers = np.zeros(plane.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=foreground)
    sizes = np.bincount(labels.ravel())
    labels[(sizes < min_size)[labels]] = 0
    return labels


def accuracy(model, device, data: Path, ids: list[str], settings: SegmentSettings) -> None:
    with open(data / "manifest.csv") as handle:
        modality = {row["id"]: row["class"] for row in csv.DictReader(handle)}
    groups: dict[str, list[str]] = {}
    for image_id in ids:
        groups.setdefault(modality[image_id], []).append(image_id)
    groups["all"] = list(ids)
    header = " | ".join(f"AP@{t}" for t in THRESHOLDS)
    print(f"| method | modality | images | {header} |")
    print("|---|---|---:|" + "---:|" * len(THRESHOLDS))
    cache = {}
    for image_id in ids:
        image = read_image(data / "images" / f"{image_id}.tif")
        truth = tifffile.imread(data / "masks" / f"{image_id}.tif")
        network = segment(image, model, settings, device=device).labels
        cache[image_id] = (truth, network, otsu_watershed(np.asarray(image.data)))
    for method, column in (("napari-segnet", 1), ("Otsu + watershed", 2)):
        for name in ("fluo", "color", "gray_brightbg", "all"):
            members = groups.get(name, [])
            if not members:
                continue
            pooled = evaluate(
                [cache[i][0] for i in members],
                [cache[i][column] for i in members],
                thresholds=THRESHOLDS,
            )["pooled"]
            cells = " | ".join(f"{pooled[t]['ap']:.3f}" for t in THRESHOLDS)
            print(f"| {method} | {name} | {len(members)} | {cells} |")


def mosaic(data: Path, ids: list[str], size: int) -> np.ndarray:
    """A size × size fluorescence image assembled from held-out fluorescence images."""
    tiles = [tifffile.imread(data / "images" / f"{i}.tif") for i in ids]
    tiles = [t for t in tiles if t.ndim == 2 and t.mean() < 127]
    canvas = np.zeros((size, size), np.uint8)
    y = x = row_height = 0
    index = 0
    while y < size:
        tile = tiles[index % len(tiles)]
        index += 1
        h, w = min(tile.shape[0], size - y), min(tile.shape[1], size - x)
        canvas[y : y + h, x : x + w] = tile[:h, :w]
        row_height = max(row_height, h)
        x += w
        if x >= size:
            x, y, row_height = 0, y + row_height, 0
    return canvas


def speed(
    model, device, image: np.ndarray, repeats: int, settings: SegmentSettings
) -> dict[str, float]:
    """Print and return the end-to-end throughput (MP/s) of the model and of the baseline."""
    megapixels = image.size / 1e6
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "large.tif", Path(folder) / "large_labels.tif"
        tifffile.imwrite(source, image, compression="zlib")

        def end_to_end():
            read = read_image(source)
            write_labels(target, segment(read, model, settings, device=device).labels)

        def baseline():
            write_labels(target, otsu_watershed(np.asarray(read_image(source).data)))

        throughput = {}
        for name, run in (
            ("napari-segnet (end to end)", end_to_end),
            ("Otsu + watershed (end to end)", baseline),
        ):
            run()  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
            best = min(times)
            print(
                f"| {name} | {device} | {image.shape[0]}×{image.shape[1]} | {best:.2f} s | "
                f"{megapixels / best:.2f} MP/s |"
            )
            throughput[name] = round(megapixels / best, 2)
    return throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--diameter", choices=("auto", "none"), default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--store", action="store_true", help="write the speed into the model file")
    args = parser.parse_args()
    settings = SegmentSettings(
        diameter=None if args.diameter == "none" else "auto", precision=args.precision
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    model, provenance = load_model(resolve_model(args.model), device=device, fuse=True)
    # The report split when the model has one: its validation images chose its epoch and thresholds.
    split = "report" if provenance.get("report_ids") else "validation"
    ids = provenance.get("report_ids") or provenance["validation_ids"]
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    print(
        f"machine: {platform.platform()}, {cpu}, torch {torch.__version__}, {threads} threads, "
        f"precision {args.precision}, CPU bfloat16 units {'yes' if cpu_has_bf16_units() else 'no'}"
    )
    if not args.skip_accuracy:
        print(f"\nAccuracy on the {len(ids)} {split} images of model {args.model!r}:\n")
        accuracy(model, device, args.data, ids, settings)
    print("\n| pipeline | device | image | time | throughput |\n|---|---|---|---:|---:|")
    image = mosaic(args.data, ids, args.size)
    throughput = speed(model, device, image, args.repeats, settings)
    if args.store:
        measured = {
            "megapixels_per_second": throughput["napari-segnet (end to end)"],
            "otsu_watershed_megapixels_per_second": throughput["Otsu + watershed (end to end)"],
            "image": f"{image.shape[0]}×{image.shape[1]} fluorescence mosaic, end to end",
            "device": str(device),
            "threads": threads,
            "cpu": cpu,
            "diameter": args.diameter,
            "precision": args.precision,
            "measured": time.strftime("%Y-%m-%d"),
        }
        update_provenance(resolve_model(args.model), speed=measured)


if __name__ == "__main__":
    main()
