"""Reading OME-Zarr (NGFF 0.4 on Zarr format 2, NGFF 0.5 on Zarr format 3), real folders."""

import json
import subprocess
import sys

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr
from skimage.draw import disk

from napari_segnet.io import ImageReadError, is_image_path, read_image
from napari_segnet.io.ome_zarr import is_ome_zarr, read_ome_zarr
from napari_segnet.io.zarr_labels import ZarrLabelsWriter

CZYX_AXES = [
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "nanometer"},
    {"name": "x", "type": "space", "unit": "nanometer"},
]


def write_ngff(
    path,
    levels,
    axes,
    scales=None,
    *,
    version="0.4",
    labels=None,
    chunks=None,
    multiscale_scale=None,
):
    """Write an OME-Zarr image of the given levels with zarr itself, as other software does."""
    zarr_format = 3 if version == "0.5" else 2
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    datasets = []
    for k, data in enumerate(levels):
        array = group.create_array(
            str(k),
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks or tuple(min(n, 16) for n in data.shape),
            chunk_key_encoding={"name": "v2" if zarr_format == 2 else "default", "separator": "/"},
        )
        array[...] = data
        dataset = {"path": str(k)}
        if scales is not None:
            dataset["coordinateTransformations"] = [{"type": "scale", "scale": scales[k]}]
        datasets.append(dataset)
    multiscale = {"axes": axes, "datasets": datasets, "name": "image"}
    if multiscale_scale is not None:
        multiscale["coordinateTransformations"] = [{"type": "scale", "scale": multiscale_scale}]
    attrs = {"multiscales": [multiscale]}
    if labels is not None:
        attrs["omero"] = {"channels": [{"label": label, "active": True} for label in labels]}
    if zarr_format == 2:
        multiscale["version"] = version
        group.attrs.update(attrs)
    else:
        group.attrs["ome"] = {"version": version, **attrs}
    return path


def assert_one_sentence(error, name):
    message = str(error)
    assert message.startswith("Cannot read") and name in message, message
    assert message.endswith(".") and "\n" not in message, message
    assert ". " not in message.replace("e.g. ", ""), message
    return message


@pytest.fixture
def czyx(rng):
    return rng.integers(0, 4000, size=(2, 3, 40, 48), dtype=np.uint16)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_multichannel_czyx_with_units_and_channel_labels(tmp_path, czyx, version):
    path = write_ngff(
        tmp_path / "cells.ome.zarr",
        [czyx],
        CZYX_AXES,
        [[1.0, 2.0, 325.0, 650.0]],
        version=version,
        labels=["DAPI", "GFP"],
    )
    assert is_ome_zarr(path) and is_image_path(path)
    if version == "0.5":
        assert (path / "zarr.json").is_file() and not (path / ".zattrs").exists()

    image = read_image(path)

    assert image.axes == "CZYX"
    assert isinstance(image.data, da.Array)
    np.testing.assert_array_equal(image.data.compute(), czyx)
    assert image.pixel_size == pytest.approx({"Z": 2.0, "Y": 0.325, "X": 0.65})
    assert image.spacing == pytest.approx((2.0, 0.325, 0.65))
    assert image.channel_names == ("DAPI", "GFP")
    assert image.emission_wavelengths == (None, None)
    assert image.path == path
    meta = image.metadata
    assert meta["format"] == "ome-zarr" and meta["ngff_version"] == version
    assert (meta["level"], meta["n_levels"], meta["lazy"]) == (0, 1, True)
    assert meta["axes_inferred"] is False and meta["z_step_assumed"] is False


def test_data_stays_lazy_and_reads_only_the_chunks_asked_for(tmp_path, czyx):
    path = write_ngff(tmp_path / "big.zarr", [czyx], CZYX_AXES, chunks=(1, 1, 16, 16))
    image = read_image(path)
    for chunk in (path / "0" / "1" / "2").rglob("*"):  # channel 1, plane 2: damage it
        if chunk.is_file():
            chunk.write_bytes(b"not a chunk")
    np.testing.assert_array_equal(image.data[0].compute(), czyx[0])
    with pytest.raises(ImageReadError) as caught:
        image.data[1, 2].compute()
    assert "part of its image data is damaged" in assert_one_sentence(caught.value, "big.zarr")


