"""Registry of encoders: a compact default built for CPU speed, and torchvision backbones.

Every encoder returns a list of feature maps from fine to coarse and exposes
their ``channels`` and ``strides``. torchvision backbones are always built with
``weights=None``: nothing is downloaded. ImageNet weights can be loaded from a
local file (a torchvision ``.pth``), which is read with ``weights_only=True`` so
that it cannot execute code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .blocks import ConvBlock


def _torchvision():
    """Import torchvision, first keeping triton out if it would crash this process."""
    from .triton_guard import keep_triton_out_if_llvm_is_loaded

    keep_triton_out_if_llvm_is_loaded()
    import torchvision

    return torchvision


class Encoder(nn.Module):
    """Base class: ``forward(x)`` returns features from fine to coarse."""

    channels: tuple[int, ...]
    strides: tuple[int, ...]


COMPACT_WIDTHS = (16, 32, 64, 128)


class CompactEncoder(Encoder):
    """A small encoder that spends no convolutions at full resolution.

    Its first convolution already strides by 2, so every later layer sees a
    quarter of the pixels or fewer: on two CPU cores this network runs about
    four times faster than a classic 32–256 U-Net. Nuclei are 8–60 pixels wide,
    so half-resolution features still resolve the gaps between them; the
    decoder's logits are interpolated back to full resolution.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = COMPACT_WIDTHS):
        super().__init__()
        self.stages = nn.ModuleList([ConvBlock(in_channels, widths[0], stride=2)])
        for previous, width in itertools.pairwise(widths):
            self.stages.append(ConvBlock(previous, width, stride=2))
        self.channels = tuple(widths)
        self.strides = tuple(2 ** (i + 1) for i in range(len(widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ResNetEncoder(Encoder):
    """torchvision ResNet with taps after the stem and each residual stage."""

    def __init__(self, depth: int, in_channels: int, weights_path: Path | None = None):
        super().__init__()
        torchvision = _torchvision()

        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        _load_local_weights(net, weights_path)
        _adapt_first_conv(net, "conv1", in_channels)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        expansion = 4 if depth >= 50 else 1
        self.channels = (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)
        self.strides = (2, 4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = [x]
        x = self.pool(x)
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class VGGEncoder(Encoder):
    """torchvision VGG16 with batch norm, tapped before each max-pooling."""

    def __init__(self, in_channels: int, weights_path: Path | None = None):
        super().__init__()
        torchvision = _torchvision()

        net = torchvision.models.vgg16_bn(weights=None)
        _load_local_weights(net, weights_path)
        _adapt_first_conv(net.features, "0", in_channels)
        blocks, current = [], []
        for module in net.features:
            if isinstance(module, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = [module]
            else:
                current.append(module)
        self.blocks = nn.ModuleList(blocks)  # the last pooling is dropped: stride 16 at most
        self.channels = (64, 128, 256, 512, 512)
        self.strides = (1, 2, 4, 8, 16)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


def _load_local_weights(net: nn.Module, weights_path: Path | None) -> None:
    if weights_path is None:
        return
    state = torch.load(Path(weights_path), map_location="cpu", weights_only=True)
    net.load_state_dict(state)


def _adapt_first_conv(parent: nn.Module, name: str, in_channels: int) -> None:
    """Replace a 3-channel first convolution, keeping what the pretrained weights compute.

    Each new input channel gets the RGB weights summed and divided by the new
    channel count: a grey image fed to every channel then produces the same
    activations as that grey image given as RGB, which is the scale the
    pretrained batch-norm statistics expect.
    """
    conv: nn.Conv2d = getattr(parent, name) if not name.isdigit() else parent[int(name)]
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        summed = conv.weight.sum(dim=1, keepdim=True) / in_channels
        new.weight.copy_(summed.repeat(1, in_channels, 1, 1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    if name.isdigit():
        parent[int(name)] = new
    else:
        setattr(parent, name, new)


EncoderBuilder = Callable[[int, "Path | None"], Encoder]
ENCODERS: dict[str, EncoderBuilder] = {
    "compact": lambda c, w: CompactEncoder(c),
    "resnet18": lambda c, w: ResNetEncoder(18, c, w),
    "resnet34": lambda c, w: ResNetEncoder(34, c, w),
    "resnet50": lambda c, w: ResNetEncoder(50, c, w),
    "vgg16_bn": lambda c, w: VGGEncoder(c, w),
}


def create_encoder(
    name: str,
    in_channels: int,
    weights_path: Path | None = None,
    widths: tuple[int, ...] | None = None,
) -> Encoder:
    """Build an encoder by name.

    ``weights_path`` is a local ImageNet weights file (torchvision encoders);
    ``widths`` sets the stages of the compact encoder (None: its default).
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; choose from {', '.join(ENCODERS)}.")
    if name == "compact":
        if weights_path is not None:
            raise ValueError(
                "The compact encoder has no ImageNet weights; leave the weights file out."
            )
        return CompactEncoder(in_channels, tuple(widths or COMPACT_WIDTHS))
    if widths is not None:
        raise ValueError(f"The {name} encoder has fixed widths; leave encoder_widths out.")
    return ENCODERS[name](in_channels, weights_path)
