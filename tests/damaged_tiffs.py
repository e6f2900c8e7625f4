"""A corpus of damaged and hostile TIFF files, generated from small real-looking images.

``write_sources(folder)`` writes intact TIFFs of several kinds (plain, ImageJ,
OME; uncompressed, deflate, LZW; strips and tiles; classic and BigTIFF).
``damaged_variants(source)`` yields ``(label, content)`` pairs: the source's bytes
truncated, with flipped bytes, or with tags patched to absurd values. Every
variant is deterministic. ``write_bomb(path)`` writes a decompression bomb
without ever holding its pixels in memory.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

# TIFF tag codes
IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION = 256, 257, 258, 259
STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS = 273, 277, 278, 279
PLANAR_CONFIG, PREDICTOR, TILE_WIDTH, TILE_LENGTH = 284, 317, 322, 323
TILE_OFFSETS, TILE_BYTE_COUNTS, SAMPLE_FORMAT = 324, 325, 339


def _nuclei(rng, shape, dtype) -> np.ndarray:
    """Bright blurry blobs on a noisy background, like a nuclear stain."""
    *lead, height, width = shape
    yy, xx = np.mgrid[:height, :width]
    planes = []
    for _ in range(int(np.prod(lead, dtype=int))):
        plane = rng.normal(0.1, 0.02, (height, width))
        for _ in range(6):
            cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, 8)
            plane += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        planes.append(plane)
    data = np.clip(np.stack(planes).reshape(shape), 0, 1)
    top = 255 if dtype == np.uint8 else 4000
    return (data * top).astype(dtype)


def write_sources(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write the intact source files into ``folder``; return them by name."""
    rng = np.random.default_rng(seed)
    u8, u16 = np.uint8, np.uint16
    mono = {"photometric": "minisblack"}
    sources = {
        "plain-raw-strips": (
            _nuclei(rng, (48, 64), u16),
            {**mono, "rowsperstrip": 16, "metadata": None},
        ),
        "plain-zlib-tiles": (
            _nuclei(rng, (3, 64, 64), u16),
            {**mono, "tile": (16, 16), "compression": "zlib", "metadata": {"axes": "ZYX"}},
        ),
        "plain-lzw-strips": (
            _nuclei(rng, (64, 80), u8),
            {**mono, "rowsperstrip": 8, "compression": "lzw", "metadata": None},
        ),
        "bigtiff-zlib-predictor-tiles": (
            _nuclei(rng, (64, 64), u16),
            {**mono, "tile": (32, 32), "compression": "zlib", "predictor": True, "bigtiff": True},
        ),
        "rgb-lzw-strips": (
            _nuclei(rng, (40, 48, 3), u8),
            {"photometric": "rgb", "compression": "lzw", "rowsperstrip": 10},
        ),
        "imagej-raw": (
            _nuclei(rng, (4, 40, 48), u16),
            {"imagej": True, "metadata": {"axes": "ZYX", "spacing": 2.0}},
        ),
        "imagej-zlib": (
            _nuclei(rng, (2, 48, 48), u8),
            {"imagej": True, "compression": "zlib", "metadata": {"axes": "CYX"}},
        ),
        "ome-zlib-tiles": (
            _nuclei(rng, (2, 64, 64), u16),
            {
                **mono,
                "ome": True,
                "tile": (16, 16),
                "compression": "zlib",
                "metadata": {"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
            },
        ),
        "ome-raw": (
            _nuclei(rng, (3, 40, 40), u8),
            {**mono, "ome": True, "metadata": {"axes": "ZYX"}},
        ),
    }
    paths = {}
    for name, (data, options) in sources.items():
        path = folder / f"{name}.tif"
        tifffile.imwrite(path, data, **options)
        paths[name] = path
    paths["ome-lzw-pyramid"] = _write_pyramid(folder / "ome-lzw-pyramid.ome.tif", rng)
    return paths


def _write_pyramid(path: Path, rng) -> Path:
    data = _nuclei(rng, (64, 96), np.uint16)
    options = {"tile": (16, 16), "compression": "lzw", "photometric": "minisblack"}
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, subifds=1, metadata={"axes": "YX"}, **options)
        tif.write(data[::2, ::2], subfiletype=1, **options)
    return path


