"""The npe2 reader contribution, exercised through npe2 as napari calls it."""

import npe2
import numpy as np
import pytest
import tifffile

from napari_segnet._napari.reader import napari_get_reader
from napari_segnet.io import ImageReadError


def read(path):
    return npe2.read([str(path)], stack=False, plugin_name="napari-segnet")


def test_ome_tiff_opens_as_one_calibrated_layer_per_channel(ome_two_channel):
    path, data = ome_two_channel
    layers = read(path)
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["DAPI", "Alexa 647"]
    assert [layer_type for *_, layer_type in layers] == ["image", "image"]
    for index, (layer_data, kwargs, _) in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer_data), data[index])
        assert kwargs["scale"] == pytest.approx((1.5, 0.325, 0.325))
        assert kwargs["axis_labels"] == ("z", "y", "x")
        assert kwargs["units"] == ("micrometer",) * 3
        low, high = kwargs["contrast_limits"]
        assert data[index].min() <= low < high <= data[index].max()
        assert kwargs["blending"] == "additive"
    assert [kwargs["colormap"] for _, kwargs, _ in layers] == ["blue", "magenta"]


def test_channels_without_names_are_coloured_by_emission_wavelength(tmp_path):
    path = tmp_path / "unnamed.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((3, 16, 16), np.uint8),
        ome=True,
        metadata={"axes": "CYX", "Channel": {"EmissionWavelength": [520.0, 610.0, 450.0]}},
    )
    layers = read(path)
    assert [kwargs["colormap"] for _, kwargs, _ in layers] == ["green", "red", "blue"]
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["Channel 0", "Channel 1", "Channel 2"]


def test_imagej_time_series_keeps_time_and_z_as_layer_dimensions(tmp_path):
    data = np.arange(2 * 3 * 2 * 8 * 9, dtype=np.uint16).reshape(2, 3, 2, 8, 9)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.2),
        metadata={
            "axes": "TZCYX",
            "unit": "um",
            "spacing": 0.8,
            "finterval": 30.0,
            "Labels": ["H2B-GFP", "membrane"] * 6,
        },
    )
    layers = read(path)
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["H2B-GFP", "membrane"]
    layer_data, kwargs, _ = layers[1]
    assert layer_data.shape == (2, 3, 8, 9)
    np.testing.assert_array_equal(np.asarray(layer_data), data[:, :, 1])
    assert kwargs["axis_labels"] == ("t", "z", "y", "x")
    assert kwargs["scale"] == pytest.approx((30.0, 0.8, 0.2, 0.2))
    assert kwargs["units"] == ("second", "micrometer", "micrometer", "micrometer")


def test_uncalibrated_rgb_is_one_rgb_layer_in_pixels(tmp_path):
    path = tmp_path / "he.tif"
    tifffile.imwrite(path, np.zeros((20, 30, 3), np.uint8), photometric="rgb")
    ((layer_data, kwargs, _),) = read(path)
    assert kwargs["rgb"] is True
    assert layer_data.shape == (20, 30, 3)
    assert kwargs["units"] == ("pixel", "pixel")
    assert kwargs["scale"] == (1.0, 1.0)


def test_reader_declines_paths_that_are_not_tiff():
    assert napari_get_reader("cells.png") is None
    assert napari_get_reader(["a.tif", "b.czi"]) is None
    assert napari_get_reader("a.ome.tiff") is not None
    assert napari_get_reader(["a.tif", "b.TIFF"]) is not None


def test_reader_is_offered_for_ome_tiff_by_npe2(tmp_path):
    readers = npe2.PluginManager.instance().iter_compatible_readers([str(tmp_path / "x.ome.tif")])
    assert "napari-segnet" in {reader.plugin_name for reader in readers}


@pytest.mark.parametrize("content", [b"", b"GIF89a not a tiff at all", b"II*\x00\x08\x00\x00"])
def test_broken_files_give_one_clear_sentence(tmp_path, content):
    path = tmp_path / "broken.tif"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith("Cannot read broken.tif")
    assert "\n" not in message


def ome_zarr_sample(path, shape=(2, 96, 128), levels=1):
    """A 2-channel NGFF 0.4 image (DAPI, GFP; 0.5 µm pixels) written with zarr."""
    import zarr

    rng = np.random.default_rng(0)
    group = zarr.open_group(path, mode="w", zarr_format=2)
    data = rng.integers(0, 4000, shape, dtype=np.uint16)
    datasets = []
    for k in range(levels):
        group.create_array(str(k), data=data[:, :: 2**k, :: 2**k], chunks=(1, 64, 64))
        scale = [1.0, 0.5 * 2**k, 0.5 * 2**k]
        datasets.append(
            {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": datasets,
        }
    ]
    group.attrs["omero"] = {"channels": [{"label": "DAPI"}, {"label": "GFP"}]}
    return data


def test_ome_zarr_opens_as_calibrated_channel_layers(tmp_path):
    path = tmp_path / "cells.ome.zarr"
    data = ome_zarr_sample(path)
    assert napari_get_reader(str(path)) is not None
    layers = read(path)
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["DAPI", "GFP"]
    for index, (layer_data, kwargs, kind) in enumerate(layers):
        assert kind == "image" and kwargs["scale"] == pytest.approx((0.5, 0.5))
        assert np.array_equal(np.asarray(layer_data), data[index])


def test_big_pyramids_open_as_multiscale_layers(tmp_path, monkeypatch):
    from napari_segnet._napari import reader

    monkeypatch.setattr(reader, "MULTISCALE_PIXELS", 1000)
    path = tmp_path / "slide.ome.zarr"
    data = ome_zarr_sample(path, shape=(2, 256, 320), levels=3)
    (levels, kwargs, _), _ = read(path)
    assert kwargs["multiscale"] is True
    assert [level.shape for level in levels] == [(256, 320), (128, 160), (64, 80)]
    assert np.array_equal(np.asarray(levels[2]), data[0, ::4, ::4])


def test_labels_written_as_ome_zarr_open_as_a_labels_layer(tmp_path, monkeypatch):
    from napari_segnet._napari import reader
    from napari_segnet.io.zarr_labels import ZarrLabelsWriter

    monkeypatch.setattr(reader, "MULTISCALE_PIXELS", 1000)
    path = tmp_path / "slide_labels.zarr"
    with ZarrLabelsWriter(path, (600, 500), spacing=(0.5, 0.5)) as writer:
        writer.paint(np.full((10, 10), 3, np.uint32), (20, 30))
    ((levels, kwargs, kind),) = read(path)
    assert kind == "labels" and kwargs["multiscale"] and kwargs["name"] == "slide_labels"
    assert kwargs["scale"] == pytest.approx((0.5, 0.5))
    assert np.asarray(levels[0])[25, 35] == 3 and len(levels) == 3
    assert "metadata" not in kwargs  # no model made these labels


def test_labels_from_segment_open_with_the_model_that_made_them(tmp_path):
    from napari_segnet._napari.layers import layer_model
    from napari_segnet.io.model_identity import ModelIdentity
    from napari_segnet.io.zarr_labels import ZarrLabelsWriter

    identity = ModelIdentity("nuclei", 2, "f" * 64)
    path = tmp_path / "slide_labels.zarr"
    with ZarrLabelsWriter(path, (300, 200), model=identity) as writer:
        writer.paint(np.full((10, 10), 3, np.uint32), (20, 30))
    ((_, kwargs, kind),) = read(path)
    assert kind == "labels" and layer_model(kwargs["metadata"]) == identity
