"""Tiles, blending and tiled prediction: tiled and whole-image predictions must agree."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_segnet.inference.resample import resample, zoomed_shape
from napari_segnet.inference.tiling import (
    OVERLAP,
    TiledPredictor,
    blending_window,
    iter_predict_tiled,
    tile_starts,
)
from napari_segnet.models import ModelConfig, create_model
from napari_segnet.progress import drain


def predict(model, plane, **kwargs):
    return drain(iter_predict_tiled(model, plane, **kwargs))


def softmax(logits, axis=0):
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class PointwiseModel(nn.Module):
    """Per-pixel logits (no context at all): any tiling must reproduce them exactly."""

    size_multiple = 16

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([4.0, -3.0, 1.5]))

    def forward(self, x):
        logits = self.scale[None, :, None, None] * x + torch.tensor([0.0, 1.0, -0.5])[:, None, None]
        return {"instance": logits, "semantic": torch.cat([x, -x], dim=1) * 2}


class BlockModel(nn.Module):
    """Logits constant on the 16×16 blocks of the network's stride grid (like strided features).

    Its output depends on where the stride grid lies: tiles must start on multiples of 16.
    """

    size_multiple = 16

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(6.0))

    def forward(self, x):
        mean = F.interpolate(F.avg_pool2d(x, 16), scale_factor=16, mode="nearest")
        return {"instance": torch.cat([self.gain * mean, -self.gain * mean, 0 * mean], dim=1)}


@pytest.fixture(scope="module")
def compact_model():
    """The real compact network, random weights, with a sharpened classifier.

    With PyTorch's default initialisation the features of a random network are
    weak and its probabilities all lie within 0.33 ± 0.01, which would make any
    comparison vacuous. Multiplying the 1×1 classifier by 300 spreads them over
    [0.01, 0.97] without changing the receptive field of the features.
    """
    torch.manual_seed(1234)
    model = create_model(ModelConfig(encoder="compact"))
    with torch.no_grad():
        model.classifier.weight.mul_(300.0)
        model.classifier.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def plane():
    return np.random.default_rng(7).random((300, 420), dtype=np.float32)


# --- tile_starts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [
        (304, 128, 48),
        (432, 128, 48),
        (1000, 512, 64),
        (129, 128, 0),
        (513, 512, 64),
        (208, 128, 48),  # size - tile is exactly one step
        (700, 256, 255),
        (128, 128, 10),
        (50, 128, 48),
    ],
)
def test_tile_starts_cover_everything_with_at_least_the_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0
    assert all(b > a for a, b in itertools.pairwise(starts)), starts
    if size <= tile:
        assert starts == [0]
        return
    assert starts[-1] == size - tile  # the last tile ends at the image's edge, inside it
    assert all(0 <= s <= size - tile for s in starts)
    for a, b in itertools.pairwise(starts):
        assert a + tile - b >= overlap, (a, b)
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()


def test_tile_starts_uses_the_fewest_steps_of_tile_minus_overlap():
    # 1000 px, tiles of 512 overlapping by 64: 0 and 448 would end at 960, so a third at 488.
    assert tile_starts(1000, 512, 64) == [0, 448, 488]
    assert tile_starts(304, 128, 48) == [0, 80, 160, 176]


@pytest.mark.parametrize("overlap", [128, 200, -1])
def test_tile_starts_rejects_an_overlap_that_cannot_tile(overlap):
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(300, 128, overlap)


# --- blending_window -------------------------------------------------------------------------


def test_blending_window_is_positive_symmetric_and_one_in_the_centre():
    window = blending_window((128, 160), 48)
    assert window.shape == (128, 160)
    assert (window > 0).all() and (window <= 1).all()
    np.testing.assert_array_equal(window, window[::-1, :])
    np.testing.assert_array_equal(window, window[:, ::-1])
    np.testing.assert_allclose(window[48:80, 48:112], 1.0)
    # It falls monotonically towards each edge over the overlap.
    row = window[64]
    assert (np.diff(row[:49]) >= 0).all() and row[0] < 0.01
    assert window[0, 0] < window[0, 64] < window[64, 64]


def test_blending_window_without_overlap_is_flat_and_never_zero_with_a_large_one():
    np.testing.assert_array_equal(blending_window((64, 48), 0), np.ones((64, 48)))
    window = blending_window((32, 20), 100)  # overlap larger than half the tile
    assert window.shape == (32, 20)
    assert (window > 0).all() and window.max() <= 1
    np.testing.assert_array_equal(window, window[::-1, ::-1])


# --- iter_predict_tiled ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [((300, 420), 128, 48), ((300, 420), 100, 50), ((10, 13), 512, 64), ((1, 1), 64, 8)],
)
def test_tiles_of_a_pointwise_model_reproduce_the_per_pixel_answer(shape, tile, overlap):
    plane = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    model = PointwiseModel().eval()
    result = predict(model, plane, tile=tile, overlap=overlap, batch_size=3)
    scale = np.array([4.0, -3.0, 1.5])[:, None, None]
    expected = softmax(scale * plane + np.array([0.0, 1.0, -0.5])[:, None, None])
    assert result["instance"].shape == (3, *shape)
    assert result["instance"].dtype == np.float32
    np.testing.assert_allclose(result["instance"], expected, atol=1e-5)
    np.testing.assert_allclose(
        result["semantic"], softmax(np.stack([plane, -plane]) * 2), atol=1e-5
    )


def test_tiles_start_on_the_stride_grid_even_for_an_unaligned_overlap():
    # 304 × 704 needs no padding. Tiles of 256 overlapping by 40 would start at x = 216,
    # in the middle of a 16-px block of the stride grid, and see different blocks.
    plane = np.random.default_rng(5).random((304, 704), dtype=np.float32)
    means = plane.reshape(19, 16, 44, 16).mean(axis=(1, 3))
    block = np.repeat(np.repeat(means, 16, axis=0), 16, axis=1)
    expected = softmax(np.stack([6 * block, -6 * block, 0 * block]))
    result = predict(BlockModel().eval(), plane, tile=256, overlap=40)["instance"]
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_tiled_prediction_of_the_real_network_agrees_with_one_tile(compact_model, plane):
    # Measured receptive field of this network: the influence of a pixel on a logit has
    # fallen to < 0.5 % of its peak 16 px away and < 0.05 % at 24 px. With an overlap
    # of 48 the cosine ramps hand every pixel to a tile whose border is ≥ 24 px away,
    # so zero padding at the tile borders moves probabilities by about 1 % at most.
    # (Measured: mean 2.5e-4, max 0.011; with no overlap at all: mean 0.013, max 0.64.)
    whole = predict(compact_model, plane, tile=512)["instance"]
    assert whole.std(axis=(1, 2)).min() > 0.02  # the comparison is not vacuous
    assert whole.max() - whole.min() > 0.5
    tiled = predict(compact_model, plane, tile=128, overlap=48)["instance"]
    difference = np.abs(tiled - whole)
    assert difference.mean() < 2e-3, difference.mean()
    assert difference.max() < 0.05, difference.max()
    # Without overlap the seams are plainly visible: the test above can fail.
    seams = np.abs(predict(compact_model, plane, tile=128, overlap=0)["instance"] - whole)
    assert seams.max() > 0.1


def test_tiled_probabilities_sum_to_one_and_keep_the_shape(compact_model, plane):
    result = predict(compact_model, plane, tile=128, overlap=48, batch_size=4)
    assert set(result) == {"instance"}
    probabilities = result["instance"]
    assert probabilities.shape == (3, 300, 420)
    assert probabilities.dtype == np.float32
    assert np.isfinite(probabilities).all()
    assert (probabilities >= 0).all() and (probabilities <= 1).all()
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_progress_counts_batches_of_tiles_up_to_the_total(compact_model, plane):
    # 300 × 420 is padded to 304 × 432: 4 tile rows (0, 80, 160, 176) × 5 columns
    # (0, 80, 160, 240, 304) = 20 tiles; batches of 3 run along each row of tiles
    # (3 + 2 tiles), i.e. 8 batches.
    events = []
    result = drain(
        iter_predict_tiled(compact_model, plane, tile=128, overlap=48, batch_size=3),
        events.append,
    )
    assert len(events) == 4 * math.ceil(5 / 3)
    assert [e.done for e in events] == list(range(1, 9))
    assert all(e.total == 8 for e in events)
    assert result["instance"].shape == (3, 300, 420)


@pytest.mark.parametrize("shape", [(10, 13), (1, 1), (3, 200), (17, 16)])
def test_planes_smaller_than_the_size_multiple_work(compact_model, shape):
    plane = np.random.default_rng(0).random(shape, dtype=np.float32)
    probabilities = predict(compact_model, plane, tile=128, overlap=48)["instance"]
    assert probabilities.shape == (3, *shape)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_semantic_probabilities_are_returned_too():
    torch.manual_seed(0)
    model = create_model(ModelConfig(encoder="compact", semantic_classes=("a", "b"))).eval()
    plane = np.random.default_rng(1).random((40, 70), dtype=np.float32)
    result = predict(model, plane, tile=32, overlap=16, batch_size=8)
    assert set(result) == {"instance", "semantic"}
    assert result["semantic"].shape == (2, 40, 70)
    np.testing.assert_allclose(result["semantic"].sum(axis=0), 1.0, atol=1e-5)


# --- the star head ---------------------------------------------------------------------------


class PointwiseStarModel(PointwiseModel):
    """Per-pixel outputs of every kind, including a star head: tiling must reproduce them."""

    def forward(self, x):
        out = super().forward(x)
        rays = torch.arange(1.0, 9.0)[None, :, None, None]
        return {**out, "star_prob": 3 * x - 1, "star_dist": torch.relu(rays * (x + 2))}


@pytest.mark.parametrize(("shape", "tile", "overlap"), [((300, 420), 128, 48), ((10, 13), 64, 8)])
def test_star_outputs_are_a_sigmoid_probability_and_linearly_blended_distances(
    shape, tile, overlap
):
    plane = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    result = predict(PointwiseStarModel().eval(), plane, tile=tile, overlap=overlap)
    assert set(result) == {"instance", "semantic", "star_prob", "star_dist"}
    assert result["star_prob"].shape == shape
    assert result["star_dist"].shape == (8, *shape)
    assert result["star_prob"].dtype == result["star_dist"].dtype == np.float32
    np.testing.assert_allclose(result["star_prob"], 1 / (1 + np.exp(-(3 * plane - 1))), atol=1e-5)
    rays = np.arange(1.0, 9.0)[:, None, None]
    np.testing.assert_allclose(
        result["star_dist"], np.maximum(rays * (plane + 2), 0), rtol=1e-5, atol=1e-4
    )


@pytest.fixture(scope="module")
def star_model():
    """The real compact network with the star head, random weights, sharpened like above.

    The star head's 1×1 layers are scaled and centred (on a random plane) so
    that its logits spread by ±2 and its distances by ±3 pixels around 8.
    """
    torch.manual_seed(99)
    model = create_model(ModelConfig(encoder="compact", heads=("classes", "star"), star_rays=16))
    model.eval()
    seen = []
    hook = model.star.features.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(torch.rand(1, 1, 128, 128))
        hook.remove()
        features = seen[0]
        model.classifier.weight.mul_(300.0)
        model.classifier.bias.zero_()
        for layer, spread, centre in ((model.star.prob, 2.0, 0.0), (model.star.dist, 3.0, 8.0)):
            layer.bias.zero_()
            raw = layer(features)
            layer.weight.mul_(spread / raw.std(dim=(0, 2, 3))[:, None, None, None])
            layer.bias.copy_(centre - layer(features).mean(dim=(0, 2, 3)))
    return model


def test_tiled_star_outputs_of_the_real_network_agree_with_one_tile(star_model, plane):
    # Distances are blended linearly, so unlike the saturated probabilities above they show
    # every bit of the zero padding at tile borders. Measured with tiles of 128 (distances:
    # mean 8.1 px, spread 1.9 px): overlap 64 (the default) gives mean 0.006 px, max 0.21 px;
    # overlap 48: mean 0.010 px, max 0.39 px; no overlap: mean 0.31 px, max 12 px.
    whole = predict(star_model, plane, tile=512)
    assert whole["star_prob"].shape == plane.shape
    assert whole["star_dist"].shape == (16, *plane.shape)
    prob, dist = whole["star_prob"], whole["star_dist"]
    assert (prob >= 0).all() and (prob <= 1).all() and (dist >= 0).all()
    assert prob.std() > 0.05 and prob.max() - prob.min() > 0.5  # not vacuous
    assert dist.std() > 1.0, dist.std()
    tiled = predict(star_model, plane, tile=128, overlap=OVERLAP)
    difference = np.abs(tiled["star_prob"] - prob)
    assert difference.mean() < 2e-3, difference.mean()
    assert difference.max() < 0.05, difference.max()
    difference = np.abs(tiled["star_dist"] - dist)  # in pixels
    assert difference.mean() < 0.02, difference.mean()
    assert difference.max() < 0.5, difference.max()
    # Without overlap the seams are plainly visible: the checks above can fail.
    seams = predict(star_model, plane, tile=128, overlap=0)
    assert np.abs(seams["star_prob"] - prob).max() > 0.1
    assert np.abs(seams["star_dist"] - dist).max() > 2.0


def test_an_unknown_output_is_refused(plane):
    class Odd(PointwiseModel):
        def forward(self, x):
            return {"instance": x.repeat(1, 3, 1, 1), "mystery": x}

    with pytest.raises(ValueError, match="mystery"):
        predict(Odd().eval(), plane[:32, :32])


# --- zoomed planes -----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.37, 2.3])
def test_zoomed_windows_are_the_zoomed_whole_planes_outputs_exactly(compact_model, scale):
    plane = np.random.default_rng(5).random((121, 143), dtype=np.float32)
    whole = predict(compact_model, plane, tile=64, overlap=16, scale=scale)
    assert whole["instance"].shape == (3, *plane.shape)
    # What the network sees is the zoomed plane; its outputs come back to the plane's grid.
    zoomed = resample(plane, zoomed_shape(plane.shape, scale))
    seen = predict(compact_model, zoomed, tile=64, overlap=16)["instance"]
    np.testing.assert_allclose(
        whole["instance"], resample(seen, plane.shape, mirror=True), atol=1e-6
    )
    predictor = TiledPredictor(
        compact_model,
        lambda r, c: plane[r, c],
        plane.shape,
        tile=64,
        overlap=16,
        cache_bytes=2**24,
        scale=scale,
    )
    for rows, columns in [(slice(0, 50), slice(0, 70)), (slice(40, 121), slice(60, 143))]:
        read_rows, read_columns = predictor.reads(rows, columns)
        reads = []

        def read(r, c, reads=reads):
            reads.append((r, c))
            return plane[r, c]

        predictor.read = read
        window = drain(predictor.iter_window(rows, columns))
        assert np.array_equal(window["instance"], whole["instance"][:, rows, columns])
        for r, c in reads:  # what reads() promised covers every read
            assert read_rows.start <= r.start and r.stop <= read_rows.stop
            assert read_columns.start <= c.start and c.stop <= read_columns.stop
