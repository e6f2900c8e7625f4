"""Tests for writing labels as ImageJ-style TIFF files."""

import numpy as np
import pytest
import tifffile

from napari_segnet.io import AxesError, read_image, write_labels


@pytest.fixture
def labels_2d():
    labels = np.zeros((20, 30), dtype=np.uint16)
    labels[2:5, 3:9] = 1
    labels[10:15, 20:28] = 65535  # the largest label that still fits uint16
    return labels


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_2d_uint16_round_trip(tmp_path, labels_2d):
    path = tmp_path / "labels.tif"

    returned = write_labels(path, labels_2d, spacing=(0.5, 0.25))

    assert returned == path
    assert _files(tmp_path) == ["labels.tif"]
    image = read_image(path)
    assert image.axes == "YX"
    assert image.data.dtype == np.uint16
    np.testing.assert_array_equal(image.data, labels_2d)
    assert image.pixel_size == {"Y": 0.5, "X": 0.25}
    assert image.spacing == (0.5, 0.25)
    assert image.metadata["format"] == "ImageJ hyperstack"

    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "micron"
        page = tif.pages.first
        # Resolution is pixels per micrometre: 1 / 0.25 along X, 1 / 0.5 along Y.
        assert page.tags["XResolution"].value == (4, 1)
        assert page.tags["YResolution"].value == (2, 1)
        assert page.resolutionunit == tifffile.RESUNIT.NONE
        assert page.dtype == np.uint16


def test_labels_above_uint16_are_written_as_uint32(tmp_path, labels_2d):
    labels = labels_2d.astype(np.int64)
    labels[0, 0] = 70000
    path = tmp_path / "many.tif"

    write_labels(path, labels, spacing=(0.5, 0.25))

    image = read_image(path)
    assert image.data.dtype == np.uint32
    np.testing.assert_array_equal(image.data, labels)
    assert image.data[0, 0] == 70000
    assert image.pixel_size == {"Y": 0.5, "X": 0.25}

    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.imagej_metadata["images"] == 1
        page = tif.pages.first
        assert page.dtype == np.uint32
        assert page.tags["XResolution"].value == (4, 1)
        assert page.tags["YResolution"].value == (2, 1)
        # Same unitless resolution tags as the uint16 ImageJ file, not "4 pixels per inch".
        assert page.resolutionunit == tifffile.RESUNIT.NONE


def test_3d_zyx_with_z_spacing(tmp_path):
    labels = np.zeros((4, 20, 30), dtype=np.int32)
    labels[1, 2:4, 2:4] = 7
    labels[3, 10:12, 5:9] = 8
    path = tmp_path / "zyx.tif"

    write_labels(path, labels, spacing=(2.0, 0.5, 0.5))

    image = read_image(path)
    assert image.axes == "ZYX"
    assert image.data.dtype == np.uint16
    np.testing.assert_array_equal(image.data, labels)
    assert image.pixel_size == {"Z": 2.0, "Y": 0.5, "X": 0.5}
    assert image.spacing == (2.0, 0.5, 0.5)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["spacing"] == 2.0
        assert tif.imagej_metadata["slices"] == 4


def test_3d_uint32_keeps_z_step(tmp_path):
    labels = np.full((3, 5, 6), 70000, dtype=np.int64)
    labels[2] = 1
    path = tmp_path / "zyx32.tif"

    write_labels(path, labels, spacing=(2.0, 0.5, 0.5))

    image = read_image(path)
    assert image.axes == "ZYX"
    assert image.data.dtype == np.uint32
    np.testing.assert_array_equal(image.data, labels)
    assert image.pixel_size == {"Z": 2.0, "Y": 0.5, "X": 0.5}
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["spacing"] == 2.0
        assert tif.imagej_metadata["slices"] == 3


@pytest.mark.parametrize("big", [False, True])
def test_tzyx_with_time_interval(tmp_path, big):
    labels = np.zeros((3, 4, 20, 30), dtype=np.uint8 if not big else np.uint32)
    labels[2, 1, 2:4, 2:4] = 70000 if big else 7
    labels[0, 3, 5:9, 1:2] = 3
    path = tmp_path / "tzyx.tif"

    write_labels(path, labels, axes="TZYX", spacing=(2.0, 0.5, 0.5), time_interval=30.0)

    image = read_image(path)
    assert image.axes == "TZYX"
    assert image.data.dtype == (np.uint32 if big else np.uint16)
    np.testing.assert_array_equal(image.data, labels)
    assert image.pixel_size == {"T": 30.0, "Z": 2.0, "Y": 0.5, "X": 0.5}
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["finterval"] == 30.0
        assert tif.imagej_metadata["frames"] == 3
        assert tif.imagej_metadata["slices"] == 4


