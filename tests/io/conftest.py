"""Fixtures for the io tests: real TIFF files written with tifffile into ``tmp_path``."""

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_segnet.io import ImageReadError, read_image


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def assert_read_error():
    """Return a checker: reading ``path`` fails with one user-facing sentence naming the file."""

    def check(path, **kwargs) -> str:
        with pytest.raises(ImageReadError) as info:
            read_image(path, **kwargs)
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert message.startswith("Cannot read"), message
        assert Path(path).name in message, message
        assert "\n" not in message and "\r" not in message, message
        assert "Traceback" not in message and 'File "' not in message, message
        assert message.endswith("."), message
        # One sentence: no full stop followed by another sentence.
        assert re.search(r"[.!?]\s+[A-Z]", message) is None, message
        return message

    return check


@pytest.fixture
def uncompressed_stack(tmp_path, rng):
    """A 4-plane uint16 ZYX stack, uncompressed and contiguous (memory-mappable)."""
    data = rng.integers(0, 4000, size=(4, 64, 64), dtype=np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": "ZYX"})
    return path, data


@pytest.fixture
def compressed_stack(tmp_path, rng):
    """A 4-plane uint16 stack, zlib-compressed in 32x32 tiles (not memory-mappable)."""
    data = rng.integers(0, 4000, size=(4, 64, 64), dtype=np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(
        path,
        data,
        photometric="minisblack",
        tile=(32, 32),
        compression="zlib",
        metadata={"axes": "ZYX"},
    )
    return path, data


@pytest.fixture
def ome_pyramid(tmp_path, rng):
    """A CYX OME-TIFF with two downsampled levels stored as SubIFDs."""
    data = rng.integers(0, 4000, size=(2, 64, 96), dtype=np.uint16)
    path = tmp_path / "pyramid.ome.tif"
    options = {"tile": (16, 16), "compression": "zlib", "photometric": "minisblack"}
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(
            data,
            subifds=2,
            **options,
            metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.4},
        )
        tif.write(data[:, ::2, ::2], subfiletype=1, **options)
        tif.write(data[:, ::4, ::4], subfiletype=1, **options)
    return path, data


@pytest.fixture
def multi_series(tmp_path, rng):
    """An OME-TIFF holding two images of different shapes and types."""
    first = rng.integers(0, 255, size=(32, 48), dtype=np.uint8)
    second = rng.integers(0, 4000, size=(2, 20, 30), dtype=np.uint16)
    path = tmp_path / "two_series.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(first, metadata={"axes": "YX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
        tif.write(
            second,
            metadata={
                "axes": "CYX",
                "PhysicalSizeX": 0.6,
                "PhysicalSizeY": 0.6,
                "Channel": {"Name": ["nuclei", "membrane"]},
            },
        )
    return path, first, second


def _page_boundaries(path) -> list[int]:
    with tifffile.TiffFile(path) as tif:
        return [page.offset for page in tif.pages][1:]


@pytest.fixture
def page_boundaries():
    """Return a function giving the offsets where the 2nd, 3rd, ... pages of a file begin."""
    return _page_boundaries
