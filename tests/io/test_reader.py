"""Tests for reading OME-TIFF, ImageJ hyperstacks and plain TIFF files."""

import logging
import os

import dask.array as da
import numpy as np
import pytest
import tifffile

import napari_segnet.io.reader as reader_module
from napari_segnet.io import AxesError, ImageReadError, MicroscopyImage, is_tiff_path, read_image

# --------------------------------------------------------------------------- OME-TIFF


def test_ome_cyx_channel_names_and_pixel_size(tmp_path, rng):
    data = rng.integers(0, 4000, size=(3, 32, 48), dtype=np.uint16)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.25,
            "Channel": {"Name": ["DAPI", "GFP", "mCherry"]},
        },
    )

    image = read_image(path)

    assert image.axes == "CYX"
    assert isinstance(image.data, np.ndarray)
    np.testing.assert_array_equal(image.data, data)
    assert image.channel_names == ("DAPI", "GFP", "mCherry")
    assert image.pixel_size == {"X": 0.5, "Y": 0.25}
    assert image.spacing == (0.25, 0.5)
    assert image.emission_wavelengths == (None, None, None)
    assert image.n_channels == 3
    assert image.metadata["format"] == "OME-TIFF"
    assert image.metadata["axes_inferred"] is False
    assert image.path == path


def test_ome_nanometre_pixel_size_and_emission_wavelengths(tmp_path, rng):
    data = rng.integers(0, 4000, size=(2, 16, 16), dtype=np.uint16)
    path = tmp_path / "nm.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 650,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 325,
            "PhysicalSizeYUnit": "nm",
            "Channel": {"Name": ["DAPI", "GFP"], "EmissionWavelength": [461, 509]},
        },
    )

    image = read_image(path)

    assert image.pixel_size == {"X": pytest.approx(0.65), "Y": pytest.approx(0.325)}
    assert image.emission_wavelengths == (pytest.approx(461.0), pytest.approx(509.0))


def test_ome_czyx_z_step(tmp_path, rng):
    data = rng.integers(0, 4000, size=(2, 5, 32, 48), dtype=np.uint16)
    path = tmp_path / "czyx.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={"axes": "CZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
    )

    image = read_image(path)

    assert image.axes == "CZYX"
    assert image.data.shape == (2, 5, 32, 48)
    np.testing.assert_array_equal(image.data, data)
    assert image.pixel_size == {"Z": 2.0, "Y": 0.5, "X": 0.5}
    assert image.spacing == (2.0, 0.5, 0.5)
    assert image.spatial_axes == "ZYX"
    # Unnamed OME channels get placeholder names, one per channel.
    assert image.channel_names == ("Channel 0", "Channel 1")
    assert image.metadata["z_step_assumed"] is False


@pytest.mark.parametrize(
    ("increment", "unit", "seconds"), [(30, "s", 30.0), (1500, "ms", 1.5), (2, "min", 120.0)]
)
def test_ome_tczyx_time_increment(tmp_path, rng, increment, unit, seconds):
    data = rng.integers(0, 4000, size=(4, 2, 3, 16, 24), dtype=np.uint16)
    path = tmp_path / "timelapse.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={
            "axes": "TCZYX",
            "TimeIncrement": increment,
            "TimeIncrementUnit": unit,
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "PhysicalSizeZ": 1.5,
        },
    )

    image = read_image(path)

    assert image.axes == "TCZYX"
    np.testing.assert_array_equal(image.data, data)
    assert image.pixel_size == {"T": pytest.approx(seconds), "Z": 1.5, "Y": 0.5, "X": 0.5}


def test_ome_size_one_axes_are_dropped(tmp_path, rng):
    data = rng.integers(0, 4000, size=(1, 2, 1, 16, 24), dtype=np.uint16)
    path = tmp_path / "single_plane.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={
            "axes": "TCZYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "PhysicalSizeZ": 3.0,
            "TimeIncrement": 2.0,
        },
    )

    image = read_image(path)

    assert image.axes == "CYX"
    assert image.data.shape == (2, 16, 24)
    np.testing.assert_array_equal(image.data, data[0, :, 0])
    # No Z or T axis left, so no Z step or time interval either.
    assert image.pixel_size == {"X": 0.5, "Y": 0.5}
    assert image.spacing == (0.5, 0.5)


