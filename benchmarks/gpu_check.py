"""One prepared check of every CUDA path, writing a JSON report; on a CPU the CUDA parts skip.

    PYTHONPATH=src python3 benchmarks/gpu_check.py --out gpu_check.json [--quick]
        [--model nuclei] [--only precision,blocks,...]

Checks (``--only`` takes their names), each ``passed``, ``failed``, ``skipped`` (with the
reason) or ``error`` in the report's ``checks``:

- ``precision``: the samples (the bundled fluorescence image, the 2-channel OME-TIFF's DNA
  channel, a 2048² mosaic) segmented on CUDA in bf16, fp16 and fp32 against the CPU in fp32:
  objects matched at IoU 0.5 need F1 ≥ 0.99 (thresholds were tuned in fp32);
- ``blocks``: block-by-block segmentation gives the whole plane's objects on the device
  (exactly in fp32; ``auto`` precision reported);
- ``out_of_memory``: a real CUDA out-of-memory error (the process limited with
  ``torch.cuda.set_per_process_memory_fraction``) survived by the fallback, for a whole plane
  and block by block, with the model on its device afterwards;
- ``training``: a few fine-tuning steps on the device, stopped after an epoch, resumed from
  the resume file, saved and loaded again;
- ``star_head``: a star-head model trained a few steps on the device, then run on the device
  and on the CPU (needs stardist);
- ``workers``: ``napari-segnet segment --workers 2`` (a local dask cluster sharing the one
  device) against a local run: the same objects, and both speeds;
- ``throughput``: the network alone and end to end at 2048², and an 8192² slide block by block,
  in MP/s, with where the time goes (read, normalise, network with transfers, transfer alone,
  instances, measure, write).

``--quick`` shrinks every size (512² planes, a 1024² slide in 512² blocks, two training steps)
so that the whole script runs on a CPU in about a minute; the test suite runs it so.

On a lent GPU machine (bare, no network; its own python3 holds torch, numpy, scipy,
scikit-image, pandas, tifffile, safetensors and onnxruntime), the package runs from ``src``
with a few carried wheels. Here, once, in the repository's root::

    echo /.whl/ >> .git/info/exclude
    benchmarks/gpu_wheels.sh            # downloads the wheels below into .whl/

(imagecodecs, zarr, numcodecs, donfig, google-crc32c, dask, distributed, tornado, tblib, zict,
locket, partd, tqdm, stardist, csbdeep, for CPython 3.12 on manylinux x86-64). The device
command, with ``carry: [".whl"]`` and a timeout of 540 s (the full run takes a few minutes)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src || exit;
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json

The report names the machine (``info``): Python, torch, CUDA, cuDNN, the GPU, onnxruntime's
providers, the CPU cores, this package's version and commit. The exit status is 1 when a
check failed or broke, else 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside this file

from gpu_check_engine import (
    Context,
    check_blocks,
    check_out_of_memory,
    check_precision,
    check_star_head,
    check_training,
    temporary_folder,
)
from gpu_check_report import run_check, summary, write_report
from gpu_check_speed import check_throughput, check_workers

CHECKS = {
    "precision": check_precision,
    "blocks": check_blocks,
    "out_of_memory": check_out_of_memory,
    "training": check_training,
    "star_head": check_star_head,
    "workers": check_workers,
    "throughput": check_throughput,
}


def machine_info() -> dict:
    """Versions, the GPU and the CPU: what the figures were measured on."""
    import numpy
    import torch

    import napari_segnet
    from napari_segnet.inference.devices import device_report

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "napari_segnet": napari_segnet.__version__,
        "commit": _commit(),
        "cuda": torch.version.cuda,
        "devices": {
            s.name: {"available": s.available, "detail": s.detail} for s in device_report()
        },
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(
            gpu=properties.name,
            gpu_memory_gib=round(properties.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    try:
        import onnxruntime

        info["onnxruntime"] = {
            "version": onnxruntime.__version__,
            "providers": onnxruntime.get_available_providers(),
        }
    except ImportError:
        info["onnxruntime"] = None
    return info


def _commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return result.stdout.strip() or None


def cuda_or_reason():
    """Return (the device to check, why CUDA cannot be used or None)."""
    import torch

    from napari_segnet.inference.devices import device_report

    cuda = {s.name: s for s in device_report()}["cuda"]
    if cuda.available:  # with its index: some CUDA calls refuse a device without one
        return torch.device("cuda", torch.cuda.current_device()), None
    return torch.device("cpu"), cuda.detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON report to write")
    parser.add_argument("--quick", action="store_true", help="small sizes (a minute on a CPU)")
    parser.add_argument("--model", default="nuclei", help="the model to check (nuclei)")
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(CHECKS)}")
    args = parser.parse_args(argv)
    names = list(CHECKS) if args.only is None else args.only.split(",")
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        parser.error(f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    device, reason = cuda_or_reason()
    folder = temporary_folder()
    context = Context(args.model, device, args.quick, folder, reason)
    report = {
        "command": " ".join(["gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "model": args.model,
        "device": str(device),
        "info": machine_info(),
        "checks": {},
    }
    try:
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            report["checks"][name] = run_check(CHECKS[name], context)
            write_report(args.out, report)  # a check that hangs leaves the others' figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(summary(report), file=sys.stderr)
    broken = [c for c in report["checks"].values() if c["status"] in ("failed", "error")]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
