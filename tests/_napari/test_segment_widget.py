"""The Segment dock widget in a real viewer, with the bundled model and sample."""

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils import progress
from qtpy.QtCore import Qt

from napari_segnet._napari import model_picker
from napari_segnet._napari.model_picker import CHOOSE_FILE, register_model
from napari_segnet._napari.segment_widget import SegmentWidget
from napari_segnet.inference.devices import device_report
from napari_segnet.models.bundled import bundled_model_path

TIMEOUT_MS = 120_000


@pytest.fixture
def sample_viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)  # hidden canvases render black under Xvfb
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    return viewer


def test_segment_the_dapi_layer_of_the_sample(sample_viewer, qtbot, errors, tmp_path, run_to_end):
    viewer = sample_viewer
    viewer.layers.selection.active = viewer.layers["DAPI"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Segment")
    assert isinstance(widget, SegmentWidget)
    assert widget.image.layer() is viewer.layers["DAPI"]  # the active image layer
    assert widget.channel.isHidden()  # one channel of a multichannel file: nothing to pick
    assert widget.model.currentText() == "nuclei@2 (newest)"
    from napari_segnet.models import read_model_file
    from napari_segnet.models.bundled import bundled_model_path

    stored = read_model_file(bundled_model_path("nuclei"))[0].instance_settings
    assert (widget.seed.value(), widget.foreground.value(), widget.min_size.value()) == (
        stored["seed_threshold"],
        stored["foreground_threshold"],
        stored["min_size"],
    )  #  (the thresholds chosen on the model's validation split)

    progress_seen, progress_when_added = [], []
    widget.runner.yielded.connect(progress_seen.append)
    viewer.layers.events.inserted.connect(
        lambda event: progress_when_added.append(len(progress_seen))
    )
    with qtbot.waitSignal(widget.runner.finished, timeout=TIMEOUT_MS) as finished:
        qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
        assert not widget.run_button.isEnabled()
        assert widget.cancel_button.isEnabled()
        assert [bar.desc for bar in progress._all_instances] == ["Segmenting DAPI"]  # activity
    assert finished.args == [False]  # not cancelled
    # The worker's progress reached the GUI thread while the network ran, before the result.
    assert progress_when_added[0] >= 2 and progress_when_added[0] == len(progress_seen)
    assert [event.done for event in progress_seen] == sorted(event.done for event in progress_seen)
    assert progress_seen[-1].done == progress_seen[-1].total

    labels = viewer.layers["DAPI labels"]
    assert isinstance(labels, Labels)
    assert tuple(labels.scale) == pytest.approx((0.65, 0.65))
    assert [str(unit) for unit in labels.units] == ["micrometer", "micrometer"]
    assert tuple(labels.axis_labels) == tuple(viewer.layers["DAPI"].axis_labels)
    assert labels.data.shape == viewer.layers["DAPI"].data.shape
    assert len(np.unique(labels.data)) - 1 > 100
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert not list(progress._all_instances)  # closed
    assert "Found" in widget.status.text()
    assert "estimated object diameter" in widget.status.text()  # auto sizing says what it did
    assert widget.device_info.text().startswith("Last run on ")

    # Running again updates the same layer.
    data_events = []
    labels.events.data.connect(lambda event: data_events.append(1))
    widget.seed.setValue(0.6)
    run_to_end(widget, widget.run_button)
    assert data_events
    assert [layer.name for layer in viewer.layers if isinstance(layer, Labels)] == ["DAPI labels"]
    assert viewer.layers["DAPI labels"] is labels
    assert errors == []

    path = tmp_path / "segment_widget.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    assert path.stat().st_size > 10_000


def test_probability_maps_are_added_and_updated(sample_viewer, errors, run_to_end):
    viewer = sample_viewer
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.choose(viewer.layers["DAPI"])
    widget.probabilities.setChecked(True)
    for _ in range(2):
        assert len(run_to_end(widget, widget.run_button).results) == 1
    names = [layer.name for layer in viewer.layers]
    assert names.count("DAPI interior probability") == 1
    assert names.count("DAPI boundary probability") == 1
    interior = viewer.layers["DAPI interior probability"]
    assert (
        interior.data.shape == (520, 696) and 0 <= interior.data.min() <= interior.data.max() <= 1
    )
    assert tuple(interior.scale) == pytest.approx((0.65, 0.65))
    assert errors == []


def test_cancel_stops_a_long_run(sample_viewer, qtbot, errors):
    viewer = sample_viewer
    plane = viewer.layers["DAPI"].data
    series = viewer.add_image(
        np.stack([plane] * 20), name="series", axis_labels=("t", "y", "x"), scale=(1.0, 0.65, 0.65)
    )
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.image.layer() is series
    progress_seen, results = [], []
    widget.runner.yielded.connect(progress_seen.append)
    widget.runner.returned.connect(results.append)
    with qtbot.waitSignal(  # until the first of the 20 planes is segmented
        widget.runner.yielded,
        check_params_cb=lambda event: event.done > 0 and event.done >= event.total // 20,
        timeout=TIMEOUT_MS,
    ):
        widget.run_button.click()
    with qtbot.waitSignal(widget.runner.finished, timeout=TIMEOUT_MS) as finished:
        qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
        assert widget.status.text() == "Cancelling…"
    assert finished.args == [True]  # cancelled
    assert results == []  # the worker returned nothing...
    assert "series labels" not in viewer.layers  # ...so no layer was added
    assert progress_seen[-1].done < progress_seen[-1].total  # it stopped before the last plane
    assert widget.status.text() == "Cancelled."
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert errors == []


def test_an_unreadable_model_file_gives_one_error_sentence(
    sample_viewer, errors, tmp_path, monkeypatch, run_to_end
):
    viewer = sample_viewer
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a model")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    monkeypatch.setattr(widget.model, "ask_path", lambda: str(broken))  # the file dialog
    widget.model.setCurrentIndex(widget.model.findText(CHOOSE_FILE))
    assert widget.model.currentText() == "broken"
    assert run_to_end(widget, widget.run_button).results == []
    assert len(errors) == 1
    assert errors[0].startswith("Cannot load model broken.safetensors")
    assert errors[0].endswith(".") and ". " not in errors[0] and "\n" not in errors[0]
    assert widget.status.text() == errors[0]
    assert not any(isinstance(layer, Labels) for layer in viewer.layers)


def test_an_exported_onnx_model_is_picked_and_segments_like_the_torch_model(
    sample_viewer, errors, tmp_path, monkeypatch, run_to_end
):
    pytest.importorskip("onnxscript")
    from napari_segnet.metrics import evaluate
    from napari_segnet.models import load_model
    from napari_segnet.models.export import export_onnx

    viewer = sample_viewer
    viewer.layers.selection.active = viewer.layers["DAPI"]
    exported = tmp_path / "nuclei.onnx"
    export_onnx(load_model(bundled_model_path("nuclei"))[0], exported)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    run_to_end(widget, widget.run_button)
    torch_labels = np.array(viewer.layers["DAPI labels"].data)
    monkeypatch.setattr(widget.model, "ask_path", lambda: str(exported))  # the file dialog
    widget.model.setCurrentIndex(widget.model.findText(CHOOSE_FILE))
    assert widget.model.currentText() == "nuclei"  # the file's name, after the bundled one
    assert widget.model.path() == exported
    run_to_end(widget, widget.run_button)
    assert errors == []
    onnx_labels = np.asarray(viewer.layers["DAPI labels"].data)
    result = evaluate([torch_labels], [onnx_labels], thresholds=(0.5,))["pooled"][0.5]
    assert len(np.unique(onnx_labels)) - 1 > 100
    assert result["f1"] >= 0.99


def test_cancelling_the_file_dialog_keeps_the_model(sample_viewer, monkeypatch):
    widget = SegmentWidget(sample_viewer)
    monkeypatch.setattr(widget.model, "ask_path", lambda: "")
    widget.model.setCurrentIndex(widget.model.findText(CHOOSE_FILE))
    assert widget.model.currentText() == "nuclei@2 (newest)"
    widget.deleteLater()


def test_register_model_reaches_open_and_later_widgets(make_napari_viewer, monkeypatch, tmp_path):
    monkeypatch.setattr(model_picker, "_REGISTERED", {})
    viewer = make_napari_viewer()
    first = SegmentWidget(viewer)
    viewer.window.add_dock_widget(first)
    copy = tmp_path / "trained.safetensors"
    copy.write_bytes(bundled_model_path("nuclei").read_bytes())
    assert register_model(copy) == "trained"
    assert first.model.findText("trained") >= 0
    assert first.model.findText(CHOOSE_FILE) == first.model.count() - 1  # stays last
    later = SegmentWidget(viewer)
    viewer.window.add_dock_widget(later)
    assert later.model.findText("trained") >= 0
    register_model(copy)  # twice: still one entry
    assert [first.model.itemText(i) for i in range(first.model.count())].count("trained") == 1


def test_channel_picker_for_multichannel_and_rgb_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    metadata = {"axes": "CYX", "channel_names": ["GFP", "Hoechst"]}
    stack = viewer.add_image(rng.random((2, 32, 40)), name="stack", metadata=metadata)
    widget = SegmentWidget(viewer)
    assert not widget.channel.isHidden()
    assert [widget.channel.itemText(i) for i in range(2)] == ["GFP", "Hoechst"]
    assert widget.channel.currentText() == "Hoechst"  # the DNA stain by default
    request = widget.request()
    assert request.image.axes == "CYX" and request.settings.channel == 1
    assert request.settings.diameter == "auto"  # measured on the image
    assert widget.diameter.text() == "auto"
    widget.diameter.setValue(23.5)
    assert widget.request().settings.diameter == 23.5
    widget.rescale.setChecked(False)  # as it is, as before automatic sizing
    assert widget.request().settings.diameter is None and not widget.diameter.isEnabled()
    widget.rescale.setChecked(True)
    widget.diameter.setValue(0)

    rgb = viewer.add_image(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8), name="rgb")
    assert widget.image.layer() is rgb  # followed the active layer
    assert widget.channel.currentText() == "Luminance"
    assert widget.request().image.axes == "YXS"
    widget.channel.setCurrentText("Green")
    assert widget.request().image.axes == "YX"

    widget.image.choose(stack)  # a user choice is kept when another layer becomes active
    viewer.add_image(rng.random((32, 40)), name="plain")
    assert widget.image.layer() is stack
    widget.deleteLater()


