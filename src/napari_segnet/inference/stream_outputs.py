"""Files of block-by-block segmentation: labels (tiled BigTIFF or OME-Zarr), measurements (CSV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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
        ``(Y, X)`` of the plane.
    spacing : tuple of float, optional
        ``(y, x)`` pixel size in micrometres.
    labels_format : {"tiff", "zarr"}
        A tiled BigTIFF, or an OME-Zarr folder with a pyramid (NGFF 0.4).

    """

    def __init__(
        self,
        labels_path: str | os.PathLike,
        csv_path: str | os.PathLike | None,
        shape: tuple[int, int],
        *,
        spacing: tuple[float, float] | None = None,
        labels_format: str = "tiff",
    ):
        if labels_format not in LABEL_WRITERS:
            raise ValueError(f"The labels format must be 'tiff' or 'zarr', not {labels_format!r}.")
        self.labels = LABEL_WRITERS[labels_format](labels_path, shape, spacing=spacing)
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
        table.to_csv(self.csv, header=not self._header_written, index=False)
        self._header_written = True

    def close(self, empty_table=None) -> None:
        """Finish both files; ``empty_table`` gives the CSV header when there were no objects."""
        self.labels.close()
        if self.csv is not None:
            if not self._header_written and empty_table is not None:
                empty_table.to_csv(self.csv, index=False)
            self.csv.close()

    def abort(self) -> None:
        """Stop writing; the files are incomplete (atomic_paths removes them)."""
        self.labels.abort()
        if self.csv is not None:
            self.csv.close()
