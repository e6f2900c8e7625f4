"""Files of block-by-block segmentation: labels (tiled BigTIFF or OME-Zarr), measurements (CSV).

With cells, a second labels file holds the cells, numbered as their nuclei.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_segnet.io.model_identity import ModelIdentity, with_model_columns
from napari_segnet.io.outlines import patch_outlines
from napari_segnet.io.stack_labels import StackLabelsWriter
from napari_segnet.io.tiled_labels import TiledLabelsWriter
from napari_segnet.io.zarr_labels import ZarrLabelsWriter

from .blocks import BlockObjects

LABEL_WRITERS = {"tiff": TiledLabelsWriter, "zarr": ZarrLabelsWriter}
# The name ending of each format's labels output.
LABEL_SUFFIXES = {"tiff": "_labels.tif", "zarr": "_labels.zarr"}
# ... and of its cells' labels.
CELL_SUFFIXES = {"tiff": "_cells.tif", "zarr": "_cells.zarr"}


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
    cells_path : path, optional
        Where the blocks' cells go (``objects.cells``), in the labels' format.
    exports : sequence of (str, path, str)
        Outline exports written as blocks come: ``(name, path, objects)`` with name
        ``"geojson"`` or ``"imagej-roi"`` and objects ``"nuclei"`` or ``"cells"``; every
        object's row of the measurements (when measured) goes with it.

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
        cells_path: str | os.PathLike | None = None,
        exports=(),
    ):
        if labels_format not in LABEL_WRITERS:
            raise ValueError(f"The labels format must be 'tiff' or 'zarr', not {labels_format!r}.")
        options = dict(shape=shape, spacing=spacing, labels_format=labels_format, model=model)
        self.labels = _labels_writer(labels_path, **options)
        self.cells = None if cells_path is None else _labels_writer(cells_path, **options)
        self.exports = []
        try:
            for name, path, which in exports:
                self.exports.append((_outline_writer(name, path, len(shape), model), which))
        except BaseException:
            self.abort()
            raise
        self.model = model
        self.csv = None if csv_path is None else open(Path(csv_path), "w", newline="")
        self.count = 0
        self._header_written = False

    def __call__(self, objects: BlockObjects, final_row: int) -> None:
        """Add one block's objects; rows above ``final_row`` are complete."""
        if objects.count:
            self.labels.paint(objects.patch, objects.origin, self.count)
            if self.cells is not None and objects.cells is not None:
                self.cells.paint(objects.cells, objects.cells_origin, self.count)
            rows = None if objects.table is None else self._rows(objects)
            if self.csv is not None and rows is not None:
                rows.to_csv(self.csv, header=not self._header_written, index=False)
                self._header_written = True
            for writer, which in self.exports:
                if which == "nuclei":
                    writer.add(
                        patch_outlines(objects.patch, objects.origin, first=self.count), rows
                    )
                elif objects.cells is not None:
                    outlines = patch_outlines(objects.cells, objects.cells_origin, first=self.count)
                    writer.add(outlines, rows)
            self.count += objects.count
        self.labels.rows_final(final_row)
        if self.cells is not None:
            self.cells.rows_final(final_row)

    def _rows(self, objects: BlockObjects):
        """Return the block's rows numbered as in the files, with classes and the model."""
        table = objects.table.copy()
        if objects.classes:
            order = np.searchsorted(objects.classes["label"], table["label"].to_numpy())
            table["class"] = objects.classes["class"][order]
            table["class_probability"] = objects.classes["class_probability"][order]
        table["label"] += self.count
        return with_model_columns(table, self.model)

    def close(self, empty_table=None) -> None:
        """Finish both files; ``empty_table`` gives the CSV header when there were no objects."""
        self.labels.close()
        if self.cells is not None:
            self.cells.close()
        for writer, _ in self.exports:
            writer.close()
        if self.csv is not None:
            if not self._header_written and empty_table is not None:
                with_model_columns(empty_table, self.model).to_csv(self.csv, index=False)
            self.csv.close()

    def abort(self) -> None:
        """Stop writing; the files are incomplete (atomic_paths removes them)."""
        self.labels.abort()
        if self.cells is not None:
            self.cells.abort()
        for writer, _ in self.exports:
            writer.abort()
        if self.csv is not None:
            self.csv.close()


def _outline_writer(name: str, path, ndim: int, model):
    from napari_segnet.io.geojson import GeoJsonStream
    from napari_segnet.io.imagej_rois import ImagejRoiStream

    if name == "geojson":
        return GeoJsonStream(path, with_plane=ndim == 3, model=model)
    if name == "imagej-roi":
        return ImagejRoiStream(path, axes="ZYX"[-ndim:], model=model)
    raise ValueError(f"The export must be 'geojson' or 'imagej-roi', not {name!r}.")


def _labels_writer(path, *, shape, spacing, labels_format, model):
    if len(shape) == 3:
        return StackLabelsWriter(
            path, shape, spacing=spacing, labels_format=labels_format, model=model
        )
    return LABEL_WRITERS[labels_format](path, shape, spacing=spacing, model=model)


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
    cells_path: str | os.PathLike | None = None,
    cells=None,
    exports=(),
):
    """Segment a plane or Z-stack block by block into files that appear whole or not at all.

    The labels go to ``labels_path`` (``labels_format``), the measurements of every
    channel to ``csv_path`` (None: not measured). ``spacing`` defaults to the
    image's own (:func:`labels_spacing`). With ``cells`` (a
    :class:`~napari_segnet.inference.block_cells.CellGrowth`), the cells go to
    ``cells_path`` and every row measures a cell. ``exports`` are ``(name, path,
    objects)`` outline exports written as blocks come (see :class:`StreamedFiles`). All
    record the model's identity (its
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
    if (cells is None) != (cells_path is None):
        raise ValueError("Cells need both a growth and a path, or neither.")
    paths = [p for p in (labels_path, csv_path, cells_path) if p is not None]
    with atomic_paths(*paths, *(path for _, path, _ in exports)) as temporaries:
        outlines = temporaries[len(paths) :]
        temporaries = temporaries[: len(paths)]
        files = StreamedFiles(
            temporaries[0],
            None if csv_path is None else temporaries[1],
            shape,
            spacing=spacing,
            labels_format=labels_format,
            model=getattr(model, "identity", None),
            cells_path=None if cells_path is None else temporaries[-1],
            exports=[(n, t, w) for (n, _, w), t in zip(exports, outlines)],
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
                cells=cells,
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
