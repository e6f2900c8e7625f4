"""Measuring a big label image block by block gives the whole image's table."""

import dask.array as da
import numpy as np
import pytest

from napari_segnet.data import sample_path
from napari_segnet.io import read_image
from napari_segnet.measure import measure
from napari_segnet.measure.blocks import iter_measure_blocks
from napari_segnet.progress import drain


@pytest.fixture(scope="module")
def sample():
    labels = np.asarray(read_image(sample_path("nuclei_labels")).data).astype(np.uint32)
    image = np.asarray(read_image(sample_path("nuclei_2ch")).data)
    labels[40:500, 100:140] = 60_000  # one object far larger than a block
    labels[0:3, 0:3] = 70_000  # one in the corner
    labels[500:510, 0:5] = labels[200:204, 690:696] = 80_000  # one in two distant parts
    return labels, image


@pytest.mark.parametrize("spacing", [None, (0.65, 0.5)])
def test_blocks_give_the_whole_table(sample, spacing):
    labels, image = sample
    expected = measure(
        labels, image, axes="YX", channel_axis=0, channel_names=["Actin", "DAPI"], spacing=spacing
    )
    events = []
    table = drain(
        iter_measure_blocks(
            da.from_array(labels, chunks=100),
            da.from_array(image, chunks=(2, 100, 100)),
            channel_axis=0,
            channel_names=["Actin", "DAPI"],
            spacing=spacing,
            block=128,
        ),
        events.append,
    )
    assert [e.done for e in events] == list(range(1, 2 * 5 * 6 + 1))  # two passes, 30 blocks
    assert list(table.columns) == list(expected.columns)
    assert table["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(
        table.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-9
    )


def test_without_intensities_and_without_objects():
    labels = np.zeros((300, 300), np.uint16)
    assert drain(iter_measure_blocks(labels, block=128)).empty
    labels[100:200, 100:200] = 5
    table = drain(iter_measure_blocks(labels, block=128))
    assert table["label"].tolist() == [5] and table["area_px"].tolist() == [10_000]
    with pytest.raises(ValueError, match="2-D labels"):
        drain(iter_measure_blocks(np.zeros((2, 8, 8), np.uint16)))
