"""The speed checks of ``gpu_check.py``: throughput with where the time goes, and workers.

Speeds are in megapixels per second (MP/s) of the image segmented. On a CUDA
device every timed stage ends with ``torch.cuda.synchronize()``, so that a stage's
time is its own and not the next one's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gpu_check_engine import Context, f1_at_half, mosaic_image, same_objects
from gpu_check_report import Skip, require


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds spent in each named stage (a stage may be timed several times)."""

    def __init__(self, device):
        self.device, self.seconds = device, {}

    def time(self, stage: str, function, *args, **kwargs):
        _sync(self.device)
        started = time.perf_counter()
        result = function(*args, **kwargs)
        _sync(self.device)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started
        return result


def network_alone(model, device, precision: str, *, tile: int = 512, batch: int = 4) -> dict:
    """MP/s of the network on input already on the device (no transfer, no blending)."""
    from contextlib import nullcontext

    import torch

    from napari_segnet.inference.precision import autocast_dtype

    dtype = autocast_dtype(precision, device)
    channels = model.config.in_channels
    inputs = torch.rand(batch, channels, tile, tile, device=device)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    mixed = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    repeats = 20 if device.type == "cuda" else 2
    with torch.inference_mode(), mixed:
        model(inputs)  # warm up (cuDNN picks its algorithms)
        _sync(device)
        started = time.perf_counter()
        for _ in range(repeats):
            model(inputs)
        _sync(device)
    seconds = (time.perf_counter() - started) / repeats
    return {"mp_per_s": round(batch * tile * tile / 1e6 / seconds, 1), "batch": f"{batch}x{tile}²"}


def transfer(device, pixels: int, channels_out: int = 3) -> float:
    """Seconds to send a plane's float32 input to ``device`` and its outputs back."""
    import torch

    if device.type == "cpu":
        return 0.0
    plane = torch.rand(pixels)
    outputs = torch.rand(channels_out * pixels, device=device)
    _sync(device)
    started = time.perf_counter()
    plane.to(device)
    outputs.cpu()
    _sync(device)
    return time.perf_counter() - started


def end_to_end(context: Context, model, size: int, precision: str) -> dict:
    """Read, normalise, network (with transfers), instances, measure, write: one plane."""
    from napari_segnet.inference.normalise import normalise
    from napari_segnet.inference.segment import instance_settings_of, make_instances
    from napari_segnet.inference.tiling import iter_predict_tiled
    from napari_segnet.io import read_image, write_labels
    from napari_segnet.measure import measure
    from napari_segnet.progress import drain

    path = context.folder / f"mosaic{size}.tif"
    mosaic_image(context, size)
    clock = Stopwatch(context.device)
    for _ in range(2):  # the first pass warms the GPU up and is not counted
        clock.seconds = {}
        image = clock.time("read", read_image, path)
        data = clock.time("read", np.asarray, image.data)
        plane = clock.time("normalise", normalise, data, model.config.normalise_percentiles)
        predicted = iter_predict_tiled(model, plane, device=context.device, precision=precision)
        outputs = clock.time("network", drain, predicted)
        labels = clock.time(
            "instances", make_instances, outputs, "watershed", instance_settings_of(model)
        )
        table = clock.time("measure", measure, labels, data)
        out = context.folder / "e2e_labels.tif"
        clock.time("write", write_labels, out, labels)
        clock.time("write", table.to_csv, context.folder / "e2e.csv", index=False)
    seconds = dict(clock.seconds)
    seconds["transfer"] = transfer(context.device, plane.size)  # inside "network" above
    total = sum(v for k, v in seconds.items() if k != "transfer")
    megapixels = plane.size / 1e6
    return {
        "size": f"{size}²",
        "objects": int(labels.max()),
        "mp_per_s": round(megapixels / total, 2),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "share": {k: round(v / total, 3) for k, v in seconds.items() if k != "transfer"},
    }


def whole_slide(context: Context, model, size: int, block: int) -> dict:
    """Block by block into a tiled BigTIFF and a CSV, as ``segment`` does for slides."""
    from napari_segnet.inference.segment import SegmentSettings
    from napari_segnet.inference.stream_outputs import iter_segment_to_files
    from napari_segnet.progress import drain

    image = mosaic_image(context, size, "slide")
    started = time.perf_counter()
    summary = drain(
        iter_segment_to_files(
            image,
            model,
            SegmentSettings(),
            context.folder / "slide_labels.tif",
            context.folder / "slide.csv",
            device=context.device,
            block=block,
        )
    )
    _sync(context.device)
    seconds = time.perf_counter() - started
    return {
        "size": f"{size}²",
        "block": block,
        "objects": summary.objects,
        "seconds": round(seconds, 2),
        "mp_per_s": round(size * size / 1e6 / seconds, 2),
    }


def check_throughput(context: Context) -> dict:
    """Network alone and end to end at 2048², and a whole slide block by block."""
    import torch

    model = context.load()
    size = context.plane
    figures = {
        "device": str(context.device),
        "torch_threads": torch.get_num_threads(),
        "network_alone": {},
        "end_to_end": {},
    }
    precisions = ("fp32",) if context.device.type == "cpu" else ("auto", "fp32")
    for precision in precisions:
        tile = 256 if context.quick else 512
        figures["network_alone"][precision] = network_alone(
            model, context.device, precision, tile=tile
        )
        figures["end_to_end"][precision] = end_to_end(context, model, size, precision)
    slide, block = (1024, 512) if context.quick else (8192, 2048)
    figures["whole_slide"] = whole_slide(context, model, slide, block)
    return figures


def check_workers(context: Context, workers: int = 2) -> dict:
    """``segment --workers 2`` (a local dask cluster) on one device against a local run."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise Skip("--workers needs dask.distributed, which is not installed") from None
    from napari_segnet.io import read_image

    size = 512 if context.quick else 2048
    for number in range(2 if context.quick else 8):
        mosaic_image(context, size, f"batch{number}_")
    inputs = sorted(context.folder.glob(f"batch*_{size}.tif"))
    device = "cuda" if context.device.type == "cuda" else "cpu"
    figures = {"device": device, "images": len(inputs), "workers": workers}
    runs = {}
    for name, extra in (("local", []), ("workers", ["--workers", str(workers)])):
        out = context.folder / f"out_{name}"
        command = [sys.executable, "-m", "napari_segnet.cli", "segment", *map(str, inputs)]
        command += ["--out", str(out), "--device", device, "--no-measure", *extra]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=_child_env())
        seconds = time.perf_counter() - started
        require(result.returncode == 0, f"{name} run failed: {result.stderr.strip()[-300:]}")
        runs[name] = out
        pixels = sum(read_image(p).data.size for p in inputs)
        figures[name] = {"seconds": round(seconds, 2), "mp_per_s": round(pixels / 1e6 / seconds, 2)}
    same, f1 = [], []
    for path in inputs:
        a = read_image(runs["local"] / f"{path.stem}_labels.tif").data
        b = read_image(runs["workers"] / f"{path.stem}_labels.tif").data
        same.append(same_objects(np.asarray(a), np.asarray(b)))
        f1.append(f1_at_half(np.asarray(a), np.asarray(b)))
    figures["same_objects"] = all(same)
    figures["min_f1"] = round(min(f1), 4)
    require(min(f1) >= 0.99, "the workers' labels differ from the local run's")
    return figures


def _child_env() -> dict:
    """The environment of a child ``napari-segnet``: this one, with ``src`` importable."""
    source = Path(__file__).resolve().parents[1] / "src"
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{path}" if path else str(source)}
