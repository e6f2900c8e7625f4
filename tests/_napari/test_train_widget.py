"""The Train dock widget in a real viewer: fine-tuning on corrected layers, stopping, saving."""

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from napari_segnet._napari.model_picker import register_model
from napari_segnet._napari.segment_widget import SegmentWidget
from napari_segnet._napari.train_widget import SCRATCH, TrainWidget
from napari_segnet.models import load_model, read_model_config
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.training.data import make_pair, split_pairs
from napari_segnet.training.loop import validate
from napari_segnet.training.session import crop_size
from napari_segnet.training.settings import VALIDATION_FRACTION, default_settings

TIMEOUT_MS = 300_000


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_SEGNET_MODELS", str(folder))
    return folder


@pytest.fixture
def envelope_viewer(make_napari_viewer, envelope_pairs):
    """Two envelope-stained images with their corrected labels, as layers."""
    viewer = make_napari_viewer()
    for number, (image, labels) in enumerate(envelope_pairs, start=1):
        viewer.add_image(image, name=f"lamin {number}")
        viewer.add_labels(labels, name=f"lamin {number} labels")
    return viewer


def add_pairs(widget, viewer, count=2):
    for number in range(1, count + 1):
        widget.image.choose(viewer.layers[f"lamin {number}"])
        widget.labels.choose(viewer.layers[f"lamin {number} labels"])
        widget.add_layers_button.click()


def train(widget, qtbot, epochs, steps):
    """Train to the end; return the progress events that reached the GUI thread."""
    widget.epochs.setValue(epochs)
    widget.steps.setValue(steps)
    events = []
    widget.runner.yielded.connect(events.append)
    with qtbot.waitSignal(widget.runner.finished, timeout=TIMEOUT_MS) as finished:
        qtbot.mouseClick(widget.train_button, Qt.MouseButton.LeftButton)
        assert not widget.train_button.isEnabled() and widget.stop_button.isEnabled()
    widget.runner.yielded.disconnect(events.append)
    assert finished.args == [False]  # not stopped
    assert widget.train_button.isEnabled() and not widget.stop_button.isEnabled()
    return events


def held_out_ap(model_path, pairs):
    model, _ = load_model(model_path)
    pairs = [make_pair(image, labels, name=str(n)) for n, (image, labels) in enumerate(pairs)]
    _, validation = split_pairs(pairs, VALIDATION_FRACTION)  # as the widget held out
    return validate(model, validation, device=None)["ap50"]


def test_fine_tuning_on_corrected_layers_improves_held_out_ap(
    envelope_viewer, envelope_pairs, models_dir, qtbot, errors
):
    viewer = envelope_viewer
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segnet", "Train")
    assert isinstance(widget, TrainWidget)
    assert widget.start.currentText() == "nuclei@2 (newest)" and not widget.encoder.isEnabled()
    assert widget.name.text() == "nuclei-tuned"
    add_pairs(widget, viewer)
    assert widget.source_list.count() == 2
    tuning = default_settings(fine_tune=True)  # the defaults of the CLI, shown in the widget
    assert (widget.epochs.value(), widget.steps.value()) == (tuning.epochs, tuning.steps_per_epoch)
    assert widget.learning_rate.value() == pytest.approx(tuning.learning_rate)
    assert widget.validation.value() == pytest.approx(VALIDATION_FRACTION)

    events = train(widget, qtbot, epochs=2, steps=10)
    # Every step's progress reached the GUI thread while the child process trained.
    stages = [event.stage for event in events]
    assert stages.count("training") == 20 and stages.count("validated") == 2
    assert [e.done for e in events if e.stage == "training"] == list(range(1, 21))
    assert errors == []
    model_path = models_dir / "nuclei-tuned.safetensors"
    assert model_path.is_file()
    assert not (models_dir / "nuclei-tuned.safetensors.resume.pt").exists()
    assert len(widget.curve.losses) == 20 and len(widget.curve.scores) == 2
    assert "nuclei-tuned" in widget.status.text() and widget.save_button.isEnabled()
    assert segment.model.currentText() == "nuclei-tuned"  # offered and selected at once
    config, provenance = read_model_config(model_path)
    assert config.name == "nuclei-tuned" and provenance["from"].endswith("nuclei@2.safetensors")

    before = held_out_ap(bundled_model_path("nuclei"), envelope_pairs)
    after = held_out_ap(model_path, envelope_pairs)
    assert after > before + 0.2, (before, after)  # measured: 0.31 -> 1.0

    saved = widget.save(models_dir.parent / "lamin")
    assert saved.name == "lamin.safetensors" and saved.read_bytes() == model_path.read_bytes()


