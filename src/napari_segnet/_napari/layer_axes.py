"""What a layer's dimensions mean: its axes, its data as an image, the plane shown now.

Pure layer metadata logic (no Qt): the layers are read, never changed.
"""

from __future__ import annotations

import numpy as np

AXIS_LETTERS = "TCZYX"


def layer_axes(layer) -> str:
    """Tell the axes of a layer's data as letters from ``TCZYXS`` (``S``: RGB samples, last).

    Our reader stores them in ``metadata["axes"]``; otherwise they come from
    ``axis_labels`` when those are axis letters, else from the number of
    dimensions (2-D: ``YX``, 3-D: ``ZYX``, or ``TYX`` when the first label is
    ``t``/``time``, 4-D: ``TZYX``).

    Parameters
    ----------
    layer : napari.layers.Layer
        An image or labels layer.

    Returns
    -------
    str
        One letter per dimension of ``layer.data``, ``S`` added for an RGB layer.

    Raises
    ------
    ValueError
        If the axes cannot be told.
    """
    ndim = layer.ndim
    rgb = "S" if getattr(layer, "rgb", False) else ""
    stored = layer.metadata.get("axes")
    if isinstance(stored, str) and _valid(stored.replace("S", ""), ndim):
        return stored.replace("S", "") + rgb
    labels = "".join(str(label).upper() for label in layer.axis_labels)
    if _valid(labels, ndim):
        return labels + rgb
    first = str(layer.axis_labels[0]).casefold()
    guesses = {2: "YX", 3: "TYX" if first in ("t", "time") else "ZYX", 4: "TZYX"}
    if ndim not in guesses:
        raise ValueError(
            f"Cannot tell the axes of layer {layer.name!r} with {ndim} dimensions: "
            "name them with axis labels such as t, c, z, y, x."
        )
    return guesses[ndim] + rgb


def _valid(axes: str, ndim: int) -> bool:
    return (
        len(axes) == ndim
        and set(axes) <= set(AXIS_LETTERS)
        and len(set(axes)) == ndim
        and axes.endswith("YX")
    )


def full_resolution(layer):
    """Return a layer's data; the full-resolution level of a multiscale layer."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def image_from_layer(layer, axes: str):
    """Wrap an image layer's data as a MicroscopyImage with the given axes.

    Parameters
    ----------
    layer : napari.layers.Image or napari.layers.Labels
        The layer; its ``metadata`` may hold ``channel_names`` and ``pixel_size``.
    axes : str
        Its axes, as :func:`layer_axes` tells them.

    Returns
    -------
    napari_segnet.io.MicroscopyImage
        The full-resolution data (not copied); channels without (enough) names
        are called ``channel 0``, ``channel 1``...
    """
    from napari_segnet.io import MicroscopyImage

    data = full_resolution(layer)
    names = tuple(str(n) for n in layer.metadata.get("channel_names") or ())
    if "C" in axes and len(names) != data.shape[axes.index("C")]:
        names = tuple(f"channel {i}" for i in range(data.shape[axes.index("C")]))
    return MicroscopyImage(data, axes, names, dict(layer.metadata.get("pixel_size") or {}))


def shown_position(viewer, layer, axes: str) -> dict[str, int]:
    """Tell which plane of a layer the viewer shows now: the index along each T and Z axis.

    Parameters
    ----------
    viewer : napari.Viewer
        Its ``dims.point`` says which plane is shown.
    layer : napari.layers.Layer
        The layer, for its ``scale`` and ``translate``.
    axes : str
        The layer's axes (see :func:`layer_axes`).

    Returns
    -------
    dict
        ``{"T": t, "Z": z}`` for the axes the layer has (empty for a single plane).
    """
    offset = viewer.dims.ndim - layer.ndim
    data = full_resolution(layer)
    position = {}
    for layer_dim, axis in enumerate(axes.replace("S", "")):
        if axis in "TZ":
            point = viewer.dims.point[offset + layer_dim]
            step = (point - layer.translate[layer_dim]) / layer.scale[layer_dim]
            position[axis] = int(np.clip(round(step), 0, data.shape[layer_dim] - 1))
    return position


def displayed_plane(viewer, image, layer, channel: int | None = None) -> np.ndarray:
    """Cut the 2-D (or RGB) plane that the viewer shows now out of a layer's image.

    Parameters
    ----------
    viewer : napari.Viewer
        Its ``dims.point`` says which plane is shown.
    image : napari_segnet.io.MicroscopyImage
        The layer's data with its axes (see :func:`image_from_layer`).
    layer : napari.layers.Layer
        The layer, for its ``scale`` and ``translate``.
    channel : int, optional
        The index taken along a ``C`` axis (default 0).

    Returns
    -------
    numpy.ndarray
        Y, X (and S) of ``image``; other axes indexed at the viewer's position.
    """
    position = shown_position(viewer, layer, image.axes)
    index = tuple(
        position[axis] if axis in position else (channel or 0) if axis == "C" else slice(None)
        for axis in image.axes
    )
    return np.asarray(image.data[index])


def plane_of(image, position: dict[str, int]):
    """Return one plane of an image (its channels kept) as a MicroscopyImage.

    Parameters
    ----------
    image : napari_segnet.io.MicroscopyImage
        A stack or time series.
    position : dict
        The index along each of its T and Z axes (see :func:`shown_position`).
    """
    from dataclasses import replace

    index = tuple(position[axis] if axis in position else slice(None) for axis in image.axes)
    axes = "".join(axis for axis in image.axes if axis not in position)
    return replace(image, data=image.data[index], axes=axes)


def yx_dimensions(layer) -> list[int]:
    """Return the indices of a layer's Y and X dimensions (of ``layer.scale``, ``translate``)."""
    return [i for i, axis in enumerate(layer_axes(layer).replace("S", "")) if axis in "YX"]
