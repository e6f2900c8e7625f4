"""The engine's checks of ``gpu_check.py``: precision, blocks, out of memory, training, star head.

Each check takes a :class:`Context` and returns its figures (see
:mod:`gpu_check_report`); the parts that need a CUDA GPU raise ``Skip`` on a
machine without one, after the parts that run anywhere have run.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gpu_check_report import Skip, require

# Objects of reduced-precision labels matched to float32 CPU labels at IoU 0.5.
MIN_F1 = 0.99


@dataclass
class Context:
    """What every check needs: the model's name, the device, the size of the work."""

    model: str
    device: object  # torch.device: cuda when there is one, else cpu
    quick: bool
    folder: Path
    cuda_reason: str | None  # why CUDA cannot be used here (None: it can)

    @property
    def plane(self) -> int:
        """Edge of the square mosaic used for whole planes and blocks."""
        return 512 if self.quick else 2048

    def need_cuda(self, figures: dict | None = None) -> None:
        """Raise Skip, keeping the ``figures`` measured so far, unless a CUDA GPU is here."""
        if self.cuda_reason is not None:
            raise Skip(f"no CUDA GPU: {self.cuda_reason}", figures)

    def load(self, device=None, *, fuse: bool = True):
        from napari_segnet.models import load_model
        from napari_segnet.models.bundled import resolve_model

        return load_model(resolve_model(self.model), device=device or self.device, fuse=fuse)[0]


def mosaic_image(context: Context, size: int, name: str = "mosaic"):
    """A ``size``² uint16 mosaic of the bundled sample as a tiled TIFF, read back."""
    from bench_big_plane import write_mosaic
    from napari_segnet.io import read_image

    path = context.folder / f"{name}{size}.tif"
    if not path.exists():
        write_mosaic(path, size)
    return read_image(path)


def samples(context: Context) -> dict:
    """The bundled samples (the 2-channel one's DNA channel is chosen) and a mosaic."""
    from napari_segnet.data import sample_path
    from napari_segnet.io import read_image

    return {
        "nuclei": read_image(sample_path("nuclei")),
        "nuclei_2ch": read_image(sample_path("nuclei_2ch")),
        f"mosaic{context.plane}": mosaic_image(context, context.plane),
    }


def f1_at_half(truth: np.ndarray, prediction: np.ndarray) -> float:
    """F1 of the objects of ``prediction`` matched to those of ``truth`` at IoU 0.5."""
    from napari_segnet.metrics import iou_matrix, match

    counts = match(iou_matrix(truth, prediction), 0.5)
    matched = 2 * counts.tp + counts.fp + counts.fn
    return 2 * counts.tp / matched if matched else 1.0


