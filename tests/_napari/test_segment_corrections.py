"""Corrections in the Segment widget: new thresholds, hand edits, planes, units, folders."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from napari.layers import Labels

from napari_segnet._napari import model_picker
from napari_segnet._napari.model_picker import register_model
from napari_segnet._napari.segment_widget import SegmentWidget
from napari_segnet.inference.segment import segment
from napari_segnet.models import ModelConfig, create_model, load_model, save_model
from napari_segnet.postprocess import StarSettings


@pytest.fixture
def dapi_viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    return viewer


def widget_for(viewer, layer):
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.choose(layer)
    return widget


def full_run_labels(widget):
    """The labels a run of the network with the widget's settings makes, outside the widget."""
    request = widget.request()
    model, _ = load_model(request.model_path, fuse=True)
    return segment(request.image, model, request.settings).labels


def test_new_thresholds_make_objects_again_without_the_network(
    dapi_viewer, qtbot, run_to_end, errors
):
    viewer = dapi_viewer
    widget = widget_for(viewer, viewer.layers["DAPI"])
    first = run_to_end(widget, widget.run_button).results[0]
    assert not first.reused and len(widget.cache) == 1
    labels = viewer.layers["DAPI labels"]
    before = labels.data.copy()

    widget.seed.setValue(0.85)
    widget.min_size.setValue(60)
    again = run_to_end(widget, widget.run_button).results[0]
    assert again.reused
    assert "from the network outputs of the last run" in widget.status.text()
    assert viewer.layers["DAPI labels"] is labels  # not edited: updated
    assert not np.array_equal(labels.data, before)
    np.testing.assert_array_equal(labels.data, full_run_labels(widget))

    widget.tile.setValue(256)  # the network's outputs change: it runs again
    assert not run_to_end(widget, widget.run_button).results[0].reused
    assert len(widget.cache) == 2
    viewer.layers["DAPI"].data[:8] = 0  # pixels changed in place
    assert not run_to_end(widget, widget.run_button).results[0].reused
    viewer.layers.remove(viewer.layers["DAPI"])
    assert len(widget.cache) == 0  # closed with its layer
    assert errors == []
    qtbot.wait(100)
    viewer.screenshot(canvas_only=False, flash=False)


def test_labels_edited_by_hand_survive_segment(dapi_viewer, run_to_end, infos, errors):
    viewer = dapi_viewer
    widget = widget_for(viewer, viewer.layers["DAPI"])
    run_to_end(widget, widget.run_button)
    corrected = viewer.layers["DAPI labels"]
    corrected.paint((100, 100), 999)  # a correction with the brush
    saved = corrected.data.copy()
    assert saved[100, 100] == 999

    widget.seed.setValue(0.8)
    run_to_end(widget, widget.run_button)
    assert viewer.layers["DAPI labels"] is corrected
    np.testing.assert_array_equal(corrected.data, saved)  # untouched
    new = viewer.layers["DAPI labels [2]"]
    assert isinstance(new, Labels) and new.data[100, 100] != 999
    assert tuple(new.scale) == pytest.approx((0.65, 0.65))
    assert any("DAPI labels was edited" in message and "[2]" in message for message in infos)
    assert "DAPI labels [2]" in widget.status.text()

    run_to_end(widget, widget.run_button)  # the new layer was not edited: updated
    labels = [layer.name for layer in viewer.layers if isinstance(layer, Labels)]
    assert labels == ["DAPI labels", "DAPI labels [2]"]
    corrected.data[:4, :4] = 7  # a script's edit counts too
    viewer.layers.remove(new)
    run_to_end(widget, widget.run_button)
    assert "DAPI labels [2]" in viewer.layers
    assert (viewer.layers["DAPI labels"].data[:4, :4] == 7).all()
    assert errors == []


def test_a_hand_made_layer_of_the_same_name_is_not_overwritten(dapi_viewer, run_to_end):
    viewer = dapi_viewer
    mine = viewer.add_labels(np.zeros((520, 696), np.uint8), name="DAPI labels")
    widget = widget_for(viewer, viewer.layers["DAPI"])
    run_to_end(widget, widget.run_button)
    assert viewer.layers["DAPI labels"] is mine and mine.data.max() == 0
    assert viewer.layers["DAPI labels [2]"].data.max() > 100


