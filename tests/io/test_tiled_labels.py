"""The tiled BigTIFF label writer: patches in, a calibrated tiled file out, rows leave memory."""

import numpy as np
import pytest
import tifffile

from napari_segnet.io import read_image
from napari_segnet.io.tiled_labels import TiledLabelsWriter


def test_patches_become_a_tiled_calibrated_bigtiff_that_reads_back(tmp_path):
    path = tmp_path / "labels.tif"
    expected = np.zeros((300, 530), np.uint32)
    with TiledLabelsWriter(path, expected.shape, spacing=(0.5, 0.25), tile=64) as writer:
        patch = np.zeros((100, 90), np.uint16)
        patch[10:50, 5:80] = 1
        patch[60:95, 20:40] = 2
        writer.paint(patch, (20, 440), offset=10)  # reaches the right edge's partial tile
        expected[20:120, 440:530][patch > 0] = patch[patch > 0] + 10
        writer.rows_final(64)
        assert writer._rows.next_band == 1  # the first row of tiles was handed over
        second = np.full((30, 30), 3, np.uint8)
        writer.paint(second, (270, 0), offset=10)  # the partial last row of tiles
        expected[270:300, 0:30] = 13
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff and page.is_tiled and page.tilewidth == 64
        assert page.dtype == np.uint32
        assert np.array_equal(page.asarray(), expected)
    image = read_image(path)
    assert image.pixel_size["Y"] == pytest.approx(0.5) and image.pixel_size["X"] == pytest.approx(
        0.25
    )


def test_painting_rows_already_written_is_refused(tmp_path):
    writer = TiledLabelsWriter(tmp_path / "labels.tif", (256, 256), tile=64)
    writer.rows_final(128)
    with pytest.raises(ValueError, match="already written"):
        writer.paint(np.ones((8, 8), np.uint32), (100, 0))
    writer.abort()


def test_an_aborted_file_is_incomplete_and_the_writer_stops(tmp_path):
    path = tmp_path / "labels.tif"
    writer = TiledLabelsWriter(path, (4096, 4096), tile=64)
    writer.paint(np.ones((64, 64), np.uint32), (0, 0))
    writer.rows_final(64)
    writer.abort()
    assert not writer._thread.is_alive()
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 0  # the image was never finished