def same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects, up to their numbering."""
    if a.shape != b.shape or not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]).astype(np.int64), axis=1)
    return len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1]


def check_precision(context: Context) -> dict:
    """CUDA in bf16 and fp16 against CPU float32: objects matched at IoU 0.5, F1 ≥ 0.99."""
    from napari_segnet.inference.precision import autocast_dtype
    from napari_segnet.inference.segment import SegmentSettings, segment

    images = samples(context)
    cpu = context.load("cpu")
    reference = {
        name: segment(image, cpu, SegmentSettings(precision="fp32"), device="cpu")
        for name, image in images.items()
    }
    figures = {"objects_cpu_fp32": {n: int(r.labels.max()) for n, r in reference.items()}}
    context.need_cuda(figures)
    import torch

    model = context.load()
    figures["auto_is"] = str(autocast_dtype("auto", context.device)).removeprefix("torch.")
    failures = []
    for precision in ("bf16", "fp16", "fp32"):
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            figures[precision] = {"status": "skipped", "reason": "this GPU has no bfloat16"}
            continue
        rows = {}
        for name, image in images.items():
            result = segment(image, model, SegmentSettings(precision=precision))
            f1 = f1_at_half(reference[name].labels, result.labels)
            rows[name] = {
                "objects": int(result.labels.max()),
                "f1_vs_cpu_fp32": round(f1, 4),
                "zoom": round(result.scale, 3),
                "zoom_cpu_fp32": round(reference[name].scale, 3),
            }
            if f1 < MIN_F1:
                failures.append(f"{precision} on {name}: F1 {f1:.3f} < {MIN_F1}")
        figures[precision] = rows
    require(not failures, "; ".join(failures))
    return figures


def check_blocks(context: Context) -> dict:
    """Block by block gives the whole plane's objects on the device (exactly in fp32)."""
    from napari_segnet.inference.segment import SegmentSettings, segment
    from napari_segnet.inference.stream import iter_segment_streamed
    from napari_segnet.progress import drain

    image = mosaic_image(context, context.plane)
    model = context.load()
    block = context.plane // 2
    figures = {"device": str(context.device), "plane": context.plane, "block": block}
    precisions = ("fp32",) if context.device.type == "cpu" else ("fp32", "auto")
    for precision in precisions:
        settings = SegmentSettings(precision=precision)
        whole = segment(image, model, settings, device=context.device).labels
        labels = np.zeros(whole.shape, np.uint32)
        count = [0]

        def add(objects, final_row, labels=labels, count=count):
            if objects.count:
                (top, left), patch = objects.origin, objects.patch
                region = labels[top : top + patch.shape[0], left : left + patch.shape[1]]
                region[patch > 0] = patch[patch > 0] + count[0]
                count[0] += objects.count

        summary = drain(
            iter_segment_streamed(
                image, model, settings, add, device=context.device, block=block, measure=False
            )
        )
        figures[precision] = {
            "objects_whole": int(whole.max()),
            "objects_blocks": summary.objects,
            "blocks": summary.blocks,
            "same_objects": same_objects(whole, labels),
            "f1": round(f1_at_half(whole, labels), 4),
        }
    require(figures["fp32"]["same_objects"], "fp32 blocks differ from the whole plane")
    return figures


def check_out_of_memory(context: Context) -> dict:
    """A real CUDA out-of-memory error, survived by the fallback, whole plane and blocks."""
    context.need_cuda()
    import torch

    from napari_segnet.inference.fallback import iter_segment_with_fallback
    from napari_segnet.inference.segment import SegmentSettings, segment
    from napari_segnet.inference.stream import iter_segment_streamed
    from napari_segnet.progress import drain

    image = mosaic_image(context, context.plane)
    model = context.load()
    settings = SegmentSettings(precision="fp32", diameter=None, tile=context.plane, batch_size=4)
    expected = segment(image, model, replace(settings, tile=512), device=context.device).labels
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(context.device).total_memory
    # Room for what is in use now and 64 MiB more: a batch of 4 whole-plane tiles needs far more.
    allowed = torch.cuda.memory_allocated(context.device) + 64 * 2**20
    torch.cuda.set_per_process_memory_fraction(allowed / total, context.device)
    figures = {"allowed_mib": round(allowed / 2**20)}
    try:
        warnings = []
        result = drain(
            iter_segment_with_fallback(image, model, settings, device=context.device),
            lambda event: warnings.append(event.info.get("warning")),
        )
        figures["whole_plane"] = {
            "warnings": [w for w in warnings if w],
            "f1_vs_unlimited": round(f1_at_half(expected, result.labels), 4),
        }
        warnings, count = [], [0]
        summary = drain(
            iter_segment_streamed(
                image,
                model,
                settings,
                lambda objects, _: count.__setitem__(0, count[0] + objects.count),
                device=context.device,
                block=context.plane // 2,
                measure=False,
            ),
            lambda event: warnings.append(event.info.get("warning")),
        )
        figures["blocks"] = {
            "warnings": [w for w in warnings if w],
            "objects": summary.objects,
            "objects_unlimited": int(expected.max()),
        }
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, context.device)
    figures["model_device_after"] = str(next(model.parameters()).device)
    require(figures["whole_plane"]["warnings"], "the whole plane never ran out of memory")
    require(figures["blocks"]["warnings"], "the blocks never ran out of memory")
    require(figures["model_device_after"].startswith("cuda"), "the model left the GPU")
    require(figures["whole_plane"]["f1_vs_unlimited"] >= MIN_F1, "the fallback's labels differ")
    return figures


