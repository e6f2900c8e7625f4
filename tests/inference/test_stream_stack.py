"""Z-stacks segmented block by block give the objects and measurements of the whole stack."""

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from test_stream import relabelling

from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.inference.stream import should_stream
from napari_segnet.inference.stream_outputs import iter_segment_to_files
from napari_segnet.io import MicroscopyImage, read_image
from napari_segnet.io.model_identity import csv_columns
from napari_segnet.measure import measure
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain

SPACING = {"Z": 2.0, "Y": 0.5, "X": 0.5}


@pytest.fixture(scope="module")
def model():
    return load_model(bundled_model_path("nuclei"))[0].eval()


def balls(shape, centres, radius, seed=0):
    """A fluorescence-like stack of bright balls (``radius`` in Y and X, half of it in Z)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, sparse=True)
    image = rng.normal(20, 4, shape)
    for cz, cy, cx in centres:
        inside = ((z - cz) / (radius / 2)) ** 2 + ((y - cy) / radius) ** 2 + (
            (x - cx) / radius
        ) ** 2 <= 1
        image[inside] += 120.0
    # A second channel: something to measure that the network does not see.
    other = rng.normal(50, 10, shape)
    data = np.stack([image, other], axis=1).clip(0, 255).astype(np.uint8)
    return MicroscopyImage(data, "ZCYX", channel_names=("nuclei", "other"), pixel_size=SPACING)


# Centres on the corner of four 64-pixel blocks, on faces, and away from them; several planes each.
CENTRES = [(4, 64, 64), (3, 64, 30), (5, 100, 64), (4, 30, 100), (2, 100, 100)]


@pytest.mark.parametrize("labels_format", ["tiff", "zarr"])
def test_stack_blocks_give_the_whole_stack_objects_and_measurements(model, tmp_path, labels_format):
    image = balls((9, 160, 176), CENTRES, radius=10)
    settings = SegmentSettings(channel=0)
    whole = segment(image, model, settings).labels
    assert whole.shape == (9, 160, 176) and whole.max() == len(CENTRES)

    suffix = "tif" if labels_format == "tiff" else "zarr"
    labels_path, csv_path = tmp_path / f"labels.{suffix}", tmp_path / "table.csv"
    summary = drain(
        iter_segment_to_files(
            image,
            model,
            settings,
            labels_path,
            csv_path,
            labels_format=labels_format,
            block=64,
            halo=32,
        )
    )
    assert summary.blocks == 9 and summary.oversized == 0
    if labels_format == "tiff":
        with tifffile.TiffFile(labels_path) as tiff:
            labels = tiff.asarray()
            assert tiff.series[0].axes == "ZYX"
        assert read_image(labels_path).pixel_size == SPACING
    else:
        group = zarr.open_group(labels_path, mode="r")
        labels = group["0"][:]
        datasets = group.attrs["multiscales"][0]["datasets"]
        assert datasets[0]["coordinateTransformations"][0]["scale"] == [2.0, 0.5, 0.5]
        assert not (tmp_path / "labels.tif.planes.zarr").exists()
    mapping = relabelling(whole, labels)
    assert len(mapping) == len(CENTRES)

    expected = measure(
        whole,
        image.data,
        axes="ZYX",
        channel_axis=1,
        channel_names=["nuclei", "other"],
        spacing=(2.0, 0.5, 0.5),
    )
    expected["label"] = expected["label"].map(mapping)
    expected = expected.sort_values("label").reset_index(drop=True)
    table = pd.read_csv(csv_path)
    model_columns = list(csv_columns(model.identity))  # the model, named on every row
    assert model_columns and list(table.columns) == [*expected.columns, *model_columns]
    table = table.drop(columns=model_columns)
    assert "centroid_z_px" in table.columns
    np.testing.assert_allclose(
        table.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-6
    )


def test_a_cancelled_stack_leaves_no_output(model, tmp_path):
    image = balls((5, 128, 128), CENTRES[:2], radius=10)
    path = tmp_path / "labels.tif"
    events = iter_segment_to_files(
        image, model, SegmentSettings(channel=0), path, block=64, halo=32
    )
    next(events)
    events.close()
    assert list(tmp_path.iterdir()) == []


def test_a_stack_of_no_objects_still_writes_its_csv_header(model, tmp_path):
    image = balls((3, 96, 96), [], radius=10)
    image.data[:] = 7  # constant: every block skipped
    drain(
        iter_segment_to_files(
            image,
            model,
            SegmentSettings(channel=0),
            tmp_path / "labels.tif",
            tmp_path / "table.csv",
            block=64,
            halo=16,
        )
    )
    assert tifffile.imread(tmp_path / "labels.tif").shape == (3, 96, 96)
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 0 and "centroid_z_px" in table.columns


def test_deep_stacks_stream_by_their_voxels():
    deep = MicroscopyImage(np.zeros((200, 2048, 2048), np.uint8), "ZYX")
    assert should_stream(deep)
    assert not should_stream(MicroscopyImage(np.zeros((20, 1024, 1024), np.uint8), "ZYX"))