def test_this_slice_only_fills_one_plane_and_keeps_the_others(make_napari_viewer, run_to_end):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    plane = np.asarray(viewer.layers["DAPI"].data)[:160, :192]
    stack = viewer.add_image(
        np.stack([plane, plane[::-1], plane[:, ::-1]]), name="stack", axis_labels=("z", "y", "x")
    )
    widget = widget_for(viewer, stack)
    assert not widget.plane_only.isHidden() and widget.plane_only.text() == "This slice only"
    widget.plane_only.setChecked(True)
    assert not widget.probabilities.isEnabled()
    viewer.dims.set_current_step(0, 1)
    run_to_end(widget, widget.run_button)
    labels = viewer.layers["stack labels"]
    assert labels.data.shape == (3, 160, 192)
    assert labels.data[1].max() > 0 and labels.data[0].max() == labels.data[2].max() == 0
    assert "this plane of stack" in widget.status.text()
    second = labels.data[1].copy()

    viewer.dims.set_current_step(0, 2)
    run_to_end(widget, widget.run_button)
    assert viewer.layers["stack labels"] is labels
    np.testing.assert_array_equal(labels.data[1], second)
    assert labels.data[2].max() > 0
    assert not set(np.unique(labels.data[1])[1:]) & set(np.unique(labels.data[2])[1:])

    labels.paint((2, 80, 96), 500)  # corrected: the next plane goes to a new layer
    viewer.dims.set_current_step(0, 0)
    run_to_end(widget, widget.run_button)
    new = viewer.layers["stack labels [2]"]
    assert new.data[0].max() > 0 and new.data[1].max() == new.data[2].max() == 0
    assert labels.data[0].max() == 0


def test_a_frame_of_a_movie_and_a_single_plane(make_napari_viewer):
    viewer = make_napari_viewer()
    movie = viewer.add_image(np.zeros((4, 64, 64), np.uint8), axis_labels=("t", "y", "x"))
    widget = widget_for(viewer, movie)
    assert widget.plane_only.text() == "This frame only"
    widget.plane_only.setChecked(True)
    viewer.dims.set_current_step(0, 3)
    request = widget.request()
    assert request.plane == (3,) and request.image.axes == "YX"
    assert request.image.data.shape == (64, 64)
    widget.image.choose(viewer.add_image(np.zeros((64, 64), np.uint8)))
    assert widget.plane_only.isHidden() and widget.request().plane is None


def test_object_diameter_in_micrometres_for_calibrated_layers(dapi_viewer, errors):
    viewer = dapi_viewer
    widget = widget_for(viewer, viewer.layers["DAPI"])
    unit = widget.diameter_field.unit
    assert unit.model().item(1).isEnabled()  # 0.65 µm pixels
    widget.diameter.setValue(20)
    unit.setCurrentText("µm")
    assert widget.diameter.value() == pytest.approx(13.0)
    settings = widget.request().settings
    assert (settings.diameter, settings.diameter_unit) == (pytest.approx(13.0), "um")
    unit.setCurrentText("px")
    assert widget.diameter.value() == pytest.approx(20.0)

    plain = viewer.add_image(np.zeros((64, 64), np.uint8), name="plain")
    unit.setCurrentText("µm")
    assert widget.diameter.value() == pytest.approx(13.0)
    widget.image.choose(plain)
    assert not unit.model().item(1).isEnabled() and unit.currentText() == "px"
    assert widget.diameter.value() == pytest.approx(20.0)  # the same size, back in pixels

    # A layer calibrated only through its scale and units (not opened by our reader).
    scaled = viewer.add_image(
        np.zeros((64, 64), np.uint8), name="scaled", scale=(0.5, 0.5), units=("µm", "µm")
    )
    widget.image.choose(scaled)
    unit.setCurrentText("µm")
    image = widget.request().image
    assert image.spacing == pytest.approx((0.5, 0.5))
    assert errors == []