def test_device_picker_explains_unavailable_devices(make_napari_viewer):
    widget = SegmentWidget(make_napari_viewer())
    assert widget.device.currentText() == "auto"
    assert widget.device_info.text().startswith("auto uses ")
    for status in device_report():
        item = widget.device.model().item(widget.device.findText(status.name))
        assert item.isEnabled() == status.available
        if not status.available:
            assert status.detail.split(". ")[0] in widget.device_info.text()
            assert item.toolTip() == status.detail
            assert f"{status.name}: {status.detail}" in widget.device_info.toolTip()
    widget.deleteLater()


def test_the_device_line_wraps_within_a_narrow_dock(sample_viewer, qtbot, run_to_end):
    viewer = sample_viewer
    widget = SegmentWidget(viewer)
    dock = viewer.window.add_dock_widget(widget)
    widget.image.choose(viewer.layers["DAPI"])
    run_to_end(widget, widget.run_button)
    window = viewer.window._qt_window
    window.resizeDocks([dock], [widget.minimumSizeHint().width()], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: widget.width() <= widget.minimumSizeHint().width() + 10)
    info = widget.device_info
    assert info.text().startswith("Last run on ") and info.wordWrap()
    assert info.sizeHint().width() <= widget.width()
    assert info.geometry().right() <= widget.contentsRect().right()  # not cut off at the side
    assert info.height() >= info.heightForWidth(info.width())  # nor at the bottom
    unavailable = [status for status in device_report() if not status.available]
    for status in unavailable:  # the whole reason, which the line shortens
        assert f"{status.name}: {status.detail}" in info.toolTip()
    assert bool(info.toolTip()) == bool(unavailable)


