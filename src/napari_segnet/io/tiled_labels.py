"""Write a large label image as a tiled BigTIFF, row of tiles by row of tiles."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np
import tifffile

from .label_rows import ClosedOrAborted, LabelRows
from .model_identity import OME_NAMESPACE, ModelIdentity

TIFF_TILE = 256
_DONE = object()


class TiledLabelsWriter(ClosedOrAborted):
    """Assemble labels from patches and stream them into a tiled, calibrated BigTIFF.

    Patches may arrive in any order and overlap rows that are still open; a row
    of tiles is written (zlib, on a background thread) once :meth:`rows_final`
    says nothing more will be painted on it, and then leaves memory. So memory
    holds only the open rows: about ``width × (rows open) × 4`` bytes.

    The file is an OME-TIFF (uint32, one ``YX`` plane) with the pixel size in
    its OME metadata and resolution tags, which Fiji (Bio-Formats), QuPath and
    napari read, and the model that made the labels (see :func:`tiff_calibration`).

    Parameters
    ----------
    path : str or os.PathLike
        Where to write. Use it inside :func:`napari_segnet.io.atomic_path`:
        a file that is not closed with :meth:`close` is incomplete.
    shape : tuple of int
        ``(Y, X)`` of the label image.
    spacing : tuple of float, optional
        ``(y, x)`` pixel size in micrometres.
    tile : int
        TIFF tile edge (a multiple of 16).
    model : ModelIdentity, optional
        The model that made the labels.

    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int],
        *,
        spacing: tuple[float, float] | None = None,
        tile: int = TIFF_TILE,
        model: ModelIdentity | None = None,
    ):
        self.path, self.shape, self.tile = Path(path), tuple(int(n) for n in shape), tile
        self.spacing, self.model = spacing, model
        self._rows = LabelRows(self.shape, tile)  # a band is a row of tiles
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def paint(self, patch: np.ndarray, origin: tuple[int, int], offset: int = 0) -> None:
        """Write the nonzero pixels of ``patch`` (plus ``offset``) at ``origin``."""
        self._rows.paint(patch, origin, offset)

    def rows_final(self, y: int) -> None:
        """Say that no patch will touch rows above ``y``: write their tiles."""
        for _, canvas in self._rows.final(y):
            self._put(canvas)

    def close(self) -> None:
        """Write every remaining row and finish the file; raise what the writer raised."""
        self.rows_final(self.shape[0])
        self._put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop writing (the file stays incomplete); safe to call more than once."""
        self._aborted.set()
        try:
            self._queue.put_nowait(_DONE)
        except queue.Full:
            pass
        self._thread.join()

    def _put(self, item) -> None:
        while not self._aborted.is_set():
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _tiles(self):
        """Yield the TIFF's tiles in order, a row at a time as rows are handed over."""
        width, tile = self.shape[1], self.tile
        for _ in range(self._rows.bands):
            item = self._queue.get()
            if item is _DONE or self._aborted.is_set():
                raise InterruptedError("Writing the labels was stopped.")
            for x in range(0, width, tile):
                part = item[:, x : x + tile]
                if part.shape[1] < tile:
                    part = np.pad(part, ((0, 0), (0, tile - part.shape[1])))
                yield np.ascontiguousarray(part)

    def _write(self) -> None:
        metadata, options = tiff_calibration(self.spacing, "YX", model=self.model)
        try:
            with tifffile.TiffWriter(self.path, bigtiff=True, ome=True) as tiff:
                tiff.write(
                    self._tiles(),
                    shape=self.shape,
                    dtype=np.uint32,
                    tile=(self.tile, self.tile),
                    photometric="minisblack",
                    compression="zlib",
                    metadata=metadata,
                    **options,
                )
        except BaseException as error:  # handed to the caller by close()
            self._error = error
            while True:  # let a waiting producer go on to close() and see the error
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break


def tiff_calibration(
    spacing, axes: str, *, model: ModelIdentity | None = None
) -> tuple[dict, dict]:
    """OME metadata and resolution tags of a labels TIFF with ``axes`` (``YX`` or ``ZYX``).

    Returns ``(metadata, options)`` for :meth:`tifffile.TiffWriter.write`; ``spacing``
    holds micrometres, one per axis, or is None (uncalibrated). The ``model`` that
    made the labels goes into the image's OME ``Description`` (a sentence) and an
    OME ``MapAnnotation`` in the namespace ``napari-segnet/model`` holding the keys
    of :meth:`ModelIdentity.as_metadata`; Bio-Formats, QuPath and OMERO show both.
    """
    metadata: dict = {"axes": axes}
    if model is not None:
        metadata["Description"] = f"Instance labels made by napari-segnet with {model.describe()}."
        values = {key: str(value) for key, value in model.as_metadata().items()}
        metadata["MapAnnotation"] = {"Namespace": OME_NAMESPACE, **values}
    if spacing is None:
        return metadata, {}
    sizes = dict(zip(axes, (float(s) for s in spacing)))
    for axis, size in sizes.items():
        metadata |= {f"PhysicalSize{axis}": size, f"PhysicalSize{axis}Unit": "µm"}
    resolution = (1e4 / sizes["X"], 1e4 / sizes["Y"])  # pixels per centimetre
    return metadata, {"resolution": resolution, "resolutionunit": "CENTIMETER"}