def test_axes_in_another_order_are_transposed(tmp_path):
    # Labels given as ZTYX: 4 z-slices of 3 frames. The file must hold 3 frames of 4 slices.
    labels = np.zeros((4, 3, 8, 10), dtype=np.uint16)
    labels[1, 2, 0, 0] = 5  # z=1, t=2
    path = tmp_path / "ztyx.tif"

    write_labels(path, labels, axes="ztyx")

    image = read_image(path)
    assert image.axes == "TZYX"
    assert image.data.shape == (3, 4, 8, 10)
    assert image.data[2, 1, 0, 0] == 5
    assert int(image.data.sum()) == 5


def test_int64_input(tmp_path):
    labels = np.arange(12, dtype=np.int64).reshape(3, 4)
    path = tmp_path / "int64.tif"

    write_labels(path, labels)

    image = read_image(path)
    assert image.data.dtype == np.uint16
    np.testing.assert_array_equal(image.data, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    # Without spacing the file carries no calibration.
    assert image.pixel_size == {}
    with tifffile.TiffFile(path) as tif:
        assert "unit" not in tif.imagej_metadata


def test_float_labels_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="integers"):
        write_labels(tmp_path / "f.tif", np.ones((4, 4), dtype=np.float32))
    assert _files(tmp_path) == []


def test_negative_labels_are_rejected(tmp_path):
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[1, 1] = -1
    with pytest.raises(ValueError, match="negative"):
        write_labels(tmp_path / "n.tif", labels)
    assert _files(tmp_path) == []


def test_labels_beyond_uint32_are_rejected(tmp_path):
    labels = np.zeros((4, 4), dtype=np.int64)
    labels[0, 0] = 2**32 + 5  # would wrap around to 5 as uint32
    with pytest.raises(ValueError, match="4294967301"):
        write_labels(tmp_path / "huge.tif", labels)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("shape", "spacing"), [((4, 4), (1.0,)), ((4, 4), (1.0, 1.0, 1.0)), ((2, 4, 4), (1.0, 1.0))]
)
def test_wrong_spacing_length(tmp_path, shape, spacing):
    with pytest.raises(ValueError, match="does not match the spatial axes"):
        write_labels(tmp_path / "s.tif", np.zeros(shape, dtype=np.uint16), spacing=spacing)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (1.0, -0.5), (float("nan"), 1.0)])
def test_spacing_must_be_positive(tmp_path, spacing):
    with pytest.raises(ValueError, match="positive"):
        write_labels(tmp_path / "s.tif", np.zeros((4, 4), dtype=np.uint16), spacing=spacing)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((2, 3, 4, 4), None), ((4, 4), "ZYX"), ((3, 4, 4), "CYX"), ((3, 4, 4), "YYX")],
)
def test_invalid_axes(tmp_path, shape, axes):
    with pytest.raises(AxesError):
        write_labels(tmp_path / "a.tif", np.zeros(shape, dtype=np.uint16), axes=axes)


def test_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "labels.tif"
    path.write_bytes(b"previous content")
    first = np.ones((6, 6), dtype=np.uint16)
    second = np.full((6, 6), 9, dtype=np.uint16)

    write_labels(path, first)
    write_labels(path, second, spacing=(0.5, 0.5))

    assert _files(tmp_path) == ["labels.tif"]
    image = read_image(path)
    np.testing.assert_array_equal(image.data, second)
    assert image.pixel_size == {"Y": 0.5, "X": 0.5}


def test_failed_label_write_leaves_no_temporary_file(tmp_path):
    # The destination is a folder: the TIFF is written, but cannot be moved into place.
    destination = tmp_path / "labels.tif"
    destination.mkdir()
    (destination / "keep.txt").write_text("x")

    with pytest.raises(OSError):
        write_labels(destination, np.ones((4, 4), dtype=np.uint16))

    assert _files(tmp_path) == ["labels.tif"]
    assert _files(destination) == ["keep.txt"]