@pytest.fixture
def big_plane_rules(monkeypatch, tmp_path):
    """Treat planes over 100,000 pixels as big, in 256-pixel blocks; results in tmp_path."""
    from napari_segnet.inference import blocks, stream

    monkeypatch.setattr(stream, "STREAM_PIXELS", 100_000)
    monkeypatch.setattr(blocks, "BLOCK", 256)
    monkeypatch.setenv("NAPARI_SEGNET_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_a_big_plane_is_segmented_in_blocks_into_a_multiscale_layer(
    sample_viewer, big_plane_rules, errors, run_to_end
):
    from napari_segnet.inference.segment import segment
    from napari_segnet.io import MicroscopyImage
    from napari_segnet.models import load_model

    viewer = sample_viewer
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.choose(viewer.layers["DAPI"])
    run = run_to_end(widget, widget.run_button)
    assert not run.cancelled
    stages = [event.stage for event in run.progress]
    assert "segmenting block 1 of 9" in stages and stages[-1] == "segmented block 9"

    labels = viewer.layers["DAPI labels"]
    assert isinstance(labels, Labels) and labels.multiscale
    assert labels.metadata["model"]["model"] == "nuclei@2"  # the picker's default, the newest
    assert [level.shape for level in labels.data] == [(520, 696), (260, 348), (130, 174)]
    assert tuple(labels.scale) == pytest.approx((0.65, 0.65))
    (folder,) = big_plane_rules.iterdir()
    assert folder.name.startswith("DAPI-") and folder.name.endswith("_labels.zarr")
    assert str(folder) in widget.status.text() and "block by block" in widget.status.text()

    request = widget.request()
    model, _ = load_model(bundled_model_path("nuclei"))
    whole = segment(MicroscopyImage(request.image.data, "YX"), model, request.settings).labels
    streamed = np.asarray(labels.data[0])
    pairs = np.unique(np.stack([whole.ravel(), streamed.ravel()]), axis=1)
    assert np.array_equal(whole > 0, streamed > 0)
    assert pairs.shape[1] == len(np.unique(whole)) == len(np.unique(streamed))  # one to one
    assert errors == []

    # Running again replaces the layer's data with the new pyramid.
    run_to_end(widget, widget.run_button)
    assert [layer.name for layer in viewer.layers if isinstance(layer, Labels)] == ["DAPI labels"]
    assert len(list(big_plane_rules.iterdir())) >= 1


