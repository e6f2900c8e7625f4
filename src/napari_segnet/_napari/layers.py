"""Turn a MicroscopyImage into napari layer data: one layer per channel, calibrated."""

from __future__ import annotations

import numpy as np

from napari_segnet.io import MicroscopyImage
from napari_segnet.io.model_identity import METADATA_KEY, ModelIdentity

# Colormaps by dye, stain or protein name (matched as lower-case substrings).
NAME_COLORMAPS = (
    (("dapi", "hoechst", "dna", "nuc", "405", "bfp"), "blue"),
    (("gfp", "fitc", "488", "alexa 488", "af488", "cy2", "yfp", "cellmask"), "green"),
    (("cy3", "tritc", "rfp", "mcherry", "tdtomato", "555", "561", "568", "594", "texas"), "red"),
    (("cy5", "647", "633", "640", "far red", "far-red", "cy7", "750"), "magenta"),
)
# Colormaps by emission wavelength (nm): upper bound of each band.
WAVELENGTH_COLORMAPS = ((490, "blue"), (560, "green"), (590, "yellow"), (650, "red"))
FALLBACK_COLORMAPS = ("magenta", "green", "cyan", "yellow", "red", "blue")
AXIS_UNITS = {"T": "second", "Z": "micrometer", "Y": "micrometer", "X": "micrometer"}
CONTRAST_PERCENTILES = (0.5, 99.8)
MAX_SAMPLE_PIXELS = 2**22


def record_model(layer, identity: ModelIdentity | None):
    """Note in a labels layer's metadata which model made it (``metadata["model"]``).

    The value is :meth:`ModelIdentity.as_metadata`'s plain mapping, which Measure's
    exports and the writers turn back into the identity (see :func:`layer_model`).
    Returns the layer.
    """
    if identity is None:
        layer.metadata.pop(METADATA_KEY, None)
    else:
        layer.metadata[METADATA_KEY] = identity.as_metadata()
    return layer


def layer_model(metadata) -> ModelIdentity | None:
    """Return the model that made a layer's labels, from its metadata (None: no model).

    Looks at what :func:`record_model` noted, then at what the layer's file said
    (``file_metadata``: labels of ours opened from disk).
    """
    metadata = metadata or {}
    file_metadata = metadata.get("file_metadata") or {}
    for source in (metadata, file_metadata):
        identity = ModelIdentity.from_metadata(source.get(METADATA_KEY))
        if identity is not None:
            return identity
    return None


def channel_colormap(name: str, wavelength: float | None, index: int, n_channels: int) -> str:
    """Pick a napari colormap for a channel from its name, else its emission wavelength."""
    if n_channels == 1:
        return "gray"
    lowered = name.casefold()
    for keys, colormap in NAME_COLORMAPS:
        if any(key in lowered for key in keys):
            return colormap
    if wavelength:
        return next((cmap for bound, cmap in WAVELENGTH_COLORMAPS if wavelength < bound), "magenta")
    return FALLBACK_COLORMAPS[index % len(FALLBACK_COLORMAPS)]


def contrast_limits(data) -> tuple[float, float]:
    """Compute percentile contrast limits from a bounded sample of the data.

    Lazy (dask) data is sampled from a central crop of its middle plane so that
    opening a multi-gigabyte file does not read it whole.
    """
    if not isinstance(data, np.ndarray):
        middle = tuple(n // 2 for n in data.shape[:-2])
        plane = data[middle]
        rows, cols = plane.shape
        crop = (
            slice(max(rows // 2 - 1024, 0), rows // 2 + 1024),
            slice(max(cols // 2 - 1024, 0), cols // 2 + 1024),
        )
        sample = np.asarray(plane[crop])
    else:
        step = max(1, int(np.ceil((data.size / MAX_SAMPLE_PIXELS) ** (1 / data.ndim))))
        sample = data[(slice(None, None, step),) * data.ndim]
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(sample, CONTRAST_PERCENTILES))
    return (low, high) if high > low else (low, low + 1.0)


def layer_calibration(image: MicroscopyImage, axes: str) -> dict:
    """Return ``scale``, ``units`` and ``axis_labels`` for a layer with the given axes."""
    scale = tuple(image.pixel_size.get(a, 1.0) for a in axes)
    units = tuple(AXIS_UNITS[a] if a in image.pixel_size else "pixel" for a in axes)
    return {"scale": scale, "units": units, "axis_labels": tuple(a.lower() for a in axes)}


def image_layer_data(
    image: MicroscopyImage, levels: list[MicroscopyImage] | None = None
) -> list[tuple]:
    """Make napari ``LayerDataTuple``s for an image: one per channel, or one RGB layer.

    With ``levels`` (the image's pyramid: ``image`` first, then coarser ones), the
    layers are multiscale: napari reads the level that fits the zoom, so a whole
    slide opens at once and pans block by block.
    """
    stem = image.path.name.split(".")[0] if image.path else "image"
    levels = levels if levels and len(levels) > 1 else None

    def data_of(selection=None):
        """Return the layer's data (an array, or the list of levels) and its smallest level."""
        arrays = [lvl.data for lvl in (levels or [image])]
        if selection is not None:
            arrays = [a[selection] for a in arrays]
        return (arrays if levels else arrays[0]), arrays[-1]

    common = {
        "pixel_size": dict(image.pixel_size),
        "source": str(image.path or ""),
        "file_metadata": dict(image.metadata),
    }
    if image.is_rgb or image.channel_axis is None:
        axes = image.axes.replace("S", "")
        meta = {"axes": image.axes, "channel_names": list(image.channel_names), **common}
        kwargs = {
            "name": stem,
            "rgb": image.is_rgb,
            "metadata": meta,
            **layer_calibration(image, axes),
        }
        data, smallest = data_of()
        if levels:
            kwargs["multiscale"] = True
        if not image.is_rgb:
            kwargs["contrast_limits"] = contrast_limits(smallest)
        return [(data, kwargs, "image")]

    channel_axis = image.channel_axis
    axes = image.axes.replace("C", "")
    layers = []
    n = image.n_channels
    for index in range(n):
        selection = tuple(
            index if i == channel_axis else slice(None) for i in range(image.data.ndim)
        )
        data, smallest = data_of(selection)
        name = image.channel_names[index] if image.channel_names else f"{stem} [{index}]"
        wavelength = image.emission_wavelengths[index] if image.emission_wavelengths else None
        kwargs = {
            "name": name,
            "colormap": channel_colormap(name, wavelength, index, n),
            "blending": "additive",
            "contrast_limits": contrast_limits(smallest),
            "metadata": {"axes": axes, "channel_name": name, "channel_index": index, **common},
            **layer_calibration(image, axes),
        }
        if levels:
            kwargs["multiscale"] = True
        layers.append((data, kwargs, "image"))
    return layers
