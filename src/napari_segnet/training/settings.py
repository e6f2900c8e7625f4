"""Defaults of training, shared by the CLI, the Train widget and the library."""

from __future__ import annotations

from dataclasses import dataclass, replace

# Share of the data held out for validation: whole images when there are enough, otherwise
# the last part of every image (see training.data.split_pairs).
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class TrainSettings:
    """How to train.

    Attributes
    ----------
    epochs : int
        Number of epochs; validation runs after each.
    steps_per_epoch : int
        Optimiser steps per epoch.
    batch_size, crop : int
        Crops per step and their edge length in pixels.
    learning_rate, weight_decay : float
        AdamW settings; the learning rate follows a one-cycle cosine schedule.
    dice_weight : float
        Weight of the soft Dice term next to the weighted cross-entropy.
    scale_range : tuple of float
        Range of the random zoom of each crop (drawn log-uniformly).
    object_centred : float
        Share of crops placed on a randomly chosen object; the others are
        placed anywhere (see :class:`~napari_segnet.training.data.AugmentedSampler`).
    freeze_encoder : bool
        Train only the decoder and classifier (transfer learning).
    size_normalise : bool
        Rescale every training and validation image so that its median object
        has the model's object diameter (``config.object_diameter_px``), the size
        that ``diameter="auto"`` gives images at segmentation.
    colour_input : bool
        Fine-tuning a one-channel model on colour images: give it three input
        channels (:func:`~napari_segnet.models.network.with_rgb_input`) and train
        on colour as R, G, B. Without colour images it changes nothing.
    anchor : float
        Pull toward the starting weights (L2-SP): the loss gains ``anchor`` × the
        sum of squared differences between the trained weights and the ones
        training started from, so that a few images adapt a model without
        pulling it far from what it learned before (0: none).
    distil_weight : float
        With a teacher model (``iter_train(..., teacher=...)``), the loss is
        ``(1 - distil_weight)`` × the loss on the labels + ``distil_weight`` ×
        :func:`~napari_segnet.training.losses.distillation_loss` on the
        teacher's probabilities for the same crops.
    tune_thresholds : bool
        After training, choose the instance thresholds (seed, foreground,
        minimum size) of the best model on the validation images
        (:func:`~napari_segnet.training.thresholds.iter_tune_thresholds`;
        watershed models with validation images only).
    average_decay : float
        Keep an exponential moving average of the weights with this decay per
        step, and validate and keep it instead of the weights as they are (0:
        none); its batch-norm statistics are measured again on training crops
        each epoch. 0.998 averages over about the last 500 steps.
    precision : str
        ``auto``, ``fp32`` or ``bf16``: the number format of the forward pass
        (see :func:`~napari_segnet.inference.precision.training_dtype`; ``auto``
        is bfloat16 where the device computes it in hardware).
    seed : int
        Seeds sampling, augmentation and initialisation.

    """

    epochs: int = 30
    steps_per_epoch: int = 100
    batch_size: int = 8
    crop: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    scale_range: tuple[float, float] = (0.6, 1.6)
    object_centred: float = 0.0
    freeze_encoder: bool = False
    size_normalise: bool = False
    colour_input: bool = False
    anchor: float = 0.0
    distil_weight: float = 0.5
    tune_thresholds: bool = False
    average_decay: float = 0.0
    precision: str = "auto"
    seed: int = 0


def default_settings(fine_tune: bool, **changes) -> TrainSettings:
    """Return the default settings of the CLI and the Train widget, with ``changes`` applied.

    A new network gets :class:`TrainSettings`' defaults (30 × 100 steps at a peak
    learning rate of 3e-3). Fine-tuning starts from weights that already work: a
    third of the peak learning rate keeps them from being thrown away, and
    10 × 50 steps (about 4 minutes on two CPU cores, ``benchmarks/bench_train.py``)
    adapt the model to a few corrected images.
    """
    if fine_tune:
        changes = {"epochs": 10, "steps_per_epoch": 50, "learning_rate": 1e-3, **changes}
    return replace(TrainSettings(), **changes)
