"""How fast a CPU training step can be: memory format, bf16 autocast, torch.compile, crop, threads.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_train_step.py \
        [--steps 20] [--warmup 3] [--batch-size 8] [--models fullres,bundled] \
        [--variants baseline,channels_last,bf16,channels_last+bf16,compile,...]

Run it on an otherwise idle machine: every other process on the cores shows in the timings.

Models: ``fullres`` is the full-resolution candidate built as ``scripts/train_nuclei.py
--from <bundled> --full-resolution 8`` builds it (the weights of ``nuclei@1``, which has no
full-resolution path, plus a new 8-channel one, seeded), ``bundled`` the bundled ``nuclei``
model (its newest version) as it is, ``large`` the network of ``nuclei-large`` (new, seeded).

A variant is ``baseline`` or options joined by ``+``:

- ``channels_last``: model and input in channels-last memory format. The training loop
  (``training.loop.iter_train``) already trains this way, so ``channels_last`` is today's loop
  and ``baseline`` the plain contiguous (NCHW) layout.
- ``bf16``: forward pass under ``torch.autocast("cpu", dtype=torch.bfloat16)``; the loss is
  computed in float32 on the logits, as autocast's guidance says.
- ``compile``: the model wrapped by ``torch.compile`` (default mode). Its compile time (the
  first step's time minus a timed step's) is reported separately; inductor keeps compiled
  kernels in an on-disk cache, so a later variant or run may compile faster than a fresh one.
  If compiling fails, the error's first line is printed instead of timings.
- ``crop<N>``: crops of N × N pixels instead of 256 × 256 (compare per pixel).
- ``threads<N>``: ``torch.set_num_threads(N)`` instead of 1.

Every step is a real optimiser step as ``iter_train`` makes one: crops and targets from
``training.data.AugmentedSampler`` (on the bundled sample image), the project's
``training.losses.segmentation_loss`` with ``TrainSettings``' Dice weight, AdamW with
``TrainSettings``' weight decay, at a constant learning rate. Every variant of a model starts
from the same weights and sees the same batches (drawn before timing; the sampler's own time
per batch, which a training step also pays, is printed once per crop size). Warm-up steps are
not timed. Printed per variant: seconds per step (median of the timed steps), pixels per
second, the training loss of the first and last timed step, and ``check``: the float32 loss of
one fixed batch in eval mode after the steps, the same judge for every variant, so a variant
that breaks training shows (the value before any step is printed with each model).
"""

import argparse
import copy
import json
import platform
import statistics
import time
import traceback
from dataclasses import dataclass

import numpy as np
import torch

from napari_segnet.data import sample_path
from napari_segnet.io import read_image
from napari_segnet.models import ModelConfig, create_model, load_model, with_full_resolution_path
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.training.data import AugmentedSampler, make_pair
from napari_segnet.training.losses import segmentation_loss
from napari_segnet.training.settings import TrainSettings

DEFAULT_VARIANTS = (
    "baseline",
    "channels_last",
    "bf16",
    "channels_last+bf16",
    "compile",
    "channels_last+compile",
    "crop192",
    "crop320",
    "threads2",
    "channels_last+threads2",
)
SETTINGS = TrainSettings()
FULL_RESOLUTION_CHANNELS = 8  # as the candidate: scripts/train_nuclei.py --full-resolution 8
# nuclei-large's network, as training-runs/nuclei-large/run.sh builds it (new weights, seeded).
LARGE = ModelConfig(encoder_widths=(32, 64, 128, 256), full_resolution_channels=16)


@dataclass(frozen=True)
class Variant:
    """One way of running a training step."""

    name: str
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    crop: int = SETTINGS.crop
    threads: int = 1

    @classmethod
    def parse(cls, name: str) -> "Variant":
        """Read ``baseline`` or ``+``-joined options (see the module docstring)."""
        options = {}
        for token in name.split("+"):
            if token == "baseline":
                continue
            if token in ("channels_last", "bf16", "compile"):
                options[token] = True
            elif token.startswith("crop") and token[4:].isdigit():
                options["crop"] = int(token[4:])
            elif token.startswith("threads") and token[7:].isdigit():
                options["threads"] = int(token[7:])
            else:
                raise ValueError(f"Unknown option {token!r} in variant {name!r}.")
        return cls(name, **options)


def build_models(names: list[str]) -> dict[str, torch.nn.Module]:
    """The models to time, by name: ``fullres``, ``bundled`` and ``large``."""
    models = {}
    for name in names:
        if name == "bundled":
            models[name] = load_model(bundled_model_path("nuclei"))[0]
        elif name == "fullres":
            previous, _ = load_model(bundled_model_path("nuclei@1"))  # no full-resolution path
            torch.manual_seed(0)  # the new path's initial weights
            models[name] = with_full_resolution_path(previous, FULL_RESOLUTION_CHANNELS)
        elif name == "large":
            torch.manual_seed(0)
            models[name] = create_model(LARGE)
        else:
            raise ValueError(f"Unknown model {name!r}; choose fullres, bundled or large.")
    return models


