"""npe2 reader: microscopy TIFFs and OME-Zarr open as one calibrated image layer per channel."""

from __future__ import annotations

from napari_segnet.io import is_image_path, read_image

from .layers import image_layer_data, layer_calibration

# Pyramids are shown as multiscale layers when their full level is at least this big.
MULTISCALE_PIXELS = 4096 * 4096


def napari_get_reader(path):
    """Return a reader for TIFF files and OME-Zarr folders (or lists of them); else None."""
    paths = path if isinstance(path, list) else [path]
    if not paths or not all(is_image_path(p) for p in paths):
        return None
    return read_images


def read_images(path) -> list[tuple]:
    """Read one or more TIFF files or OME-Zarr folders into layer data.

    A pyramid (pyramidal OME-TIFF, OME-Zarr multiscales) whose full-resolution
    plane has more than :data:`MULTISCALE_PIXELS` opens as multiscale layers. A
    file that cannot be read raises :class:`napari_segnet.io.ImageReadError`,
    whose message napari shows to the user.
    """
    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        image = read_image(p)
        levels = None
        n_levels = int(image.metadata.get("n_levels", 1))
        shape = dict(zip(image.axes, image.data.shape))
        if n_levels > 1 and shape["Y"] * shape["X"] > MULTISCALE_PIXELS:
            levels = [image, *(read_image(p, level=k) for k in range(1, n_levels))]
        if image.metadata.get("image_label"):
            layers.append(_labels_layer(image, levels))
        else:
            layers.extend(image_layer_data(image, levels))
    return layers


def _labels_layer(image, levels) -> tuple:
    """Return a labels layer for an OME-Zarr label image (``image-label``): a labels output."""
    name = image.path.name.split(".")[0] if image.path else "labels"
    kwargs = {"name": name, **layer_calibration(image, image.axes)}
    if levels:
        kwargs["multiscale"] = True
        return [level.data for level in levels], kwargs, "labels"
    return image.data, kwargs, "labels"
