"""Files of block-by-block segmentation: labels (tiled BigTIFF or OME-Zarr), measurements (CSV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_segnet.io.model_identity import ModelIdentity, with_model_columns
from napari_segnet.io.stack_labels import StackLabelsWriter
from napari_segnet.io.tiled_labels import TiledLabelsWriter
from napari_segnet.io.zarr_labels import ZarrLabelsWriter

from .blocks import BlockObjects

LABEL_WRITERS = {"tiff": TiledLabelsWriter, "zarr": ZarrLabelsWriter}
# The name ending of each format's labels output.
LABEL_SUFFIXES = {"tiff": "_labels.tif", "zarr": "_labels.zarr"}


class StreamedFiles:
    """Receive blocks' objects (see :func:`~napari_segnet.inference.stream.iter_segment_streamed`).

    Labels are numbered 1..n in block order and written to ``labels_path`` as
    rows of tiles become final; measurement rows are appended to ``csv_path``
    (one per object, measured whole) as blocks come. Use inside
    :func:`napari_segnet.io.atomic_paths` and call :meth:`close` at the end.

    Parameters
    ----------
    labels_path : path
    csv_path : path or None
        None: no measurements.
    shape : tuple of int
        ``(Y, X)`` of the plane or ``(Z, Y, X)`` of the stack.
    spacing : tuple of float, optional
        Pixel (voxel) size in micrometres, one per axis of ``shape``.
    labels_format : {"tiff", "zarr"}
        A tiled BigTIFF, or an OME-Zarr folder with a pyramid (NGFF 0.4).
        A stack's labels are painted into a Zarr array on disk and written out
        on :meth:`close` (:class:`~napari_segnet.io.stack_labels.StackLabelsWriter`).
    model : ModelIdentity, optional
        The model that made the labels: recorded in the labels' metadata and as the
        CSV's constant ``model`` and ``model_sha256`` columns.

    """

    def __init__(
        self,
        labels_path: str | os.PathLike,
        csv_path: str | os.PathLike | None,
        shape: tuple[int, ...],
        *,
        spacing: tuple[float, ...] | None = None,
        labels_format: str = "tiff",
        model: ModelIdentity | None = None,
    ):
        if labels_format not in LABEL_WRITERS:
            raise ValueError(f"The labels format must be 'tiff' or 'zarr', not {labels_format!r}.")
        if len(shape) == 3:
            self.labels = StackLabelsWriter(
                labels_path, shape, spacing=spacing, labels_format=labels_format, model=model
            )
        else:
            writer = LABEL_WRITERS[labels_format]
            self.labels = writer(labels_path, shape, spacing=spacing, model=model)
        self.model = model
        self.csv = None if csv_path is None else open(Path(csv_path), "w", newline="")
        self.count = 0
        self._header_written = False

    def __call__(self, objects: BlockObjects, final_row: int) -> None:
        """Add one block's objects; rows above ``final_row`` are complete."""
        if objects.count:
            self.labels.paint(objects.patch, objects.origin, self.count)
            if self.csv is not None and objects.table is not None:
                self._append(objects)
            self.count += objects.count
        self.labels.rows_final(final_row)

    def _append(self, objects: BlockObjects) -> None:
        table = objects.table.copy()
        if objects.classes:
            order = np.searchsorted(objects.classes["label"], table["label"].to_numpy())
            table["class"] = objects.classes["class"][order]
            table["class_probability"] = objects.classes["class_probability"][order]
        table["label"] += self.count
        table = with_model_columns(table, self.model)
        table.to_csv(self.csv, header=not self._header_written, index=False)
        self._header_written = True

    def close(self, empty_table=None) -> None:
        """Finish both files; ``empty_table`` gives the CSV header when there were no objects."""
        self.labels.close()
        if self.csv is not None:
            if not self._header_written and empty_table is not None:
                with_model_columns(empty_table, self.model).to_csv(self.csv, index=False)
            self.csv.close()

    def abort(self) -> None:
        """Stop writing; the files are incomplete (atomic_paths removes them)."""
        self.labels.abort()
        if self.csv is not None:
            self.csv.close()


def iter_segment_to_files(
    image,
    model,
    settings,
    labels_path: str | os.PathLike,
    csv_path: str | os.PathLike | None = None,
    *,
    labels_format: str = "tiff",
    device=None,
    block: int | None = None,
    halo: int | None = None,
    spacing=None,
):
    """Segment a plane or Z-stack block by block into files that appear whole or not at all.

    The labels go to ``labels_path`` (``labels_format``), the measurements of every
    channel to ``csv_path`` (None: not measured). ``spacing`` defaults to the
    image's own (:func:`labels_spacing`). Both record the model's identity (its
    ``identity``, as :func:`~napari_segnet.models.load_model` gives it). Closing the
    generator (cancel) leaves no output behind.

    Yields
    ------
    Progress

    Returns
    -------
    napari_segnet.inference.stream.StreamSummary

    """
    from napari_segnet.io import atomic_paths

    from .blocks import BLOCK
    from .stream import iter_segment_streamed

    if spacing is None:
        spacing = labels_spacing(image)
    shape = tuple(n for a, n in zip(image.axes, image.data.shape) if a in "ZYX")
    paths = [labels_path] if csv_path is None else [labels_path, csv_path]
    with atomic_paths(*paths) as temporaries:
        files = StreamedFiles(
            temporaries[0],
            None if csv_path is None else temporaries[1],
            shape,
            spacing=spacing,
            labels_format=labels_format,
            model=getattr(model, "identity", None),
        )
        try:
            summary = yield from iter_segment_streamed(
                image,
                model,
                settings,
                files,
                device=device,
                block=block or BLOCK,
                halo=halo,
                measure=csv_path is not None,
                spacing=spacing,
            )
            files.close(empty_table=None if csv_path is None else empty_table(image, spacing))
        except BaseException:
            files.abort()
            raise
    return summary


def labels_spacing(image) -> tuple[float, ...] | None:
    """Return the image's pixel (voxel) size for its labels: one per spatial axis, or None."""
    spatial = [a for a in image.axes if a in "ZYX"]
    return tuple(image.spacing) if image.spacing and len(image.spacing) == len(spatial) else None


def empty_table(image, spacing):
    """Return the measurement table of no objects: the CSV header of an image that has none."""
    from dataclasses import replace

    from napari_segnet.measure import measure

    index = tuple(slice(0, 1) if a in "ZYX" else slice(None) for a in image.axes)
    corner = replace(image, data=np.asarray(image.data[index]))
    spatial = "".join(a for a in image.axes if a in "ZYX")
    return measure(
        np.zeros((1,) * len(spatial), np.uint32),
        corner.data,
        axes=spatial,
        channel_axis=corner.channel_axis,
        channel_names=list(corner.channel_names) or None,
        spacing=spacing,
    )
