"""Read a big (lazy) plane or Z-stack for block-by-block segmentation.

:func:`plane_source` takes the normalisation from the same sample of the whole plane that
whole-plane segmentation takes it from (:func:`~napari_segnet.inference.normalise.normalisation_of`;
one per plane of a Z-stack), so that every block sees the whole plane's numbers.
:class:`PlaneSource` then reads blocks' regions, normalised, from the image, which may stay
on disk (see :mod:`napari_segnet.inference.stream`).
"""

from __future__ import annotations

import numpy as np

from napari_segnet.io import MicroscopyImage

from .normalise import Normalisation, network_shape, normalisation_of, spatial_key
from .segment import SegmentSettings, choose_channel


class PlaneSource:
    """What blocks read from a (lazy) single-plane image or Z-stack.

    A block's reads (its tiles, its constant check, its measurements) are served
    from one region read ahead with :meth:`read_ahead`, so a compressed file is
    decoded about once per block, not once per batch of tiles.

    Parameters
    ----------
    image : MicroscopyImage
        The image; its ``data`` may be lazy (dask, zarr, memory map).
    channel : int or None
        The channel segmented.
    normalisation : Normalisation or tuple of Normalisation
        For the whole plane; for a Z-stack, one per plane.
    scale : float
        Zoom of the plane that the network sees (1: as it is).

    Attributes
    ----------
    shape : tuple of int
        ``(Y, X)``: what blocks cut.
    planes : int
        Planes of the stack (1 for a single plane).
    labels_shape : tuple of int
        ``(Z, Y, X)`` of a stack, ``(Y, X)`` of a plane.

    """

    def __init__(
        self,
        image: MicroscopyImage,
        channel: int | None,
        normalisation: Normalisation | tuple[Normalisation, ...],
        scale: float = 1.0,
    ):
        self.image, self.channel, self.normalisation = image, channel, normalisation
        self.scale = float(scale)
        axes, shape = image.axes, image.data.shape
        self.shape = (shape[axes.index("Y")], shape[axes.index("X")])
        self.stacked = "Z" in axes
        self.planes = shape[axes.index("Z")] if self.stacked else 1
        self.labels_shape = (self.planes, *self.shape) if self.stacked else self.shape
        if self.stacked and len(normalisation) != self.planes:
            raise ValueError("A Z-stack needs one normalisation per plane.")
        self._ahead: tuple[slice, slice, np.ndarray] | None = None

    def read_ahead(self, rows: slice, columns: slice) -> None:
        """Read a region (every channel) that the next reads will come from."""
        self._ahead = None
        self._ahead = (rows, columns, self._read(rows, columns))

    def region(self, rows: slice, columns: slice, *, every_channel: bool = False) -> np.ndarray:
        """Read a region (every plane of a stack): of the segmented channel, or every channel."""
        data = None
        if self._ahead is not None:
            ahead_rows, ahead_columns, ahead = self._ahead
            if _within(rows, ahead_rows) and _within(columns, ahead_columns):
                data = ahead[
                    self._index(
                        slice(rows.start - ahead_rows.start, rows.stop - ahead_rows.start),
                        slice(
                            columns.start - ahead_columns.start, columns.stop - ahead_columns.start
                        ),
                    )
                ]
        if data is None:
            data = self._read(rows, columns)
        if "C" in self.image.axes and self.channel is not None and not every_channel:
            data = np.take(data, self.channel, axis=self.image.axes.index("C"))
        return data

    def normalised(self, rows: slice, columns: slice, plane: int = 0) -> np.ndarray:
        """Return the network's input for a region of a plane (of the stack).

        ``(rows, columns)``, or ``(C, rows, columns)`` for a network that reads C channels.
        """
        region = self.region(rows, columns)
        if not self.stacked:
            return self.normalisation.apply(region)
        axes = self.image.axes if self.channel is None else self.image.axes.replace("C", "")
        region = np.take(region, plane, axis=axes.index("Z"))
        return self.normalisation[plane].apply(region)

    def reader(self, plane: int):
        """Return ``read(rows, columns)``: the network's input of one plane."""
        return lambda rows, columns: self.normalised(rows, columns, plane)

    def normalised_plane(self, plane: int = 0) -> NormalisedPlane:
        """Return one plane's network input as a lazy array: indexing reads only that region."""
        return NormalisedPlane(self, plane)

    def _index(self, rows: slice, columns: slice) -> tuple:
        return tuple({"Y": rows, "X": columns}.get(a, slice(None)) for a in self.image.axes)

    def _read(self, rows: slice, columns: slice) -> np.ndarray:
        return np.asarray(self.image.data[self._index(rows, columns)])


class NormalisedPlane:
    """One plane of a :class:`PlaneSource` as the network's input, read when indexed.

    ``view[..., rows, columns]`` (or ``view[rows, columns]``; two slices) reads and
    normalises that region only, so a window of a multi-GB plane can be handed to
    functions that take an array. Its ``shape`` is ``(Y, X)``, or ``(C, Y, X)`` for
    a network that reads C channels.
    """

    def __init__(self, source: PlaneSource, plane: int = 0):
        self.source, self.plane = source, plane
        first = source.normalisation[plane] if source.stacked else source.normalisation
        self.shape = network_shape(source.shape, first.channels)
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        rows, columns = (
            slice(*window.indices(n)[:2])
            for window, n in zip(spatial_key(key), self.source.shape, strict=True)
        )
        return self.source.normalised(rows, columns, self.plane)


def _within(inner: slice, outer: slice) -> bool:
    return outer.start <= inner.start and inner.stop <= outer.stop


def plane_source(
    image: MicroscopyImage, model, settings: SegmentSettings, scale: float = 1.0
) -> PlaneSource:
    """Check that ``image`` can be segmented block by block and prepare reading it.

    ``scale`` is the zoom the network sees the planes at (see
    :func:`~napari_segnet.inference.stream.iter_plan_stream`).

    Raises
    ------
    ValueError
        For time series.

    """
    channel = choose_channel(image, settings.channel)
    planar = image.axes.replace("C", "").replace("S", "")
    if planar not in ("YX", "ZYX"):
        raise ValueError(
            f"Block-by-block segmentation takes a 2-D plane or a Z-stack, not axes {image.axes}; "
            "segment the time points one at a time."
        )
    data = image.data
    if channel is not None:
        data = data[tuple(channel if a == "C" else slice(None) for a in image.axes)]
    percentiles = model.config.normalise_percentiles
    options = dict(invert=settings.invert, channels=model.config.in_channels)
    if "Z" not in image.axes:
        return PlaneSource(image, channel, normalisation_of(data, percentiles, **options), scale)
    z = (image.axes if channel is None else image.axes.replace("C", "")).index("Z")
    normalisations = tuple(
        normalisation_of(data[(slice(None),) * z + (plane,)], percentiles, **options)
        for plane in range(data.shape[z])
    )
    return PlaneSource(image, channel, normalisations, scale)
