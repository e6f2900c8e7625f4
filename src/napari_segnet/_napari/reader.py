"""npe2 readers: microscopy TIFFs, OME-Zarr, and outlines from QuPath or Fiji.

TIFFs and OME-Zarr open as one calibrated image layer per channel; GeoJSON files (QuPath)
and ImageJ ROI sets (Fiji) open as labels on the grid of an open image.
"""

from __future__ import annotations

import logging
from pathlib import Path

from napari.utils.notifications import show_info

from napari_segnet.io import is_image_path, read_image
from napari_segnet.io.model_identity import METADATA_KEY

from .layers import image_layer_data, layer_calibration

_log = logging.getLogger(__name__)
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
    if METADATA_KEY in image.metadata:  # the model that made them, for Measure's exports
        kwargs["metadata"] = {METADATA_KEY: image.metadata[METADATA_KEY]}
    if levels:
        kwargs["multiscale"] = True
        return [level.data for level in levels], kwargs, "labels"
    return image.data, kwargs, "labels"


def napari_get_outlines_reader(path):
    """Return a reader for a GeoJSON file or an ImageJ ROI set (a zip of ``.roi`` files)."""
    from napari_segnet.io.imagej_rois import is_imagej_roi_zip

    if isinstance(path, list):
        return None if len(path) != 1 else napari_get_outlines_reader(path[0])
    name = str(path).lower()
    if name.endswith(".geojson") or is_imagej_roi_zip(path):
        return read_outlines
    return None  # an ordinary zip file: not ours


def read_outlines(path) -> list[tuple]:
    """Draw a GeoJSON file's or ROI set's objects into one labels layer.

    The labels take the grid of the first open image layer that holds every object
    (its shape, axes, scale and units), so they overlay the image they were drawn
    on; without one, the smallest grid that holds them. A notification says which.
    """
    import napari

    from napari_segnet.io.geojson import read_geojson_outlines
    from napari_segnet.io.imagej_rois import imagej_rois_extent, read_imagej_roi_outlines
    from napari_segnet.io.outlines import draw_outlines, outlines_extent

    path = Path(path[0] if isinstance(path, list) else path)
    if path.suffix.lower() == ".zip":
        axes, extent = imagej_rois_extent(path)
    else:
        outlines = read_geojson_outlines(path)
        axes = "".join(a for a in "TZ" if any(o.plane.get(a) for o in outlines)) + "YX"
        extent = outlines_extent(outlines, axes)
    image = _fitting_image(napari.current_viewer(), axes, extent)
    if image is not None:
        layer, axes, shape = image
        kwargs = {"scale": tuple(layer.scale[-len(shape) :])}
        kwargs["units"] = tuple(str(u) for u in layer.units[-len(shape) :])
        where = f"the grid of image layer {layer.name!r} {tuple(shape)}"
    else:
        shape, kwargs = extent, {}
        where = f"the extent of its shapes {tuple(shape)}, as no open image holds them all"
    if path.suffix.lower() == ".zip":
        size = dict(zip(axes, shape))
        outlines = read_imagej_roi_outlines(path, axes=axes, slices=size.get("Z", 1))
    labels = draw_outlines(outlines, tuple(shape), axes=axes)
    message = f"{path.name}: {len(outlines)} outlines drawn as labels on {where}."
    _log.info(message)
    show_info(message)
    kwargs.update(name=path.name.split(".")[0], axis_labels=tuple(axes.lower()))
    return [(labels, kwargs, "labels")]


def _fitting_image(viewer, axes: str, extent: tuple[int, ...]):
    """``(layer, axes, shape)`` of the first image layer whose grid holds ``extent``."""
    from napari.layers import Image

    from .layer_axes import full_resolution, layer_axes

    if viewer is None:
        return None
    needed = dict(zip(axes, extent))
    for layer in viewer.layers:
        if not isinstance(layer, Image):
            continue
        try:
            letters = layer_axes(layer)
        except ValueError:
            continue
        shape = full_resolution(layer).shape
        kept = [(a, n) for a, n in zip(letters, shape) if a not in "CS"]
        grid = "".join(a for a, _ in kept)
        if grid not in ("YX", "ZYX", "TYX", "TZYX"):
            continue
        size = dict(kept)
        if all(size.get(a, 1) >= n for a, n in needed.items()):
            return layer, grid, tuple(n for _, n in kept)
    return None
