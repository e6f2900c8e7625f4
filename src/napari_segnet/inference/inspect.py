"""Look inside the network: its input, feature maps at every stage, and class probabilities.

Used by the *Inspect network* widget to show what an encoder–decoder sees. The
network runs once on a normalised plane; forward hooks collect the encoder's
feature maps (fine to coarse) and each decoder stage's output (coarse to
fine). Of each map, the channels that vary most over the plane are kept: they
are the ones that respond to something in this image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .normalise import RGB_LUMINANCE


@dataclass(frozen=True)
class FeatureMap:
    """A few channels of one stage's output.

    Attributes
    ----------
    part : str
        ``"encoder"`` or ``"decoder"``.
    stage : int
        1-based, in the order the data flows through that part.
    stride : int
        How many input pixels one feature pixel spans (2 = half resolution).
    total_channels : int
        Channels the stage computes.
    channels : tuple of int
        The channels kept (the most variable over this plane).
    data : ndarray
        ``(len(channels), Y, X)`` float32, each channel scaled to 0–1.

    """

    part: str
    stage: int
    stride: int
    total_channels: int
    channels: tuple[int, ...]
    data: np.ndarray

    @property
    def title(self) -> str:
        """E.g. ``'encoder 2 · 1/4 resolution · 32 channels'``."""
        resolution = "full resolution" if self.stride == 1 else f"1/{self.stride} resolution"
        return f"{self.part} {self.stage} · {resolution} · {self.total_channels} channels"


@dataclass(frozen=True)
class Inspection:
    """What the network computed for one plane.

    Attributes
    ----------
    image : ndarray
        The normalised input plane ``(Y, X)``; for a network that reads R, G, B,
        the luminance of its three channels (which is the plane a one-channel
        network would have been given).
    features : list of FeatureMap
        Encoder stages (fine to coarse), then decoder stages (coarse to fine).
    probabilities : ndarray
        ``(3, Y, X)``: background, interior and boundary probability.

    """

    image: np.ndarray
    features: list[FeatureMap]
    probabilities: np.ndarray


def inspect_network(model, plane: np.ndarray, *, channels: int = 4, device=None) -> Inspection:
    """Run ``model`` once on a normalised ``plane`` and keep what each stage produced.

    Parameters
    ----------
    model : SegNet
        The (unfused) network.
    plane : ndarray
        ``(Y, X)`` or channels-first ``(C, Y, X)`` float, normalised as for
        inference (:func:`~napari_segnet.inference.normalise.normalise`). A
        ``(Y, X)`` plane given to a network that reads three channels is
        repeated in each, as grey images are.
    channels : int
        Channels kept per stage.
    device : torch.device, optional
        Defaults to the CPU.

    """
    import torch

    device = device or torch.device("cpu")
    model = model.to(device).eval()
    if not hasattr(model, "encoder"):  # an exported model (OnnxModel) hides its layers
        raise ValueError(
            "Inspecting the network's features needs its .safetensors model file, "
            "not an exported one."
        )
    multiple = model.size_multiple
    in_channels = model.config.in_channels
    planes = plane if plane.ndim == 3 else np.repeat(plane[None], in_channels, axis=0)
    if planes.shape[0] != in_channels:
        raise ValueError(
            f"The network reads {in_channels} channel(s), the plane has {planes.shape[0]}."
        )
    height, width = plane.shape[-2:]
    padded = np.pad(planes, ((0, 0), (0, -height % multiple), (0, -width % multiple)), "reflect")
    captured: dict[str, list] = {"encoder": [], "decoder": []}
    hooks = [
        model.encoder.register_forward_hook(
            lambda module, args, out: captured["encoder"].extend(out)
        )
    ]
    refine = [model.refine] if getattr(model, "full_resolution", None) is not None else []
    for stage in [*model.decoder, *refine]:
        hooks.append(
            stage.register_forward_hook(lambda module, args, out: captured["decoder"].append(out))
        )
    try:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(padded, np.float32))[None].to(device)
            logits = model(x)["instance"][0, :, :height, :width]
            probabilities = torch.softmax(logits.float(), 0).cpu().numpy()
    finally:
        for hook in hooks:
            hook.remove()
    maps = [
        _most_variable(part, number, tensor, padded.shape[-2:], (height, width), channels)
        for part in ("encoder", "decoder")
        for number, tensor in enumerate(captured[part], start=1)
    ]
    return Inspection(_shown(plane), maps, probabilities)


def _shown(plane: np.ndarray) -> np.ndarray:
    """Return the input as one plane: itself, or the luminance of its R, G, B."""
    if plane.ndim == 2:
        return plane.astype(np.float32)
    if plane.shape[0] == 1:
        return plane[0].astype(np.float32)
    weights = RGB_LUMINANCE.astype(np.float32)[:, None, None]
    return (plane[:3].astype(np.float32) * weights).sum(axis=0, dtype=np.float32)


def _most_variable(part, stage, tensor, padded_shape, shape, channels) -> FeatureMap:
    stride = max(1, round(padded_shape[0] / tensor.shape[-2]))
    crop = (-(-shape[0] // stride), -(-shape[1] // stride))  # ceil: the plane, not the padding
    values = tensor[0, :, : crop[0], : crop[1]].float().cpu().numpy()
    order = np.argsort(values.reshape(len(values), -1).std(axis=1))[::-1][:channels]
    kept = values[np.sort(order)]
    low = kept.min(axis=(1, 2), keepdims=True)
    span = np.maximum(kept.max(axis=(1, 2), keepdims=True) - low, 1e-6)
    data = ((kept - low) / span).astype(np.float32)
    return FeatureMap(
        part, stage, stride, int(values.shape[0]), tuple(int(c) for c in np.sort(order)), data
    )