def draw_batches(pairs, crop: int, count: int, batch_size: int, seed: int):
    """``count`` batches of crops and targets as tensors, and the sampler's seconds per batch."""
    sampler = AugmentedSampler(pairs, crop=crop, seed=seed)
    started = time.perf_counter()
    batches = [
        tuple(torch.from_numpy(a) for a in sampler.sample(batch_size)[:3]) for _ in range(count)
    ]
    return batches, (time.perf_counter() - started) / count


def check_loss(model: torch.nn.Module, batch) -> float:
    """Float32 loss of one batch in eval mode, without changing the model."""
    images, classes, weights = batch
    model.eval()
    with torch.no_grad():
        logits = model(images)["instance"]
        loss = segmentation_loss(logits, classes, weights, SETTINGS.dice_weight)
    model.train()
    return float(loss)


def time_variant(base, variant: Variant, batches, check_batch, warmup: int, learning_rate: float):
    """Train a copy of ``base`` on ``batches`` as ``variant`` says; return the measurements."""
    torch.set_num_threads(variant.threads)
    torch.manual_seed(SETTINGS.seed)
    model = copy.deepcopy(base).train()
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=SETTINGS.weight_decay
    )
    network = model
    if variant.compile:
        torch._dynamo.reset()  # compile each variant afresh
        network = torch.compile(model)

    seconds, losses = [], []
    for images, classes, weights in batches:
        started = time.perf_counter()
        images = images.contiguous(memory_format=memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.bf16):
            outputs = network(images)
        logits = outputs["instance"].float()
        loss = segmentation_loss(logits, classes, weights, SETTINGS.dice_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())  # waits for the step, as the loop's loss.item() does
        seconds.append(time.perf_counter() - started)
    timed = seconds[warmup:]
    per_step = statistics.median(timed)
    pixels = batches[0][0].shape[0] * batches[0][0].shape[-1] * batches[0][0].shape[-2]
    result = {
        "variant": variant.name,
        "crop": variant.crop,
        "threads": torch.get_num_threads(),
        "s_per_step": round(per_step, 4),
        "s_per_step_min": round(min(timed), 4),
        "mpx_per_s": round(pixels / per_step / 1e6, 4),
        "loss_first": round(losses[warmup], 4),
        "loss_last": round(losses[-1], 4),
        "check": round(check_loss(model, check_batch), 4),
        "finite": bool(np.isfinite(losses).all()),
    }
    if variant.compile:
        result["compile_s"] = round(seconds[0] - per_step, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--batch-size", type=int, default=SETTINGS.batch_size)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--models", default="fullres,bundled")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    variants = [Variant.parse(name) for name in args.variants.split(",")]
    models = build_models(args.models.split(","))

    image = read_image(sample_path("nuclei")).data
    labels = read_image(sample_path("nuclei_labels")).data
    pairs = [make_pair(image, labels, name="sample")]
    count = args.warmup + args.steps
    batches, sampler_seconds = {}, {}
    for crop in sorted({v.crop for v in variants}):
        batches[crop], sampler_seconds[crop] = draw_batches(
            pairs, crop, count, args.batch_size, seed=SETTINGS.seed
        )
    check_batch = draw_batches(pairs, SETTINGS.crop, 1, args.batch_size, seed=12345)[0][0]

    bf16_native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {'yes' if bf16_native else 'no'}; batch {args.batch_size}, "
        f"{args.warmup} warm-up + {args.steps} timed steps"
    )
    for crop, seconds in sampler_seconds.items():
        print(f"sampler (crops and targets, numpy, 1 core): {seconds:.3f} s per batch of {crop}²")

    for model_name, base in models.items():
        before = check_loss(base, check_batch)
        parameters = sum(p.numel() for p in base.parameters())
        print(f"\nmodel {model_name}: {parameters:,} parameters, check loss before: {before:.4f}")
        print(
            "| variant | crop | threads | s/step | Mpx/s | loss first → last | check | compile s |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for variant in variants:
            try:
                result = time_variant(
                    base,
                    variant,
                    batches[variant.crop],
                    check_batch,
                    args.warmup,
                    args.learning_rate,
                )
            except Exception as error:  # a variant that cannot run here is a result too
                line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                print(f"| {variant.name} | failed: {type(error).__name__}: {line} |||||||")
                print(json.dumps({"model": model_name, "variant": variant.name, "error": line}))
                traceback.print_exc(limit=1)
                continue
            print(
                f"| {variant.name} | {result['crop']} | {result['threads']} "
                f"| {result['s_per_step']:.3f} | {result['mpx_per_s']:.3f} "
                f"| {result['loss_first']:.4f} → {result['loss_last']:.4f} "
                f"| {result['check']:.4f} | {result.get('compile_s', '')} |"
            )
            print(json.dumps({"model": model_name, **result}), flush=True)


if __name__ == "__main__":
    main()
