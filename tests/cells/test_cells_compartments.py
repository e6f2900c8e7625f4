import numpy as np
import pandas as pd
import pytest

from napari_segnet.cells import cytoplasm_labels, measure_cells, ratio_column
from napari_segnet.measure import measure


def two_cells():
    """Cell 1: a 4x4 nucleus in a 6x6 cell; cell 2: all nucleus (no cytoplasm)."""
    nuclei = np.zeros((10, 14), np.uint16)
    cells = np.zeros_like(nuclei)
    cells[1:7, 1:7] = 1
    nuclei[2:6, 2:6] = 1
    cells[2:5, 9:12] = nuclei[2:5, 9:12] = 2
    marker = np.where(nuclei > 0, 30.0, np.where(cells > 0, 10.0, 0.0))
    image = np.stack([marker, 2 * marker])
    return nuclei, cells, image


def test_cytoplasm_is_the_cell_minus_its_nucleus():
    nuclei, cells, _ = two_cells()
    cytoplasm = cytoplasm_labels(cells, nuclei)
    assert cytoplasm.dtype == cells.dtype
    assert np.count_nonzero(cytoplasm == 1) == 36 - 16
    assert not (cytoplasm == 2).any()
    assert not np.any((cytoplasm > 0) & (nuclei > 0))


def test_compartment_table_keeps_the_nucleus_columns_and_adds_prefixed_ones():
    nuclei, cells, image = two_cells()
    spacing = (0.5, 0.5)
    table = measure_cells(nuclei, cells, image, channel_names=["CD8", "Ki67"], spacing=spacing)
    today = measure(nuclei, image, channel_names=["CD8", "Ki67"], spacing=spacing)
    pd.testing.assert_frame_equal(table[today.columns], today, check_dtype=False)
    cell = measure(cells, image, channel_names=["CD8", "Ki67"], spacing=spacing)
    for column in cell.columns.drop("label"):
        np.testing.assert_allclose(table[f"cell_{column}"], cell[column])
    row = table.set_index("label").loc[1]
    assert row["cell_area_px"] == 36 and row["cell_area_um2"] == 9.0
    assert row["cytoplasm_area_px"] == 20 and row["cytoplasm_area_um2"] == 5.0
    assert row["intensity_mean_CD8"] == 30 and row["cytoplasm_intensity_mean_CD8"] == 10
    assert row["cell_intensity_mean_Ki67"] == pytest.approx(2 * (16 * 30 + 20 * 10) / 36)
    assert row[ratio_column("CD8")] == pytest.approx(3.0)
    assert "cell_solidity" in table and "cell_perimeter_um" in table


def test_a_cell_without_cytoplasm_has_empty_cytoplasm_columns():
    nuclei, cells, image = two_cells()
    table = measure_cells(nuclei, cells, image, channel_names=["CD8", "Ki67"]).set_index("label")
    assert table.loc[2, "cytoplasm_area_px"] == 0
    assert table["cytoplasm_area_px"].dtype == np.int64
    assert np.isnan(table.loc[2, "cytoplasm_intensity_mean_CD8"])
    assert np.isnan(table.loc[2, ratio_column("CD8")])


def test_time_series_and_3d_tables():
    nuclei, cells, image = two_cells()
    series = measure_cells(
        np.stack([nuclei, nuclei]),
        np.stack([cells, cells * 0 + nuclei]),
        np.stack([image, image], axis=1),
        axes="TYX",
        channel_axis=0,
    )
    assert series["frame"].tolist() == [0, 0, 1, 1]
    assert series["cytoplasm_area_px"].tolist() == [20, 0, 0, 0]
    stack = measure_cells(np.stack([nuclei] * 3), np.stack([cells] * 3), spacing=(2.0, 0.5, 0.5))
    assert stack.set_index("label").loc[1, "cell_volume_um3"] == pytest.approx(3 * 36 * 0.5)
    assert "cytoplasm_volume_px" in stack


def test_measuring_grown_cells_of_synthetic_tissue(tissue):
    from napari_segnet.cells import grow_on_stain
    from synthetic_cells import CHANNELS

    cells = grow_on_stain(tissue.nuclei, tissue.channel("membrane"), 10.0, spacing=tissue.spacing)
    table = measure_cells(
        tissue.nuclei, cells, tissue.image, channel_names=CHANNELS, spacing=tissue.spacing
    )
    assert len(table) == tissue.nuclei.max()
    assert (table["cell_area_px"] >= table["area_px"]).all()
    assert (table["cytoplasm_area_px"] == table["cell_area_px"] - table["area_px"]).all()


def test_labels_of_different_shapes_are_refused():
    nuclei, cells, _ = two_cells()
    with pytest.raises(ValueError, match="do not fit"):
        measure_cells(nuclei, cells[:-1])
    with pytest.raises(ValueError, match="do not fit"):
        cytoplasm_labels(cells[:, :-1], nuclei)
