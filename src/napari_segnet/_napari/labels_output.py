"""Where Segment's labels go: the layer it made before, unless it was corrected by hand.

A labels layer that Segment makes records, in its metadata, the image layer it was
made from and a digest of its pixels. Segmenting that image again updates the layer
only while its pixels still match the digest; once they were edited (painted, filled,
erased, or changed by a script), the new labels go to a new layer,
``<image> labels [2]``, and the corrected one is kept. Labels of a big plane, written
block by block to a temporary folder, are removed with their layer.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels

from .layer_axes import layer_axes

KEY = "napari-segnet segment"  # metadata of the labels layers Segment made


def labels_digest(data) -> str | None:
    """Return a digest of in-memory labels (None for lazy data, which cannot be painted)."""
    if not isinstance(data, np.ndarray) or isinstance(data, np.memmap):
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{data.shape}{data.dtype}".encode())
    digest.update(np.ascontiguousarray(data).data)
    return digest.hexdigest()


def record(layer, image_layer, temporary: Path | None = None) -> None:
    """Note in ``layer.metadata`` that Segment made it from ``image_layer``, as it is now.

    Parameters
    ----------
    layer : napari.layers.Labels
        The labels just written.
    image_layer : napari.layers.Image
        The layer segmented.
    temporary : pathlib.Path, optional
        A temporary folder holding the layer's data, to remove with the layer.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    layer.metadata[KEY] = {
        "image": str(image_layer.unique_id),
        "digest": labels_digest(data) if not layer.multiscale else None,
        "temporary": str(temporary) if temporary else None,
        "made": time.time_ns(),
    }


def made_from(layer, image_layer) -> bool:
    """Whether Segment made ``layer`` from ``image_layer``."""
    note = layer.metadata.get(KEY) or {}
    return note.get("image") == str(image_layer.unique_id)


def is_edited(layer) -> bool:
    """Whether a labels layer's pixels changed since Segment wrote them.

    Layers that Segment did not make count as edited: they are someone's work.
    """
    note = layer.metadata.get(KEY)
    if not note:
        return True
    if note.get("digest") is None:  # a lazy pyramid read from files: not painted
        return False
    return labels_digest(layer.data) != note["digest"]


def latest_made_from(layers, image_layer):
    """Return the labels layer Segment made most recently from ``image_layer``, or None."""
    made = [
        layer for layer in layers if isinstance(layer, Labels) and made_from(layer, image_layer)
    ]
    return max(made, key=lambda layer: layer.metadata[KEY].get("made", 0), default=None)


def free_name(layers, base: str) -> str:
    """Return ``base``, or ``base [2]``, ``base [3]``... : the first no layer has."""
    names = {layer.name for layer in layers}
    if base not in names:
        return base
    number = 2
    while f"{base} [{number}]" in names:
        number += 1
    return f"{base} [{number}]"


def remove_temporary(layer) -> None:
    """Remove the temporary folder holding a layer's data, if it has one."""
    note = layer.metadata.get(KEY) or {}
    if note.get("temporary"):
        remove_folder(note["temporary"])
        note["temporary"] = None


def remove_folder(folder) -> None:
    """Remove a temporary folder of labels (gone already: nothing to do)."""
    shutil.rmtree(folder, ignore_errors=True)


def plane_written(stack, plane: tuple[int, ...], plane_labels: np.ndarray) -> np.ndarray:
    """Put one plane's labels into a stack of labels, numbered after the other planes'.

    Parameters
    ----------
    stack : ndarray
        Labels of the whole stack (written in place when its type can hold the
        new labels; otherwise a uint32 copy is returned).
    plane : tuple of int
        The plane's index in the stack (its leading axes).
    plane_labels : ndarray
        The new labels of that plane (0 is background).

    Returns
    -------
    ndarray
        The stack with the plane replaced.
    """
    stack[plane] = 0
    offset = int(stack.max(initial=0))
    top = offset + int(plane_labels.max(initial=0))
    if top > np.iinfo(stack.dtype).max:
        stack = stack.astype(np.uint32)
    shifted = plane_labels.astype(stack.dtype, copy=True)
    shifted[plane_labels > 0] += offset
    stack[plane] = shifted
    return stack