def test_cancelling_a_run_in_blocks_leaves_no_folder(sample_viewer, big_plane_rules, qtbot):
    viewer = sample_viewer
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.choose(viewer.layers["DAPI"])
    with qtbot.waitSignal(
        widget.runner.yielded,
        check_params_cb=lambda event: event.stage.startswith("segmented block 1"),
        timeout=TIMEOUT_MS,
    ):
        widget.run_button.click()
    with qtbot.waitSignal(widget.runner.finished, timeout=TIMEOUT_MS) as finished:
        widget.cancel_button.click()
    assert finished.args == [True]
    assert "DAPI labels" not in viewer.layers
    assert list(big_plane_rules.iterdir()) == []  # nor any hidden partial folder


def test_a_big_z_stack_is_segmented_in_blocks_into_a_3d_multiscale_layer(
    make_napari_viewer, big_plane_rules, monkeypatch, errors, run_to_end
):
    from napari_segnet.inference import stream

    monkeypatch.setattr(stream, "STREAM_VOXELS", 100_000)
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-segnet", "nuclei_2ch")
    plane = np.asarray(viewer.layers["DAPI"].data)
    stack = viewer.add_image(
        np.stack([plane, plane[::-1], plane[:, ::-1]]),
        name="stack",
        axis_labels=("z", "y", "x"),
        scale=(2.0, 0.65, 0.65),
    )
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.choose(stack)
    run = run_to_end(widget, widget.run_button)
    assert not run.cancelled and errors == []
    assert "block by block" in widget.status.text()
    labels = viewer.layers["stack labels"]
    assert isinstance(labels, Labels) and labels.multiscale
    assert [level.shape for level in labels.data] == [(3, 520, 696), (3, 260, 348), (3, 130, 174)]
    assert tuple(labels.scale) == pytest.approx((2.0, 0.65, 0.65))
    assert np.asarray(labels.data[0]).max() > 100
