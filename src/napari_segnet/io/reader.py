"""Read OME-TIFF, ImageJ hyperstacks, plain TIFF and OME-Zarr into a :class:`MicroscopyImage`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import struct
from pathlib import Path

import numpy as np
import tifffile

from .axes import AxesError, normalise_axes, validate_axes
from .chain import check_ifd_chain
from .errors import ImageReadError, one_line
from .image import MicroscopyImage
from .lazy import open_lazy
from .limits import (
    check_chunk_memory,
    check_chunks,
    check_declared_size,
    check_in_memory,
    check_ome_sizes,
    fits_in_memory,
)
from .memory import available_memory, format_bytes
from .metadata import read_metadata
from .ome_zarr import is_ome_zarr, is_zarr_folder, read_ome_zarr

TIFF_SUFFIXES = (".tif", ".tiff")
# Files whose pixels exceed this are opened lazily (memory map or dask) instead of read whole.
LAZY_THRESHOLD_BYTES = 512 * 2**20
RGB_NAMES = ("red", "green", "blue", "alpha")


def is_tiff_path(path: str | os.PathLike) -> bool:
    """Tell whether the path has a TIFF extension (``.tif``, ``.tiff``, ``.ome.tif``...)."""
    return str(path).lower().endswith(TIFF_SUFFIXES)


def is_image_path(path: str | os.PathLike) -> bool:
    """Tell whether :func:`read_image` takes the path: a TIFF file name or an OME-Zarr folder.

    Parameters
    ----------
    path : str or os.PathLike
        Any path; only an OME-Zarr folder needs to exist to be recognised.

    Returns
    -------
    bool
        True for a path with a TIFF extension, and for an OME-Zarr image folder.

    """
    return is_tiff_path(path) or is_ome_zarr(path)


def read_image(
    path: str | os.PathLike,
    *,
    series: int = 0,
    level: int = 0,
    axes: str | None = None,
    lazy: bool | None = None,
) -> MicroscopyImage:
    """Read a microscopy TIFF or OME-Zarr image with its axes, channel names and pixel size.

    Parameters
    ----------
    path : str or os.PathLike
        An OME-TIFF, ImageJ hyperstack or plain TIFF file, or an OME-Zarr
        folder (NGFF 0.4 and older on Zarr format 2, NGFF 0.5 on Zarr format 3;
        see :mod:`napari_segnet.io.ome_zarr`).
    series : int, optional
        Which image series of a multi-series file, or image of a
        ``bioformats2raw`` OME-Zarr layout (default: the first).
    level : int, optional
        Pyramid level; 0 is full resolution.
    axes : str, optional
        Override the axes (letters from ``"TCZYXS"``, one per non-singleton
        dimension). By default they come from the file's metadata or, without
        it, from the rule documented in :mod:`napari_segnet.io.axes`.
    lazy : bool, optional
        Return a memory map or dask array instead of reading the pixels. By
        default files larger than 512 MiB, or too large for the memory still
        available, are opened lazily, and OME-Zarr folders always are. A dask
        array decodes its blocks when they are used, so memory stays bounded
        by a few blocks; a block that turns out to be damaged then raises
        :class:`ImageReadError` too.

    Returns
    -------
    MicroscopyImage

    Raises
    ------
    ImageReadError
        If the file is missing, empty, not a TIFF, truncated or otherwise
        unreadable (a Zarr folder: not OME-Zarr, or with missing or damaged
        metadata), if it declares absurd sizes (see
        :mod:`napari_segnet.io.limits`), or, with ``lazy=False``, if its
        pixels would not fit in the memory available; the message is a single
        sentence naming the file.

    """
    path = Path(path)
    if is_zarr_folder(path):
        return _read_zarr(path, series, level, axes, lazy)
    _check_file(path)
    with _quiet_tifffile():
        return _read(path, series, level, axes, lazy)


def _read_zarr(path: Path, series: int, level: int, axes: str | None, lazy: bool | None):
    """Open an OME-Zarr folder lazily; with ``lazy=False``, read its pixels into memory."""
    image = read_ome_zarr(path, series=series, level=level, axes=axes)
    if lazy is not False:
        return image
    nbytes = image.data.nbytes
    if not fits_in_memory(nbytes):
        raise ImageReadError(
            f"Cannot read {path.name} into memory: its pixels would need {format_bytes(nbytes)}, "
            f"too much for the {format_bytes(available_memory())} available (read it lazily "
            "instead)."
        )
    return dataclasses.replace(
        image, data=np.asarray(image.data), metadata={**image.metadata, "lazy": False}
    )


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's log lines about broken files: our exception says it in one sentence."""
    logger = logging.getLogger("tifffile")
    was_disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = was_disabled