def star_model_file(tmp_path, method="star_seeds"):
    torch.manual_seed(0)
    config = ModelConfig(heads=("classes", "star"), star_rays=16, instance_method=method)
    model = create_model(config).eval()
    with torch.no_grad():
        model.star.dist.weight.mul_(0.1)
        model.star.dist.bias.fill_(4.0)
    return save_model(model, tmp_path / f"{method}.safetensors")


def test_star_thresholds_are_offered_for_star_models_only(
    make_napari_viewer, tmp_path, monkeypatch, run_to_end, errors
):
    monkeypatch.setattr(model_picker, "_REGISTERED", {})  # offered in this test only
    viewer = make_napari_viewer()
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    crop = viewer.add_image(np.asarray(viewer.layers["DAPI"].data)[:128, :160], name="crop")
    widget = widget_for(viewer, crop)
    star_rows = (widget.prob_threshold, widget.overlap_threshold)
    assert all(box.isHidden() for box in star_rows)
    assert widget.request().settings.star is None

    register_model(star_model_file(tmp_path, "star"), "polygons")
    assert all(not box.isHidden() for box in star_rows)
    assert widget.seed.isHidden()  # polygons alone: no watershed thresholds
    register_model(star_model_file(tmp_path), "star-seeded")
    assert all(not box.isHidden() for box in (*star_rows, widget.seed, widget.foreground))
    assert not widget.tta.isEnabled()
    widget.rescale.setChecked(False)
    widget.prob_threshold.setValue(0.3)
    widget.overlap_threshold.setValue(0.5)
    assert widget.request().settings.star == StarSettings(0.3, 0.5)
    assert not run_to_end(widget, widget.run_button).results[0].reused

    widget.prob_threshold.setValue(0.7)
    assert run_to_end(widget, widget.run_button).results[0].reused
    request = widget.request()
    model, _ = load_model(request.model_path, fuse=True)
    expected = segment(request.image, model, request.settings).labels
    np.testing.assert_array_equal(viewer.layers["crop labels"].data, expected)
    different = segment(
        request.image, model, replace(request.settings, star=StarSettings(0.3, 0.5))
    ).labels
    assert not np.array_equal(expected, different)
    assert errors == []


@pytest.fixture
def big_planes(monkeypatch, tmp_path):
    """Treat planes over 100,000 pixels as big; home (and its temporary folder) in tmp_path."""
    from napari_segnet.inference import blocks, stream

    monkeypatch.setattr(stream, "STREAM_PIXELS", 100_000)
    monkeypatch.setattr(blocks, "BLOCK", 256)
    monkeypatch.delenv("NAPARI_SEGNET_RESULTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path / ".napari-segnet" / "temporary"


def test_big_plane_labels_are_temporary_unless_a_folder_is_chosen(
    dapi_viewer, big_planes, tmp_path, run_to_end, errors
):
    viewer = dapi_viewer
    widget = widget_for(viewer, viewer.layers["DAPI"])
    assert widget.results.path() is None
    run_to_end(widget, widget.run_button)
    assert "temporary folder" in widget.status.text()
    (folder,) = big_planes.iterdir()
    labels = viewer.layers["DAPI labels"]
    assert labels.multiscale
    run_to_end(widget, widget.run_button)  # the new pyramid replaces the old one, and its folder
    assert viewer.layers["DAPI labels"] is labels
    (newer,) = big_planes.iterdir()
    assert newer != folder
    viewer.layers.remove(labels)
    assert list(big_planes.iterdir()) == []

    chosen = tmp_path / "kept"
    widget.results.set_path(chosen)
    run_to_end(widget, widget.run_button)
    assert str(chosen) in widget.status.text()
    viewer.layers.remove(viewer.layers["DAPI labels"])
    assert len(list(chosen.glob("DAPI-*_labels.zarr"))) == 1  # the user's folder is kept
    assert errors == []


def test_temporary_labels_of_ended_sessions_are_removed(big_planes, make_napari_viewer):
    stale = big_planes / "labels-999999999-abc"  # no such process
    live = big_planes / "labels-1-abc"  # init is always running
    for folder in (stale, live):
        (folder / "x_labels.zarr").mkdir(parents=True)
    SegmentWidget(make_napari_viewer())
    assert not stale.exists() and live.exists()
