"""Test-time augmentation: each tile averaged over its eight dihedral views, before blending."""

import numpy as np
import pytest
import torch

from napari_segnet.inference.augment import unview, view
from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.inference.tiling import TiledPredictor, iter_predict_tiled
from napari_segnet.io import MicroscopyImage
from napari_segnet.models import ModelConfig, create_model
from napari_segnet.progress import drain


@pytest.mark.parametrize("index", range(8))
def test_every_view_is_undone_exactly_for_arrays_and_tensors(index):
    array = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    viewed = view(array, index)
    assert viewed.shape[-2:] == ((5, 7) if index % 2 == 0 else (7, 5))
    np.testing.assert_array_equal(unview(viewed, index), array)
    tensor = torch.from_numpy(array)
    np.testing.assert_array_equal(view(tensor, index).numpy(), viewed)
    np.testing.assert_array_equal(unview(view(tensor, index), index).numpy(), array)


def test_the_eight_views_are_distinct():
    square = np.arange(16).reshape(4, 4)
    assert len({view(square, i).tobytes() for i in range(8)}) == 8


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model(ModelConfig()).eval()


def test_eight_views_average_the_views_of_each_tile(model):
    plane = np.random.default_rng(0).random((48, 64)).astype(np.float32)  # one unpadded tile
    plain = drain(iter_predict_tiled(model, plane, tile=64))
    one = drain(iter_predict_tiled(model, plane, tile=64, views=1))
    np.testing.assert_array_equal(one["instance"], plain["instance"])
    eight = drain(iter_predict_tiled(model, plane, tile=64, views=8))
    np.testing.assert_allclose(eight["instance"].sum(axis=0), 1.0, atol=1e-5)  # still softmax
    by_hand = np.mean(
        [
            unview(drain(iter_predict_tiled(model, view(plane, i).copy(), tile=64))["instance"], i)
            for i in range(8)
        ],
        axis=0,
    )
    np.testing.assert_allclose(eight["instance"], by_hand, atol=1e-5)
    assert not np.allclose(eight["instance"], plain["instance"], atol=1e-4)  # an untrained net


def test_windows_equal_the_whole_plane_with_views(model):
    plane = np.random.default_rng(1).random((150, 130)).astype(np.float32)
    whole = drain(iter_predict_tiled(model, plane, tile=64, overlap=16, views=8))

    def predictor():
        return TiledPredictor(
            model, lambda r, c: plane[r, c], plane.shape, tile=64, overlap=16, views=8
        )

    top = drain(predictor().iter_window(slice(0, 70), slice(0, 130)))
    bottom = drain(predictor().iter_window(slice(70, 150), slice(0, 130)))
    np.testing.assert_array_equal(
        np.concatenate([top["instance"], bottom["instance"]], axis=1), whole["instance"]
    )


def test_segment_with_tta_and_its_refusals(model):
    rng = np.random.default_rng(2)
    image = MicroscopyImage(rng.random((40, 48)).astype(np.float32), "YX")
    result = segment(image, model, SegmentSettings(tta=True, tile=64))
    assert result.labels.shape == (40, 48)
    with pytest.raises(ValueError, match="1 to 8 views"):
        drain(iter_predict_tiled(model, np.zeros((32, 32), np.float32), views=9))
    star = create_model(ModelConfig(heads=("classes", "star"))).eval()
    with pytest.raises(ValueError, match="star head"):
        drain(iter_predict_tiled(star, np.zeros((32, 32), np.float32), views=8))
