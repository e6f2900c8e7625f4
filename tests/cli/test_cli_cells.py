"""``segment --cells``: cells grown from the nuclei, measured per compartment, phenotyped."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from synthetic_cells import synthetic_cells, write_ome_tiff


def write_tissue(path: Path, seed: int, positive_fraction=(0.3, 0.4)):
    tissue = synthetic_cells(
        (192, 192), spacing=(0.5, 0.5), seed=seed, positive_fraction=positive_fraction
    )
    write_ome_tiff(path, tissue)
    return tissue


@pytest.fixture(scope="module")
def two_fields(tmp_path_factory):
    """Two calibrated 5-channel fields; the second has no CD8-positive cell."""
    folder = tmp_path_factory.mktemp("fields")
    write_tissue(folder / "a.ome.tif", 0)
    write_tissue(folder / "b.ome.tif", 1, positive_fraction=(0.0, 0.4))
    return folder / "a.ome.tif", folder / "b.ome.tif"


def test_cells_on_a_membrane_channel_with_markers(run_cli, two_fields, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "segment", *two_fields, "--out", out, "--channel", "DAPI",
        "--cells", "membrane", "--cell-distance", "8",
        "--positive", "CD8:cytoplasm", "--positive", "Ki67:nucleus",
        "--export", "geojson,imagej-roi",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for stem in ("a", "b"):
        nuclei = tifffile.imread(out / f"{stem}_labels.tif")
        cells = tifffile.imread(out / f"{stem}_cells.tif")
        assert cells.shape == nuclei.shape and nuclei.max() > 20
        inside = nuclei > 0
        assert np.array_equal(cells[inside], nuclei[inside])  # cell k holds nucleus k
        table = pd.read_csv(out / f"{stem}_measurements.csv")
        assert sorted(table["label"]) == sorted(np.unique(cells[cells > 0]))
        assert {"cell_area_um2", "cytoplasm_intensity_mean_CD8", "CD8_positive"} <= set(
            table.columns
        )
        assert table["phenotype"].str.fullmatch(r"CD8[+-] Ki67[+-]").all()
        assert table.columns[-1] == "model_sha256"  # the model still names the table
    used = json.loads((out / "phenotypes.json").read_text())
    assert all(isinstance(m["threshold"], float) for m in used["markers"])
    counts = pd.read_csv(out / "phenotype_counts.csv")
    assert set(counts["image"]) == {"a", "b"}  # the output stems: distinct, unlike names
    # Thresholds were chosen over both fields: the field without CD8+ cells has (almost) none.
    b = pd.read_csv(out / "b_measurements.csv")
    assert b["CD8_positive"].mean() < 0.05
    assert "phenotypes: CD8 > " in result.stderr and "a.ome.tif: " in result.stderr
    # The outlines carry the phenotypes chosen after the batch: QuPath classes, ROI properties.
    from roifile import roiread

    from napari_segnet.io.imagej_rois import read_imagej_rois

    a = pd.read_csv(out / "a_measurements.csv").set_index("label")
    features = json.loads((out / "a.geojson").read_text())["features"]
    assert {
        f["properties"]["label"]: f["properties"]["classification"]["name"] for f in features
    } == (a["phenotype"].to_dict())
    rois = roiread(out / "a_rois.zip")
    assert {int(r.name): r.props.splitlines()[-1] for r in rois} == {
        label: f"phenotype: {phenotype}" for label, phenotype in a["phenotype"].items()
    }
    nuclei = tifffile.imread(out / "a_labels.tif")
    assert np.array_equal(read_imagej_rois(out / "a_rois.zip", nuclei.shape), nuclei)

    # The recorded definition applies the same thresholds to another batch, unchanged.
    again = tmp_path / "again"
    rerun = run_cli(
        "segment", two_fields[1], "--out", again, "--channel", "DAPI", "--cells", "membrane",
        "--cell-distance", "8", "--phenotypes", out / "phenotypes.json",
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert pd.read_csv(again / "b_measurements.csv")["phenotype"].equals(b["phenotype"])


def test_expanded_cells_are_the_nuclei_grown_by_the_distance_in_micrometres(
    run_cli, two_fields, tmp_path
):
    from skimage.segmentation import expand_labels

    out = tmp_path / "out"
    result = run_cli(
        "segment", two_fields[0], "--out", out, "--channel", "DAPI", "--cells", "expand",
        "--cell-distance", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    nuclei = tifffile.imread(out / "a_labels.tif")
    cells = tifffile.imread(out / "a_cells.tif")
    assert np.array_equal(cells, expand_labels(nuclei, 6))  # 3 µm at 0.5 µm a pixel
    assert not (out / "phenotypes.json").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cells", "CellMask"], "no channel named 'CellMask'"),
        (["--cells", "expand", "--positive", "CD4:cytoplasm"], "no channel 'CD4'"),
        (["--cells", "expand", "--positive", "CD8:cytoplasm:high"], "is not a number"),
        (["--cells", "expand", "--positive", "CD8:membrane"], "compartment must be one of"),
        (["--cells", "expand", "--cell-distance", "0"], "--cell-distance must be a positive"),
        (["--positive", "CD8:cytoplasm"], "give --cells expand"),
        (["--cells", "expand", "--positive", "CD8:cell", "--no-measure"], "drop --no-measure"),
    ],
)
def test_bad_cell_options_are_one_sentence_and_nothing_is_written(
    run_cli, error_lines, two_fields, tmp_path, options, message
):
    out = tmp_path / "out"
    result = run_cli("segment", two_fields[0], "--out", out, "--channel", "DAPI", *options)
    lines = error_lines(result)
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_measure_grows_cells_from_given_nuclei_or_reads_given_cells(run_cli, tmp_path):
    tissue = write_tissue(tmp_path / "field.ome.tif", 2)
    tifffile.imwrite(tmp_path / "nuclei.tif", tissue.nuclei.astype(np.uint16))
    tifffile.imwrite(tmp_path / "truth_cells.tif", tissue.cells.astype(np.uint16))
    grown = run_cli(
        "measure", "--image", tmp_path / "field.ome.tif", "--labels", tmp_path / "nuclei.tif",
        "--out", tmp_path / "field_measurements.csv", "--cells", "membrane",
        "--cell-distance", "8", "--positive", "Ki67:nucleus", "--positive", "CD8:cytoplasm",
    )  # fmt: skip
    assert grown.returncode == 0, grown.stderr
    cells = tifffile.imread(tmp_path / "field_cells.tif")
    assert np.array_equal(cells[tissue.nuclei > 0], tissue.nuclei[tissue.nuclei > 0])
    table = pd.read_csv(tmp_path / "field_measurements.csv").set_index("label")
    for marker in ("Ki67", "CD8"):
        truth = pd.Series(tissue.positive[marker])
        right = (table[f"{marker}_positive"] == truth.reindex(table.index)).mean()
        assert right >= 0.95, (marker, right)

    given = run_cli(
        "measure", "--image", tmp_path / "field.ome.tif", "--labels", tmp_path / "nuclei.tif",
        "--out", tmp_path / "given.csv", "--cell-labels", tmp_path / "truth_cells.tif",
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    table = pd.read_csv(tmp_path / "given.csv").set_index("label")
    areas = np.bincount(tissue.cells.ravel())
    assert np.array_equal(table["cell_area_px"].to_numpy(), areas[table.index.to_numpy()])
    assert not (tmp_path / "given_cells.tif").exists()


@pytest.mark.parametrize("axes", ["ZCYX", "TCYX"])
def test_cells_of_z_stacks_and_time_series(run_cli, tmp_path, nuclei_pairs, axes):
    planes = np.stack([image for image, _ in nuclei_pairs[:3]])  # three planes
    stain = np.stack([np.roll(image, 3, axis=1) for image, _ in nuclei_pairs[:3]])
    data = np.stack([planes, stain], axis=1)  # (3, C, Y, X)
    metadata = {"axes": axes, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    metadata |= {"PhysicalSizeZ": 2.0} if axes[0] == "Z" else {"TimeIncrement": 60.0}
    tifffile.imwrite(tmp_path / "stack.ome.tif", data, ome=True, metadata=metadata)
    out = tmp_path / "out"
    result = run_cli(
        "segment", tmp_path / "stack.ome.tif", "--out", out, "--channel", "0",
        "--cells", "expand", "--cell-distance", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    nuclei = tifffile.imread(out / "stack_labels.tif")
    cells = tifffile.imread(out / "stack_cells.tif")
    assert cells.shape == nuclei.shape == (3, *planes.shape[1:])
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside]) and (cells > 0).sum() > inside.sum()
    table = pd.read_csv(out / "stack_measurements.csv")
    assert ("frame" in table.columns) == (axes[0] == "T")
    assert ("cell_volume_um3" in table.columns) == (axes[0] == "Z")


def test_an_input_that_fails_is_left_out_of_the_batch_even_with_a_table_from_before(
    run_cli, two_fields, tmp_path
):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    inputs = [shutil.copy(path, folder) for path in two_fields]
    options = ("--channel", "DAPI", "--cells", "expand", "--positive", "CD8:cytoplasm")
    out = tmp_path / "out"
    assert run_cli("segment", *inputs, "--out", out, *options).returncode == 0
    Path(inputs[1]).write_bytes(b"not a TIFF")  # b fails now; its table from before stays
    again = run_cli("segment", *inputs, "--out", out, *options)
    assert again.returncode == 1 and "b.ome.tif" in again.stderr
    assert set(pd.read_csv(out / "phenotype_counts.csv")["image"]) == {"a"}
    assert (
        "over 38 cells" in again.stderr
        or "b.ome.tif: " not in again.stderr.split("phenotypes:")[-1]
    )
