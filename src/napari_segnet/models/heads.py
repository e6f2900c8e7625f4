"""Extra output heads of the network, on top of the decoder's finest features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAR_HEAD_CHANNELS = 32
DIST_BIAS = 1.0


class StarHead(nn.Module):
    """Star-convex polygons: an object probability and R ray distances at every pixel.

    One 3×3 convolution with ReLU, then two 1×1 convolutions: one logit of the
    probability of being (near the centre of) an object, and ``n_rays``
    distances from the pixel to its object's edge along rays at angles 2πk/R,
    in input pixels. A ReLU keeps the distances non-negative (softplus costs
    several times as much on CPU); the distances' bias starts at
    ``DIST_BIAS`` pixels so that every ray starts out positive and trainable.

    Parameters
    ----------
    in_channels : int
        Width of the decoder features the head reads.
    n_rays : int
        Number of rays R.
    channels : int
        Width of the 3×3 convolution.

    """

    def __init__(self, in_channels: int, n_rays: int, channels: int = STAR_HEAD_CHANNELS):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.prob = nn.Conv2d(channels, 1, 1)
        self.dist = nn.Conv2d(channels, n_rays, 1)
        nn.init.constant_(self.dist.bias, DIST_BIAS)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"star_prob": (B, 1, H, W) logits, "star_dist": (B, R, H, W) ≥ 0}``."""
        features = self.features(x)
        return {
            "star_prob": self.prob(features),
            "star_dist": F.relu(self.dist(features), inplace=True),
        }
