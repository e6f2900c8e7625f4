"""Star-convex polygons → instances, and polygons as seeds of the 3-class watershed.

The "perfect" predictions are the training targets of real-looking labels:
stardist's ``edt_prob`` and ``star_dist`` for the star head, ``instance_targets``
as one-hot probabilities for the 3-class head.
"""

import subprocess
import sys
from importlib.resources import files

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.draw import disk
from stardist import edt_prob
from stardist.geometry import star_dist

from napari_segnet.metrics import evaluate
from napari_segnet.postprocess.instances import probabilities_to_instances
from napari_segnet.postprocess.star import (
    STARDIST_MISSING,
    StarSettings,
    star_seeded_watershed,
    star_to_instances,
)
from napari_segnet.training.targets import instance_targets

N_RAYS = 32


def star_prediction(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Perfect star head output: object probability (Y, X) and ray distances (R, Y, X)."""
    labels = labels.astype(np.int32)
    return edt_prob(labels), np.moveaxis(star_dist(labels, N_RAYS), -1, 0)


def class_prediction(labels: np.ndarray) -> np.ndarray:
    """Perfect 3-class output: one-hot background / interior / boundary, (3, Y, X)."""
    classes, _ = instance_targets(labels)
    return np.moveaxis(np.eye(3, dtype=np.float32)[classes], -1, 0)


def ap(truth: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return evaluate([truth], [labels], thresholds=(threshold,))["pooled"][threshold]["ap"]


def iou_with_best_match(truth: np.ndarray, labels: np.ndarray, true_label: int) -> float:
    inside = truth == true_label
    found = np.bincount(labels[inside]).argmax()
    if found == 0:
        return 0.0
    return np.sum((labels == found) & inside) / np.sum((labels == found) | inside)


@pytest.fixture(scope="module")
def sample():
    truth = tifffile.imread(files("napari_segnet.data") / "nuclei_fluo_labels.tif")
    return truth, star_prediction(truth), class_prediction(truth)


def touching_disks() -> np.ndarray:
    """Two disks of radius 14 whose centres are 26 px apart: one connected blob."""
    labels = np.zeros((64, 96), np.int32)
    for label, centre in ((1, (32, 34)), (2, (32, 60))):
        rr, cc = disk(centre, 14, shape=labels.shape)
        free = labels[rr, cc] == 0
        labels[rr[free], cc[free]] = label
    return labels


def test_star_polygons_reconstruct_the_sample(sample):
    truth, (prob, dist), _ = sample
    labels = star_to_instances(prob, dist)
    assert labels.shape == truth.shape and labels.dtype == np.uint16
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert ap(truth, labels, 0.5) >= 0.95
    assert ap(truth, labels, 0.9) >= 0.85


def test_star_seeded_watershed_reconstructs_the_sample(sample):
    truth, (prob, dist), classes = sample
    labels = star_seeded_watershed(classes, prob, dist, StarSettings())
    assert labels.shape == truth.shape and labels.dtype == np.uint16
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert ap(truth, labels, 0.5) >= 0.95
    assert ap(truth, labels, 0.9) >= 0.85


def test_objects_cut_by_the_image_edge_are_kept():
    # Caps 4 px deep: their probability peaks on the edge, so a border exclusion drops them.
    labels = np.zeros((40, 40), np.int32)
    for label, centre in ((1, (-5, 20)), (2, (20, 44)), (3, (44, 10)), (4, (20, 20))):
        rr, cc = disk(centre, 9, shape=labels.shape)
        labels[rr, cc] = label
    prob, dist = star_prediction(labels)
    found = star_to_instances(prob, dist)
    assert found.max() == 4
    assert ap(labels, found, 0.75) == 1.0


def test_touching_disks_stay_two_objects_where_the_boundary_map_is_blurred():
    truth = touching_disks()
    assert ndimage.label(truth > 0)[1] == 1
    prob, dist = star_prediction(truth)
    # A blurred 3-class map: the interior probability runs across the contact line.
    classes = np.stack([ndimage.gaussian_filter(c, 3.5) for c in class_prediction(truth)])
    classes /= classes.sum(axis=0)
    assert (classes[1, 32, 40:56] > 0.5).all()

    assert probabilities_to_instances(classes).max() == 1  # the plain watershed merges them
    for labels in (star_to_instances(prob, dist), star_seeded_watershed(classes, prob, dist)):
        assert labels.max() == 2
        for true_label in (1, 2):
            assert iou_with_best_match(truth, labels, true_label) > 0.9


def test_the_watershed_places_the_edges_inside_the_3_class_foreground():
    truth = touching_disks()
    prob, dist = star_prediction(truth)
    classes = class_prediction(truth)
    # The 3-class map says the objects are 2 px smaller all round than the polygons.
    smaller = ndimage.binary_erosion(truth > 0, iterations=2)
    classes[0] = ~smaller
    classes[1:] *= smaller
    labels = star_seeded_watershed(classes, prob, dist)
    np.testing.assert_array_equal(labels > 0, smaller)
    assert labels.max() == 2


def test_the_more_probable_polygon_wins_where_polygons_overlap():
    # Two candidates whose circles overlap by less than the NMS threshold: both stay.
    prob = np.zeros((40, 60), np.float32)
    dist = np.full((N_RAYS, 40, 60), 10.0, np.float32)
    prob[20, 20], prob[20, 36] = 0.9, 0.8
    labels = star_to_instances(prob, dist, StarSettings(nms_threshold=0.4))
    assert labels.max() == 2
    assert labels[20, 20] == 1 and labels[20, 36] == 2
    assert labels[20, 28] == 1  # in both circles


def test_empty_prediction_gives_no_objects():
    prob = np.zeros((32, 48), np.float32)
    dist = np.zeros((N_RAYS, 32, 48), np.float32)
    classes = np.zeros((3, 32, 48), np.float32)
    classes[0] = 1
    for labels in (star_to_instances(prob, dist), star_seeded_watershed(classes, prob, dist)):
        assert labels.shape == (32, 48) and labels.dtype == np.uint16
        assert labels.max() == 0


def test_shapes_that_do_not_fit_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="should be \\(rays, Y, X\\)"):
        star_to_instances(np.zeros((8, 8)), np.zeros((N_RAYS, 8, 9)))
    with pytest.raises(ValueError, match="do not fit"):
        star_seeded_watershed(np.zeros((3, 8, 9)), np.zeros((8, 8)), np.zeros((N_RAYS, 8, 8)))


def test_without_stardist_the_error_says_how_to_install_it():
    # sys.modules[name] = None is how Python marks a module as absent: importing it fails.
    script = """
import sys
sys.modules["stardist"] = None
import numpy as np
from napari_segnet.postprocess.star import star_to_instances
try:
    star_to_instances(np.zeros((8, 8)), np.zeros((32, 8, 8)))
except ValueError as error:
    assert isinstance(error, ImportError)
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == STARDIST_MISSING
    assert STARDIST_MISSING.count(". ") == 0 and STARDIST_MISSING.endswith('[star]".')
