"""Training requests run in a child process: progress, result, errors, stopping."""

import dataclasses

import numpy as np
import pytest

from napari_segnet.models import load_model, read_model_config, save_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.models.network import with_rgb_input
from napari_segnet.progress import drain
from napari_segnet.training.loop import TrainSettings
from napari_segnet.training.session import (
    ArraySource,
    TrainingProcess,
    TrainingRequest,
    iter_training,
)


def request_for(pairs, out, *, start=None, epochs=1, steps=2, **changes):
    sources = [ArraySource(f"image {n}", image, labels) for n, (image, labels) in enumerate(pairs)]
    settings = TrainSettings(epochs=epochs, steps_per_epoch=steps, batch_size=2, **changes)
    return TrainingRequest(sources, start, "compact", out.stem, settings, 0.25, out, "cpu")


def test_a_new_network_gets_the_labels_object_size_and_a_small_crop(nuclei_pairs, tmp_path):
    out = tmp_path / "small.safetensors"
    summary = drain(iter_training(request_for(nuclei_pairs[:2], out)))
    assert summary["best_epoch"] == 1
    config, provenance = read_model_config(out)
    assert config.name == "small" and 12 < config.object_diameter_px < 20  # radii 6–9 px
    assert provenance["settings"]["crop"] == 64  # the 96-px images are cropped at 64, not 256
    assert provenance["trained_on"] == ["image 0", "image 1"] and provenance["from"] is None


def test_the_child_process_reports_progress_and_the_result(nuclei_pairs, tmp_path):
    out = tmp_path / "tuned.safetensors"
    process = TrainingProcess(request_for(nuclei_pairs, out, start=bundled_model_path("nuclei")))
    events = [event for event in process.events() if event is not None]
    process.stop()
    assert process.error is None and process.result["best_epoch"] == 1
    stages = ["preparing the data", "preparing the data", "training", "training", "validated"]
    assert [e.stage for e in events] == stages
    assert events[1].info["message"] == (
        "Training on 4 images, validating on 2, on cpu."  # 0.25 × 6 images ≥ 1: whole images
    )
    assert read_model_config(out)[0].name == "tuned"
    assert not (tmp_path / "tuned.safetensors.resume.pt").exists()


def test_errors_in_the_child_come_back_as_one_sentence(tmp_path):
    empty = [(np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint16))]
    process = TrainingProcess(request_for(empty, tmp_path / "x.safetensors"))
    assert all(event is None or event.stage == "preparing the data" for event in process.events())
    assert process.error == "The training labels are empty: paint or segment some objects first."
    assert process.result is None


def test_stopping_ends_the_child_and_keeps_the_best_model(nuclei_pairs, tmp_path):
    out = tmp_path / "stopped.safetensors"
    process = TrainingProcess(request_for(nuclei_pairs, out, epochs=1000, steps=1))
    for event in process.events():
        if event is not None and event.stage == "validated":
            break
    process.stop()
    assert not process._process.is_alive()
    assert read_model_config(out)[1]["epoch"] >= 1
    with pytest.raises(StopIteration):  # nothing more arrives
        next(iter(process.events(poll_s=0.05)))


def first_message(request) -> str:
    events = iter_training(request)
    next(events)
    message = next(events).info["message"]
    events.close()
    return message


def test_fine_tuning_can_rescale_the_images_to_the_models_object_size(large_nuclei_pairs, tmp_path):
    big = large_nuclei_pairs
    start = bundled_model_path("nuclei")
    size = read_model_config(start)[0].object_diameter_px
    out = tmp_path / "tuned.safetensors"
    rescaled = request_for(big, out, start=start, size_normalise=True)
    assert first_message(rescaled) == (
        "Training on the first 75% of each of 2 images, validating on the rest, "
        f"rescaled to the model's object size ({size:g} px), on cpu."
    )
    drain(iter_training(rescaled))
    # The crop follows the training part of the images: rescaled by about 20 / 32, 75 % of
    # about 160 rows gives a 96-px crop; as they are, 75 % of 256 rows gives 192 px.
    assert read_model_config(out)[1]["settings"]["crop"] == 96
    as_they_are = request_for(big, tmp_path / "plain.safetensors", start=start)
    drain(iter_training(as_they_are))
    assert read_model_config(tmp_path / "plain.safetensors")[1]["settings"]["crop"] == 192


def test_fine_tuning_on_colour_can_give_a_grey_model_colour_input(nuclei_pairs, tmp_path):
    start = bundled_model_path("nuclei")
    rgb = [(np.repeat(image[..., None], 3, axis=-1), labels) for image, labels in nuclei_pairs]
    rgb[0] = (rgb[0][0] * np.array([1.0, 0.6, 0.9]), rgb[0][1])  # one image in colour
    out = tmp_path / "colour.safetensors"
    drain(iter_training(request_for(rgb, out, start=start, colour_input=True)))
    assert read_model_config(out)[0].in_channels == 3
    grey_out = tmp_path / "grey.safetensors"  # no colour anywhere: the model stays as it is
    drain(iter_training(request_for(nuclei_pairs, grey_out, start=start, colour_input=True)))
    assert read_model_config(grey_out)[0].in_channels == 1


def test_training_writes_the_thresholds_it_chose_into_the_model(nuclei_pairs, tmp_path):
    start = tmp_path / "start.safetensors"
    model, _ = load_model(bundled_model_path("nuclei"))
    model.config = dataclasses.replace(
        model.config,
        instance_settings={"seed_threshold": 0.6, "foreground_threshold": 0.8, "min_size": 5000},
    )
    save_model(model, start)
    out = tmp_path / "tuned.safetensors"
    request = request_for(nuclei_pairs, out, start=start, steps=1, tune_thresholds=True)
    summary = drain(iter_training(request))
    config, provenance = read_model_config(out)
    assert config.instance_settings == summary["threshold_tuning"]["settings"]
    assert config.instance_settings["min_size"] < 200
    assert (
        provenance["threshold_tuning"]["mean_ap"] > provenance["threshold_tuning"]["mean_ap_before"]
    )
    assert provenance["epoch"] == 1  # still the best epoch's model


def test_fine_tuning_can_be_taught_by_the_model_it_starts_from(nuclei_pairs, tmp_path):
    start = bundled_model_path("nuclei")
    out = tmp_path / "taught.safetensors"
    request = dataclasses.replace(request_for(nuclei_pairs, out, start=start), teacher=start)
    events = []
    drain(iter_training(request), events.append)
    steps = [e.info for e in events if e.stage == "training"]
    assert steps and all("loss_teacher" in info for info in steps)
    assert read_model_config(out)[1]["teacher"] == str(start)


def test_a_teacher_that_reads_other_channels_is_refused(nuclei_pairs, tmp_path):
    colour = tmp_path / "colour.safetensors"
    save_model(with_rgb_input(load_model("nuclei")[0]), colour)
    request = request_for(nuclei_pairs, tmp_path / "x.safetensors", start=None)
    with pytest.raises(ValueError, match="teacher reads 3 channel"):
        drain(iter_training(dataclasses.replace(request, teacher=colour)))
