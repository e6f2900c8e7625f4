"""Peak memory and speed of `napari-segnet segment` on big tiled BigTIFFs of real nuclei.

    python benchmarks/bench_big_plane.py [--sizes 5120,10240,20480] [--in-memory 5120,10240]
        [--stacks 16x2048,32x4096] [--stacks-in-memory 16x2048] [--threads 2] [--folder DIR]

Each image is a mosaic of the bundled fluorescence sample (flipped copies, uint16, 512-pixel
zlib tiles), written tile by tile. Every run is `napari-segnet segment IMAGE --out DIR` with
default settings and measurements on, in its own process; peak RSS is that process's maximum
resident memory (the command is one process: the label writer is a thread). Planes over
4096² pixels are segmented block by block by default; `--in-memory` sizes are also run with
`--block 0` (the whole plane in memory) for comparison, and the two label images are compared:
"same objects" means the same pixels carry objects and the labels map one to one.

`--stacks ZxN` adds Z-stacks of Z planes of N × N pixels (OME-TIFF, axes ZYX, each plane the
mosaic shifted a little further, so nuclei run through several planes and are linked in 3-D).
Stacks over 128 M voxels are segmented block by block by default; `--stacks-in-memory` stacks
are run block by block with `--block 1024` and in memory with `--block 0`, and compared.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from napari_segnet.data import sample_path

TIFF_TILE = 512


# Pixels by which each plane of a benchmark Z-stack is shifted against the one before.
STACK_SHIFT = 3


def write_mosaic(path: Path, size: int, planes: int = 0) -> None:
    """A size × size uint16 tiled BigTIFF of flipped copies of the sample, tile by tile.

    With ``planes``, a Z-stack (OME, ZYX) of that many shifted copies of the mosaic.
    """
    sample = tifffile.imread(sample_path("nuclei")).astype(np.uint16) * 64
    h, w = sample.shape
    # One period of the mosaic: the sample and its mirror images, 2 × 2.
    period = np.block([[sample, sample[:, ::-1]], [sample[::-1], sample[::-1, ::-1]]])

    def tiles():
        for z in range(max(planes, 1)):
            for y in range(0, size, TIFF_TILE):
                for x in range(0, size, TIFF_TILE):
                    rows = (np.arange(y, y + TIFF_TILE) + STACK_SHIFT * z) % (2 * h)
                    columns = (np.arange(x, x + TIFF_TILE) + STACK_SHIFT * z) % (2 * w)
                    yield np.ascontiguousarray(period[np.ix_(rows, columns)])

    stack = {"ome": True, "metadata": {"axes": "ZYX"}} if planes else {}
    tifffile.imwrite(
        path,
        tiles(),
        shape=(planes, size, size) if planes else (size, size),
        dtype=np.uint16,
        tile=(TIFF_TILE, TIFF_TILE),
        bigtiff=True,
        compression="zlib",
        **stack,
    )


def run(image: Path, out: Path, threads: int, *extra: str) -> tuple[float, float, str]:
    """Run the command in a child; return (seconds, peak RSS in GiB, last stderr line)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "s = time.perf_counter() - t; "
        "print(s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode); "
        "print(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else '')"
    )
    command = [sys.executable, "-m", "napari_segnet.cli", "segment", str(image), "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", code, *command, *extra], capture_output=True, text=True, env=env
    )
    first, last = ([*result.stdout.splitlines(), "", ""])[:2]
    seconds, rss_kib, status = first.split()
    if status != "0":
        raise SystemExit(f"segment failed: {last}")
    return float(seconds), int(rss_kib) / 2**20, last


def same_objects(a_path: Path, b_path: Path, band: int = 2048) -> bool:
    """Whether two label images hold the same objects up to relabelling (read in bands)."""
    a_file, b_file = tifffile.TiffFile(a_path), tifffile.TiffFile(b_path)
    with a_file, b_file:
        a_data, b_data = a_file.series[0].asarray(out="memmap"), b_file.series[0].asarray()
        pairs = []
        for y in range(0, a_data.shape[0], band):
            a, b = np.asarray(a_data[y : y + band]), np.asarray(b_data[y : y + band])
            if not np.array_equal(a > 0, b > 0):
                return False
            inside = a > 0
            pairs.append(np.unique((a[inside].astype(np.uint64) << 32) | b[inside]))
    pairs = np.unique(np.concatenate(pairs))
    return len(np.unique(pairs >> 32)) == len(np.unique(pairs & 0xFFFFFFFF)) == len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5120,10240,20480")
    parser.add_argument("--in-memory", default="5120,10240")
    parser.add_argument("--stacks", default="", help="Z-stacks as ZxN, comma-separated")
    parser.add_argument("--stacks-in-memory", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={args.threads}"
    )
    print(
        f"{'image':>20} {'path':>10} {'MP':>6} {'seconds':>8} {'MP/s':>6} {'peak RSS':>9}  output"
    )
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        folder = Path(folder)
        cases = [(0, int(s), s in args.in_memory.split(",")) for s in args.sizes.split(",") if s]
        for stack in (s for s in args.stacks.split(",") if s):
            planes, size = (int(n) for n in stack.split("x"))
            cases.append((planes, size, stack in args.stacks_in_memory.split(",")))
        for planes, size, compare in cases:
            name = f"mosaic_{planes}x{size}" if planes else f"mosaic_{size}"
            image = folder / f"{name}.tif"
            write_mosaic(image, size, planes)
            megapixels = max(planes, 1) * size * size / 1e6
            paths = [("blocks", ("--block", "1024") if planes and compare else ())]
            if compare:
                paths.append(("in memory", ("--block", "0")))
            shape = f"{planes} × {size} × {size}" if planes else f"{size} × {size}"
            for path, extra in paths:
                seconds, rss, last = run(
                    image, folder / path.replace(" ", "_"), args.threads, *extra
                )
                print(
                    f"{shape:>20} {path:>10} {megapixels:6.0f} {seconds:8.1f} "
                    f"{megapixels / seconds:6.2f} {rss:7.2f} GiB  {last}",
                    flush=True,
                )
            if len(paths) == 2:
                labels = f"{image.stem}_labels.tif"
                same = same_objects(folder / "in_memory" / labels, folder / "blocks" / labels)
                print(f"{'':>20} same objects in both: {'yes' if same else 'NO'}", flush=True)
            image.unlink()


if __name__ == "__main__":
    main()
