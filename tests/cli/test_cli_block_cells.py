"""``segment --cells`` block by block: the whole image's cells and rows, locally and on workers."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_segnet.inference.block_cells import CellGrowth, cell_margin, survey_window
from synthetic_cells import synthetic_cells, write_ome_tiff

CELLS = ("--channel", "DAPI", "--cell-distance", "6")
BLOCKS = ("--block", 64, "--halo", 32)


def write_field(path):
    """Write a calibrated 5-channel field of about 90 cells (25 blocks of 64 pixels)."""
    return write_ome_tiff(path, synthetic_cells((320, 320), spacing=(0.5, 0.5), seed=3))


@pytest.fixture(scope="module")
def tissue(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("tissue") / "t.ome.tif")


def same_objects(a: np.ndarray, b: np.ndarray) -> dict:
    """Assert two label images hold the same objects; return the numbering of ``a`` in ``b``."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    assert np.array_equal(a > 0, b > 0)
    assert pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))  # one-to-one
    return dict(zip(pairs[0], pairs[1]))


def renumbered(table: pd.DataFrame, mapping: dict) -> pd.DataFrame:
    table = table.assign(label=table["label"].map(mapping).astype(np.int64))
    return table.sort_values("label").reset_index(drop=True)


@pytest.mark.parametrize("cells", ["membrane", "cytoplasm", "expand"])
def test_cells_block_by_block_are_the_whole_images(run_cli, tissue, tmp_path, cells):
    runs = {"whole": ("--block", 0), "blocks": BLOCKS}
    for name, options in runs.items():
        options = ("--cells", cells, *CELLS, *options)
        result = run_cli("segment", tissue, "--out", tmp_path / name, *options)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr
    whole, blocks = tmp_path / "whole", tmp_path / "blocks"
    with tifffile.TiffFile(blocks / "t_cells.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled  # streamed, as the nuclei's labels
    nuclei = same_objects(
        tifffile.imread(whole / "t_labels.tif"), tifffile.imread(blocks / "t_labels.tif")
    )
    cell_labels = tifffile.imread(whole / "t_cells.tif")
    assert cell_labels.max() > 80
    assert same_objects(cell_labels, tifffile.imread(blocks / "t_cells.tif")) == nuclei
    rows_whole = pd.read_csv(whole / "t_measurements.csv")
    rows_blocks = pd.read_csv(blocks / "t_measurements.csv")
    assert list(rows_whole.columns) == list(rows_blocks.columns)
    assert "cell_area_um2" in rows_blocks.columns and len(rows_blocks) == cell_labels.max()
    pd.testing.assert_frame_equal(renumbered(rows_whole, nuclei), rows_blocks, rtol=1e-6)


def test_cells_on_two_workers_and_as_ome_zarr(run_cli, tissue, tmp_path):
    import zarr

    local, workers = tmp_path / "local", tmp_path / "workers"
    cells = ("--cells", "membrane", *CELLS, *BLOCKS, "--positive", "CD8:cytoplasm:30")
    assert run_cli("segment", tissue, "--out", local, *cells).returncode == 0
    result = run_cli(
        "segment", tissue, "--out", workers, *cells, "--workers", 2, "--labels-format", "zarr"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in workers.iterdir()) == [
        "phenotype_counts.csv",
        "phenotypes.json",
        "t_cells.zarr",
        "t_labels.zarr",
        "t_measurements.csv",
    ]
    level0 = zarr.open_group(workers / "t_cells.zarr", mode="r")["0"][:]
    assert np.array_equal(level0, tifffile.imread(local / "t_cells.tif"))
    rows = pd.read_csv(workers / "t_measurements.csv")
    assert rows.equals(pd.read_csv(local / "t_measurements.csv"))
    assert set(rows["phenotype"]) <= {"CD8+", "CD8-"} and 0 < rows["CD8_positive"].mean() < 1


def test_the_halo_grows_by_twice_the_cell_distance_and_the_smoothing():
    assert cell_margin(CellGrowth(distance=5.0, spacing=(0.5, 0.5))) == 32  # 20 px
    assert cell_margin(CellGrowth(stain=1, distance=5.0, spacing=(0.5, 0.5))) == 32  # 25 px
    assert cell_margin(CellGrowth(stain=1, distance=8.0)) == 32  # 21 px
    assert cell_margin(CellGrowth(distance=9.0)) == 32
    assert cell_margin(CellGrowth(distance=9.0, spacing=(2.0, 0.25, 0.25))) == 80  # 72 px


def test_the_stain_is_surveyed_on_a_central_window():
    assert survey_window((320, 200)) == (slice(0, 320), slice(0, 200))
    assert survey_window((10000, 3000)) == (slice(3976, 6024), slice(476, 2524))
