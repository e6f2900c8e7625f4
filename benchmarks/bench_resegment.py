"""Segment after a threshold change: the network's kept outputs against a full run, on 2048².

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_resegment.py [--size 2048] [--threads 2]

Runs what the Segment widget runs in its worker (``run_segmentation``, with the
widget's defaults: the bundled model, its thresholds, automatic object size) on a
plane of ``--size`` × ``--size`` pixels tiled from the bundled sample's DAPI
channel: once in full, keeping the network's outputs, then with a new seed
threshold, which reuses them. Prints both times, the labels' agreement with a full
run at the new threshold, and the memory the kept outputs take.
"""

import argparse
import platform
import time
from dataclasses import replace

import numpy as np
import torch

from napari_segnet._napari.segment_run import SegmentRequest, run_segmentation
from napari_segnet._napari.worker import arguments
from napari_segnet.data import sample_path
from napari_segnet.inference.reuse import OutputsCache
from napari_segnet.inference.segment import SegmentSettings, instance_settings_of
from napari_segnet.io import MicroscopyImage, read_image
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain


def timed(request: SegmentRequest):
    started = time.perf_counter()
    result = drain(run_segmentation(**arguments(request)))
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sample = read_image(sample_path("nuclei_2ch"))
    dapi = np.asarray(sample.data[sample.channel_index("DAPI")])
    reps = [int(np.ceil(args.size / n)) for n in dapi.shape]
    plane = np.tile(dapi, reps)[: args.size, : args.size].copy()
    image = MicroscopyImage(plane, "YX")
    path = bundled_model_path("nuclei")
    thresholds = instance_settings_of(load_model(path)[0])
    cache = OutputsCache()
    request = SegmentRequest(
        image,
        path,
        "cpu",
        SegmentSettings(instances=thresholds),
        source="bench",
        cache=cache,
        keep_outputs=True,
    )
    first, full_s = timed(request)
    cache.put(first.key, first.segmentation.outputs)
    stricter = replace(thresholds, seed_threshold=min(0.95, thresholds.seed_threshold + 0.15))
    second_request = replace(request, settings=replace(request.settings, instances=stricter))
    second, reuse_s = timed(second_request)
    assert second.reused, "the second run should have reused the network's outputs"
    check, _ = timed(replace(second_request, cache=None))  # a full run at the new threshold
    same = np.array_equal(second.segmentation.labels, check.segmentation.labels)
    load_started = time.perf_counter()
    load_model(path, "cpu", fuse=True)
    load_s = time.perf_counter() - load_started

    objects = [int(r.segmentation.labels.max()) for r in (first, second)]
    print(f"machine: {platform.platform()}, {platform.processor() or 'cpu'}")
    print(f"torch {torch.__version__}, {args.threads} threads, model nuclei, {args.size}² plane")
    print(f"full Segment (network + objects): {full_s:.2f} s, {objects[0]} objects")
    print(
        f"Segment after a threshold change (kept outputs): {reuse_s:.2f} s, {objects[1]} "
        f"objects (of which loading the model {load_s:.2f} s)"
    )
    print(f"labels identical to a full run at the new threshold: {same}")
    print(f"kept outputs: {cache.nbytes / 2**20:.0f} MiB (budget {cache.budget / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