class ResultLayers:
    """Put Segment's results into a viewer's layers, keeping labels edited by hand.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the layers are added or updated.
    """

    def __init__(self, viewer):
        self.viewer = viewer

    def add_block_result(self, layer, result) -> Labels:
        """Add or update the labels of ``layer`` as a multiscale layer read lazily from files.

        ``result`` is a :class:`~napari_segnet._napari.segment_run.BlockResult`.
        """
        import dask.array as da
        import zarr

        group = zarr.open_group(result.path, mode="r")
        levels = [da.from_zarr(group[d["path"]]) for d in group.attrs["multiscales"][0]["datasets"]]
        temporary = result.path.parent if result.temporary else None
        labels, _ = self._put(
            layer, levels, self._calibration(layer), *self._target_of(layer), temporary
        )
        return labels

    def add_result(self, layer, segmentation, *, probabilities=False, plane=None):
        """Add or update the labels (and the probability maps) of an image layer.

        The labels go to the labels layer that Segment last made from ``layer``,
        unless it was edited since: then to a new one, ``<name> labels [2]``...

        Parameters
        ----------
        layer : napari.layers.Image
            The segmented layer; the new layers get its calibration.
        segmentation : napari_segnet.inference.segment.Segmentation
            The result of :func:`run_segmentation`.
        probabilities : bool
            Whether to add (or update) the interior and boundary probability maps.
        plane : tuple of int, optional
            The index of the one plane segmented; the labels layer keeps the others.

        Returns
        -------
        (napari.layers.Labels, napari.layers.Labels or None)
            The labels layer written, and the edited layer kept instead of it (or None).
        """
        calibration = self._calibration(layer)
        if probabilities and segmentation.probabilities is not None:  # first: labels on top
            for index, kind in ((1, "interior"), (2, "boundary")):
                self._put_image(
                    f"{layer.name} {kind} probability",
                    segmentation.probabilities[index],
                    calibration,
                )
        data = segmentation.labels
        target, edited = self._target_of(layer)  # before the plane is written into it
        if plane is not None:
            stack_shape = self._labels_shape(layer)
            usable = target is not None and not edited and not target.multiscale
            usable = usable and target.data.shape == stack_shape
            stack = target.data if usable else np.zeros(stack_shape, np.uint32)
            data = plane_written(stack, plane, segmentation.labels)
        labels, kept = self._put(layer, data, calibration, target, edited)
        if segmentation.classes:
            classes = dict(segmentation.classes)
            labels.features = {"index": classes["label"], **classes}
        return labels, kept

    def _target_of(self, layer):
        """Return the labels layer Segment last made from ``layer`` (or None), and if edited."""
        target = latest_made_from(self.viewer.layers, layer)
        return target, target is not None and is_edited(target)

    def _labels_shape(self, layer) -> tuple[int, ...]:
        axes = layer_axes(layer).replace("S", "")
        data = layer.data[0] if layer.multiscale else layer.data
        return tuple(n for n, axis in zip(data.shape, axes) if axis != "C")

    @staticmethod
    def _calibration(layer) -> dict:
        """Return the scale, translation, units and axis names of a layer, less its channels."""
        axes = layer_axes(layer).replace("S", "")
        keep = [i for i, axis in enumerate(axes) if axis != "C"]
        return {
            key: tuple(getattr(layer, key)[i] for i in keep)
            for key in ("scale", "translate", "units", "axis_labels")
        }

    def _put(self, layer, data, calibration, target, edited, temporary=None):
        """Write labels of ``layer`` to ``target`` (the layer Segment made), unless edited.

        ``data`` is an array, or a list of levels for a multiscale layer. Returns the
        labels layer written and, when ``target`` was edited, ``target``.
        """
        layers = self.viewer.layers
        multiscale = isinstance(data, list)
        ndim = data[0].ndim if multiscale else data.ndim
        kept = target if edited else None
        if target is not None and not edited:
            if target.ndim == ndim and target.multiscale == multiscale:
                old = dict(target.metadata.get(KEY) or {})
                for key, value in calibration.items():
                    setattr(target, key, value)
                target.data = data
                target.features = {}  # the objects are new: old rows would describe others
                record(target, layer, temporary)
                if old.get("temporary") and old["temporary"] != str(temporary):
                    remove_folder(old["temporary"])
                return target, None
            name = target.name
            layers.remove(target)  # e.g. another channel choice, or a big plane's pyramid
        else:
            name = free_name(layers, f"{layer.name} labels")
        labels = self.viewer.add_labels(data, name=name, multiscale=multiscale, **calibration)
        record(labels, layer, temporary)
        return labels, kept

    def _put_image(self, name, data, calibration):
        layers = self.viewer.layers
        old = layers[name] if name in layers else None
        if isinstance(old, Image) and old.ndim == data.ndim:
            for key, value in calibration.items():
                setattr(old, key, value)
            old.data = data
            return old
        if old is not None:
            layers.remove(old)
        return self.viewer.add_image(
            data,
            name=name,
            colormap="magma",
            blending="additive",
            contrast_limits=(0, 1),
            **calibration,
        )
