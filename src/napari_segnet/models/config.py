"""The small typed description of a network, saved with its weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

INSTANCE_CLASSES = ("background", "interior", "boundary")
DEFAULT_DECODER_CHANNELS = {
    "compact": (64, 32, 16),
    "resnet18": (256, 128, 64, 32),
    "resnet34": (256, 128, 64, 32),
    "resnet50": (256, 128, 64, 32),
    "vgg16_bn": (256, 128, 64, 32),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network and to feed it the right input.

    Attributes
    ----------
    encoder : str
        A name from :data:`napari_segnet.models.encoders.ENCODERS`.
    in_channels : int
        Number of image channels the network reads.
    decoder_channels : tuple of int
        Width of each decoder stage, deepest first; one per encoder skip
        (None: the encoder's default, see :data:`DEFAULT_DECODER_CHANNELS`).
    full_resolution_channels : int
        For encoders whose finest features are at 1/2 resolution: width of a
        thin full-resolution path fused before the classifier (0: none, the
        logits are interpolated to full resolution instead).
    semantic_classes : tuple of str
        Optional object classes (e.g. ``("normal", "tumour")``); empty for none.
    normalise_percentiles : tuple of float
        Low and high percentiles mapped to 0 and 1 before the network.
    object_diameter_px : float or None
        Median object diameter in the training data, used to rescale images of
        other magnifications.
    name : str
        Short human-readable name.
    instance_settings : dict
        Thresholds of the probabilities-to-instances step chosen on validation
        data (keys of :class:`napari_segnet.postprocess.InstanceSettings`).

    """

    encoder: str = "compact"
    in_channels: int = 1
    decoder_channels: tuple[int, ...] | None = None
    full_resolution_channels: int = 0
    semantic_classes: tuple[str, ...] = ()
    normalise_percentiles: tuple[float, float] = (1.0, 99.8)
    object_diameter_px: float | None = None
    name: str = "custom"
    instance_settings: dict[str, float] = field(default_factory=dict)
    instance_classes: tuple[str, ...] = field(default=INSTANCE_CLASSES)

    def __post_init__(self):
        low, high = self.normalise_percentiles
        problems = [
            (not isinstance(self.in_channels, int) or self.in_channels < 1, "in_channels"),
            (not 0 <= low < high <= 100, "normalise_percentiles"),
            (
                self.object_diameter_px is not None and not self.object_diameter_px > 0,
                "object_diameter_px",
            ),
            (len(self.instance_classes) != 3, "instance_classes"),
        ]
        bad = [name for wrong, name in problems if wrong]
        if bad:
            raise ValueError(f"invalid model settings: {', '.join(bad)}")

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Rebuild from :meth:`to_json` output; unknown keys are an error."""
        values: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}")
        for key in ("semantic_classes", "normalise_percentiles", "instance_classes"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("decoder_channels") is not None:
            values["decoder_channels"] = tuple(values["decoder_channels"])
        return cls(**values)
