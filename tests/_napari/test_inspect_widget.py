"""The Inspect network dock widget in a real viewer, on the bundled two-channel sample."""

import numpy as np
import pytest

from napari_segnet._napari.inspect_widget import PREFIX, InspectWidget, tile_around

TIMEOUT_MS = 120_000


def inspection_layers(viewer):
    return [layer for layer in viewer.layers if layer.name.startswith(PREFIX)]


def test_inspect_the_dna_channel_of_the_sample(make_napari_viewer, qtbot, errors, run_to_end):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    viewer.layers.selection.active = viewer.layers["DAPI"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Inspect network")
    assert isinstance(widget, InspectWidget)
    assert widget.image.layer() is viewer.layers["DAPI"]
    widget.tile.setValue(256)
    run = run_to_end(widget, widget.run_button, TIMEOUT_MS)
    assert errors == [] and len(run.results) == 1
    assert widget.status.text().startswith("Inspected rows ")

    names = [layer.name[len(PREFIX) :] for layer in inspection_layers(viewer)]
    assert names == [
        "input (normalised)",
        "encoder 1 · 1/2 resolution · 16 channels",
        "encoder 2 · 1/4 resolution · 32 channels",
        "encoder 3 · 1/8 resolution · 64 channels",
        "encoder 4 · 1/16 resolution · 128 channels",
        "decoder 1 · 1/8 resolution · 64 channels",
        "decoder 2 · 1/4 resolution · 32 channels",
        "decoder 3 · 1/2 resolution · 16 channels",
        "decoder 4 · full resolution · 16 channels",  # the full-resolution path
        "background probability",
        "interior probability",
        "boundary probability",
    ]
    dapi = viewer.layers["DAPI"]
    tile = tile_around(np.array(dapi.data.shape) / 2, dapi.data.shape, 256)  # view centre
    assert viewer.layers[PREFIX + "input (normalised)"].data.shape == (256, 256)
    encoder = viewer.layers[PREFIX + "encoder 2 · 1/4 resolution · 32 channels"]
    assert encoder.data.shape == (4, 64, 64)  # four channels, shown one at a time
    assert tuple(encoder.scale[1:]) == pytest.approx((0.65 * 4, 0.65 * 4))
    origin = np.array([tile[0].start, tile[1].start]) * 0.65
    assert tuple(encoder.translate[1:]) == pytest.approx(tuple(origin + 0.65 * 1.5))
    probabilities = np.stack(
        [
            viewer.layers[f"{PREFIX}{k} probability"].data
            for k in ("background", "interior", "boundary")
        ]
    )
    np.testing.assert_allclose(probabilities.sum(axis=0), 1, atol=1e-4)
    assert (viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid).enabled
    assert "Encoder" in widget.findChildren(type(widget.status))[-1].text()  # the explanation
    qtbot.wait(200)

    widget.channels.setValue(2)
    run_to_end(widget, widget.run_button, TIMEOUT_MS)  # again: the old inspection is replaced
    assert len(inspection_layers(viewer)) == 12
    assert viewer.layers[PREFIX + "decoder 3 · 1/2 resolution · 16 channels"].data.shape[0] == 2


def test_tile_around_stays_inside_the_image():
    assert tile_around((10, 500), (100, 600), 64) == (slice(0, 64), slice(468, 532))
    assert tile_around((50, 590), (100, 600), 64) == (slice(18, 82), slice(536, 600))
    assert tile_around((50, 50), (40, 600), 64) == (slice(0, 40), slice(18, 82))


def test_no_image_gives_one_sentence(make_napari_viewer, errors):
    widget = InspectWidget(make_napari_viewer())
    widget.run_button.click()
    assert errors == ["There is no image layer: open an image first."]
    assert not widget.runner.running and widget.run_button.isEnabled()
