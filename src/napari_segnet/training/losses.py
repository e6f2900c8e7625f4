"""Loss: pixel-weighted cross-entropy plus soft Dice on the object classes."""

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
