"""Block-by-block segmentation of zoomed images gives the objects of whole-image segmentation."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from test_diameter import nuclei
from test_stream import relabelling, streamed

from napari_segnet.inference.blocks import default_halo
from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.inference.stream import plan_stream, stack_block
from napari_segnet.inference.stream_outputs import iter_segment_to_files
from napari_segnet.io import MicroscopyImage
from napari_segnet.models.checkpoint import load_model
from napari_segnet.progress import drain


@pytest.fixture(scope="module")
def model():
    return load_model("nuclei")[0].eval()


@pytest.mark.parametrize(
    ("diameter", "shape", "settings"),
    [
        (8, (150, 170), SegmentSettings(diameter=8.0)),  # zoomed in
        (40, (260, 300), SegmentSettings(diameter=40.0)),  # zoomed out
        (8, (150, 170), SegmentSettings()),  # "auto"
    ],
    ids=["zoom-in", "zoom-out", "auto"],
)
def test_zoomed_blocks_give_the_whole_images_objects(model, tmp_path, diameter, shape, settings):
    image, truth = nuclei(shape, diameter)
    whole = segment(image, model, settings)
    assert whole.scale != 1.0
    assert whole.labels.max() == pytest.approx(truth.max(), rel=0.1)
    labels, table, summary = streamed(
        image, model, tmp_path, block=64, halo=None, settings=settings
    )
    assert summary.blocks > 4 and summary.oversized == 0
    assert summary.scale == whole.scale
    assert summary.halo == default_halo(model, whole.scale)
    mapping = relabelling(whole.labels, labels)
    assert len(mapping) == whole.labels.max() == len(table)
    if settings.diameter == "auto":
        assert summary.diameter_estimate == whole.diameter_estimate


def test_the_halo_is_six_object_diameters_in_the_planes_pixels(model):
    trained = model.config.object_diameter_px
    assert default_halo(model, 0.25) == int(np.ceil(6 * trained / 0.25 / 16) * 16)
    assert default_halo(model, 2.5) == 128  # never below the minimum
    # A zoom above 1 gives the network more pixels: the blocks shrink.
    assert stack_block(2048, 128, 1, 2.0) == 1024
    assert stack_block(2048, 128, 1, 0.5) == 2048
    assert stack_block(2048, 128, 16, 2.0) < stack_block(2048, 128, 16, 1.0)


class ReadOnlyWhereAsked:
    """A plane that can be sliced but refuses to be read whole, like a huge memory map."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads = []

    def __getitem__(self, key):
        part = self.data[key]
        if part.shape == self.shape:
            raise AssertionError("the whole plane was read")
        if all(k.step in (None, 1) for k in key):  # a region, not the normalisation's sample
            self.reads.append(part.shape)
        return part

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole plane was read")


def test_auto_measures_a_central_window_of_a_lazy_plane_once(model, tmp_path):
    image, truth = nuclei((1100, 1030), 40)
    lazy = ReadOnlyWhereAsked(image.data)
    settings = SegmentSettings(tile=128, batch_size=1)  # blocks read less than the plane
    plan = plan_stream(MicroscopyImage(lazy, "YX"), model, settings, block=256)
    estimate = plan.diameter_estimate
    assert estimate.diameter == pytest.approx(40, rel=0.15)
    assert plan.scale == estimate.scale < 1
    assert lazy.reads == [(512, 512)]

    whole = segment(image, model, settings)
    assert whole.scale == plan.scale
    labels, _, summary = streamed(
        MicroscopyImage(lazy, "YX"),
        model,
        tmp_path,
        block=256,
        halo=None,
        measure=False,
        settings=settings,
    )
    assert summary.scale == plan.scale and summary.oversized == 0
    assert len(relabelling(whole.labels, labels)) == whole.labels.max()
    assert whole.labels.max() == pytest.approx(truth.max(), rel=0.1)


def test_a_stack_is_sized_once_and_every_plane_is_zoomed(model, tmp_path):
    planes = [nuclei((120, 136), 8, seed=seed)[0].data for seed in range(3)]
    image = MicroscopyImage(np.stack(planes), "ZYX")
    settings = SegmentSettings(link_z=False)
    whole = segment(image, model, settings)
    assert whole.scale > 2
    events = []
    summary = drain(
        iter_segment_to_files(
            image, model, settings, tmp_path / "labels.tif", tmp_path / "table.csv", block=64
        ),
        events.append,
    )
    assert summary.scale == whole.scale
    messages = [e.info["message"] for e in events if "message" in e.info]
    assert messages == [whole.diameter_estimate.describe()]
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert len(relabelling(whole.labels, labels)) == whole.labels.max()
    assert len(pd.read_csv(tmp_path / "table.csv")) == whole.labels.max()