def test_ome_pyramid_full_resolution_by_default(ome_pyramid):
    path, data = ome_pyramid

    image = read_image(path)

    assert image.axes == "CYX"
    assert image.data.shape == (2, 64, 96)
    np.testing.assert_array_equal(image.data, data)
    assert image.pixel_size == {"X": 0.5, "Y": 0.4}
    assert image.metadata["level"] == 0
    assert image.metadata["n_levels"] == 3


@pytest.mark.parametrize(("level", "step"), [(1, 2), (2, 4)])
def test_ome_pyramid_lower_levels(ome_pyramid, level, step):
    path, data = ome_pyramid

    image = read_image(path, level=level)

    assert image.axes == "CYX"
    assert image.data.shape == (2, 64 // step, 96 // step)
    np.testing.assert_array_equal(image.data, data[:, ::step, ::step])
    assert image.pixel_size == {"X": pytest.approx(0.5 * step), "Y": pytest.approx(0.4 * step)}
    assert image.metadata["level"] == level


def test_ome_pyramid_level_out_of_range(ome_pyramid, assert_read_error):
    path, _ = ome_pyramid
    message = assert_read_error(path, level=3)
    assert "3 level" in message


def test_ome_pyramid_lower_level_lazily(ome_pyramid):
    path, data = ome_pyramid
    image = read_image(path, level=1, lazy=True)
    assert isinstance(image.data, da.Array)
    np.testing.assert_array_equal(image.data.compute(), data[:, ::2, ::2])


def test_multi_series_first_by_default(multi_series):
    path, first, _ = multi_series

    image = read_image(path)

    assert image.axes == "YX"
    assert image.data.dtype == np.uint8
    np.testing.assert_array_equal(image.data, first)
    assert image.pixel_size == {"X": 0.3, "Y": 0.3}
    assert image.channel_names == ()
    assert image.metadata["series"] == 0
    assert image.metadata["n_series"] == 2


def test_multi_series_second(multi_series):
    path, _, second = multi_series

    image = read_image(path, series=1)

    assert image.axes == "CYX"
    assert image.data.dtype == np.uint16
    np.testing.assert_array_equal(image.data, second)
    assert image.channel_names == ("nuclei", "membrane")
    assert image.pixel_size == {"X": 0.6, "Y": 0.6}
    assert image.metadata["series"] == 1


@pytest.mark.parametrize("series", [2, -1])
def test_multi_series_out_of_range(multi_series, assert_read_error, series):
    path, _, _ = multi_series
    message = assert_read_error(path, series=series)
    assert "2 series" in message


# --------------------------------------------------------------------------- ImageJ


@pytest.mark.parametrize(
    ("axes", "shape"),
    [
        ("ZCYX", (4, 2, 16, 24)),
        ("TZYX", (3, 4, 16, 24)),
        ("TCYX", (3, 2, 16, 24)),
        ("CYX", (3, 16, 24)),
        ("TZCYX", (2, 3, 2, 16, 24)),
        ("ZYX", (5, 16, 24)),
    ],
)
def test_imagej_hyperstack(tmp_path, rng, axes, shape):
    data = rng.integers(0, 4000, size=shape, dtype=np.uint16)
    metadata = {"axes": axes, "unit": "micron", "spacing": 2.5, "finterval": 0.5}
    names = ()
    if "C" in axes:
        names = tuple(f"stain{i}" for i in range(shape[axes.index("C")]))
        planes = int(np.prod(shape[:-2]))
        # ImageJ stores one label per plane, channel fastest.
        metadata["Labels"] = [names[i % len(names)] for i in range(planes)]
    path = tmp_path / f"hyperstack_{axes}.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.325, 1 / 0.325), metadata=metadata)

    image = read_image(path)

    assert image.axes == axes
    np.testing.assert_array_equal(image.data, data)
    assert image.channel_names == names
    expected = {"X": 0.325, "Y": 0.325}
    if "Z" in axes:
        expected["Z"] = 2.5
    if "T" in axes:
        expected["T"] = 0.5
    assert image.pixel_size == expected
    assert image.metadata["format"] == "ImageJ hyperstack"


@pytest.mark.parametrize(
    ("unit", "pixels_per_unit", "spacing", "expected_xy", "expected_z"),
    [
        ("micron", 2.0, 3.0, 0.5, 3.0),
        ("um", 4.0, 1.5, 0.25, 1.5),
        ("\\u00B5m", 5.0, 2.0, 0.2, 2.0),  # how ImageJ escapes "µm" in its description
        ("nm", 1 / 650, 2000.0, 0.65, 2.0),
        ("mm", 2000.0, 0.002, 0.5, 2.0),
    ],
)
def test_imagej_units(tmp_path, rng, unit, pixels_per_unit, spacing, expected_xy, expected_z):
    data = rng.integers(0, 4000, size=(3, 16, 16), dtype=np.uint16)
    path = tmp_path / "units.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(pixels_per_unit, pixels_per_unit),
        metadata={"axes": "ZYX", "unit": unit, "spacing": spacing},
    )

    image = read_image(path)

    assert image.axes == "ZYX"
    assert image.pixel_size == {
        "X": pytest.approx(expected_xy),
        "Y": pytest.approx(expected_xy),
        "Z": pytest.approx(expected_z),
    }