def training_request(context: Context, out: Path, *, epochs: int, resume=None, star_rays=None):
    """A short fine-tuning of the model on the bundled sample, cut into four images."""
    import tifffile

    from napari_segnet.data import sample_path
    from napari_segnet.models.bundled import resolve_model
    from napari_segnet.training.session import ArraySource, TrainingRequest
    from napari_segnet.training.settings import TrainSettings

    image = tifffile.imread(sample_path("nuclei"))
    labels = tifffile.imread(sample_path("nuclei_labels"))
    h, w = image.shape[0] // 2, image.shape[1] // 2
    sources = [
        ArraySource(f"q{i}", image[r : r + h, c : c + w], labels[r : r + h, c : c + w])
        for i, (r, c) in enumerate([(0, 0), (0, w), (h, 0), (h, w)])
    ]
    steps = 2 if context.quick else 10
    settings = TrainSettings(
        epochs=epochs, steps_per_epoch=steps, batch_size=2 if context.quick else 8, crop=128
    )
    return TrainingRequest(
        sources=sources,
        start=resolve_model(context.model),
        encoder="compact",
        name=None,
        settings=settings,
        validation_fraction=0.25,
        out=out,
        device=str(context.device),
        resume=resume,
        star_rays=star_rays,
    )


def check_training(context: Context) -> dict:
    """A few training steps on the device, stopped after an epoch, resumed, saved, loaded."""
    from napari_segnet.models import load_model, read_model_config
    from napari_segnet.progress import drain

    out = context.folder / "trained.safetensors"
    losses = []
    events = iter_training(training_request(context, out, epochs=2))
    for event in events:
        if "loss" in event.info:
            losses.append(float(event.info["loss"]))
        if "ap50" in event.info:
            events.close()  # stopped after the first epoch
            break
    resume = Path(f"{out}.resume.pt")
    require(resume.is_file(), "no resume file after the first epoch")
    result = drain(
        iter_training(training_request(context, out, epochs=2, resume=resume)),
        lambda event: losses.append(float(event.info["loss"])) if "loss" in event.info else None,
    )
    model, _ = load_model(out, device=context.device)
    _, provenance = read_model_config(out)
    require(all(np.isfinite(losses)), "a training loss was not finite")
    return {
        "device": str(context.device),
        "steps": len(losses),
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "best_epoch": result.get("best_epoch"),
        "saved_epoch": provenance.get("epoch"),
        "loads_on": str(next(model.parameters()).device),
    }


def check_star_head(context: Context) -> dict:
    """A star-head model trained a few steps on the device, then run on the device and the CPU."""
    try:
        import stardist  # noqa: F401
    except ImportError as error:
        raise Skip(f"the star head needs stardist ({error.name} is not installed)") from None
    from napari_segnet.inference.segment import SegmentSettings, segment
    from napari_segnet.inference.tiling import iter_predict_tiled
    from napari_segnet.models import load_model
    from napari_segnet.progress import drain

    out = context.folder / "star.safetensors"
    drain(iter_training(training_request(context, out, epochs=1, star_rays=16)))
    figures = {"device": str(context.device)}
    cpu, _ = load_model(out, device="cpu")
    image = samples(context)["nuclei"]
    settings = SegmentSettings(precision="fp32", diameter=None)
    reference = segment(image, cpu, settings, device="cpu").labels
    figures["objects_cpu"] = int(reference.max())
    context.need_cuda(figures)
    model, _ = load_model(out, device=context.device)
    labels = segment(image, model, settings).labels
    plane = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    on_device = drain(iter_predict_tiled(model, plane, precision="fp32"))
    on_cpu = drain(iter_predict_tiled(cpu, plane, precision="fp32"))
    figures.update(
        objects_device=int(labels.max()),
        f1_device_vs_cpu=round(f1_at_half(reference, labels), 4),
        max_difference_star_dist=float(np.abs(on_device["star_dist"] - on_cpu["star_dist"]).max()),
        max_difference_star_prob=float(np.abs(on_device["star_prob"] - on_cpu["star_prob"]).max()),
    )
    require(figures["f1_device_vs_cpu"] >= MIN_F1, "star-head labels differ between devices")
    return figures


def iter_training(request):
    """:func:`napari_segnet.training.session.iter_training`, imported when used."""
    from napari_segnet.training.session import iter_training as run

    return run(request)


def temporary_folder() -> Path:
    """A fresh folder for the check's files (removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix="gpu-check-", dir=os.environ.get("TMPDIR")))
