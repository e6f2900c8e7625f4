"""Write the labels of a large Z-stack, painted block by block, as a tiled OME-TIFF or OME-Zarr.

Blocks of a Z-stack hold every plane, so no plane is final before the last block: a band of
rows over every plane would hold ``planes × width × rows`` labels. Instead the blocks paint
straight into a chunked Zarr array on disk (one plane by ``CHUNK × CHUNK`` per chunk), and
:meth:`StackLabelsWriter.close` turns it into the output: the pyramid levels of an OME-Zarr,
or the pages of a tiled BigTIFF, read a row of chunks at a time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import tifffile

from .label_rows import ClosedOrAborted
from .model_identity import ModelIdentity
from .tiled_labels import TIFF_TILE, tiff_calibration
from .zarr_labels import CHUNK, model_attributes, multiscales_metadata, pyramid_factors

FORMATS = ("tiff", "zarr")


class StackLabelsWriter(ClosedOrAborted):
    """Assemble the labels of a ``(Z, Y, X)`` stack from patches; write them on :meth:`close`.

    The same interface as :class:`~napari_segnet.io.tiled_labels.TiledLabelsWriter`.
    Memory holds one patch and one row of chunks, whatever the stack's size.

    Parameters
    ----------
    path : str or os.PathLike
        The output: a ``.tif`` file or a ``.zarr`` folder. Use it inside
        :func:`napari_segnet.io.atomic_paths`.
    shape : tuple of int
        ``(Z, Y, X)``.
    spacing : tuple of float, optional
        ``(z, y, x)`` voxel size in micrometres.
    labels_format : {"tiff", "zarr"}
        A tiled OME BigTIFF (one page per plane) or an OME-Zarr (NGFF 0.4) with a pyramid
        in Y and X.
    model : ModelIdentity, optional
        The model that made the labels, recorded in the output's metadata.

    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int, int],
        *,
        spacing: tuple[float, float, float] | None = None,
        labels_format: str = "tiff",
        model: ModelIdentity | None = None,
    ):
        import zarr

        if labels_format not in FORMATS:
            raise ValueError(f"The labels format must be 'tiff' or 'zarr', not {labels_format!r}.")
        self.path, self.shape = Path(path), tuple(int(n) for n in shape)
        self.spacing, self.labels_format, self.model = spacing, labels_format, model
        # The Zarr output itself, or a folder beside the TIFF that close() removes.
        self._root = self.path if labels_format == "zarr" else _planes_folder(self.path)
        self._group = zarr.open_group(self._root, mode="w", zarr_format=2)
        self._level0 = self._create(0, self.shape)

    def paint(self, patch: np.ndarray, origin: tuple[int, int, int], offset: int = 0) -> None:
        """Write the nonzero voxels of ``patch`` (plus ``offset``) at ``origin``."""
        region = tuple(slice(o, o + n) for o, n in zip(origin, patch.shape))
        canvas = self._level0[region]
        np.copyto(canvas, patch.astype(np.uint32) + np.uint32(offset), where=patch > 0)
        self._level0[region] = canvas

    def rows_final(self, y: int) -> None:
        """Nothing to do: patches are painted in place on disk."""

    def close(self) -> None:
        """Write the output from the painted planes."""
        if self.labels_format == "zarr":
            self._write_pyramid()
        else:
            self._write_tiff()
            shutil.rmtree(self._root)

    def abort(self) -> None:
        """Stop; the output is incomplete (a TIFF's planes folder is removed)."""
        if self.labels_format == "tiff":
            shutil.rmtree(self._root, ignore_errors=True)

    def _create(self, level: int, shape: tuple[int, ...]):
        return self._group.create_array(
            str(level),
            shape=shape,
            chunks=(1, CHUNK, CHUNK),
            dtype=np.uint32,
            compressors={"id": "zlib", "level": 4},
            chunk_key_encoding={"name": "v2", "separator": "/"},
            fill_value=0,
        )

    def _write_pyramid(self) -> None:
        """Level k: every 2nd pixel of level k - 1 in Y and X (labels are never averaged)."""
        factors = pyramid_factors(self.shape[1:])
        previous = self._level0
        for level in range(1, len(factors)):
            planes, height, width = previous.shape
            current = self._create(level, (planes, -(-height // 2), -(-width // 2)))
            for z in range(planes):
                for top in range(0, current.shape[1], CHUNK):
                    rows = previous[z, 2 * top : 2 * (top + CHUNK) : 2, ::2]
                    current[z, top : top + rows.shape[0]] = rows
            previous = current
        self._group.attrs.update(
            multiscales_metadata("labels", factors, self.spacing, ndim=3)
            | model_attributes(self.model)
        )

    def _write_tiff(self) -> None:
        planes, height, width = self.shape
        tile = TIFF_TILE

        def tiles():
            for z in range(planes):
                for top in range(0, height, tile):
                    rows = self._level0[z, top : top + tile]
                    rows = np.pad(rows, ((0, tile - rows.shape[0]), (0, -width % tile)))
                    for left in range(0, rows.shape[1], tile):
                        yield np.ascontiguousarray(rows[:, left : left + tile])

        metadata, options = tiff_calibration(self.spacing, "ZYX", model=self.model)
        with tifffile.TiffWriter(self.path, bigtiff=True, ome=True) as tiff:
            tiff.write(
                tiles(),
                shape=self.shape,
                dtype=np.uint32,
                tile=(tile, tile),
                photometric="minisblack",
                compression="zlib",
                metadata=metadata,
                **options,
            )


def _planes_folder(path: Path) -> Path:
    return path.with_name(f"{path.name}.planes.zarr")