def test_pyramid_levels_scale_the_pixel_size(tmp_path, czyx):
    levels = [czyx, czyx[:, :, ::2, ::2], czyx[:, :, ::4, ::4]]
    scales = [[1.0, 2.0, 325.0 * f, 650.0 * f] for f in (1, 2, 4)]
    path = write_ngff(tmp_path / "pyramid.zarr", levels, CZYX_AXES, scales, version="0.5")

    for k, factor in enumerate((1, 2, 4)):
        image = read_image(path, level=k)
        assert image.data.shape == levels[k].shape
        np.testing.assert_array_equal(image.data, levels[k])
        assert image.pixel_size == pytest.approx(
            {"Z": 2.0, "Y": 0.325 * factor, "X": 0.65 * factor}
        )
        assert (image.metadata["level"], image.metadata["n_levels"]) == (k, 3)


def test_multiscale_scale_multiplies_the_dataset_scale(tmp_path, czyx):
    axes = [{"name": a, "type": "space", "unit": "millimeter"} for a in "yx"]
    path = write_ngff(
        tmp_path / "mm.zarr", [czyx[0, 0]], axes, [[2.0, 4.0]], multiscale_scale=[0.001, 0.0005]
    )
    assert read_image(path).pixel_size == pytest.approx({"Y": 2.0, "X": 2.0})


def test_size_one_axes_are_dropped_and_time_is_in_seconds(tmp_path, rng):
    data = rng.integers(0, 255, size=(3, 1, 1, 20, 30), dtype=np.uint8)  # TCZYX, one C, one Z
    axes = [
        {"name": "t", "type": "time", "unit": "millisecond"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    path = write_ngff(
        tmp_path / "movie.zarr", [data], axes, [[500.0, 1.0, 3.0, 0.5, 0.5]], labels=["GFP"]
    )
    image = read_image(path)
    assert image.axes == "TYX"
    assert isinstance(image.data, da.Array)
    np.testing.assert_array_equal(image.data, data[:, 0, 0])
    assert image.pixel_size == pytest.approx({"T": 0.5, "Y": 0.5, "X": 0.5})
    assert image.channel_names == ("GFP",)


def test_axes_without_units_are_uncalibrated(tmp_path, czyx):
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space"} for a in "zyx"
    ]  # no units
    path = write_ngff(tmp_path / "plain.zarr", [czyx], axes, [[1.0, 1.0, 1.0, 1.0]])
    image = read_image(path)
    assert image.pixel_size == {} and image.spacing is None
    assert image.channel_names == ("Channel 0", "Channel 1")  # no omero metadata


def test_ngff_03_axes_are_plain_names(tmp_path, czyx):
    path = write_ngff(tmp_path / "old.zarr", [czyx], ["c", "z", "y", "x"], version="0.3")
    image = read_image(path)
    assert image.axes == "CZYX" and image.pixel_size == {}
    assert image.metadata["z_step_assumed"] is False


def test_axes_override(tmp_path, czyx):
    path = write_ngff(tmp_path / "wrong.zarr", [czyx], CZYX_AXES, [[1.0, 2.0, 325.0, 650.0]])
    image = read_image(path, axes="tzyx")
    assert image.axes == "TZYX"
    # The override renames dimensions; a length unit means nothing on a time axis.
    assert image.pixel_size == pytest.approx({"Z": 2.0, "Y": 0.325, "X": 0.65})
    assert image.metadata["axes_inferred"] is False
    with pytest.raises(ImageReadError) as caught:
        read_image(path, axes="YX")
    assert_one_sentence(caught.value, "wrong.zarr")


def test_unknown_axis_names_ask_for_the_axes(tmp_path, czyx):
    axes = [{"name": "q"}, {"name": "z"}, {"name": "y"}, {"name": "x"}]
    path = write_ngff(tmp_path / "odd.zarr", [czyx], axes)
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = assert_one_sentence(caught.value, "odd.zarr")
    assert "'q'" in message and "axes=" in message
    assert read_image(path, axes="CZYX").axes == "CZYX"


def test_a_folder_that_is_not_ome_zarr(tmp_path):
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=2)
    plain.create_array("0", shape=(8, 8), dtype="u1")
    assert not is_ome_zarr(tmp_path / "plain.zarr")
    for reader in (read_image, read_ome_zarr):
        with pytest.raises(ImageReadError) as caught:
            reader(tmp_path / "plain.zarr")
        assert "not an OME-Zarr image" in assert_one_sentence(caught.value, "plain.zarr")

    folder = tmp_path / "photos"
    folder.mkdir()
    assert not is_ome_zarr(folder) and not is_image_path(folder)
    with pytest.raises(ImageReadError, match="it is a folder, not an image file"):
        read_image(folder)  # other folders keep the TIFF reader's sentence