def _read(path: Path, series: int, level: int, axes: str | None, lazy: bool | None):
    check_ifd_chain(path)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as error:
        raise ImageReadError(
            f"Cannot read {path.name}: it is not a valid TIFF file{one_line(error)}."
        ) from None
    keep_open = False
    try:
        image, keep_open = _read_series(tif, path, series, level, axes, lazy)
        return image
    except ImageReadError:
        raise
    except AxesError as error:
        raise ImageReadError(f"Cannot read {path.name}: {error}") from error
    except MemoryError:
        raise ImageReadError(
            f"Cannot read {path.name}: there is not enough memory to decode it."
        ) from None
    except Exception as error:
        raise ImageReadError(
            f"Cannot read {path.name}: the file is damaged or truncated{one_line(error)}."
        ) from error
    finally:
        if not keep_open:
            tif.close()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"Cannot read {path}: the file does not exist.")
    if path.is_dir():
        raise ImageReadError(f"Cannot read {path}: it is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise ImageReadError(f"Cannot read {path.name}: the file is empty.")


def _read_series(tif, path, series_index, level, axes, lazy):
    check_ome_sizes(tif, path)
    if not tif.series:
        raise ImageReadError(f"Cannot read {path.name}: it contains no image.")
    if not 0 <= series_index < len(tif.series):
        raise ImageReadError(
            f"Cannot read series {series_index} of {path.name}: it has {len(tif.series)} series."
        )
    series = tif.series[series_index]
    if not 0 <= level < len(series.levels):
        raise ImageReadError(
            f"Cannot read level {level} of {path.name}: it has {len(series.levels)} level(s)."
        )
    shape, file_axes = tuple(series.levels[level].shape), series.levels[level].axes
    if len(shape) < 2:
        raise ImageReadError(
            f"Cannot read {path.name}: its data has shape {shape}, not an image of at least 2-D."
        )
    if min(shape) == 0:
        raise ImageReadError(
            f"Cannot read {path.name}: it declares an image of shape {shape}, which holds no "
            "pixels (the file is probably damaged)."
        )
    check_declared_size(series.levels[level], path)
    _check_not_truncated(tif, series.levels[level], path)
    check_chunks(series.levels[level], path)
    if axes is None:
        rgb = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
        axes, inferred = normalise_axes(file_axes, shape, rgb=rgb)
    else:
        axes, inferred = validate_axes(axes, len(shape)), False

    nbytes = series.levels[level].nbytes
    if lazy is None:
        lazy = nbytes > LAZY_THRESHOLD_BYTES or not fits_in_memory(nbytes)
    check_chunk_memory(series.levels[level], path)
    if lazy:
        data = open_lazy(tif, path, series_index, level)
    else:
        check_in_memory(series.levels[level], path, os.path.getsize(path))
        data = series.asarray(level=level)
    if "S" in axes and axes[-1] != "S":  # planar RGB: napari and numpy expect samples last
        data = np.moveaxis(data, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"

    meta = read_metadata(tif, series_index)
    if axes.endswith("S"):
        names = RGB_NAMES[: data.shape[-1]]
    else:
        names = _channel_names(meta.channel_names, axes, data.shape)
    wavelengths = (
        tuple(meta.emission_wavelengths)
        if len(meta.emission_wavelengths) == len(names)
        else (None,) * len(names)
    )
    pixel_size = {a: s for a, s in meta.pixel_size.items() if a in axes}
    extra = {
        **meta.extra,
        "series": series_index,
        "n_series": len(tif.series),
        "level": level,
        "n_levels": len(series.levels),
        "file_axes": file_axes,
        "axes_inferred": inferred,
        "dtype": str(series.dtype),
        "lazy": bool(lazy),
        # MicroscopyImage.spacing takes a missing Z step as 1 µm: say so.
        "z_step_assumed": "Z" in axes and {"Y", "X"} <= pixel_size.keys() and "Z" not in pixel_size,
    }
    if level > 0:
        # Each pyramid level halves (or otherwise divides) Y and X: rescale their pixel size.
        full = series.levels[0].shape
        for axis in "YX":
            if axis in pixel_size:
                i = file_axes.index(axis)
                pixel_size[axis] *= full[series.levels[0].axes.index(axis)] / shape[i]
    image = MicroscopyImage(
        data=data,
        axes=axes,
        channel_names=names,
        pixel_size=pixel_size,
        emission_wavelengths=wavelengths,
        path=path,
        metadata=extra,
    )
    # A zarr store reads from the open file handle later; a memory map has its own.
    return image, bool(lazy) and not isinstance(data, np.ndarray)


def _check_not_truncated(tif, series, path: Path) -> None:
    """Fail early, while we can still say why, if image data lies beyond the end of the file.

    ``series`` is the pyramid level being read. The chain of image file
    directories is checked too: a file cut between two images would otherwise
    read as a valid file with fewer planes, or even with other axes.
    """
    size = os.path.getsize(path)
    if not _ifd_chain_complete(tif, size):
        raise ImageReadError(
            f"Cannot read {path.name}: the file is truncated ({size} bytes, "
            "it ends where its next image should begin)."
        )
    if series.dataoffset is not None:  # contiguous: one check covers every plane
        end = series.dataoffset + series.nbytes
    else:
        # Data is written in order: the last planes (of the series and of the file) end last.
        last = tif.pages[len(tif.pages) - 1]
        pages = (series.keyframe, series.pages[len(series.pages) - 1], last)
        ends = [
            o + n
            for page in pages
            if page is not None
            for o, n in zip(page.dataoffsets, page.databytecounts)
            if n
        ]
        end = max(ends, default=0)
    if end > size:
        raise ImageReadError(
            f"Cannot read {path.name}: the file is truncated ({size} bytes, "
            f"image data runs to byte {end})."
        )


def _ifd_chain_complete(tif, size: int) -> bool:
    """Tell whether the last image file directory tifffile found is really the last one.

    tifffile stops, with a log line only, at a directory that lies beyond the
    end of the file or does not fit in it.
    """
    tiff, fh = tif.tiff, tif.filehandle

    def read(offset: int, fmt: str, nbytes: int) -> int | None:
        if offset + nbytes > size:
            return None
        fh.seek(offset)
        return struct.unpack(fmt, fh.read(nbytes))[0]

    offset = tif.pages[len(tif.pages) - 1].offset
    count = read(offset, tiff.tagnoformat, tiff.tagnosize)
    if count is None:
        return False
    following = read(
        offset + tiff.tagnosize + count * tiff.tagsize, tiff.offsetformat, tiff.offsetsize
    )
    if not following:  # 0: the chain ends here; None: the pointer itself is cut
        return following == 0
    count = read(following, tiff.tagnoformat, tiff.tagnosize)
    return count is not None and following + tiff.tagnosize + count * tiff.tagsize <= size


def _channel_names(file_names: list[str], axes: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    if "C" not in axes:
        return (file_names[0],) if len(file_names) == 1 and file_names[0] else ()
    n = shape[axes.index("C")]
    names = list(file_names[:n]) if len(file_names) >= n else []
    return tuple(name or f"Channel {i}" for i, name in enumerate(names or [""] * n))
