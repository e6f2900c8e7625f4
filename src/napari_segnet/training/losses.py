"""Losses: weighted cross-entropy plus soft Dice on the object classes; distillation; star."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segmentation_loss(
    logits: torch.Tensor, classes: torch.Tensor, weights: torch.Tensor, dice_weight: float = 1.0
) -> torch.Tensor:
    """Weighted cross-entropy + ``dice_weight`` × (1 − soft Dice of interior and boundary).

    Parameters
    ----------
    logits : (N, C, Y, X) tensor
        Network output.
    classes : (N, Y, X) int64 tensor
        Target class per pixel.
    weights : (N, Y, X) float tensor
        Loss weight per pixel.
    dice_weight : float
        Weight of the Dice term (0 for cross-entropy alone).

    """
    ce = (F.cross_entropy(logits, classes, reduction="none") * weights).sum() / weights.sum()
    if dice_weight == 0:
        return ce
    probabilities = logits.softmax(dim=1)[:, 1:]
    one_hot = F.one_hot(classes, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
    total = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    dice = (2 * intersection + 1.0) / (total + 1.0)
    return ce + dice_weight * (1 - dice.mean())


def distillation_loss(logits: torch.Tensor, teacher_probabilities: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel KL divergence of the network's class probabilities from a teacher's.

    Parameters
    ----------
    logits : (N, C, Y, X) tensor
        The network's output.
    teacher_probabilities : (N, C, Y, X) tensor
        The teacher's probabilities on the same input (soft targets; they sum to
        1 over C).

    Returns
    -------
    tensor
        0 where the two agree everywhere; its gradient is that of the
        cross-entropy with the soft targets.

    """
    target = teacher_probabilities.float()
    own = F.log_softmax(logits.float(), dim=1)
    return (target * (target.clamp_min(1e-8).log() - own)).sum(dim=1).mean()


STAR_DIST_WEIGHT = 0.2  # StarDist's weight of the distance term next to the probability term


def star_loss(
    prob_logits: torch.Tensor,
    dist_pred: torch.Tensor,
    prob_target: torch.Tensor,
    dist_target: torch.Tensor,
) -> torch.Tensor:
    """BCE of the object probability + 0.2 × its-weighted mean absolute ray-distance error.

    As StarDist: the probability target is soft (1 at object centres, falling
    to 0 at their edges), and it also weights the distance error, normalised by
    its mean, so that central pixels count most and the background not at all.

    Parameters
    ----------
    prob_logits : (N, 1, Y, X) or (N, Y, X) tensor
        Logits of the object probability.
    dist_pred : (N, R, Y, X) tensor
        Predicted ray distances at every pixel.
    prob_target : (N, Y, X) tensor
        Target probability in [0, 1].
    dist_target : (N, R, Y/g, X/g) tensor
        Target distances on a grid of ``g`` pixels (``g`` = 1 for every pixel);
        the prediction is read on the same grid.

    """
    prob_logits = prob_logits.reshape(prob_target.shape)
    bce = F.binary_cross_entropy_with_logits(prob_logits, prob_target)
    grid = _grid(prob_target.shape[-2:], dist_target.shape[-2:])
    dist_pred = dist_pred[..., ::grid, ::grid]
    mask = prob_target[:, None, ::grid, ::grid]
    error = (mask * (dist_pred - dist_target).abs()).mean()
    return bce + STAR_DIST_WEIGHT * error / mask.mean().clamp_min(1e-6)


def _grid(full: tuple[int, int], sparse: tuple[int, int]) -> int:
    """Return the grid step g that takes a (Y, X) plane to ``sparse`` = (ceil(Y/g), ceil(X/g))."""
    grid = max(1, round(full[0] / sparse[0]))
    if tuple(sparse) != tuple(-(-n // grid) for n in full):
        raise ValueError(f"Distance targets {tuple(sparse)} do not fit a grid of {tuple(full)}.")
    return grid
