"""The small typed description of a network, saved with its weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

INSTANCE_CLASSES = ("background", "interior", "boundary")
HEADS = ("classes", "star")  # "classes" is always there and first; "star" is optional
STAR_RAYS = (8, 16, 32, 64, 128)  # powers of two: flips and 90° rotations permute the rays
INSTANCE_METHODS = ("watershed", "star", "star_seeds")
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
        Number of image channels the network reads: 1 or 3. A one-channel
        network sees every image as one normalised plane (colour as its
        luminance). A three-channel network sees colour (H&E-like) images as
        their R, G and B, each scaled with the *same* low and high (the
        luminance's percentiles, so hue is kept) and inverted (``1 - x``) when
        the background is bright, exactly as for one channel; a grey image is
        given as the same normalised plane in all three channels (see
        :func:`napari_segnet.inference.normalise.normalise`). The input is
        channels-first, ``(batch, in_channels, y, x)``.
    encoder_widths : tuple of int or None
        Width of each stage of the compact encoder, finest first (None: its
        default, 16–32–64–128). Other encoders have fixed widths.
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
        The object diameter the network expects: the median in the training
        data, or, for size-normalised training, the diameter every training
        image was rescaled to. Images of other magnifications are rescaled to it.
    object_diameter_tolerance : float
        Objects up to this factor smaller or larger than ``object_diameter_px``
        are segmented as they are (the training augmentation covered them);
        further away, automatic sizing rescales the image.
    name : str
        Short human-readable name.
    instance_settings : dict
        Thresholds of the probabilities-to-instances step chosen on validation
        data (keys of :class:`napari_segnet.postprocess.InstanceSettings`).
    instance_classes : tuple of str
        Names of the three per-pixel classes of the ``"classes"`` head.
    heads : tuple of str
        The network's outputs: ``("classes",)`` (background / interior /
        boundary) or ``("classes", "star")``, which adds a star-convex head: an
        object probability and ``star_rays`` distances to the object's edge at
        every pixel.
    star_rays : int
        Number of rays of the star head, evenly spaced: ray k points at angle
        2πk/R (rows move by sin, columns by cos). A power of two from 8 to 128.
    instance_method : str
        How labels are made from the outputs: ``"watershed"`` (the 3-class
        maps, as :func:`napari_segnet.postprocess.probabilities_to_instances`),
        ``"star"`` (the star head's polygons after non-maximum suppression) or
        ``"star_seeds"`` (the polygons seed the watershed of the 3-class maps).
        The last two need the star head and the stardist package.

    """

    encoder: str = "compact"
    in_channels: int = 1
    encoder_widths: tuple[int, ...] | None = None
    decoder_channels: tuple[int, ...] | None = None
    full_resolution_channels: int = 0
    semantic_classes: tuple[str, ...] = ()
    normalise_percentiles: tuple[float, float] = (1.0, 99.8)
    object_diameter_px: float | None = None
    object_diameter_tolerance: float = 1.5
    name: str = "custom"
    instance_settings: dict[str, float] = field(default_factory=dict)
    instance_classes: tuple[str, ...] = field(default=INSTANCE_CLASSES)
    heads: tuple[str, ...] = ("classes",)
    star_rays: int = 32
    instance_method: str = "watershed"

    def __post_init__(self):
        self._check_heads()
        low, high = self.normalise_percentiles
        problems = [
            (not isinstance(self.in_channels, int) or self.in_channels < 1, "in_channels"),
            (not 0 <= low < high <= 100, "normalise_percentiles"),
            (
                self.object_diameter_px is not None and not self.object_diameter_px > 0,
                "object_diameter_px",
            ),
            (len(self.instance_classes) != 3, "instance_classes"),
            (not self.object_diameter_tolerance >= 1, "object_diameter_tolerance"),
            (
                self.encoder_widths is not None
                and (self.encoder != "compact" or len(self.encoder_widths) < 2),
                "encoder_widths",
            ),
        ]
        bad = [name for wrong, name in problems if wrong]
        if bad:
            raise ValueError(f"invalid model settings: {', '.join(bad)}")

    def _check_heads(self) -> None:
        if isinstance(self.heads, list):  # e.g. read from JSON or YAML
            object.__setattr__(self, "heads", tuple(self.heads))
        heads = self.heads
        if (
            not isinstance(heads, tuple)
            or heads[:1] != ("classes",)
            or len(set(heads)) != len(heads)
            or not set(heads) <= set(HEADS)
        ):
            raise ValueError(
                f"The model's heads must be ('classes',) or ('classes', 'star'), not {heads!r}."
            )
        rays = self.star_rays
        if type(rays) is not int or rays not in STAR_RAYS:
            raise ValueError(
                "The star head's number of rays must be a power of two from 8 to 128 "
                f"(8, 16, 32, 64 or 128), not {rays!r}."
            )
        if self.instance_method not in INSTANCE_METHODS:
            raise ValueError(
                "The instance method must be 'watershed', 'star' or 'star_seeds', "
                f"not {self.instance_method!r}."
            )
        if self.instance_method != "watershed" and not self.has_star_head:
            raise ValueError(
                f"The instance method {self.instance_method!r} needs a model with the star head "
                "(heads ('classes', 'star'))."
            )

    @property
    def has_star_head(self) -> bool:
        """Whether the network also predicts star-convex polygons (the ``"star"`` head)."""
        return "star" in self.heads

    def to_json(self) -> str:
        """Serialise to a JSON string.

        Settings added after the first release are left out while they have
        their default value, so that files of models without the newer
        features stay readable by older releases of napari-segnet.
        """
        values = asdict(self)
        for name, default in _LATER_DEFAULTS.items():
            if values[name] == default:
                del values[name]
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Rebuild from :meth:`to_json` output; unknown keys are an error."""
        values: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}")
        for key in ("semantic_classes", "normalise_percentiles", "instance_classes", "heads"):
            if key in values:
                values[key] = tuple(values[key])
        for key in ("decoder_channels", "encoder_widths"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


# Settings that newer releases added, with the value that means "as before".
_LATER_DEFAULTS = {
    "heads": ("classes",),
    "star_rays": 32,
    "instance_method": "watershed",
    "encoder_widths": None,
    "object_diameter_tolerance": 1.5,
}
