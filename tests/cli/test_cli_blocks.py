"""``napari-segnet segment --block``: the same objects and measurements, a tiled BigTIFF, resume."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_segnet.data import sample_path
from napari_segnet.io import read_image
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.models.identity import safetensors_sha256

MODEL_COLUMNS = ["model", "model_sha256"]


def measurements(table: pd.DataFrame) -> np.ndarray:
    """The numbers of a measurement table, once its columns naming the model are checked."""
    newest = safetensors_sha256(bundled_model_path("nuclei"))[:16]
    assert list(table.columns[-2:]) == MODEL_COLUMNS
    assert set(table["model"]) == {"nuclei@2"} and set(table["model_sha256"]) == {newest}
    return table.drop(columns=MODEL_COLUMNS).to_numpy(float)


def test_block_by_block_gives_the_in_memory_objects_and_rows(run_cli, tmp_path):
    sample = sample_path("nuclei_2ch")
    whole, blocks = tmp_path / "whole", tmp_path / "blocks"
    assert run_cli("segment", sample, "--out", whole).returncode == 0
    result = run_cli("segment", sample, "--out", blocks, "--block", 200, "--halo", 64)
    assert result.returncode == 0, result.stderr
    assert "objects" in result.stderr and "warning" not in result.stderr

    a = read_image(whole / "nuclei_2ch_labels.tif").data
    b_file = blocks / "nuclei_2ch_labels.tif"
    with tifffile.TiffFile(b_file) as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled
    b = np.asarray(read_image(b_file).data)
    assert read_image(b_file).pixel_size == pytest.approx(read_image(sample).pixel_size)
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    assert np.array_equal(a > 0, b > 0)
    assert pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))  # one-to-one

    rows_a = pd.read_csv(whole / "nuclei_2ch_measurements.csv")
    rows_b = pd.read_csv(blocks / "nuclei_2ch_measurements.csv")
    assert list(rows_a.columns) == list(rows_b.columns) and len(rows_a) == len(rows_b)
    mapping = dict(zip(pairs[0], pairs[1]))
    rows_a["label"] = rows_a["label"].map(mapping)
    rows_a = rows_a.sort_values("label").reset_index(drop=True)
    np.testing.assert_allclose(measurements(rows_a), measurements(rows_b), rtol=1e-6)


def test_too_small_a_halo_is_a_warning_with_what_to_do(run_cli, tmp_path):
    result = run_cli(
        "segment", sample_path("nuclei"), "--out", tmp_path, "--block", 64, "--halo", 0
    )
    assert result.returncode == 0, result.stderr
    assert "may be cut; segment again with a larger --halo" in result.stderr


def test_resume_skips_inputs_already_done(run_cli, tmp_path, nuclei_pairs):
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(first, nuclei_pairs[0][0])
    tifffile.imwrite(second, nuclei_pairs[1][0])
    out = tmp_path / "out"
    assert run_cli("segment", first, "--out", out).returncode == 0
    done = (out / "a_labels.tif").stat().st_mtime_ns
    # A run killed while writing b left its temporary; resuming removes it.
    stale = out / ".b_labels.4242-0123abcd.partial.tif"
    stale.write_bytes(b"half")
    result = run_cli("segment", first, second, "--out", out, "--resume")
    assert not stale.exists()
    assert result.returncode == 0, result.stderr
    assert "a.tif: already done" in result.stderr and "b.tif:" in result.stderr
    assert (out / "a_labels.tif").stat().st_mtime_ns == done
    assert (out / "b_measurements.csv").exists()


def test_bad_block_options_are_one_sentence(run_cli, error_lines, tmp_path):
    result = run_cli("segment", sample_path("nuclei"), "--out", tmp_path, "--block", 8)
    assert error_lines(result) == ["napari-segnet: error: --block must be 0 or at least 64 pixels."]
    series = tmp_path / "series.tif"
    tifffile.imwrite(series, np.zeros((3, 99, 99), np.uint8), imagej=True, metadata={"axes": "TYX"})
    lines = error_lines(run_cli("segment", series, "--out", tmp_path, "--block", 64))
    assert len(lines) == 1 and "time points one at a time" in lines[0]
    assert not list(tmp_path.glob("series_*"))


def write_stack(path):
    """A calibrated Z-stack of bright ellipsoids, some on the corners and faces of 64-px blocks."""
    rng = np.random.default_rng(1)
    shape = (7, 150, 170)
    z, y, x = np.indices(shape, sparse=True)
    stack = rng.normal(20, 4, shape)
    for cz, cy, cx in [(3, 64, 64), (2, 64, 25), (4, 128, 64), (3, 30, 128), (3, 110, 120)]:
        stack[((z - cz) / 4) ** 2 + ((y - cy) / 9) ** 2 + ((x - cx) / 9) ** 2 <= 1] += 120
    tifffile.imwrite(
        path,
        stack.clip(0, 255).astype(np.uint8),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"},
    )


def test_a_z_stack_block_by_block_locally_and_on_two_workers(run_cli, tmp_path):
    stack = tmp_path / "stack.tif"
    write_stack(stack)
    runs = {
        "whole": (),
        "blocks": ("--block", 64, "--halo", 32),
        "workers": ("--block", 64, "--halo", 32, "--workers", 2),
    }
    for name, options in runs.items():
        result = run_cli("segment", stack, "--out", tmp_path / name, *options)
        assert result.returncode == 0, result.stderr
    whole = read_image(tmp_path / "whole" / "stack_labels.tif").data
    blocks = tifffile.imread(tmp_path / "blocks" / "stack_labels.tif")
    assert blocks.shape == whole.shape == (7, 150, 170) and whole.max() == 5
    pairs = np.unique(np.stack([whole.ravel(), blocks.ravel()]), axis=1)
    assert np.array_equal(whole > 0, blocks > 0) and pairs.shape[1] == 6  # one-to-one
    calibrated = read_image(tmp_path / "blocks" / "stack_labels.tif")
    assert calibrated.pixel_size == pytest.approx({"Z": 1.5, "Y": 0.5, "X": 0.5})
    assert np.array_equal(tifffile.imread(tmp_path / "workers" / "stack_labels.tif"), blocks)
    tables = [pd.read_csv(tmp_path / n / "stack_measurements.csv") for n in runs]
    assert len(tables[0]) == 5 and "volume_um3" in tables[0].columns
    assert tables[1].equals(tables[2])
    mapping = dict(zip(pairs[0], pairs[1]))
    tables[0]["label"] = tables[0]["label"].map(mapping)
    tables[0] = tables[0].sort_values("label").reset_index(drop=True)
    np.testing.assert_allclose(measurements(tables[0]), measurements(tables[1]), rtol=1e-6)


def test_labels_as_an_ome_zarr_pyramid(run_cli, tmp_path):
    import zarr

    sample = sample_path("nuclei_2ch")
    result = run_cli(
        "segment", sample, "--out", tmp_path, "--block", 256, "--labels-format", "zarr"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nuclei_2ch_labels.zarr",
        "nuclei_2ch_measurements.csv",
    ]
    group = zarr.open_group(tmp_path / "nuclei_2ch_labels.zarr", mode="r")
    level0 = group["0"][:]
    assert level0.shape == (520, 696) and level0.max() == len(
        pd.read_csv(tmp_path / "nuclei_2ch_measurements.csv")
    )
    assert np.array_equal(group["1"][:], level0[::2, ::2])
    again = run_cli(
        "segment", sample, "--out", tmp_path, "--block", 256, "--labels-format", "zarr", "--resume"
    )
    assert "already done" in again.stderr


def test_measure_of_a_big_labels_output_block_by_block(run_cli, tmp_path):
    sample = sample_path("nuclei_2ch")
    assert run_cli("segment", sample, "--out", tmp_path, "--block", 256).returncode == 0
    labels = tmp_path / "nuclei_2ch_labels.tif"
    by_blocks, whole = tmp_path / "blocks.csv", tmp_path / "whole.csv"
    result = run_cli("measure", "--image", sample, "--labels", labels, "--out", by_blocks,
                     "--block", 128)  # fmt: skip
    assert result.returncode == 0, result.stderr
    args = ("measure", "--image", sample, "--labels", labels, "--out", whole, "--block", 0)
    assert run_cli(*args).returncode == 0
    tables = [pd.read_csv(p) for p in (by_blocks, whole, tmp_path / "nuclei_2ch_measurements.csv")]
    for table in tables[1:]:  # the same rows (to rounding: blocks compute in local coordinates)
        assert list(table.columns) == list(tables[0].columns)
        np.testing.assert_allclose(measurements(table), measurements(tables[0]), rtol=1e-9)
