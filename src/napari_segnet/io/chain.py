"""Check that a TIFF's chain of image file directories (IFDs) ends.

Each IFD points to the next one. A damaged file can point back to an earlier
IFD; tifffile notices such a loop only in some cases, and otherwise walks it
page by page without end. The chain is walked here first,
reading only the few bytes of each IFD's entry count and next pointer.
"""

from __future__ import annotations

import struct
from pathlib import Path

from .errors import ImageReadError

# byte-order mark, version -> (entry-count format, entry size, offset format)
_FORMATS = {42: ("H", 12, "I"), 43: ("Q", 20, "Q")}


def check_ifd_chain(path: Path) -> None:
    """Raise :class:`ImageReadError` if the IFD chain of ``path`` loops back on itself.

    Anything else unusual (not a TIFF, a chain cut by the end of the file) is
    left to tifffile and the truncation checks, which say more about it.
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            header = fh.read(16)
            byteorder = {b"II": "<", b"MM": ">"}.get(header[:2])
            if byteorder is None or len(header) < 8:
                return
            (version,) = struct.unpack(byteorder + "H", header[2:4])
            if version not in _FORMATS or (version == 42 and size >= 2**32):
                return  # not a TIFF, or one with 64-bit offsets hidden elsewhere (NDPI)
            count_format, entry_size, offset_format = _FORMATS[version]
            if version == 43 and len(header) < 16:
                return
            start = 4 if version == 42 else 8
            offset_size = struct.calcsize(offset_format)
            (offset,) = struct.unpack(
                byteorder + offset_format, header[start : start + offset_size]
            )
            if _loops(
                fh, size, offset, byteorder + count_format, entry_size, byteorder + offset_format
            ):
                raise ImageReadError(
                    f"Cannot read {path.name}: the file is damaged (its chain of image "
                    "directories loops back on itself)."
                )
    except OSError:
        return  # unreadable: tifffile says why


def _loops(fh, size: int, offset: int, count_format: str, entry_size: int, offset_format: str):
    count_size, offset_size = struct.calcsize(count_format), struct.calcsize(offset_format)
    seen: set[int] = set()
    while offset:
        if offset in seen:
            return True
        if offset + count_size > size:
            return False
        seen.add(offset)
        fh.seek(offset)
        (count,) = struct.unpack(count_format, fh.read(count_size))
        pointer = offset + count_size + count * entry_size
        if pointer + offset_size > size:
            return False
        fh.seek(pointer)
        (offset,) = struct.unpack(offset_format, fh.read(offset_size))
    return False
