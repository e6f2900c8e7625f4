import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

from napari_segnet.cells import detect_stain_kind, expand_nuclei, grow_cells, grow_on_stain
from napari_segnet.metrics import evaluate
from synthetic_cells import synthetic_cells


def ap(truth, cells, threshold):
    return evaluate([truth], [cells], thresholds=(threshold,))["pooled"][threshold]["ap"]


def assert_cells_hold_their_nuclei(cells, nuclei):
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    assert set(np.unique(cells)) - {0} == set(np.unique(nuclei)) - {0}


def assert_within_distance(cells, nuclei, distance, spacing):
    for k, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        reach = ndi.distance_transform_edt(nuclei[box] != k, sampling=spacing)
        assert reach[cells[box] == k].max() <= distance + 1e-9


def assert_connected(cells):
    for k, box in enumerate(ndi.find_objects(cells), start=1):
        if box is not None:
            assert ndi.label(cells[box] == k)[1] == 1


# --- expansion ---------------------------------------------------------------------------


def test_expand_equals_expand_labels_in_micrometres(tissue):
    cells = expand_nuclei(tissue.nuclei, 3.0, spacing=tissue.spacing)
    assert np.array_equal(cells, expand_labels(tissue.nuclei, 3.0, spacing=tissue.spacing))
    # 3 µm at 0.5 µm per pixel is 6 pixels.
    assert np.array_equal(cells, expand_labels(tissue.nuclei, 6.0))
    assert_cells_hold_their_nuclei(cells, tissue.nuclei)


def test_expand_without_calibration_counts_pixels():
    nuclei = np.zeros((9, 9), np.uint16)
    nuclei[4, 4] = 7
    cells = expand_nuclei(nuclei, 2)
    assert cells.dtype == np.uint16
    assert np.count_nonzero(cells) == 13  # the pixels within 2 px of the centre
    assert set(np.unique(cells)) == {0, 7}


def test_expand_in_3d_uses_the_anisotropic_spacing(tissue_3d):
    spacing = tissue_3d.spacing
    cells = expand_nuclei(tissue_3d.nuclei, 3.0, spacing=spacing)
    assert spacing[0] != spacing[1]
    assert np.array_equal(cells, expand_labels(tissue_3d.nuclei, 3.0, spacing=spacing))
    assert_cells_hold_their_nuclei(cells, tissue_3d.nuclei)
    # 3 µm reaches one plane (2 µm) but not two (4 µm) along z.
    single = np.zeros((7, 15, 15), np.int32)
    single[3, 7, 7] = 1
    grown = expand_nuclei(single, 3.0, spacing=(2.0, 0.5, 0.5))
    assert np.flatnonzero(grown.any(axis=(1, 2))).tolist() == [2, 3, 4]
    assert np.flatnonzero(grown[3].any(axis=0)).tolist() == list(range(1, 14))


def test_expand_in_a_block_with_a_halo_matches_the_whole_image(tissue):
    whole = expand_nuclei(tissue.nuclei, 4.0, spacing=tissue.spacing)
    halo = 16  # px: more than twice the 8 px distance
    core = (slice(64, 160), slice(80, 192))
    block = tuple(slice(s.start - halo, s.stop + halo) for s in core)
    part = expand_nuclei(tissue.nuclei[block], 4.0, spacing=tissue.spacing)
    assert np.array_equal(part[halo:-halo, halo:-halo], whole[core])


# --- growth on a stain ---------------------------------------------------------------------


def test_membrane_growth_finds_irregular_cells_far_better_than_expansion(tissue):
    truth, nuclei, spacing = tissue.cells, tissue.nuclei, tissue.spacing
    cells = grow_on_stain(
        nuclei, tissue.channel("membrane"), 15.0, kind="membrane", spacing=spacing
    )
    assert_cells_hold_their_nuclei(cells, nuclei)
    membrane = ap(truth, cells, 0.75)
    best_expansion = max(
        ap(truth, expand_nuclei(nuclei, d, spacing=spacing), 0.75) for d in (3.0, 5.0, 15.0)
    )
    assert membrane >= 0.7
    assert membrane - best_expansion >= 0.5


def test_membrane_cells_stay_within_the_distance_and_connected(tissue):
    nuclei, spacing = tissue.nuclei, tissue.spacing
    cells = grow_on_stain(nuclei, tissue.channel("membrane"), 6.0, kind="membrane", spacing=spacing)
    assert_cells_hold_their_nuclei(cells, nuclei)
    assert_within_distance(cells, nuclei, 6.0, spacing)
    assert_connected(cells)


def far_background(truth, spacing):
    """Background beyond the 1 µm that blurred outer rims spill over the tissue's edge."""
    return ndi.distance_transform_edt(truth == 0, sampling=spacing) > 1.0


def test_closed_rims_keep_the_cells_off_the_background():
    closed = synthetic_cells((256, 256), rim_gaps=0.0, seed=0)
    cells = grow_on_stain(closed.nuclei, closed.channel("membrane"), 15.0, spacing=closed.spacing)
    leaked = (cells > 0) & far_background(closed.cells, closed.spacing)
    assert np.count_nonzero(leaked) < 0.002 * np.count_nonzero(cells)


def test_gaps_in_the_rims_let_cells_out_no_farther_than_the_distance(tissue):
    nuclei, spacing = tissue.nuclei, tissue.spacing
    cells = grow_on_stain(nuclei, tissue.channel("membrane"), 15.0, spacing=spacing)
    expanded = expand_nuclei(nuclei, 15.0, spacing=spacing)
    background = far_background(tissue.cells, spacing)
    leaked = np.count_nonzero((cells > 0) & background)
    assert leaked < 0.25 * np.count_nonzero((expanded > 0) & background)


