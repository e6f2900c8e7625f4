"""npe2 sample data: real DSB2018 nuclei, plain and as a calibrated 2-channel OME-TIFF."""

from __future__ import annotations

from napari_segnet.data import sample_path
from napari_segnet.io import read_image

from .layers import image_layer_data


def nuclei() -> list[tuple]:
    """Open a fluorescence image of ~200 nuclei (DSB2018, CC0), uncalibrated."""
    layers = image_layer_data(read_image(sample_path("nuclei")))
    layers[0][1]["name"] = "nuclei"
    return layers


def nuclei_two_channel() -> list[tuple]:
    """Open a DNA stain and a synthetic cytoplasm channel (0.65 µm pixels, OME-TIFF)."""
    return image_layer_data(read_image(sample_path("nuclei_2ch")))
