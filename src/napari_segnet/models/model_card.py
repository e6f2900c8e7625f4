"""A model's card (markdown) and cover image, made from its config, provenance and sample."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from napari_segnet import __version__

from .config import ModelConfig

# One sentence each (the BioImage Model Zoo allows 128 characters).
OUTPUT_DESCRIPTIONS = {
    "instance": "softmax probabilities of background, nucleus interior and nucleus boundary",
    "semantic": "softmax probabilities of the semantic classes",
    "star_prob": "sigmoid probability of being near an object's centre (star-convex head)",
    "star_dist": "distances in input pixels to the object's edge along R evenly spaced rays "
    "(ray k at angle 2πk/R)",
}
CITATIONS = (
    (
        "Caicedo, J. C. et al. Nucleus segmentation across imaging experiments: the 2018 Data "
        "Science Bowl. Nature Methods 16, 1247–1253 (2019).",
        "10.1038/s41592-019-0612-7",
    ),
    (
        "Ronneberger, O., Fischer, P. & Brox, T. U-Net: Convolutional networks for biomedical "
        "image segmentation. MICCAI 2015, LNCS 9351, 234–241.",
        "10.1007/978-3-319-24574-4_28",
    ),
)


def model_card(
    config: ModelConfig,
    provenance: dict[str, Any],
    outputs: dict[str, list[str]],
    parameters: int,
    sizes: tuple[int, int] = (128, 16),
) -> str:
    """Return the model card of an exported model as markdown.

    Parameters
    ----------
    config : ModelConfig
        The model's config.
    provenance : dict
        How it was made (as stored in its model file).
    outputs : dict
        Channel names of each output tensor, in order.
    parameters : int
        Number of weights of the network.
    sizes : tuple of int
        The smallest input edge and the step between edges the package declares.

    """
    low, high = config.normalise_percentiles
    lines = [
        f"# napari-segnet model `{config.name}`",
        "",
        "Instance segmentation of nuclei (or cells) in 2-D microscopy images with an "
        "encoder–decoder network: the network predicts per-pixel maps, from which "
        "napari-segnet makes one label per object.",
        "",
        "## Network",
        "",
        f"- encoder `{config.encoder}`, decoder with skip connections back to full resolution"
        + (
            f", full-resolution path of {config.full_resolution_channels} channels"
            if config.full_resolution_channels
            else ""
        )
        + f"; heads: {', '.join(config.heads)}; {parameters:,} parameters",
        f"- trained at a median object diameter of {config.object_diameter_px} pixels"
        if config.object_diameter_px
        else "- object size at training: not recorded",
        "",
        "## Input",
        "",
        f"`input`: (batch, {config.in_channels}, y, x) float32; the package declares y and x "
        f"as {sizes[0]} + {sizes[1]}·n pixels (multiples of the network's stride, "
        "as napari-segnet's tiles are). Preprocessing: percentiles "
        f"{low:g} and {high:g} of each image are mapped to 0 and 1 "
        "(`scale_range`). " + _colour_text(config.in_channels),
        "",
        "## Outputs",
        "",
        "| tensor | channels | values |",
        "|---|---|---|",
        *(
            f"| `{name}` | {', '.join(channels) if len(channels) <= 8 else f'{len(channels)} rays'}"
            f" | {OUTPUT_DESCRIPTIONS[name]} |"
            for name, channels in outputs.items()
        ),
        "",
        "## From maps to objects",
        "",
        _instance_text(config),
        "",
        "## Training",
        "",
        *_training_lines(provenance),
        "",
        "## Validation",
        "",
        *_validation_lines(provenance),
        "",
        "## Use",
        "",
        "```",
        "napari-segnet segment IMAGE.tif --model THIS_PACKAGE.zip --out results/",
        "```",
        "",
        f"Exported by napari-segnet {__version__} (`napari-segnet export-model`). The model's "
        "settings and full training provenance are in the package's `config.napari_segnet`.",
        "",
        "## References",
        "",
        *(f"- {text} doi:{doi}" for text, doi in CITATIONS),
        "",
    ]
    return "\n".join(lines)


def _instance_text(config: ModelConfig) -> str:
    settings = json.dumps(config.instance_settings, sort_keys=True) or "{}"
    methods = {
        "watershed": "seeds are connected regions of interior probability above the seed "
        "threshold; a watershed on the interior probability grows them inside the foreground "
        "(interior + boundary above the foreground threshold); small objects are removed",
        "star": "star-convex polygons from the star head, after non-maximum suppression",
        "star_seeds": "the star head's polygons seed a watershed of the 3-class maps",
    }
    method = config.instance_method
    return f"Method `{method}`: {methods[method]}. Thresholds {settings}."


def _training_lines(provenance: dict[str, Any]) -> list[str]:
    if not provenance:
        return ["No training provenance was recorded."]
    lines = []
    source = provenance.get("source_model")
    if isinstance(source, dict) and source.get("model_sha256"):
        lines.append(
            f"- exported from: {source.get('model')} (weights SHA-256 `{source['model_sha256']}`)"
        )
    for key in ("data", "train_images", "command", "epoch", "training_seconds"):
        if key in provenance:
            lines.append(f"- {key.replace('_', ' ')}: {provenance[key]}")
    if "validation_ids" in provenance:
        lines.append(f"- validation images: {len(provenance['validation_ids'])} held out")
    if isinstance(provenance.get("settings"), dict):
        lines.append(f"- settings: `{json.dumps(provenance['settings'], sort_keys=True)}`")
    return lines


def _validation_lines(provenance: dict[str, Any]) -> list[str]:
    """Scores on the held-out images, as the training recorded them."""
    lines = []
    for key, what in (
        ("validation", "at the best epoch (default thresholds)"),
        ("threshold_tuning", "with the tuned thresholds"),
    ):
        scores = provenance.get(key)
        if isinstance(scores, dict):
            numbers = {k: v for k, v in scores.items() if isinstance(v, int | float)}
            text = ", ".join(f"{k.replace('validation_', '')} {v:.3f}" for k, v in numbers.items())
            if text:
                lines.append(f"- {what}: {text}")
    report = provenance.get("report")
    if isinstance(report, dict):
        for group, scores in report.items():
            if isinstance(scores, dict) and "ap50" in scores:
                text = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k.startswith("ap"))
                images = scores.get("images", report.get("images", "?"))
                lines.append(
                    f"- report split, {group} ({images} images nothing was chosen on, "
                    f"the model's thresholds): {text}"
                )
    if not lines:
        return ["No validation scores were recorded with the model."]
    lines.append(
        "- scores are instance-matching AP at IoU 0.5 (ap50), 0.75 (ap75), 0.9 (ap90) and "
        "averaged over IoU 0.5–0.9 (ap_mean), pooled over the images"
    )
    return lines


def cover_image(image: np.ndarray, probabilities: np.ndarray, width: int = 512) -> np.ndarray:
    """Return an RGB uint8 cover: the input beside its predicted interior and boundary.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        The normalised input.
    probabilities : ndarray, shape (3, Y, X)
        Background, interior and boundary probabilities.
    width : int
        Width of each of the two panels (the cover is 2:1 when the image is square).

    """
    gray = np.clip(image[:, :width], 0, 1)
    interior, boundary = probabilities[1, :, :width], probabilities[2, :, :width]
    left = np.repeat(gray[..., None], 3, axis=2)
    right = 0.4 * left
    right[..., 1] += 0.6 * interior  # interior green
    right[..., 0] += 0.6 * boundary  # boundary magenta
    right[..., 2] += 0.6 * boundary
    both = np.concatenate([left, right], axis=1)
    return (np.clip(both, 0, 1) * 255).round().astype(np.uint8)


def _colour_text(in_channels: int) -> str:
    """How napari-segnet prepares colour and bright-background images for this network."""
    if in_channels == 3:
        colour = (
            "napari-segnet gives this network colour images as R, G, B, all three scaled with "
            "the percentiles of the image's luminance, and grey images as the same plane in "
            "all three channels; it "
        )
    else:
        colour = "napari-segnet also turns colour images into their luminance and "
    return (
        colour + "inverts images whose background is brighter than their objects (brightfield, "
        "H&E) before this step; do the same when running the package elsewhere."
    )
