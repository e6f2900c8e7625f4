"""Sanity checks of what a TIFF declares, done before any pixel is decoded.

A damaged or hostile file can declare sizes that would make a reader allocate
terabytes, build billions of chunks, or decode a small file into gigabytes
(a decompression bomb). These checks refuse such files with one sentence:

* every dimension is at most :data:`MAX_DIMENSION` and the image at most
  :data:`MAX_BYTES` (OME metadata too, before tifffile builds its page list);
* compressed (or otherwise chunked) data has a tile or strip for every part of
  the image, and tiles are not far larger than the image;
* one decoded tile or strip, and an image read whole into memory, fit in the
  memory this process can still use (:func:`~napari_segnet.io.memory.available_memory`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .errors import ImageReadError
from .memory import available_memory, format_bytes

# No real image is longer than this along one axis (16.7 million pixels).
MAX_DIMENSION = 2**24
# Nor larger than this in total (256 TiB).
MAX_BYTES = 2**48
# Most planes that OME metadata may declare, summed over all its images.
MAX_OME_PLANES = 2**24
# Tiles up to this many pixels are always plausible; larger only if the image is larger.
MAX_TILE_PIXELS = 2**24
# Share of the available memory that one in-memory read may take.
MEMORY_SHARE = 0.8
# Decoded bytes per byte of file beyond which a refusal mentions a decompression bomb
# (deflate cannot exceed about 1032:1, so a deflate bomb stays below 1000:1). Only
# the wording depends on it: sparse label images legitimately compress this well.
BOMB_RATIO = 100

_OME_PIXELS = re.compile(r"<(?:\w+:)?Pixels\b([^>]*)>")
_OME_SIZE = re.compile(r"\bSize([XYZCT])\s*=\s*[\"'](\d+)[\"']")


def memory_budget() -> int:
    """Return the most bytes that one read may allocate: a share of the available memory."""
    return int(available_memory() * MEMORY_SHARE)


def check_ome_sizes(tif, path: Path) -> None:
    """Refuse OME metadata declaring absurd sizes, before tifffile sizes its page list by them."""
    try:
        xml = tif.ome_metadata if tif.is_ome else None
    except Exception:  # an unreadable description: tifffile falls back to plain pages
        return
    planes = 0
    for match in _OME_PIXELS.finditer(xml or ""):
        sizes = {axis: int(value) for axis, value in _OME_SIZE.findall(match.group(1))}
        if any(size > MAX_DIMENSION for size in sizes.values()):
            raise ImageReadError(
                f"Cannot read {path.name}: its OME metadata declares an image of "
                f"{_sizes(sizes)}, too large to be real (the file is probably damaged)."
            )
        planes += sizes.get("Z", 1) * sizes.get("C", 1) * sizes.get("T", 1)
    if planes > MAX_OME_PLANES:
        raise ImageReadError(
            f"Cannot read {path.name}: its OME metadata declares {planes} image planes, "
            "too many to be real (the file is probably damaged)."
        )


def check_declared_size(level, path: Path) -> None:
    """Refuse a series (pyramid level) whose declared shape is absurdly large."""
    shape = tuple(level.shape)
    keyframe = level.keyframe
    dims = (*shape, keyframe.imagewidth, keyframe.imagelength, keyframe.imagedepth)
    if max(dims) > MAX_DIMENSION or level.nbytes > MAX_BYTES:
        raise ImageReadError(
            f"Cannot read {path.name}: it declares an image of shape {shape}, "
            "too large to be real (the file is probably damaged)."
        )


def check_chunks(level, path: Path) -> None:
    """Refuse chunked (tiled, striped, compressed) data that cannot hold the declared image."""
    if level.dataoffset is not None:  # contiguous: the truncation check covers it
        return
    keyframe = level.keyframe
    kind = "tiles" if keyframe.is_tiled else "strips"
    needed = math.prod(keyframe.chunked)
    last = level.pages[len(level.pages) - 1]
    for page in (keyframe, last):
        if page is not None and len(page.dataoffsets) < needed:
            raise ImageReadError(
                f"Cannot read {path.name}: the file is damaged (an image needs {needed} "
                f"{kind} but the file lists {len(page.dataoffsets)})."
            )
    if keyframe.is_tiled:
        tile = math.prod(keyframe.tile)
        image = keyframe.imagewidth * keyframe.imagelength * keyframe.imagedepth
        if tile > max(MAX_TILE_PIXELS, image):
            raise ImageReadError(
                f"Cannot read {path.name}: the file is damaged (its tiles of "
                f"{' x '.join(map(str, keyframe.tile))} pixels are far larger than the image)."
            )


def chunk_nbytes(level) -> int:
    """Return the bytes of one decoded tile or strip of ``level`` (0 if contiguous)."""
    if level.dataoffset is not None:
        return 0
    return math.prod(level.keyframe.chunks) * level.dtype.itemsize


def fits_in_memory(nbytes: int) -> bool:
    """Tell whether reading ``nbytes`` whole stays within :func:`memory_budget`."""
    return nbytes <= memory_budget()


def check_chunk_memory(level, path: Path) -> None:
    """Refuse data whose single tile or strip would not fit in memory once decoded."""
    nbytes = chunk_nbytes(level)
    if nbytes and not fits_in_memory(nbytes):
        raise ImageReadError(
            f"Cannot read {path.name}: one tile or strip of it would need "
            f"{format_bytes(nbytes)} of memory when decoded, too much for the "
            f"{format_bytes(available_memory())} available (the file is probably damaged)."
        )


def check_in_memory(level, path: Path, file_size: int) -> None:
    """Refuse to read ``level`` whole into memory when it would not fit."""
    nbytes = level.nbytes
    if fits_in_memory(nbytes):
        return
    ratio = nbytes / max(file_size, 1)
    hint = "read it lazily instead"
    if ratio > BOMB_RATIO:
        hint += (
            f", and check the file: its pixels would take {ratio:.0f} times its size, "
            "as in a damaged file or a decompression bomb"
        )
    raise ImageReadError(
        f"Cannot read {path.name} into memory: its pixels would need {format_bytes(nbytes)}, "
        f"too much for the {format_bytes(available_memory())} available ({hint})."
    )


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{axis}={size}" for axis, size in sizes.items())
