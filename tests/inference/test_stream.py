"""Block-by-block segmentation gives the objects (and measurements) of whole-plane segmentation."""

import numpy as np
import pytest
import tifffile
from skimage.draw import disk

from napari_segnet.data import sample_path
from napari_segnet.inference.blocks import Block, kept_objects, plan_blocks
from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.inference.stream import iter_segment_streamed
from napari_segnet.inference.stream_outputs import StreamedFiles
from napari_segnet.inference.tiling import TiledPredictor, iter_predict_tiled
from napari_segnet.io import MicroscopyImage, read_image
from napari_segnet.measure import measure
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain


@pytest.fixture(scope="module")
def model():
    return load_model(bundled_model_path("nuclei"))[0].eval()


def streamed(image, model, tmp_path, *, block, halo, measure=True, settings=None):
    """Segment block by block into files; return labels, table and summary."""
    shape = dict(zip(image.axes, image.data.shape))
    files = StreamedFiles(
        tmp_path / "labels.tif",
        tmp_path / "table.csv" if measure else None,
        (shape["Y"], shape["X"]),
    )
    events = iter_segment_streamed(
        image, model, settings or SegmentSettings(), files, block=block, halo=halo, measure=measure
    )
    summary = drain(events)
    files.close()
    import pandas as pd

    table = pd.read_csv(tmp_path / "table.csv") if measure else None
    return tifffile.imread(tmp_path / "labels.tif"), table, summary


def relabelling(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    """The one-to-one map of a's labels onto b's, asserting that it exists."""
    assert a.shape == b.shape
    assert np.array_equal(a > 0, b > 0), "the objects cover different pixels"
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    assert len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1], "objects split or merged"
    return dict(zip(pairs[0].tolist(), pairs[1].tolist()))