def test_a_level_out_of_range(tmp_path, czyx):
    path = write_ngff(tmp_path / "one.ome.zarr", [czyx], CZYX_AXES)
    with pytest.raises(ImageReadError) as caught:
        read_image(path, level=1)
    message = assert_one_sentence(caught.value, "one.ome.zarr")
    assert message == "Cannot read level 1 of one.ome.zarr: it has 1 level(s)."


@pytest.mark.parametrize("damage", ["attributes", "array metadata", "missing array"])
def test_damaged_metadata_is_one_sentence(tmp_path, czyx, damage):
    path = write_ngff(tmp_path / "broken.zarr", [czyx], CZYX_AXES)
    if damage == "attributes":
        (path / ".zattrs").write_text('{"multiscales": [')
    elif damage == "array metadata":
        (path / "0" / ".zarray").write_text(json.dumps({"zarr_format": 2, "shape": [2]}))
    else:
        (path / "0" / ".zarray").unlink()
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert_one_sentence(caught.value, "broken.zarr")


def test_lazy_false_reads_into_memory(tmp_path, czyx):
    path = write_ngff(tmp_path / "small.zarr", [czyx], CZYX_AXES)
    image = read_image(path, lazy=False)
    assert isinstance(image.data, np.ndarray) and image.metadata["lazy"] is False
    np.testing.assert_array_equal(image.data, czyx)


def test_zarr_labels_writer_output_reads_back(tmp_path, rng):
    shape = (600, 520)  # three levels: 600, 300, 150 rows
    path = tmp_path / "cells_labels.zarr"
    expected = np.zeros(shape, np.uint32)
    writer = ZarrLabelsWriter(path, shape, spacing=(0.25, 0.5))
    for i, (top, left) in enumerate([(0, 0), (100, 300), (250, 40), (500, 450)]):
        patch = np.zeros((90, 60), np.uint16)
        patch[10:80, 5:55] = rng.integers(1, 4, size=(70, 50))
        writer.paint(patch, (top, left), offset=10 * i)
        region = expected[top : top + 90, left : left + 60]
        np.copyto(region, patch.astype(np.uint32) + 10 * i, where=patch > 0)
        writer.rows_final(top)
    writer.close()

    labels = read_image(path)
    assert labels.axes == "YX" and labels.data.dtype == np.uint32
    np.testing.assert_array_equal(labels.data, expected)
    assert labels.pixel_size == pytest.approx({"Y": 0.25, "X": 0.5})
    assert labels.metadata["n_levels"] == 3

    half = read_image(path, level=1)
    np.testing.assert_array_equal(half.data, expected[::2, ::2])
    assert half.pixel_size == pytest.approx({"Y": 0.5, "X": 1.0})


def test_segment_an_ome_zarr_from_the_command_line(tmp_path):
    rng = np.random.default_rng(3)
    truth = np.zeros((128, 128), np.uint16)
    for i, (y, x) in enumerate([(25, 25), (25, 90), (64, 60), (100, 30), (100, 100)], start=1):
        truth[disk((y, x), 9, shape=truth.shape)] = i
    dapi = rng.normal(20, 4, truth.shape) + (truth > 0) * rng.normal(120, 10, truth.shape)
    other = rng.integers(0, 50, truth.shape)
    data = np.stack([other, dapi]).clip(0, 255).astype(np.uint8)
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "yx"
    ]
    path = write_ngff(tmp_path / "X.ome.zarr", [data], axes, [[1.0, 0.4, 0.4]])
    # Channel names put DAPI second: the model must find it by name.
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["omero"] = {"channels": [{"label": "other"}, {"label": "DAPI"}]}
    (path / ".zattrs").write_text(json.dumps(attrs))

    out = tmp_path / "D"
    result = subprocess.run(
        [sys.executable, "-m", "napari_segnet.cli", "segment", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["X_labels.tif", "X_measurements.csv"]
    labels = read_image(out / "X_labels.tif")
    assert labels.data.shape == truth.shape
    assert labels.pixel_size == pytest.approx({"Y": 0.4, "X": 0.4})
    table = pd.read_csv(out / "X_measurements.csv")
    assert len(table) == labels.data.max() > 0
    assert {"intensity_mean_DAPI", "intensity_mean_other"} <= set(table.columns)
