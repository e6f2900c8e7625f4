"""Bilinear resampling: scipy's zoom and skimage's resize, window by window."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.transform import resize

from napari_segnet.inference.resample import resample, resample_window, zoomed_shape


@pytest.mark.parametrize("scale", [0.37, 0.5, 1.7, 2.3])
@pytest.mark.parametrize("shape", [(301, 257), (64, 80), (9, 7)])
def test_resampling_is_scipys_zoom_and_skimages_resize_back(shape, scale):
    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    zoomed = ndimage.zoom(image, scale, order=1, grid_mode=True, mode="nearest")
    assert zoomed_shape(shape, scale) == zoomed.shape
    np.testing.assert_allclose(resample(image, zoomed.shape), zoomed, atol=1e-6)
    back = resize(zoomed, shape, order=1, preserve_range=True, anti_aliasing=False)
    np.testing.assert_allclose(resample(zoomed, shape, mirror=True), back, atol=1e-6)


@pytest.mark.parametrize("mirror", [False, True])
def test_a_resampled_window_is_exactly_that_window_of_the_whole(mirror):
    image = np.random.default_rng(4).random((2, 301, 257), dtype=np.float32)
    for shape in [(111, 95), (692, 591)]:
        whole = resample(image, shape, mirror=mirror)
        assert whole.shape == (2, *shape)
        for rows, columns in [
            (slice(0, 1), slice(0, shape[1])),
            (slice(17, 60), slice(shape[1] - 9, shape[1])),
            (slice(shape[0] - 1, shape[0]), slice(3, 4)),
        ]:
            window = resample_window(
                lambda r, c: image[:, r, c], (301, 257), shape, rows, columns, mirror=mirror
            )
            assert np.array_equal(window, whole[:, rows, columns])