def test_cytoplasm_growth_beats_expansion_and_leaves_the_background(tissue):
    truth, nuclei, spacing = tissue.cells, tissue.nuclei, tissue.spacing
    stain = tissue.channel("cytoplasm")
    cells = grow_on_stain(nuclei, stain, 15.0, kind="cytoplasm", spacing=spacing)
    assert_cells_hold_their_nuclei(cells, nuclei)
    assert_within_distance(cells, nuclei, 15.0, spacing)
    assert_connected(cells)
    assert ap(truth, cells, 0.5) > ap(truth, expand_nuclei(nuclei, 5.0, spacing=spacing), 0.5) + 0.1
    background = ndi.distance_transform_edt(truth == 0, sampling=spacing) > 1.0
    assert np.count_nonzero((cells > 0) & background) < 0.01 * np.count_nonzero(cells)


def test_the_stain_kind_is_detected(tissue):
    nuclei, spacing = tissue.nuclei, tissue.spacing
    assert detect_stain_kind(nuclei, tissue.channel("membrane"), spacing=spacing) == "membrane"
    assert detect_stain_kind(nuclei, tissue.channel("cytoplasm"), spacing=spacing) == "cytoplasm"
    # A stain that also fills the nuclei (a whole-cell stain) is a fill too.
    whole_cell = tissue.channel("cytoplasm") + 60.0 * (nuclei > 0)
    assert detect_stain_kind(nuclei, whole_cell, spacing=spacing) == "cytoplasm"
    assert detect_stain_kind(np.zeros_like(nuclei), tissue.channel("membrane")) == "cytoplasm"


def test_auto_kind_gives_what_the_detected_kind_gives(tissue):
    nuclei, spacing = tissue.nuclei, tissue.spacing
    for kind in ("membrane", "cytoplasm"):
        stain = tissue.channel(kind)
        auto = grow_on_stain(nuclei, stain, 8.0, spacing=spacing)
        assert np.array_equal(auto, grow_on_stain(nuclei, stain, 8.0, kind=kind, spacing=spacing))


def test_membrane_growth_in_3d_with_anisotropic_spacing(tissue_3d):
    truth, nuclei, spacing = tissue_3d.cells, tissue_3d.nuclei, tissue_3d.spacing
    cells = grow_on_stain(nuclei, tissue_3d.channel("membrane"), 10.0, spacing=spacing)
    assert_cells_hold_their_nuclei(cells, nuclei)
    assert_within_distance(cells, nuclei, 10.0, spacing)
    assert_connected(cells)
    expanded = expand_nuclei(nuclei, 10.0, spacing=spacing)
    assert ap(truth, cells, 0.5) >= 0.8
    assert ap(truth, cells, 0.5) > ap(truth, expanded, 0.5) + 0.4


def test_time_series_are_grown_frame_by_frame(tissue):
    nuclei = np.stack([tissue.nuclei, np.zeros_like(tissue.nuclei), tissue.nuclei[::-1]])
    stain = np.stack([tissue.channel("membrane")] * 2 + [tissue.channel("membrane")[::-1]])
    spacing = tissue.spacing
    grown = grow_cells(nuclei, stain, axes="TYX", distance=8.0, spacing=spacing)
    for t in range(3):
        alone = grow_on_stain(nuclei[t], stain[t], 8.0, kind="membrane", spacing=spacing)
        assert np.array_equal(grown[t], alone)
    expanded = grow_cells(nuclei, axes="TYX", distance=4.0, spacing=spacing)
    assert np.array_equal(expanded[2], expand_nuclei(nuclei[2], 4.0, spacing=spacing))
    assert not expanded[1].any()


def test_no_nuclei_gives_no_cells(tissue):
    empty = np.zeros_like(tissue.nuclei)
    assert not grow_on_stain(empty, tissue.channel("membrane")).any()
    assert not expand_nuclei(empty).any()


@pytest.mark.parametrize("distance", [0, -3.0, float("nan"), float("inf"), "5", None, True])
def test_a_distance_that_is_not_positive_is_refused(tissue, distance):
    with pytest.raises(ValueError, match="distance must be a positive number"):
        expand_nuclei(tissue.nuclei, distance)
    with pytest.raises(ValueError, match="distance must be a positive number"):
        grow_on_stain(tissue.nuclei, tissue.channel("membrane"), distance)


def test_bad_options_are_refused_in_one_sentence(tissue):
    nuclei, stain = tissue.nuclei, tissue.channel("membrane")
    with pytest.raises(ValueError, match="kind must be"):
        grow_on_stain(nuclei, stain, kind="nuclear")
    with pytest.raises(ValueError, match="threshold must be a number"):
        grow_on_stain(nuclei, stain, threshold="high")
    with pytest.raises(ValueError, match="shape"):
        grow_on_stain(nuclei, stain[:-1])
    with pytest.raises(ValueError, match="smoothing"):
        grow_on_stain(nuclei, stain, smoothing=-1.0)
    with pytest.raises(ValueError, match="spacing"):
        expand_nuclei(nuclei, spacing=(0.5,))
    with pytest.raises(ValueError, match="integers"):
        expand_nuclei(nuclei.astype(float))
    with pytest.raises(ValueError, match="axes"):
        grow_cells(np.stack([nuclei] * 2 + [nuclei]).reshape(1, 3, *nuclei.shape))
