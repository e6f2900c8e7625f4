"""The encoder–decoder–classifier network."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBlock
from .config import DEFAULT_DECODER_CHANNELS, ModelConfig
from .encoders import create_encoder
from .heads import StarHead


class SegNet(nn.Module):
    """Encoder, decoder with skip connections back to full resolution, per-pixel classifier.

    The classifier is a 1×1 convolution (a per-pixel linear layer) giving logits
    for background / interior / boundary, and optionally for semantic classes;
    softmax turns each group into probabilities. With ``"star"`` in the
    config's heads, a :class:`~napari_segnet.models.heads.StarHead` on the same
    features also predicts star-convex polygons.

    Parameters
    ----------
    config : ModelConfig
        The architecture.
    encoder_weights : pathlib.Path, optional
        A local ImageNet weights file for torchvision encoders.

    """

    def __init__(self, config: ModelConfig, encoder_weights: Path | None = None):
        super().__init__()
        self.config = config
        self.encoder = create_encoder(
            config.encoder, config.in_channels, encoder_weights, config.encoder_widths
        )
        skips = list(self.encoder.channels[:-1])[::-1]
        widths = list(config.decoder_channels or default_decoder_channels(config))
        if len(widths) != len(skips):
            raise ValueError(
                f"decoder_channels needs {len(skips)} entries for encoder {config.encoder!r}."
            )
        stages, previous = [], self.encoder.channels[-1]
        for skip, width in zip(skips, widths):
            stages.append(ConvBlock(previous + skip, width))
            previous = width
        self.decoder = nn.ModuleList(stages)
        self.full_resolution = None
        if self.encoder.strides[0] > 1 and config.full_resolution_channels:
            width = config.full_resolution_channels
            self.full_resolution = ConvBlock(config.in_channels, width, repeats=1)
            self.refine = ConvBlock(previous + width, previous, repeats=1)
        self.classifier = nn.Conv2d(previous, len(config.instance_classes), 1)
        n_semantic = len(config.semantic_classes)
        self.semantic = nn.Conv2d(previous, n_semantic, 1) if n_semantic else None
        self.star = StarHead(previous, config.star_rays) if config.has_star_head else None

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this avoid padding inside the network."""
        return self.encoder.strides[-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the outputs at the input's size.

        ``"instance"``: (B, 3, H, W) class logits; with semantic classes
        ``"semantic"``: (B, K, H, W) logits; with the star head ``"star_prob"``:
        (B, 1, H, W) object logits and ``"star_dist"``: (B, R, H, W) ray
        distances in input pixels.
        """
        features = self.encoder(x)
        y = features[-1]
        for stage, skip in zip(self.decoder, features[-2::-1]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], dim=1))
        if self.full_resolution is not None:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            y = self.refine(torch.cat([y, self.full_resolution(x)], dim=1))
        out = {"instance": self.classifier(y)}
        if self.semantic is not None:
            out["semantic"] = self.semantic(y)
        if self.star is not None:
            out.update(self.star(y))
        if y.shape[-2:] != x.shape[-2:]:  # logits are smooth: interpolating them is cheap
            out = {
                k: F.interpolate(v, size=x.shape[-2:], mode="bilinear", align_corners=False)
                for k, v in out.items()
            }
        return out


def default_decoder_channels(config: ModelConfig) -> tuple[int, ...]:
    """Return the decoder widths for a config that gives none: the encoder's, or mirrored."""
    if config.encoder_widths is not None:
        return tuple(config.encoder_widths[-2::-1])  # each stage as wide as its skip
    return DEFAULT_DECODER_CHANNELS[config.encoder]


def create_model(config: ModelConfig, encoder_weights: Path | None = None) -> SegNet:
    """Build a network from its config (randomly initialised unless weights are given)."""
    return SegNet(config, encoder_weights)


def with_star_head(model: SegNet, rays: int = 32, instance_method: str = "star_seeds") -> SegNet:
    """Return a copy of ``model`` with a new, untrained star-convex head.

    Every other weight is kept, so a trained 3-class model learns only the
    polygons on top of what it already does. A model that has the head is
    returned as it is.

    Parameters
    ----------
    model : SegNet
        The network to extend.
    rays : int
        Number of ray distances (a power of two).
    instance_method : {"star", "star_seeds", "watershed"}
        How the extended model makes its objects.

    """
    if model.config.has_star_head:
        return model
    changes = {"heads": ("classes", "star"), "star_rays": rays, "instance_method": instance_method}
    return _extended(model, changes, new_modules=("star.",))


def with_full_resolution_path(model: SegNet, channels: int = 8) -> SegNet:
    """Return a copy of ``model`` with a new, untrained full-resolution path.

    For encoders whose finest features are at half resolution (the compact
    one): a thin convolution of the input at full resolution is fused with the
    upsampled decoder output before the classifier, so that objects a few
    pixels wide reach a layer that sees them. Every other weight is kept. A
    model that has the path is returned as it is.

    Parameters
    ----------
    model : SegNet
        The network to extend.
    channels : int
        Width of the full-resolution path.

    """
    if model.full_resolution is not None:
        return model
    if model.encoder.strides[0] == 1:
        raise ValueError("This model's encoder already has features at full resolution.")
    changes = {"full_resolution_channels": channels}
    return _extended(model, changes, new_modules=("full_resolution.", "refine."))


def with_rgb_input(model: SegNet) -> SegNet:
    """Return a copy of a one-channel ``model`` that reads colour as R, G, B.

    The convolutions that see the input (the encoder's first and, if the model
    has one, the full-resolution path's first) get three input channels, each
    with the one-channel weights divided by 3. A grey image given as the same
    plane in all three channels (as
    :func:`~napari_segnet.inference.normalise.normalise` gives grey images to
    such a network) then gives the same outputs as before, up to float
    rounding, so a long-trained grey network can go on training on colour.
    Every other weight is kept; ``config.in_channels`` becomes 3. A model that
    already reads three channels is returned as it is.

    Raises
    ------
    ValueError
        For a model that reads neither one channel nor three.

    """
    from dataclasses import replace

    channels = model.config.in_channels
    if channels == 3:
        return model
    if channels != 1:
        raise ValueError(f"Only a one-channel model can be given colour input, not {channels}.")
    rgb = create_model(replace(model.config, in_channels=3))
    wanted = rgb.state_dict()
    state = {}
    for key, value in model.state_dict().items():
        shape = wanted[key].shape if key in wanted else None
        if shape is not None and value.shape != shape:
            if value.ndim != 4 or tuple(shape) != (value.shape[0], 3, *value.shape[2:]):
                raise ValueError(f"The model's weights do not fit a colour network ({key}).")
            value = value.repeat(1, 3, 1, 1) / 3  # equal channels sum to the grey response
        state[key] = value
    rgb.load_state_dict(state)
    parameter = next(model.parameters(), None)
    if parameter is not None:
        rgb.to(parameter.device)
    return rgb.train(model.training)


def _extended(model: SegNet, changes: dict, new_modules: tuple[str, ...]) -> SegNet:
    from dataclasses import replace

    extended = create_model(replace(model.config, **changes))
    missing, unexpected = extended.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(key.startswith(new_modules) for key in missing):
        raise ValueError(f"The model's weights do not fit a network with {', '.join(changes)}.")
    return extended


def fused_for_inference(model: SegNet) -> SegNet:
    """Copy ``model`` for fast inference: batch norm folded into convolutions, channels-last.

    The copy computes the same outputs (up to rounding) but cannot be trained.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name, conv), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return fused.to(memory_format=torch.channels_last)