def test_imagej_pixel_unit_is_not_a_calibration(tmp_path, rng):
    data = rng.integers(0, 4000, size=(16, 16), dtype=np.uint16)
    path = tmp_path / "pixels.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "pixel"})
    image = read_image(path)
    assert image.pixel_size == {}
    assert image.spacing is None


def test_imagej_time_unit(tmp_path, rng):
    data = rng.integers(0, 4000, size=(3, 16, 16), dtype=np.uint16)
    path = tmp_path / "fast.tif"
    tifffile.imwrite(
        path, data, imagej=True, metadata={"axes": "TYX", "finterval": 250, "tunit": "ms"}
    )
    image = read_image(path)
    assert image.axes == "TYX"
    assert image.pixel_size == {"T": pytest.approx(0.25)}


def test_imagej_missing_z_step_is_reported_as_assumed(tmp_path, rng):
    data = rng.integers(0, 4000, size=(4, 16, 16), dtype=np.uint16)
    path = tmp_path / "no_z_step.tif"
    tifffile.imwrite(
        path, data, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX", "unit": "micron"}
    )

    image = read_image(path)

    assert image.pixel_size == {"X": 0.5, "Y": 0.5}
    assert image.spacing == (1.0, 0.5, 0.5)
    assert image.metadata["z_step_assumed"] is True


# --------------------------------------------------------------------------- plain TIFF


def test_plain_yx_without_calibration(tmp_path, rng):
    data = rng.integers(0, 255, size=(32, 48), dtype=np.uint8)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data, metadata=None)

    image = read_image(path)

    assert image.axes == "YX"
    np.testing.assert_array_equal(image.data, data)
    assert image.data.dtype == np.uint8
    assert image.pixel_size == {}
    assert image.spacing is None
    assert image.channel_names == ()
    assert image.n_channels == 1
    assert image.channel_axis is None
    assert image.metadata["format"] == "TIFF"
    assert image.metadata["z_step_assumed"] is False


def test_plain_tiff_centimetre_resolution_is_calibration(tmp_path, rng):
    data = rng.integers(0, 255, size=(32, 48), dtype=np.uint8)
    path = tmp_path / "centimetre.tif"
    # 20000 pixels per cm = 0.5 µm per pixel; 40000 per cm = 0.25 µm.
    tifffile.imwrite(
        path, data, metadata=None, resolution=(20000, 40000), resolutionunit="CENTIMETER"
    )

    image = read_image(path)

    assert image.pixel_size == {"X": pytest.approx(0.5), "Y": pytest.approx(0.25)}
    assert image.spacing == (pytest.approx(0.25), pytest.approx(0.5))


@pytest.mark.parametrize("unit", ["INCH", "NONE"])
def test_plain_tiff_inch_or_unitless_resolution_is_ignored(tmp_path, rng, unit):
    data = rng.integers(0, 255, size=(32, 48), dtype=np.uint8)
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, data, metadata=None, resolution=(72, 72), resolutionunit=unit)

    image = read_image(path)

    assert image.pixel_size == {}
    assert image.spacing is None


# --------------------------------------------------------------------------- RGB


