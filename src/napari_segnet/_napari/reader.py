"""npe2 reader: microscopy TIFFs open as one calibrated image layer per channel."""

from __future__ import annotations

from napari_segnet.io import is_tiff_path, read_image

from .layers import image_layer_data


def napari_get_reader(path):
    """Return a reader for TIFF paths (or lists of them); decline anything else."""
    paths = path if isinstance(path, list) else [path]
    if not paths or not all(is_tiff_path(p) for p in paths):
        return None
    return read_tiffs


def read_tiffs(path) -> list[tuple]:
    """Read one or more TIFF files into layer data.

    A file that cannot be read raises :class:`napari_segnet.io.ImageReadError`,
    whose message napari shows to the user.
    """
    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        layers.extend(image_layer_data(read_image(p)))
    return layers
