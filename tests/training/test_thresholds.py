"""Choosing instance thresholds on validation images, after training."""

import dataclasses

import pytest

from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.plane import instance_settings_of
from napari_segnet.models import load_model, with_star_head
from napari_segnet.progress import drain
from napari_segnet.training.data import Pair
from napari_segnet.training.thresholds import iter_tune_thresholds


def pairs_for(model, nuclei_pairs):
    percentiles = model.config.normalise_percentiles
    return [Pair(normalise(image, percentiles), labels) for image, labels in nuclei_pairs]


def test_thresholds_that_lose_every_object_are_replaced(nuclei_pairs):
    model, _ = load_model("nuclei")
    model.config = dataclasses.replace(
        model.config,
        instance_settings={"seed_threshold": 0.6, "foreground_threshold": 0.8, "min_size": 5000},
    )
    best, summary = drain(iter_tune_thresholds(model, pairs_for(model, nuclei_pairs)))
    assert summary["mean_ap_before"] == 0  # no object is 5,000 px: nothing is found
    assert summary["mean_ap"] > 0.5 and summary["ap50"] > 0.8
    assert best.min_size < 200 and summary["settings"] == dataclasses.asdict(best)


def test_the_models_own_thresholds_stay_when_nothing_beats_them(nuclei_pairs):
    model, _ = load_model("nuclei")
    own = instance_settings_of(model)
    best, summary = drain(
        iter_tune_thresholds(
            model,
            pairs_for(model, nuclei_pairs),
            seeds=(own.seed_threshold,),
            foregrounds=(own.foreground_threshold,),
            min_sizes=(own.min_size,),
        )
    )
    assert best == own and summary["mean_ap"] == summary["mean_ap_before"]


def test_no_validation_images_or_another_method_is_refused(nuclei_pairs):
    model, _ = load_model("nuclei")
    with pytest.raises(ValueError, match="there are none"):
        drain(iter_tune_thresholds(model, []))
    model = with_star_head(model, 8)
    model.config = dataclasses.replace(model.config, instance_method="star")
    with pytest.raises(ValueError, match="'star'"):
        drain(iter_tune_thresholds(model, pairs_for(model, nuclei_pairs)))
