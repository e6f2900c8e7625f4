"""What an exported network computes and what its file says about itself.

Exported files (ONNX, TorchScript, BioImage Model Zoo packages) hold the
network *with* its output activations, so that any runtime gets
probabilities and distances directly: ``instance`` (B, 3, Y, X) softmax over
background / interior / boundary, ``semantic`` (B, K, Y, X) softmax over the
semantic classes, ``star_prob`` (B, 1, Y, X) sigmoid object probability and
``star_dist`` (B, R, Y, X) ray distances in input pixels, each where the model
has it, in that order. The model's config, its provenance and the
napari-segnet version travel in the file's metadata.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .formats import FORMAT

__all__ = ["FORMAT", "ExportedNetwork", "ModelExportError", "activate", "output_names"]

# Keys of the ONNX metadata_props and of TorchScript's extra files.
METADATA_KEYS = {
    "format": "napari_segnet_format",
    "config": "napari_segnet_config",
    "provenance": "napari_segnet_provenance",
    "version": "napari_segnet_version",
    "outputs": "napari_segnet_outputs",
    "size_multiple": "napari_segnet_size_multiple",
}
INPUT_NAME = "input"
EXPORT_EXTRA = "install napari-segnet[export]"


class ModelExportError(ValueError):
    """A model cannot be exported or its export failed a check; one sentence for the user."""


def output_names(config: ModelConfig) -> tuple[str, ...]:
    """Names of an exported network's outputs, in order, for a model of this config."""
    names = ["instance"]
    if config.semantic_classes:
        names.append("semantic")
    if config.has_star_head:
        names += ["star_prob", "star_dist"]
    return tuple(names)


def activate(key: str, raw: torch.Tensor) -> torch.Tensor:
    """Turn the raw network output ``key`` into what exported files return."""
    if key in ("instance", "semantic"):
        return torch.softmax(raw, dim=1)
    if key == "star_prob":
        return torch.sigmoid(raw)
    return raw  # star distances are already distances


class ExportedNetwork(nn.Module):
    """A network whose forward returns its activated outputs as a tuple, in export order.

    Parameters
    ----------
    model : SegNet
        The network, in ``eval`` mode.

    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = output_names(model.config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the activated outputs in the order of :func:`output_names`."""
        outputs = self.model(x)
        return tuple(activate(name, outputs[name]) for name in self.names)


def missing_extra(purpose: str, error: ImportError) -> ModelExportError:
    """Return the error for a package of the ``export`` extra that is not installed."""
    return ModelExportError(
        f"{purpose} needs the {error.name or 'missing'} package: {EXPORT_EXTRA}."
    )