def test_rgb_contiguous(tmp_path, rng):
    data = rng.integers(0, 255, size=(32, 48, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")

    image = read_image(path)

    assert image.axes == "YXS"
    assert image.data.shape == (32, 48, 3)
    np.testing.assert_array_equal(image.data, data)
    assert image.channel_names == ("red", "green", "blue")
    assert image.is_rgb
    assert image.n_channels == 3
    assert image.channel_axis == 2
    assert image.spatial_axes == "YX"


@pytest.mark.parametrize("lazy", [False, True])
def test_rgb_planar_samples_are_moved_last(tmp_path, rng, lazy):
    data = rng.integers(0, 255, size=(32, 48, 3), dtype=np.uint8)
    path = tmp_path / "rgb_planar.tif"
    tifffile.imwrite(path, np.moveaxis(data, -1, 0), photometric="rgb", planarconfig="separate")

    image = read_image(path, lazy=lazy)

    assert image.metadata["file_axes"] == "SYX"
    assert image.axes == "YXS"
    assert image.data.shape == (32, 48, 3)
    np.testing.assert_array_equal(np.asarray(image.data), data)
    assert image.channel_names == ("red", "green", "blue")


def test_rgba(tmp_path, rng):
    data = rng.integers(0, 255, size=(16, 16, 4), dtype=np.uint8)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, data, photometric="rgb", extrasamples=["unassalpha"])
    image = read_image(path)
    assert image.axes == "YXS"
    assert image.channel_names == ("red", "green", "blue", "alpha")


# --------------------------------------------------------------------------- axis inference


def _write_unlabelled(path, shape, rng, **kwargs):
    data = rng.integers(0, 4000, size=shape, dtype=np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", **kwargs)
    return data


def test_three_planes_without_metadata_are_channels(tmp_path, rng):
    path = tmp_path / "three.tif"
    data = _write_unlabelled(path, (3, 64, 64), rng, metadata=None)

    image = read_image(path)

    assert image.axes == "CYX"
    assert image.metadata["axes_inferred"] is True
    assert image.channel_names == ("Channel 0", "Channel 1", "Channel 2")
    np.testing.assert_array_equal(image.data, data)


def test_many_planes_without_metadata_are_z(tmp_path, rng):
    path = tmp_path / "twenty.tif"
    _write_unlabelled(path, (20, 64, 64), rng, metadata=None)

    image = read_image(path)

    assert image.axes == "ZYX"
    assert image.metadata["axes_inferred"] is True
    assert image.channel_names == ()


@pytest.mark.parametrize(("planes", "axes"), [(5, "CYX"), (6, "ZYX")])
def test_channel_inference_limit(tmp_path, rng, planes, axes):
    path = tmp_path / "limit.tif"
    _write_unlabelled(path, (planes, 32, 32), rng, metadata=None)
    assert read_image(path).axes == axes


def test_four_dimensions_without_axes(tmp_path, rng):
    # A file without any description stores only a sequence of pages, so the 4-D shape
    # comes from tifffile's own "shaped" description, which has no axes in it.
    path = tmp_path / "four_d.tif"
    data = _write_unlabelled(path, (2, 10, 64, 64), rng)

    image = read_image(path)

    assert image.axes == "CZYX"
    assert image.metadata["axes_inferred"] is True
    np.testing.assert_array_equal(image.data, data)


def test_two_large_unknown_axes_become_t_and_z(tmp_path, rng):
    path = tmp_path / "tz.tif"
    _write_unlabelled(path, (6, 7, 16, 16), rng)
    assert read_image(path).axes == "TZYX"


def test_too_many_unknown_axes(tmp_path, rng, assert_read_error):
    path = tmp_path / "five_d.tif"
    _write_unlabelled(path, (7, 8, 9, 16, 16), rng)
    message = assert_read_error(path)
    assert "axes" in message


@pytest.mark.parametrize("override", ["ZYX", "zyx"])
def test_axes_override(tmp_path, rng, override):
    path = tmp_path / "three.tif"
    data = _write_unlabelled(path, (3, 64, 64), rng, metadata=None)

    image = read_image(path, axes=override)

    assert image.axes == "ZYX"
    assert image.metadata["axes_inferred"] is False
    assert image.channel_names == ()
    np.testing.assert_array_equal(image.data, data)


@pytest.mark.parametrize("override", ["CZYX", "QYX", "ZZX", "CZY", "YX"])
def test_invalid_axes_override(tmp_path, rng, assert_read_error, override):
    # read_image documents ImageReadError; the AxesError it wraps is also a ValueError.
    path = tmp_path / "three.tif"
    _write_unlabelled(path, (3, 64, 64), rng, metadata=None)
    message = assert_read_error(path, axes=override)
    assert repr(override) in message


def test_axes_error_is_a_value_error():
    assert issubclass(AxesError, ValueError)
    assert issubclass(ImageReadError, ValueError)


# --------------------------------------------------------------------------- lazy reading


def test_lazy_uncompressed_is_a_memory_map(uncompressed_stack):
    path, data = uncompressed_stack

    image = read_image(path, lazy=True)

    assert isinstance(image.data, np.memmap)
    assert os.path.samefile(image.data.filename, path)
    assert image.metadata["lazy"] is True
    np.testing.assert_array_equal(image.data, data)
    np.testing.assert_array_equal(image.data, read_image(path, lazy=False).data)


def test_lazy_compressed_is_a_dask_array(compressed_stack):
    path, data = compressed_stack

    image = read_image(path, lazy=True)

    assert isinstance(image.data, da.Array)
    assert image.data.shape == (4, 64, 64)
    assert image.data.dtype == np.uint16
    assert image.metadata["lazy"] is True
    np.testing.assert_array_equal(image.data.compute(), data)
    eager = read_image(path, lazy=False)
    assert type(eager.data) is np.ndarray
    np.testing.assert_array_equal(image.data.compute(), eager.data)


def test_small_files_are_read_eagerly_by_default(uncompressed_stack):
    path, _ = uncompressed_stack
    image = read_image(path)
    assert type(image.data) is np.ndarray
    assert image.metadata["lazy"] is False


def test_large_files_are_lazy_by_default(monkeypatch, uncompressed_stack, compressed_stack):
    # Each stack holds 4 * 64 * 64 * 2 = 32768 bytes of pixels: above the lowered threshold.
    monkeypatch.setattr(reader_module, "LAZY_THRESHOLD_BYTES", 32767)
    for path, data, kind in (
        (*uncompressed_stack, np.memmap),
        (*compressed_stack, da.Array),
    ):
        image = read_image(path)
        assert isinstance(image.data, kind)
        assert image.metadata["lazy"] is True
        np.testing.assert_array_equal(np.asarray(image.data), data)


def test_threshold_is_exclusive(monkeypatch, uncompressed_stack):
    path, _ = uncompressed_stack
    monkeypatch.setattr(reader_module, "LAZY_THRESHOLD_BYTES", 32768)
    assert read_image(path).metadata["lazy"] is False


# --------------------------------------------------------------------------- hostile files


def test_empty_file(tmp_path, assert_read_error):
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    assert "empty" in assert_read_error(path)


def test_text_file_named_tif(tmp_path, assert_read_error):
    path = tmp_path / "notes.tif"
    path.write_text("Sample 3, slide 2\nStained with DAPI\nTraceback (most recent call last):\n")
    assert "not a valid TIFF" in assert_read_error(path)


@pytest.mark.parametrize("header", [b"", b"II*\x00", b"MM\x00*", b"II+\x00"])
def test_random_bytes(tmp_path, rng, assert_read_error, header):
    path = tmp_path / "noise.tif"
    path.write_bytes(header + rng.bytes(5000))
    assert_read_error(path)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("stack", ["uncompressed_stack", "compressed_stack"])
@pytest.mark.parametrize("lazy", [None, True])
def test_truncated_file(request, tmp_path, assert_read_error, stack, fraction, lazy):
    source, _ = request.getfixturevalue(stack)
    raw = source.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    assert assert_read_error(path, lazy=lazy)


@pytest.mark.parametrize("stack", ["uncompressed_stack", "compressed_stack"])
@pytest.mark.parametrize("lazy", [None, True])
def test_file_cut_between_two_planes(
    request, tmp_path, assert_read_error, page_boundaries, stack, lazy
):
    # Cut exactly where a page begins: what is left is a well-formed TIFF with fewer
    # planes, which must not be passed off as the image.
    source, _ = request.getfixturevalue(stack)
    raw = source.read_bytes()
    boundaries = page_boundaries(source)
    assert len(boundaries) == 3
    for end in boundaries:
        path = tmp_path / f"cut_at_{end}.tif"
        path.write_bytes(raw[:end])
        assert "truncated" in assert_read_error(path, lazy=lazy)


@pytest.mark.parametrize("writer", ["ome", "imagej"])
def test_hyperstack_cut_between_two_planes(tmp_path, rng, assert_read_error, writer):
    data = rng.integers(0, 4000, size=(4, 32, 32), dtype=np.uint16)
    source = tmp_path / f"source_{writer}.tif"
    tifffile.imwrite(source, data, compression="zlib", metadata={"axes": "ZYX"}, **{writer: True})
    with tifffile.TiffFile(source) as tif:
        second_page = tif.pages[1].offset
    path = tmp_path / f"cut_{writer}.tif"
    path.write_bytes(source.read_bytes()[:second_page])
    assert_read_error(path)


def test_compressed_file_with_garbage_data(tmp_path, rng, compressed_stack, assert_read_error):
    source, _ = compressed_stack
    raw = bytearray(source.read_bytes())
    with tifffile.TiffFile(source) as tif:
        segments = [
            (offset, count)
            for page in tif.pages
            for offset, count in zip(page.dataoffsets, page.databytecounts)
        ]
    for offset, count in segments:
        raw[offset : offset + count] = rng.bytes(count)
    path = tmp_path / "garbage.tif"
    path.write_bytes(bytes(raw))
    # The header is intact: tifffile still parses the file.
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].shape == (4, 64, 64)
    assert "damaged" in assert_read_error(path)


def test_one_dimensional_data(tmp_path, assert_read_error):
    path = tmp_path / "profile.tif"
    tifffile.imwrite(path, np.arange(100, dtype=np.uint16))
    assert "(100,)" in assert_read_error(path)


def test_missing_path(tmp_path, assert_read_error):
    assert "does not exist" in assert_read_error(tmp_path / "nowhere" / "missing.tif")


def test_folder(tmp_path, assert_read_error):
    folder = tmp_path / "stack.tif"
    folder.mkdir()
    assert "folder" in assert_read_error(folder)


def test_unexpected_multiline_error_becomes_one_sentence(
    monkeypatch, uncompressed_stack, assert_read_error
):
    # Whatever fails inside, the user gets one line, not a library's multi-line message.
    def broken(*args, **kwargs):
        raise RuntimeError("first line\n  second line\n")

    monkeypatch.setattr(reader_module, "read_metadata", broken)
    path, _ = uncompressed_stack
    assert "first line second line" in assert_read_error(path)


def test_hostile_files_log_nothing(tmp_path, rng, compressed_stack, caplog, capfd):
    source, _ = compressed_stack
    raw = source.read_bytes()
    with tifffile.TiffFile(source) as tif:
        second_page = tif.pages[1].offset
    cases = {
        "tiny.tif": raw[:200],  # tag values beyond the end: tifffile logs about them
        "between.tif": raw[:second_page],  # tifffile logs an invalid page offset
        "half.tif": raw[: len(raw) // 2],
        "noise.tif": b"II*\x00" + rng.bytes(3000),
    }
    caplog.set_level(logging.DEBUG)
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ImageReadError):
            read_image(path)
    assert [r for r in caplog.records if r.name.startswith("tifffile")] == []
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
    # The tifffile logger works again after reading.
    assert not logging.getLogger("tifffile").disabled


# --------------------------------------------------------------------------- channel_index


@pytest.fixture
def three_channels():
    return MicroscopyImage(
        data=np.zeros((3, 4, 4), dtype=np.uint8),
        axes="CYX",
        channel_names=("DAPI", "GFP", "mCherry"),
    )


@pytest.mark.parametrize(
    ("key", "index"),
    [
        ("DAPI", 0),
        ("gfp", 1),
        ("MCHERRY", 2),
        (0, 0),
        (2, 2),
        (-1, 2),
        (-3, 0),
        ("1", 1),
        ("-1", 2),
    ],
)
def test_channel_index(three_channels, key, index):
    assert three_channels.channel_index(key) == index


def test_channel_index_unknown_name_lists_channels(three_channels):
    with pytest.raises(ValueError, match="channels: DAPI, GFP, mCherry"):
        three_channels.channel_index("Cy5")


@pytest.mark.parametrize("key", [3, -4, "7"])
def test_channel_index_out_of_range(three_channels, key):
    with pytest.raises(ValueError, match="3 channel"):
        three_channels.channel_index(key)


def test_channel_index_of_a_read_rgb_image(tmp_path, rng):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8), photometric="rgb")
    image = read_image(path)
    assert image.channel_index("Blue") == 2
    with pytest.raises(ValueError, match="red, green, blue"):
        image.channel_index("alpha")


def test_is_tiff_path():
    assert is_tiff_path("a/b/cells.ome.tif")
    assert is_tiff_path("CELLS.TIFF")
    assert not is_tiff_path("cells.png")
    assert not is_tiff_path("cells.tif.zip")