def write_hostile_metadata(folder: Path) -> dict[str, Path]:
    """Write files whose metadata (OME, ImageJ, tifffile's own) declares absurd sizes."""
    data = _nuclei(np.random.default_rng(1), (4, 32, 32), np.uint16)
    plain = folder / "metadata-source.ome.tif"
    tifffile.imwrite(plain, data, ome=True, compression="zlib", metadata={"axes": "ZYX"})
    with tifffile.TiffFile(plain) as tif:
        xml = tif.ome_metadata
    ij = tifffile.imagej_description(data.shape, axes="ZYX")
    descriptions = {
        "hostile-ome-huge-z.ome.tif": xml.replace('SizeZ="4"', 'SizeZ="1000000000"'),
        "hostile-ome-huge-x.ome.tif": xml.replace('SizeX="32"', 'SizeX="2147483647"'),
        "hostile-ome-many-images.ome.tif": xml.replace(
            "</Image>", '</Image><Image ID="Image:1"><Pixels SizeZ="20000000"/></Image>', 1
        ),
        "hostile-imagej-huge-images.tif": ij.replace("images=4", "images=1000000000").replace(
            "slices=4", "slices=1000000000"
        ),
        "hostile-imagej-huge-frames.tif": "ImageJ=1.11a\nimages=4\nframes=2000000000\n"
        "slices=2000000000\nhyperstack=true\n",
        "hostile-shaped-huge.tif": json.dumps({"shape": [2**20, 2**20, 2**20, 32, 32]}),
    }
    paths = {}
    for name, description in descriptions.items():
        for compression in (None, "zlib"):
            path = folder / name.replace(".", f"-{compression or 'raw'}.", 1)
            tifffile.imwrite(
                path,
                data,
                description=description,
                metadata=None,
                photometric="minisblack",
                compression=compression,
            )
            paths[path.name] = path
    return paths


