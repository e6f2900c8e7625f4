"""The plugin inside a real napari viewer (headless under Xvfb)."""

import numpy as np
import pytest
import tifffile

from napari_segnet.io import read_image


def test_open_ome_tiff_in_the_viewer_with_calibration(make_napari_viewer, ome_two_channel, qtbot):
    path, _ = ome_two_channel
    viewer = make_napari_viewer(show=True)  # hidden canvases render black under Xvfb
    layers = viewer.open(path, plugin="napari-segnet")
    assert [layer.name for layer in layers] == ["DAPI", "Alexa 647"]
    dapi = viewer.layers["DAPI"]
    assert tuple(dapi.scale) == pytest.approx((1.5, 0.325, 0.325))
    assert tuple(dapi.axis_labels) == ("z", "y", "x")
    assert [str(unit) for unit in dapi.units] == ["micrometer"] * 3
    assert dapi.colormap.name == "blue"
    qtbot.wait(50)
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    assert screenshot.ndim == 3 and screenshot[..., :3].max() > 0  # something was drawn


def test_bundled_samples_open(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    assert [layer.name for layer in viewer.layers] == ["DAPI", "CellMask (synthetic)"]
    assert tuple(viewer.layers["DAPI"].scale) == pytest.approx((0.65, 0.65))
    viewer.open_sample("napari-segnet", "nuclei")
    assert viewer.layers["nuclei"].data.shape == (520, 696)


@pytest.mark.parametrize("max_label, dtype", [(300, np.uint16), (70_000, np.uint32)])
def test_labels_layer_saves_as_calibrated_fiji_tiff(make_napari_viewer, tmp_path, max_label, dtype):
    labels = np.zeros((2, 30, 40), np.int32)
    labels[0, 5:10, 5:12] = 1
    labels[1, 20:25, 30:38] = max_label
    viewer = make_napari_viewer()
    viewer.add_labels(
        labels,
        name="nuclei labels",
        scale=(2.0, 0.25, 0.25),
        units=("micrometer",) * 3,
        axis_labels=("z", "y", "x"),
    )
    out = tmp_path / "labels.tif"
    written = viewer.layers["nuclei labels"].save(str(out), plugin="napari-segnet")
    assert written == [str(out)]
    with tifffile.TiffFile(out) as tif:
        assert tif.pages.first.dtype == dtype
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.imagej_metadata["spacing"] == pytest.approx(2.0)
        x_resolution = tif.pages.first.tags["XResolution"].value
        assert x_resolution[0] / x_resolution[1] == pytest.approx(4.0)  # 4 pixels per µm
    image = read_image(out)
    np.testing.assert_array_equal(image.data, labels)
    assert image.pixel_size == pytest.approx({"Z": 2.0, "Y": 0.25, "X": 0.25})
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind
