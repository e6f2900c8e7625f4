"""Network building blocks shared by encoders and the decoder."""

from __future__ import annotations

from torch import nn


class ConvBlock(nn.Sequential):
    """``repeats`` × (3×3 convolution, batch norm, ReLU); the first may stride."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, repeats: int = 2):
        layers: list[nn.Module] = []
        for i in range(repeats):
            layers += [
                nn.Conv2d(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    3,
                    stride=stride if i == 0 else 1,
                    padding=1,
                    bias=False,
                ),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)
