"""OME-Zarr label pyramids written row by row, and folder outputs that appear whole."""

import numpy as np
import pytest
import zarr

from napari_segnet.io import atomic_paths
from napari_segnet.io.zarr_labels import ZarrLabelsWriter, pyramid_factors


def test_levels_halve_until_the_smallest_fits():
    assert pyramid_factors((300, 200)) == [1, 2]
    assert pyramid_factors((20480, 20480)) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert pyramid_factors((100, 100)) == [1]


def test_every_level_is_every_nth_pixel_of_what_was_painted(tmp_path):
    rng = np.random.default_rng(0)
    expected = np.zeros((1300, 1100), np.uint32)
    path = tmp_path / "labels.zarr"
    with ZarrLabelsWriter(path, expected.shape, spacing=(0.5, 0.25)) as writer:
        for i, top in enumerate(sorted(rng.integers(0, 1200, 30))):
            left = int(rng.integers(0, 1000))
            patch = np.zeros((100, 100), np.uint16)
            patch[10:60, 20:90] = 1
            writer.paint(patch, (int(top), left), offset=i)
            expected[top : top + 100, left : left + 100][patch > 0] = i + 1
            writer.rows_final(int(top))  # later patches start lower
    group = zarr.open_group(path, mode="r")
    meta = group.attrs["multiscales"][0]
    assert meta["version"] == "0.4" and [a["name"] for a in meta["axes"]] == ["y", "x"]
    assert all(a["unit"] == "micrometer" for a in meta["axes"])
    for k, factor in enumerate(writer.factors):
        assert np.array_equal(group[str(k)][:], expected[::factor, ::factor]), k
        scale = meta["datasets"][k]["coordinateTransformations"][0]["scale"]
        assert scale == pytest.approx([0.5 * factor, 0.25 * factor])


def test_a_folder_output_appears_whole_or_not_at_all(tmp_path):
    labels, table = tmp_path / "a_labels.zarr", tmp_path / "a.csv"
    with atomic_paths(labels, table) as (folder, csv):
        ZarrLabelsWriter(folder, (64, 64)).close()
        csv.write_text("label\n")
        assert not labels.exists()
    assert (labels / "0").is_dir() and table.read_text() == "label\n"

    with pytest.raises(RuntimeError), atomic_paths(labels, table) as (folder, csv):
        writer = ZarrLabelsWriter(folder, (64, 64))
        writer.paint(np.ones((8, 8), np.uint32), (0, 0))
        writer.close()
        csv.write_text("label\n1\n")
        raise RuntimeError("the run stopped")
    assert zarr.open_group(labels, mode="r")["0"][:].max() == 0  # the previous output stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a_labels.zarr"]

    with atomic_paths(labels, table) as (folder, csv):  # a new run replaces the old folder
        writer = ZarrLabelsWriter(folder, (64, 64))
        writer.paint(np.ones((8, 8), np.uint32), (0, 0))
        writer.close()
        csv.write_text("label\n1\n")
    assert zarr.open_group(labels, mode="r")["0"][:].max() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a_labels.zarr"]