def test_stop_keeps_the_best_model_so_far(envelope_viewer, models_dir, qtbot):
    viewer = envelope_viewer
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    add_pairs(widget, viewer, count=1)
    widget.epochs.setValue(50)
    widget.steps.setValue(3)
    validated = []
    widget.runner.yielded.connect(
        lambda event: validated.append(event.done) if event.stage == "validated" else None
    )
    with qtbot.waitSignal(
        widget.runner.yielded,
        check_params_cb=lambda event: event.stage == "validated",
        timeout=TIMEOUT_MS,
    ):
        widget.train_button.click()
    with qtbot.waitSignal(widget.runner.finished, timeout=TIMEOUT_MS) as finished:
        widget.stop_button.click()
        assert widget.status.text() == "Stopping…"
    assert finished.args == [True]  # stopped
    assert widget.process is None
    assert widget.status.text().startswith("Stopped. Model 'nuclei-tuned'")
    assert 1 <= len(validated) < 50 and widget.save_button.isEnabled()
    epoch = read_model_config(models_dir / "nuclei-tuned.safetensors")[1]["epoch"]
    assert 1 <= epoch < 50
    assert widget.train_button.isEnabled() and not widget.stop_button.isEnabled()


def test_training_from_scratch_on_a_folder(
    make_napari_viewer, envelope_pairs, models_dir, tmp_path, qtbot, errors
):
    for kind in ("images", "masks"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    for number, (image, labels) in enumerate(envelope_pairs):
        tifffile.imwrite(tmp_path / "data" / "images" / f"{number}.tif", image)
        tifffile.imwrite(tmp_path / "data" / "masks" / f"{number}.tif", labels)
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    widget.add_folder(tmp_path / "data")
    widget.start.setCurrentIndex(widget.start.findText(SCRATCH))
    assert widget.encoder.isEnabled() and widget.name.text() == "my-model"
    scratch = default_settings(fine_tune=False)
    assert (widget.epochs.value(), widget.steps.value()) == (
        scratch.epochs,
        scratch.steps_per_epoch,
    )
    assert widget.learning_rate.value() == pytest.approx(scratch.learning_rate)
    widget.encoder.setCurrentText("resnet18")
    train(widget, qtbot, epochs=1, steps=2)
    assert errors == []
    config = read_model_config(models_dir / "my-model.safetensors")[0]
    assert config.encoder == "resnet18"
    assert 20 < config.object_diameter_px < 30  # from the labels: radii 9–14 px
    train(widget, qtbot, epochs=1, steps=1)  # a second run never overwrites the first
    assert (models_dir / "my-model-2.safetensors").is_file()


def test_bad_training_input_gives_one_sentence(
    make_napari_viewer, models_dir, tmp_path, qtbot, errors
):
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.add_image(np.zeros((64, 64), np.uint8), name="cells")
    widget.train_button.click()
    assert errors[-1] == "There is no labels layer: segment the image or paint labels first."
    viewer.add_labels(np.zeros((32, 64), np.uint16), name="wrong size")
    widget.train_button.click()
    assert errors[-1] == "The labels (32×64) and the image (64×64) differ in size."
    viewer.add_labels(np.zeros((64, 64), np.uint16), name="empty")
    widget.labels.choose(viewer.layers["empty"])
    with qtbot.waitSignal(widget.runner.finished, timeout=TIMEOUT_MS) as finished:
        widget.train_button.click()
    assert finished.args == [False]
    assert errors[-1] == "The training labels are empty: paint or segment some objects first."
    assert widget.status.text() == errors[-1]
    widget.add_folder(tmp_path)
    assert errors[-1] == f"{tmp_path} needs an images folder and a masks folder inside it."
    widget.name.setText("../escape")
    widget.train_button.click()
    assert errors[-1] == "Give the model a name of letters, digits, '-', '_' or '.'."
    assert len(errors) == 5 and not list(models_dir.glob("*.safetensors"))


def test_a_registered_model_can_be_the_start(make_napari_viewer, models_dir, tmp_path):
    copy = tmp_path / "earlier.safetensors"
    copy.write_bytes(bundled_model_path("nuclei").read_bytes())
    register_model(copy)
    widget = TrainWidget(make_napari_viewer())
    assert widget.start.findText("earlier") >= 0
    assert widget.start.findText(SCRATCH) == widget.start.count() - 2  # before "Choose file…"


def test_crop_size_follows_small_images():
    pairs = [make_pair(np.zeros((100, 300)), np.zeros((100, 300), int))]
    assert crop_size(pairs) == 96
    assert crop_size([make_pair(np.zeros((40, 40)), np.zeros((40, 40), int))]) == 64
    assert crop_size([make_pair(np.zeros((900, 900)), np.zeros((900, 900), int))]) == 256


def test_the_plane_shown_is_what_is_added(make_napari_viewer, models_dir):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (2, 5, 32, 40), dtype=np.uint8)  # C, Z, Y, X
    labels = rng.integers(0, 3, (5, 32, 40), dtype=np.uint16)
    metadata = {"axes": "CZYX", "channel_names": ["GFP", "DAPI"]}
    viewer.add_image(stack, name="embryo", metadata=metadata)
    viewer.add_labels(labels, name="embryo labels")
    widget = TrainWidget(viewer)
    assert widget.image.layer().name == "embryo" and widget.channel.currentText() == "DAPI"
    viewer.dims.set_point(1, 3)  # Z
    source = widget.layer_source()
    assert np.array_equal(source.image, stack[1, 3]) and np.array_equal(source.labels, labels[3])
    widget.freeze.setChecked(True)
    request = widget.request()
    assert request.settings.freeze_encoder
    assert len(request.sources) == 1 and np.array_equal(request.sources[0].labels, labels[3])
    assert request.start is not None and request.out == models_dir / "nuclei-tuned.safetensors"
