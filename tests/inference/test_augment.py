"""Test-time augmentation: eight dihedral views of the plane, averaged back on its grid."""

import numpy as np
import pytest

from napari_segnet.inference.augment import _unview, _view, iter_predict_augmented
from napari_segnet.inference.tiling import iter_predict_tiled
from napari_segnet.models import ModelConfig, create_model
from napari_segnet.progress import drain


@pytest.mark.parametrize("index", range(8))
def test_every_view_is_undone_exactly(index):
    array = np.arange(2 * 5 * 7).reshape(2, 5, 7)
    viewed = _view(array, index)
    assert viewed.shape[-2:] == ((5, 7) if index % 2 == 0 else (7, 5))
    np.testing.assert_array_equal(_unview(viewed, index), array)


def test_the_eight_views_are_distinct():
    square = np.arange(16).reshape(4, 4)
    assert len({_view(square, i).tobytes() for i in range(8)}) == 8


@pytest.fixture
def model():
    import torch

    torch.manual_seed(0)
    return create_model(ModelConfig()).eval()


def test_one_view_is_plain_prediction_and_eight_average_the_views(model):
    plane = np.random.default_rng(0).random((48, 40)).astype(np.float32)
    plain = drain(iter_predict_tiled(model, plane, tile=64))
    one = drain(iter_predict_augmented(model, plane, views=1, tile=64))
    np.testing.assert_allclose(one["instance"], plain["instance"], atol=1e-6)
    events = []
    eight = drain(iter_predict_augmented(model, plane, tile=64), events.append)
    assert eight["instance"].shape == (3, 48, 40)
    np.testing.assert_allclose(eight["instance"].sum(axis=0), 1.0, atol=1e-5)  # still softmax
    by_hand = np.mean(
        [
            _unview(
                drain(iter_predict_tiled(model, np.ascontiguousarray(_view(plane, i)), tile=64))[
                    "instance"
                ],
                i,
            )
            for i in range(8)
        ],
        axis=0,
    )
    np.testing.assert_allclose(eight["instance"], by_hand, atol=1e-6)
    assert not np.allclose(eight["instance"], plain["instance"], atol=1e-4)  # an untrained net
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert events[-1].done == events[-1].total


def test_star_models_and_bad_view_counts_are_refused(model):
    plane = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="1 to 8 views"):
        drain(iter_predict_augmented(model, plane, views=9))
    star = create_model(ModelConfig(heads=("classes", "star"))).eval()
    with pytest.raises(ValueError, match="star head"):
        drain(iter_predict_augmented(star, plane))