def write_bomb(path: Path, shape=(40000, 40000), tile=(256, 256)) -> Path:
    """Write a tiled deflate TIFF of zeros; tiles are encoded once, so memory stays small."""
    n_tiles = -(-shape[0] // tile[0]) * -(-shape[1] // tile[1])
    encoded = zlib.compress(bytes(tile[0] * tile[1]), 9)
    tifffile.imwrite(
        path,
        (encoded for _ in range(n_tiles)),
        shape=shape,
        dtype=np.uint8,
        tile=tile,
        compression="zlib",
        photometric="minisblack",
    )
    return path


def write_many_tiles(path: Path, side: int = 4096, tile: int = 16) -> tuple[Path, np.ndarray]:
    """Write a real image of ``(side / tile)²`` tiny tiles (65536 by default)."""
    data = (np.add.outer(np.arange(side), np.arange(side)) % 251).astype(np.uint8)
    tifffile.imwrite(path, data, tile=(tile, tile), compression="zlib", photometric="minisblack")
    return path, data


# --------------------------------------------------------------------------- file layout


@dataclass(frozen=True)
class Tag:
    code: int
    entry: int  # where the 12 (BigTIFF: 20) byte entry starts
    value: int  # where the value lies (inside the entry when it fits)
    count: int
    inline: bool


@dataclass(frozen=True)
class Layout:
    byteorder: str
    bigtiff: bool
    ifd: int  # offset of the first image file directory
    ifd_end: int  # offset just past its entries: where the next-IFD pointer lies
    tags: dict[int, Tag]
    segments: list[tuple[int, int]]  # (offset, byte count) of the first image's data


def layout(path: Path) -> Layout:
    """Where the header, first IFD, its tags and its image data lie in ``path``."""
    logger = logging.getLogger("tifffile")
    was, logger.disabled = logger.disabled, True
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tiff = tif.tiff
            tags = {}
            for tag in page.tags:
                inline = tag.valueoffset == tag.offset + 4 + 2 * tiff.offsetsize
                tags[tag.code] = Tag(tag.code, tag.offset, tag.valueoffset, tag.count, inline)
            return Layout(
                byteorder=tif.byteorder,
                bigtiff=tif.is_bigtiff,
                ifd=page.offset,
                ifd_end=page.offset + tiff.tagnosize + len(page.tags) * tiff.tagsize,
                tags=tags,
                segments=[
                    (int(o), int(n)) for o, n in zip(page.dataoffsets, page.databytecounts) if n
                ],
            )
    finally:
        logger.disabled = was


def set_tag(raw: bytearray, where: Layout, code: int, value: int, count: int = 1) -> bool:
    """Give tag ``code`` one inline integer ``value`` (and ``count``); False if it is absent."""
    tag = where.tags.get(code)
    if tag is None:
        return False
    bo = where.byteorder
    if where.bigtiff:
        struct.pack_into(bo + "HQQ", raw, tag.entry + 2, 16, count, value)
    else:
        struct.pack_into(bo + "HII", raw, tag.entry + 2, 4, count, value)
    return True


def set_tag_count(raw: bytearray, where: Layout, code: int, count: int) -> bool:
    """Change only the value count of tag ``code`` (its values stay where they are)."""
    tag = where.tags.get(code)
    if tag is None:
        return False
    struct.pack_into(where.byteorder + ("Q" if where.bigtiff else "I"), raw, tag.entry + 4, count)
    return True


def set_all_values(raw: bytearray, where: Layout, code: int, values: list[int]) -> bool:
    """Overwrite every value of an offsets/byte-counts tag in place, keeping its type."""
    tag = where.tags.get(code)
    if tag is None:
        return False
    (kind,) = struct.unpack_from(where.byteorder + "H", raw, tag.entry + 2)
    fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
    if fmt is None:
        return False
    limit = 2 ** (8 * struct.calcsize(fmt)) - 1
    for i in range(tag.count):
        value = min(values[i % len(values)], limit)
        struct.pack_into(where.byteorder + fmt, raw, tag.value + i * struct.calcsize(fmt), value)
    return True


# --------------------------------------------------------------------------- variants


def damaged_variants(source: Path, *, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """Yield ``(label, content)`` for deterministic damaged versions of ``source``."""
    original = source.read_bytes()
    size = len(original)
    where = layout(source)
    rng = np.random.default_rng(seed)
    yield from _truncations(original, where)
    yield from _flips(original, where, rng)
    yield from _patches(original, where, size)


def _truncations(original: bytes, where: Layout) -> Iterator[tuple[str, bytes]]:
    size = len(original)
    header = 16 if where.bigtiff else 8
    cuts = {1, 3, header - 1, header, where.ifd + 1, where.ifd + 2, where.ifd_end - 1}
    cuts |= {where.ifd + (where.ifd_end - where.ifd) // 2, where.ifd_end + 2, size - 1}
    cuts |= {tag.value + 1 for tag in where.tags.values() if not tag.inline}
    for offset, count in where.segments[:1] + where.segments[-1:]:
        cuts |= {offset + 1, offset + count // 2, offset + count - 1}
    cuts |= {size * k // 13 for k in range(1, 13)}
    for cut in sorted(c for c in cuts if 0 < c < size):
        yield f"cut-at-{cut}", original[:cut]


def _flips(original: bytes, where: Layout, rng) -> Iterator[tuple[str, bytes]]:
    header = 16 if where.bigtiff else 8
    for i in range(header):
        yield f"header-byte-{i}-flipped", _xor(original, i, 0xFF)
    # Every byte of the first IFD, and its next-IFD pointer, inverted; every other one bit-flipped.
    pointer = 8 if where.bigtiff else 4
    for i in range(where.ifd, where.ifd_end + pointer):
        yield f"ifd-byte-{i}-inverted", _xor(original, i, 0xFF)
        if i % 2 == 0:
            yield f"ifd-byte-{i}-bit-flipped", _xor(original, i, 0x01)
    # Tag values stored outside the IFD (offsets, counts, descriptions).
    outside = [t for t in where.tags.values() if not t.inline]
    for k in range(min(len(outside) * 3, 24)):
        tag = outside[k % len(outside)]
        i = tag.value + int(rng.integers(0, max(tag.count, 1)))
        if i < len(original):
            yield f"tag-{tag.code}-byte-{i}-inverted", _xor(original, i, 0xFF)
    # Pixel data: short runs of random bytes.
    for _ in range(24):
        offset, count = where.segments[int(rng.integers(0, len(where.segments)))]
        i = offset + int(rng.integers(0, count))
        run = int(rng.integers(1, 5))
        raw = bytearray(original)
        raw[i : i + run] = rng.integers(0, 256, run, dtype=np.uint8).tobytes()[: len(raw) - i]
        yield f"body-{i}-{run}-bytes-replaced", bytes(raw[: len(original)])


def _xor(original: bytes, i: int, mask: int) -> bytes:
    raw = bytearray(original)
    raw[i] ^= mask
    return bytes(raw)


def _patches(original: bytes, where: Layout, size: int) -> Iterator[tuple[str, bytes]]:
    def patched(label, *edits):
        raw = bytearray(original)
        if all(edit(raw) for edit in edits):
            yield label, bytes(raw)

    def tag(code, value, count=1):
        return lambda raw: set_tag(raw, where, code, value, count)

    for value in (2**31 - 1, 2**16, 2**24, 0):
        yield from patched(f"width-{value}", tag(IMAGE_WIDTH, value))
        yield from patched(f"length-{value}", tag(IMAGE_LENGTH, value))
        yield from patched(
            f"width-length-{value}", tag(IMAGE_WIDTH, value), tag(IMAGE_LENGTH, value)
        )
    for value in (0, 1, 17, 2**16, 2**31):
        yield from patched(f"tile-width-{value}", tag(TILE_WIDTH, value))
        yield from patched(f"tile-{value}", tag(TILE_WIDTH, value), tag(TILE_LENGTH, value))
    for value in (0, 1, 2**32 - 1):
        yield from patched(f"rows-per-strip-{value}", tag(ROWS_PER_STRIP, value))
    for value in (0, 1, 3, 7, 64, 65535):
        yield from patched(f"bits-per-sample-{value}", tag(BITS_PER_SAMPLE, value))
    for value in (0, 3, 65535):
        yield from patched(f"samples-per-pixel-{value}", tag(SAMPLES_PER_PIXEL, value))
    for code, name in ((COMPRESSION, "compression"), (PREDICTOR, "predictor")):
        for value in (1, 5, 8, 65535):
            yield from patched(f"{name}-{value}", tag(code, value))
    yield from patched("planar-config-2", tag(PLANAR_CONFIG, 2))
    yield from patched("sample-format-float", tag(SAMPLE_FORMAT, 3))
    for offsets, counts in ((STRIP_OFFSETS, STRIP_BYTE_COUNTS), (TILE_OFFSETS, TILE_BYTE_COUNTS)):
        kind = "strip" if offsets == STRIP_OFFSETS else "tile"

        def values(code, numbers):
            return lambda raw: set_all_values(raw, where, code, numbers)

        def count(code, n):
            return lambda raw: set_tag_count(raw, where, code, n)

        yield from patched(f"{kind}-byte-counts-zero", values(counts, [0]))
        yield from patched(f"{kind}-byte-counts-huge", values(counts, [2**31]))
        yield from patched(f"{kind}-offsets-past-eof", values(offsets, [size + 1000]))
        yield from patched(f"{kind}-first-offset-past-eof", tag(offsets, size + 1000))
        yield from patched(f"{kind}-offsets-count-0", count(offsets, 0), count(counts, 0))
        yield from patched(f"{kind}-offsets-count-huge", count(offsets, 2**30))
        yield from patched(f"{kind}-counts-count-huge", count(counts, 2**30))
    pointer = where.byteorder + ("Q" if where.bigtiff else "I")
    at = 8 if where.bigtiff else 4
    for label, value in (("past-eof", size + 1000), ("itself", where.ifd), ("header", 0 + 2)):
        raw = bytearray(original)
        struct.pack_into(pointer, raw, where.ifd_end, value)
        yield f"next-ifd-{label}", bytes(raw)
        raw = bytearray(original)
        struct.pack_into(pointer, raw, at, value)
        yield f"first-ifd-{label}", bytes(raw)


# --------------------------------------------------------------------------- reading them


def sentence_problems(message: str, name: str) -> list[str]:
    """What keeps ``message`` from being one user-facing sentence naming file ``name``."""
    checks = {
        "does not start with 'Cannot read'": message.startswith("Cannot read"),
        "does not name the file": name in message,
        "spans several lines": "\n" not in message and "\r" not in message,
        "shows a traceback": "Traceback" not in message and 'File "' not in message,
        "does not end with a full stop": message.endswith("."),
        "holds more than one sentence": re.search(r"[.!?]\s+[A-Z]", message) is None,
    }
    return [problem for problem, fine in checks.items() if not fine]


def outcome(path: Path, lazy: bool | None) -> dict:
    """Read ``path`` like a user would, then use its pixels; describe what happened."""
    from napari_segnet.io import ImageReadError, read_image

    try:
        image = read_image(path, lazy=lazy)
        data = image.data
        if data.nbytes <= 256 * 2**20:
            pixels = np.asarray(data)
        else:  # large (declared) data: use one corner, as a viewer would
            corner = tuple(slice(0, 1) for _ in data.shape[:-2]) + (slice(0, 512),) * 2
            expected = tuple(min(s.stop, n) for s, n in zip(corner, data.shape))
            pixels = np.asarray(data[corner])
            if pixels.shape != expected:
                raise AssertionError(f"a corner of {data.shape} read as {pixels.shape}")
            pixels = data  # the shape is checked
        return {
            "result": "ok",
            "shape": list(data.shape),
            "read_shape": list(pixels.shape),
            "lazy": bool(image.metadata["lazy"]),
            "type": type(data).__name__,
        }
    except ImageReadError as error:
        return {"result": "ImageReadError", "message": str(error)}
    except BaseException as error:  # what the test is looking for: anything else
        import traceback

        return {
            "result": type(error).__name__,
            "message": str(error)[:500],
            "traceback": traceback.format_exc()[-3000:],
        }


def _limit_address_space(extra_bytes: int) -> None:
    """Let this process use at most ``extra_bytes`` more virtual memory than it uses now."""
    import os
    import resource

    used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = used + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _report(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _main(argv: list[str]) -> None:
    """Worker: ``corpus FOLDER LAZY LIMIT`` or ``files LAZY LIMIT FILE...``; one JSON line each.

    LAZY is ``none``, ``true`` or ``false``; LIMIT the extra virtual memory
    allowed, in bytes. A ``{"start": name}`` line precedes every read, so that a
    watchdog can tell which file hangs.
    """
    import dask

    import napari_segnet.io  # noqa: F401  (imported before the limit is set)

    dask.config.set(num_workers=2)
    mode, rest = argv[0], argv[1:]
    if mode == "corpus":
        folder, lazy_word, limit = Path(rest[0]), rest[1], int(rest[2])
    else:
        lazy_word, limit = rest[0], int(rest[1])
    lazy = {"none": None, "true": True, "false": False}[lazy_word]
    _limit_address_space(limit)
    if mode == "files":
        for name in rest[2:]:
            _report({"start": Path(name).name})
            _report({"file": Path(name).name, **outcome(Path(name), lazy)})
        return
    sources = write_sources(folder)
    sources.update(write_hostile_metadata(folder))
    for name, source in sources.items():
        for label, content in [("intact", source.read_bytes()), *damaged_variants(source)]:
            path = folder / f"{name.removesuffix('.tif')}--{label}.tif"
            path.write_bytes(content)
            _report({"start": path.name})
            _report({"file": path.name, **outcome(path, lazy)})
            path.unlink()


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
