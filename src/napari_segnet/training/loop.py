"""The training loop: a generator of progress events, resumable, keeping the best model."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from napari_segnet.inference.precision import autocast, training_dtype
from napari_segnet.io import atomic_path
from napari_segnet.metrics import evaluate
from napari_segnet.models.checkpoint import save_model
from napari_segnet.progress import Progress

from .data import AugmentedSampler, Pair, image_channels
from .losses import distillation_loss, segmentation_loss, star_loss
from .resume import restore_best_model
from .settings import TrainSettings, default_settings

__all__ = ["TrainSettings", "default_settings", "iter_train", "validate"]

STATISTICS_BATCHES = 16  # batches that measure a weight average's batch-norm statistics


def iter_train(
    model,
    train: list[Pair],
    validation: list[Pair],
    settings: TrainSettings,
    *,
    out: str | os.PathLike,
    device=None,
    sample_weights: np.ndarray | None = None,
    resume: str | os.PathLike | None = None,
    provenance: dict | None = None,
    teacher=None,
) -> Generator[Progress, None, dict]:
    """Train ``model``, validating each epoch and saving the best model to ``out``.

    With a ``teacher`` (a trained network that reads the same input), the model
    also learns the teacher's class probabilities on every crop (distillation,
    weighted by ``settings.distil_weight``); ``info`` then has ``loss_labels``
    and ``loss_teacher`` too.

    With ``settings.average_decay``, an exponential moving average of the
    weights is what is validated, kept in ``out`` and in the resume file
    (``"averaged"``); training itself is unchanged by it. Its batch-norm
    statistics are measured again each epoch on :data:`STATISTICS_BATCHES` more
    training batches: those of the weights as they are do not fit their average.

    Yields a :class:`Progress` per step (``info`` has ``loss`` and ``epoch``; for
    a model with the star head ``loss`` is the sum of ``loss_classes``, the
    3-class loss, and ``loss_star``, :func:`~napari_segnet.training.losses.star_loss`)
    and per validation (``info`` has ``ap50``, ``ap_mean`` and ``best``). Closing
    the generator stops training; the best model so far stays in ``out``. A
    resume file (``<out>.resume.pt``) is written each epoch; pass it, or its
    compact copy (:func:`~napari_segnet.training.resume.write_compact_resume`),
    as ``resume`` to continue where training stopped.

    Returns
    -------
    dict
        The best validation scores and the epoch they came from.

    """
    import torch

    out = Path(out)
    _check_channels(model.config.in_channels, [*train, *validation])
    if "identity" in vars(model):  # the weights are about to change: no longer that model
        del model.identity
    device = torch.device(device or "cpu")
    dtype = training_dtype(settings.precision, device)
    torch.manual_seed(settings.seed)
    model.to(device).to(memory_format=torch.channels_last)
    if settings.freeze_encoder:
        model.encoder.requires_grad_(False)
    if teacher is not None:
        if teacher.config.in_channels != model.config.in_channels:
            raise ValueError(
                f"The teacher reads {teacher.config.in_channels} channel(s) and the network "
                f"{model.config.in_channels}: choose a teacher that reads the same images."
            )
        if not 0 <= settings.distil_weight <= 1:
            raise ValueError(
                f"The distillation weight must be within 0–1, not {settings.distil_weight}."
            )
        teacher = teacher.to(device).to(memory_format=torch.channels_last).eval()
        teacher.requires_grad_(False)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    total_steps = settings.epochs * settings.steps_per_epoch
    # Warm up over 5 % of the steps, and at least 2.5 (OneCycleLR divides by warm-up steps − 1).
    warm_up = min(0.3, max(0.05, 2.5 / total_steps))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.learning_rate, total_steps=total_steps, pct_start=warm_up
    )
    state = {"epoch": 0, "best": -math.inf, "best_epoch": -1, "history": []}
    # The weights training starts from, for TrainSettings.anchor (taken before a resume file
    # is loaded: a resumed run is given the model it started from).
    start_weights = [p.detach().clone() for p in parameters] if settings.anchor else []
    if resume is not None:
        saved = torch.load(Path(resume), map_location="cpu", weights_only=True)
        _check_same_run(saved.get("settings", {}), asdict(settings), Path(resume))
        model.load_state_dict(saved["model"])
        if "optimiser" in saved:  # a compact resume file has none (see training.resume)
            optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
        restore_best_model(saved, out)
    averaged = _weight_average(model, settings.average_decay)
    if averaged is not None and resume is not None and "averaged" in saved:
        averaged.module.load_state_dict(saved["averaged"])
        averaged.n_averaged.fill_(saved["averaged_steps"])
    kept = model if averaged is None else averaged.module

    provenance = {**(provenance or {}), "settings": asdict(settings)}
    star_rays = model.config.star_rays if model.config.has_star_head else None
    started = time.perf_counter()
    for epoch in range(state["epoch"], settings.epochs):
        sampler = AugmentedSampler(
            train,
            crop=settings.crop,
            scale_range=settings.scale_range,
            object_centred=settings.object_centred,
            weights=sample_weights,
            seed=settings.seed * 100_003 + epoch,
            star_rays=star_rays,
        )
        model.train()
        if settings.freeze_encoder:
            model.encoder.eval()  # keep the pretrained batch-norm statistics
        for step in range(settings.steps_per_epoch):
            batch = [torch.from_numpy(a).to(device) for a in sampler.sample(settings.batch_size)]
            images, classes, weights = batch[:3]
            with autocast(device, dtype):
                outputs = model(images.contiguous(memory_format=torch.channels_last))
            outputs = {key: value.float() for key, value in outputs.items()}  # the loss in fp32
            loss = segmentation_loss(outputs["instance"], classes, weights, settings.dice_weight)
            info = {}
            if teacher is not None:
                taught = _distillation(teacher, images, outputs["instance"], dtype)
                info = {"loss_labels": loss.item(), "loss_teacher": taught.item()}
                loss = (1 - settings.distil_weight) * loss + settings.distil_weight * taught
            if star_rays:
                part = star_loss(outputs["star_prob"], outputs["star_dist"], *batch[3:])
                classes_loss = info.get("loss_labels", loss.item())
                info = {**info, "loss_classes": classes_loss, "loss_star": part.item()}
                loss = loss + part
            if start_weights:
                drift = sum(((p - w) ** 2).sum() for p, w in zip(parameters, start_weights))
                loss = loss + settings.anchor * drift
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if averaged is not None:
                averaged.update_parameters(model)
            done = epoch * settings.steps_per_epoch + step + 1
            info = {"loss": loss.item(), **info, "epoch": epoch + 1}
            yield Progress(done, total_steps, "training", info)

        if averaged is not None:
            _measure_statistics(averaged.module, sampler, settings.batch_size, device, dtype)
        scores = validate(kept, validation, device)
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, **scores})
        if not validation or scores["ap_mean"] > state["best"]:  # no validation: keep the last
            state["best"], state["best_epoch"] = scores["ap_mean"], epoch + 1
            save_model(
                kept,
                out,
                provenance={
                    **provenance,
                    "epoch": epoch + 1,
                    "validation": scores,
                    "training_seconds": round(time.perf_counter() - started, 1),
                },
            )
        with atomic_path(out.with_name(out.name + ".resume.pt")) as resume_file:
            checkpoint = {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "state": state,
                "settings": asdict(settings),
            }
            if averaged is not None:
                checkpoint["averaged"] = averaged.module.state_dict()
                checkpoint["averaged_steps"] = int(averaged.n_averaged)
            torch.save(checkpoint, resume_file)
        best = {"best": state["best"], "best_epoch": state["best_epoch"]}
        yield Progress(state["epoch"], settings.epochs, "validated", {**scores, **best})
    return {
        "best_ap_mean": state["best"],
        "best_epoch": state["best_epoch"],
        "history": state["history"],
    }


def _weight_average(model, decay: float):
    """Return an exponential moving average of ``model``'s weights, or None (decay 0)."""
    if not decay:
        return None
    if not 0 < decay < 1:
        raise ValueError(f"The weight average's decay must be within 0–1, not {decay}.")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def _measure_statistics(model, sampler, batch_size: int, device, dtype) -> None:
    """Measure ``model``'s batch-norm statistics on :data:`STATISTICS_BATCHES` training batches."""
    import torch
    from torch.optim.swa_utils import update_bn

    batches = (
        torch.from_numpy(sampler.sample(batch_size)[0])
        .to(device)
        .contiguous(memory_format=torch.channels_last)
        for _ in range(STATISTICS_BATCHES)
    )
    with torch.no_grad(), autocast(device, dtype):
        update_bn(batches, model)


