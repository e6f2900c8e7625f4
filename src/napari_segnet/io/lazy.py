"""Open a TIFF series without reading its pixels: a memory map, or a dask array.

Uncompressed contiguous data is memory-mapped. Anything else (compressed,
tiled, striped) becomes a dask array whose blocks tifffile decodes on demand,
so memory stays bounded by a few blocks however large the image is. A block
that cannot be decoded (a damaged tile read during segmentation, long after
the file was opened) raises :class:`~napari_segnet.io.errors.ImageReadError`
naming the file, like any other read failure.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import tifffile

from .errors import ImageReadError, one_line

# Target size of one dask block: large enough that the task graph stays small
# (a file of 16x16 tiles would otherwise give one task per tile), small enough
# to decode quickly.
BLOCK_BYTES = 16 * 2**20


def open_lazy(tif: tifffile.TiffFile, path: Path, series: int, level: int):
    """Return a memory map of the series' level, or a dask array reading it on demand.

    The dask array reads through ``tif``, which must stay open while it is used.
    """
    try:
        return tifffile.memmap(path, series=series, level=level, mode="r")
    except (ValueError, TypeError):
        pass  # compressed or tiled: read on demand through zarr
    import dask.array as da
    import zarr

    array = zarr.open(tif.series[series].aszarr(level=level), mode="r")
    return da.from_array(
        GuardedArray(array, path.name),
        chunks=block_shape(array.shape, array.dtype, array.chunks),
        name=f"tiff-{uuid.uuid4().hex}",
        asarray=True,
        fancy=False,
        meta=np.empty((0,) * array.ndim, array.dtype),
    )


def block_shape(shape, dtype, chunks) -> tuple[int, ...]:
    """Dask blocks made of whole file chunks, about :data:`BLOCK_BYTES` each.

    Only the last two axes (plus trailing RGB samples) are merged, so that
    reading one plane never decodes its neighbours.
    """
    import dask.array as da

    n = min(len(shape), 3 if len(shape) >= 3 and chunks[-1] == shape[-1] <= 4 else 2)
    lead = tuple(max(int(c), 1) for c in chunks[: len(shape) - n])
    blocks = da.core.normalize_chunks(
        lead + ("auto",) * n,
        shape,
        limit=BLOCK_BYTES,
        dtype=dtype,
        previous_chunks=tuple(chunks),
    )
    # Never smaller than a file chunk, and made of whole ones: each chunk is decoded once.
    return tuple(
        max(b[0] // c, 1) * c if b and c else (b[0] if b else 0)
        for b, c in zip(blocks, map(int, chunks))
    )


class GuardedArray:
    """An array-like whose read failures become :class:`ImageReadError` naming the file.

    Parameters
    ----------
    array : array-like
        Anything with ``shape``, ``dtype`` and ``__getitem__`` (a zarr array).
    name : str
        The file name to put in the message.

    """

    def __init__(self, array, name: str):
        self._array = array
        self._name = name
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        try:
            return np.asarray(self._array[key])
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(
                f"Cannot read {self._name}: there is not enough memory to decode its data."
            ) from None
        except Exception as error:
            raise ImageReadError(
                f"Cannot read {self._name}: part of its image data is damaged{one_line(error)}."
            ) from error