def disks(shape, centres, radius, seed=0):
    """A fluorescence-like image of bright disks (touching where their centres are close)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    for i, centre in enumerate(centres, 1):
        labels[disk(centre, radius, shape=shape)] = i
    image = rng.normal(20, 4, shape) + (labels > 0) * 120.0
    # A dark seam between touching disks, as between touching nuclei.
    seam = np.zeros(shape, bool)
    seam[1:] |= labels[1:] != labels[:-1]
    seam[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    image[seam & (labels > 0)] -= 60
    return MicroscopyImage(image.clip(0, 255).astype(np.uint8), "YX")


def test_windows_of_the_plane_are_its_whole_plane_outputs_exactly(model):
    plane = np.random.default_rng(0).random((300, 411), dtype=np.float32)
    whole = drain(iter_predict_tiled(model, plane, tile=128, overlap=32))
    predictor = TiledPredictor(
        model, lambda r, c: plane[r, c], plane.shape, tile=128, overlap=32, cache_bytes=2**26
    )
    for rows, columns in [
        (slice(0, 150), slice(0, 200)),  # a corner
        (slice(120, 300), slice(180, 411)),  # over the reflect-padded end
        (slice(299, 300), slice(0, 411)),  # the last row
        (slice(100, 160), slice(100, 160)),  # inside, from cached tiles
    ]:
        window = drain(predictor.iter_window(rows, columns))
        assert np.array_equal(window["instance"], whole["instance"][:, rows, columns])


def test_tile_cache_stays_within_its_budget(model):
    plane = np.zeros((256, 256), np.float32)
    one_tile = 3 * 128 * 128 * 4
    predictor = TiledPredictor(
        model, lambda r, c: plane[r, c], plane.shape, tile=128, overlap=32, cache_bytes=2 * one_tile
    )
    drain(predictor.iter_window(slice(0, 256), slice(0, 256)))
    assert 0 < predictor._cached_bytes <= 2 * one_tile


def test_windows_are_exact_when_the_cache_drops_tiles_a_window_still_needs(model):
    # The first window leaves its last row of tiles (one batch) in a cache of four tiles;
    # the second needs them too, but predicting its first rows drops them again.
    plane = np.random.default_rng(1).random((300, 400), dtype=np.float32)
    whole = drain(iter_predict_tiled(model, plane, tile=128, overlap=32, batch_size=4))
    predictor = TiledPredictor(
        model,
        lambda r, c: plane[r, c],
        plane.shape,
        tile=128,
        overlap=32,
        batch_size=4,
        cache_bytes=4 * 3 * 128 * 128 * 4,
    )
    for rows in (slice(200, 300), slice(0, 300)):
        events = list(predictor.iter_window(rows, slice(0, 400)))
        assert [event.done for event in events] == list(range(1, len(events) + 1))
        assert all(event.done <= event.total for event in events)
        window = drain(predictor.iter_window(rows, slice(0, 400)))
        assert np.array_equal(window["instance"], whole["instance"][:, rows])


def test_blocks_tile_the_plane_and_their_contexts_add_the_halo():
    blocks = plan_blocks((100, 250), block=64, halo=16)
    assert len(blocks) == 2 * 4
    covered = np.zeros((100, 250), int)
    for block in blocks:
        covered[block.core] += 1
    assert (covered == 1).all()
    last = blocks[-1]
    assert last.core == (slice(64, 100), slice(192, 250))
    assert last.context == (slice(48, 100), slice(176, 250))


def test_a_block_keeps_the_objects_whose_first_pixel_is_in_its_core():
    labels = np.zeros((40, 40), np.uint16)
    labels[2:6, 2:6] = 7  # first pixel (2, 2): in the core
    labels[0:3, 30:39] = 3  # first pixel (0, 30): outside the core
    labels[19:24, 10:14] = 9  # first pixel (19, 10): in the core, reaching below it
    block = Block(0, (slice(0, 20), slice(0, 20)), (slice(0, 40), slice(0, 40)))
    kept = kept_objects(labels, block, (80, 80))
    assert kept.count == 2 and kept.origin == (2, 2)
    assert set(np.unique(kept.patch)) == {0, 1, 2}
    assert kept.oversized == 0
    labels[19:40, 10:14] = 9  # now it reaches the context's lower edge, inside the plane
    assert kept_objects(labels, block, (80, 80)).oversized == 1
    assert kept_objects(labels, block, (40, 40)).oversized == 0  # the plane's own edge


def test_sample_blocks_give_the_whole_plane_objects_and_measurements(model, tmp_path):
    image = read_image(sample_path("nuclei_2ch"))
    whole = segment(image, model).labels
    labels, table, summary = streamed(image, model, tmp_path, block=160, halo=64)
    assert summary.blocks == 20 and summary.oversized == 0
    mapping = relabelling(whole, labels)
    assert len(mapping) == whole.max() > 100

    expected = measure(
        whole,
        image.data,
        axes="YX",
        channel_axis=image.channel_axis,
        channel_names=list(image.channel_names),
    )
    expected["label"] = expected["label"].map(mapping)
    expected = expected.sort_values("label").reset_index(drop=True)
    assert list(table.columns) == list(expected.columns)
    assert table["label"].tolist() == list(range(1, len(table) + 1))
    np.testing.assert_allclose(
        table.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-6
    )


@pytest.mark.parametrize(
    "centres",
    [
        [(64, 64)],  # on the corner of four blocks
        [(64, 30), (30, 64), (100, 64)],  # on faces
        [(64 - 9, 40), (64 + 9, 40), (40, 64 - 9), (40, 64 + 9)],  # touching pairs across faces
    ],
    ids=["corner", "faces", "touching-across-faces"],
)
def test_objects_on_block_corners_and_faces_stay_whole_and_apart(model, tmp_path, centres):
    image = disks((160, 176), centres, radius=10)
    whole = segment(image, model).labels
    assert whole.max() == len(centres)
    labels, _, summary = streamed(image, model, tmp_path, block=64, halo=32, measure=False)
    assert summary.oversized == 0
    relabelling(whole, labels)


def test_an_object_larger_than_the_halo_is_reported(model, tmp_path):
    image = disks((192, 192), [(69, 69)], radius=22)  # across four blocks
    assert segment(image, model).labels.max() == 1
    _, _, summary = streamed(image, model, tmp_path, block=64, halo=8, measure=False)
    assert summary.objects >= 1 and summary.oversized >= 1
    _, _, summary = streamed(image, model, tmp_path, block=64, halo=64, measure=False)
    assert summary.objects == 1 and summary.oversized == 0


def test_constant_background_blocks_are_skipped(model, tmp_path):
    image = disks((128, 384), [(40, 40), (80, 90)], radius=9)
    image.data[:, 192:] = 0  # the slide's empty part
    whole = segment(image, model).labels
    labels, table, summary = streamed(image, model, tmp_path, block=64, halo=32)
    assert summary.skipped >= 2
    relabelling(whole, labels)
    assert len(table) == whole.max() == 2


def test_time_series_are_refused_in_one_sentence(model, tmp_path):
    series = MicroscopyImage(np.zeros((3, 64, 64), np.uint8), "TYX")
    with pytest.raises(ValueError, match="time points one at a time"):
        streamed(series, model, tmp_path, block=64, halo=16)