def _distillation(teacher, images, logits, dtype):
    """Return the distillation loss of ``logits`` against ``teacher`` on ``images``."""
    import torch

    with torch.no_grad(), autocast(images.device, dtype):
        target = teacher(images.contiguous(memory_format=torch.channels_last))["instance"]
    return distillation_loss(logits, target.float().softmax(dim=1))


def _check_channels(expected: int, pairs: list[Pair]) -> None:
    """Refuse pairs normalised for another number of channels than the network reads."""
    found = sorted({image_channels(pair.image) for pair in pairs})
    if found and found != [expected]:
        raise ValueError(
            f"The network reads {expected} channel(s) but the training images have "
            f"{' and '.join(map(str, found))}: make the pairs with channels={expected}."
        )


def _check_same_run(saved: dict, current: dict, path: Path) -> None:
    """Refuse to resume a run with other settings: its schedule and sampling would not fit."""
    changed = [
        f"{key} {saved[key]} → {current[key]}"
        for key in current
        if key in saved and saved[key] != current[key]
    ]
    if changed:
        raise ValueError(
            f"{path.name} belongs to a training run with other settings ({', '.join(changed)}); "
            "resume with the same settings, or start a new run."
        )


def validate(model, pairs: list[Pair], device) -> dict[str, float]:
    """AP@0.5 and AP averaged over IoU 0.5–0.9, pooled over the validation images."""
    from napari_segnet.inference.segment import segment_normalised
    from napari_segnet.progress import drain

    if not pairs:
        return {"ap50": float("nan"), "ap_mean": float("nan")}
    model.eval()
    predictions = [drain(segment_normalised(model, pair.image, device=device))[0] for pair in pairs]
    result = evaluate([pair.labels for pair in pairs], predictions)["pooled"]
    return {
        "ap50": result[0.5]["ap"],
        "ap_mean": float(np.mean([r["ap"] for r in result.values()])),
    }
