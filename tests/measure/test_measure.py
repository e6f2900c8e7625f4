"""Tests of napari_segnet.measure against independent per-object computations."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import ConvexHull
from skimage.draw import disk, ellipse
from skimage.measure import regionprops
from skimage.morphology import convex_hull_image

from napari_segnet.measure import measure, sanitise_channel_names, write_csv

IDS = (3, 7, 1000, 42, 5)  # not consecutive, not sorted by position


def make_scene(dtype=np.uint16, n_channels=2, seed=0):
    """Disks and ellipses, two of them touching, and noisy CYX intensities."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((120, 160), dtype=np.uint16)
    shapes = [
        disk((30, 30), 12),
        disk((30, 53), 11),  # touches the first disk
        ellipse(80, 40, 20, 8, rotation=0.6),
        ellipse(60, 110, 10, 25),
        disk((105, 140), 6),
    ]
    for label, (rr, cc) in zip(IDS, shapes):
        labels[rr, cc] = label
    base = rng.uniform(20, 200, size=(n_channels, max(IDS) + 1))
    image = base[:, labels] + rng.normal(0, 10, size=(n_channels, *labels.shape))
    if np.issubdtype(dtype, np.integer):
        image = np.clip(np.round(image), 0, np.iinfo(dtype).max)
    return labels, image.astype(dtype)


def reference(labels, channels):
    """Per-object properties from boolean masks, one object at a time."""
    rows = []
    for label in sorted(set(np.unique(labels)) - {0}):
        mask = labels == label
        coords = np.nonzero(mask)
        row = {"label": label, "size": mask.sum()}
        for axis, c in zip("zyx"[-labels.ndim :], coords):
            row |= {f"centroid_{axis}_px": c.mean(), f"min_{axis}": c.min(), f"max_{axis}": c.max()}
        for i, channel in enumerate(channels):
            values = channel[mask].astype(np.float64)
            row |= {f"{stat}_{i}": getattr(np, stat)(values) for stat in ("mean", "max", "min")}
            row |= {f"std_{i}": values.std(), f"sum_{i}": values.sum()}
        rows.append(row)
    return pd.DataFrame(rows)


def check_against_reference(table, labels, channels, names):
    ref = reference(labels, channels)
    np.testing.assert_array_equal(table["label"], ref["label"])
    size = "area_px" if labels.ndim == 2 else "volume_px"
    np.testing.assert_array_equal(table[size], ref["size"])
    for axis in "zyx"[-labels.ndim :]:
        np.testing.assert_allclose(table[f"centroid_{axis}_px"], ref[f"centroid_{axis}_px"])
        np.testing.assert_array_equal(table[f"bbox_{axis}_min"], ref[f"min_{axis}"])
        np.testing.assert_array_equal(table[f"bbox_{axis}_max"], ref[f"max_{axis}"] + 1)
    for i, name in enumerate(names):
        for stat in ("mean", "max", "min", "std", "sum"):
            ours = table[f"intensity_{stat}_{name}"]
            np.testing.assert_allclose(ours, ref[f"{stat}_{i}"], rtol=1e-9, err_msg=stat)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32])
def test_sizes_positions_and_intensities_match_masks(dtype):
    labels, image = make_scene(dtype)
    table = measure(labels, image, channel_names=["DAPI", "GFP"])
    check_against_reference(table, labels, image, ["DAPI", "GFP"])
    assert isinstance(table.index, pd.RangeIndex)
    assert list(table.columns[:13]) == [
        "label",
        "area_px",
        "centroid_y_px",
        "centroid_x_px",
        "bbox_y_min",
        "bbox_x_min",
        "bbox_y_max",
        "bbox_x_max",
        "perimeter_px",
        "eccentricity",
        "solidity",
        "major_axis_length_px",
        "minor_axis_length_px",
    ]
    assert list(table.columns[13:16]) == [
        "orientation",
        "intensity_mean_DAPI",
        "intensity_max_DAPI",
    ]
    assert not any("_um" in c for c in table.columns)


def test_four_named_channels_and_channel_last_image():
    labels, image = make_scene(np.uint16, n_channels=4, seed=1)
    names = ["DAPI", "Alexa Fluor 488", "", "Alexa Fluor 488"]
    table = measure(labels, np.moveaxis(image, 0, -1), channel_names=names)
    clean = ["DAPI", "Alexa_Fluor_488", "ch2", "Alexa_Fluor_488_2"]
    check_against_reference(table, labels, image, clean)
    explicit = measure(labels, np.moveaxis(image, 0, -1), channel_axis=-1, channel_names=names)
    pd.testing.assert_frame_equal(table, explicit)
    single = measure(labels, image[1])
    check_against_reference(single, labels, image[1:2], ["ch0"])


def test_sanitise_channel_names():
    assert sanitise_channel_names([" GFP (ex 488) ", "a-b", "a_b", "a b", "__", 5]) == [
        "GFP_ex_488",
        "a_b",
        "a_b_2",
        "a_b_3",
        "ch4",
        "5",
    ]


def test_calibrated_columns_by_hand():
    labels, _ = make_scene()
    plain = measure(labels)
    table = measure(labels, spacing=(0.5, 0.25))
    np.testing.assert_allclose(table["area_um2"], plain["area_px"] * 0.5 * 0.25)
    np.testing.assert_allclose(table["centroid_y_um"], plain["centroid_y_px"] * 0.5)
    np.testing.assert_allclose(table["centroid_x_um"], plain["centroid_x_px"] * 0.25)
    # The 4-connected perimeter estimate has no meaning on a rectangular grid.
    assert "perimeter_um" not in table
    iso = measure(labels, spacing=(0.4, 0.4))
    np.testing.assert_allclose(iso["perimeter_um"], plain["perimeter_px"] * 0.4)
    np.testing.assert_allclose(iso["major_axis_length_um"], plain["major_axis_length_px"] * 0.4)
    order = list(iso.columns)
    assert order.index("area_um2") == 2
    assert order[5:7] == ["centroid_y_um", "centroid_x_um"]
    assert order[order.index("perimeter_px") + 1] == "perimeter_um"


def test_circle_sampled_with_rectangular_pixels():
    radius_um, spacing = 10.0, (0.5, 0.25)
    labels = np.zeros((60, 100), dtype=np.uint8)
    rr, cc = ellipse(30, 50, radius_um / spacing[0], radius_um / spacing[1])
    labels[rr, cc] = 1
    row = measure(labels, spacing=spacing).iloc[0]
    assert row["major_axis_length_um"] == pytest.approx(2 * radius_um, rel=0.05)
    assert row["minor_axis_length_um"] == pytest.approx(2 * radius_um, rel=0.05)
    assert row["area_um2"] == pytest.approx(math.pi * radius_um**2, rel=0.05)
    assert row["eccentricity"] < 0.1  # round in micrometres...
    assert row["major_axis_length_px"] == pytest.approx(80, rel=0.05)  # ...but not in pixels
    assert row["minor_axis_length_px"] == pytest.approx(40, rel=0.05)
    assert measure(labels).loc[0, "eccentricity"] == pytest.approx(math.sqrt(1 - 0.25), abs=0.02)


@pytest.mark.parametrize("radius", [10, 25])
def test_disk_perimeter_eccentricity_solidity(radius):
    labels = np.zeros((80, 80), dtype=np.int32)
    labels[disk((40, 40), radius)] = 9
    row = measure(labels).iloc[0]
    assert row["perimeter_px"] == pytest.approx(2 * math.pi * radius, rel=0.04)
    assert row["eccentricity"] < 0.05
    assert row["solidity"] > 0.95
    assert row["major_axis_length_px"] == pytest.approx(2 * radius, rel=0.03)


def test_ellipse_eccentricity_and_orientation():
    a, b = 30, 12
    yy, xx = np.mgrid[-50:51, -50:51]
    along_rows = (yy / a) ** 2 + (xx / b) ** 2 <= 1
    along_cols = (yy / b) ** 2 + (xx / a) ** 2 <= 1
    u, v = (yy + xx) / math.sqrt(2), (yy - xx) / math.sqrt(2)
    diagonal = (u / a) ** 2 + (v / b) ** 2 <= 1  # major axis along row = col
    table = measure(np.stack([along_rows, along_cols, diagonal]).astype(np.uint8), axes="TYX")
    expected = math.sqrt(1 - b**2 / a**2)
    np.testing.assert_allclose(table["eccentricity"], expected, atol=0.01)
    np.testing.assert_allclose(table["major_axis_length_px"], 2 * a, rtol=0.03)
    np.testing.assert_allclose(table["minor_axis_length_px"], 2 * b, rtol=0.05)
    orientation = table["orientation"].to_numpy()
    assert orientation[0] == pytest.approx(0, abs=1e-6)
    assert abs(orientation[1]) == pytest.approx(math.pi / 2, abs=1e-6)
    assert orientation[2] == pytest.approx(math.pi / 4, abs=1e-6)


def test_solidity_of_an_l_shape():
    labels = np.zeros((30, 30), dtype=np.uint8)
    labels[5:25, 5:10] = 4
    labels[20:25, 5:25] = 4
    hull = convex_hull_image(labels == 4)
    expected = (labels == 4).sum() / hull.sum()
    assert measure(labels).loc[0, "solidity"] == pytest.approx(expected, rel=1e-12)
    assert expected < 0.7


def random_masks(rng, shape):
    """Masks of a random kind inside a random box of `shape`: dense to sparse pixel clouds,
    holed rotated ellipses, digital lines at any slope and half-planes (triangles, boxes)."""
    y, x = (int(rng.integers(0, s)) for s in shape)
    h, w = min(int(rng.integers(1, 40)), shape[0] - y), min(int(rng.integers(1, 40)), shape[1] - x)
    yy, xx = np.mgrid[:h, :w]
    kind = rng.integers(4)
    if kind == 0:
        mask = rng.random((h, w)) < rng.uniform(0.005, 1) ** 2
    elif kind == 1:
        a, b, angle = rng.uniform(0.3, 20), rng.uniform(0.3, 20), rng.uniform(0, np.pi)
        u = (yy - h / 2) * np.cos(angle) + (xx - w / 2) * np.sin(angle)
        v = (xx - w / 2) * np.cos(angle) - (yy - h / 2) * np.sin(angle)
        mask = ((u / a) ** 2 + (v / b) ** 2 <= 1) & (rng.random((h, w)) > rng.uniform(0, 0.3))
    elif kind == 2:
        t = np.linspace(0, 1, 2 * (h + w))
        mask = np.zeros((h, w), dtype=bool)
        mask[
            np.round(t * (h - 1)).astype(int), np.round(t * rng.uniform(0, 1) * (w - 1)).astype(int)
        ] = True
        mask = mask[:, ::-1] if rng.random() < 0.5 else mask
    else:
        mask = rng.normal() * yy + rng.normal() * xx <= rng.normal() * (h + w) / 2
    return (slice(y, y + h), slice(x, x + w)), mask


def test_solidity_equals_regionprops_on_random_shapes():
    # Exact equality with scikit-image on ~2,000 objects: ragged, holed, disconnected (one
    # label painted twice, or partly painted over), at image borders, in images of 1 x 1 up.
    rng = np.random.default_rng(0)
    for _ in range(400):
        labels = np.zeros(rng.integers(1, 90, size=2), dtype=np.int32)
        for label in rng.integers(1, 10_000, size=rng.integers(1, 12)):
            for _ in range(1 + (rng.random() < 0.2)):
                box, mask = random_masks(rng, labels.shape)
                labels[box][mask] = label
        if not labels.any():
            continue
        expected = [region.solidity for region in regionprops(labels)]
        np.testing.assert_array_equal(measure(labels)["solidity"], expected)


def test_solidity_equals_regionprops_on_long_and_far_objects():
    labels = np.zeros((1500, 1200), dtype=np.uint32)
    yy, xx = np.mgrid[:1000, :600]
    labels[:1000, :600][(yy - 500) ** 2 / 500**2 + xx**2 / 580**2 <= 1] = 5  # long concave arc...
    labels[0, 1199] = labels[999, 1199] = 5  # ...whose hull edge drops its points one by one
    rng = np.random.default_rng(1)
    labels[rng.integers(1000, 1500, 300), rng.integers(0, 1200, 300)] = 60_000  # sparse
    labels[1499, 1199] = labels[1498, 1197] = 7  # far from the origin
    labels[1200:1203, 100:1100] = 8  # one row per pixel column, thin
    table = measure(labels)
    expected = [region.solidity for region in regionprops(labels)]
    np.testing.assert_array_equal(table["solidity"], expected)
    assert table["label"].tolist() == [5, 7, 8, 60_000]


def test_solidity_equals_regionprops_in_3d():
    rng = np.random.default_rng(2)
    labels = np.zeros((12, 30, 30), dtype=np.uint16)
    for label in range(1, 9):
        z, y, x = rng.integers(0, 9), rng.integers(0, 26), rng.integers(0, 26)
        size = rng.integers(3, 8, size=3)
        box = labels[z : z + size[0], y : y + size[1], x : x + size[2]]
        box[rng.random(box.shape) < 0.6] = label
    table = measure(labels)
    expected = [region.solidity for region in regionprops(labels)]
    np.testing.assert_array_equal(table["solidity"], expected)


@pytest.mark.parametrize("spacing", [None, (0.3, 0.7)])
def test_shape_columns_agree_with_regionprops(spacing):
    # measure() does not call regionprops: it is an independent implementation here.
    rng = np.random.default_rng(0)
    labels, _ = make_scene()
    labels[rng.random(labels.shape) < 0.03] = 0  # ragged, non-convex, holed objects
    table = measure(labels, spacing=spacing)
    unit = "px" if spacing is None else "um"
    regions = regionprops(labels, spacing=spacing)
    pixel_regions = regionprops(labels)
    for (_, row), region, pixel_region in zip(table.iterrows(), regions, pixel_regions):
        assert row["label"] == region.label
        assert row["solidity"] == pytest.approx(pixel_region.solidity, rel=1e-12)
        assert row["perimeter_px"] == pytest.approx(pixel_region.perimeter, rel=1e-12)
        assert row[f"major_axis_length_{unit}"] == pytest.approx(region.axis_major_length)
        assert row[f"minor_axis_length_{unit}"] == pytest.approx(region.axis_minor_length)
        assert row["eccentricity"] == pytest.approx(region.eccentricity)
        turn = (row["orientation"] - region.orientation) / math.pi  # same axis up to pi
        assert turn == pytest.approx(round(turn), abs=1e-9)


def test_ball_in_anisotropic_volume():
    radius_um, spacing = 8.0, np.array([2.0, 0.5, 0.5])
    zz, yy, xx = np.mgrid[0:20, 0:50, 0:50]
    ball = ((zz - 10) * 2.0) ** 2 + ((yy - 25) * 0.5) ** 2 + ((xx - 24) * 0.5) ** 2 <= radius_um**2
    labels = ball.astype(np.int64) * 17
    image = np.random.default_rng(0).normal(100, 5, (2, *labels.shape)).astype(np.float32)
    table = measure(labels, image, spacing=spacing)
    check_against_reference(table, labels, image, ["ch0", "ch1"])
    row = table.iloc[0]
    assert row["volume_um3"] == pytest.approx(4 / 3 * math.pi * radius_um**3, rel=0.05)
    assert row["volume_um3"] == pytest.approx(ball.sum() * 0.5)
    for axis, s, centre in zip("zyx", spacing, (10, 25, 24)):
        assert row[f"centroid_{axis}_um"] == pytest.approx(centre * s)
    assert row["major_axis_length_um"] == pytest.approx(2 * radius_um, rel=0.05)
    assert row["minor_axis_length_um"] == pytest.approx(2 * radius_um, rel=0.05)
    # scikit-image's solidity: voxels over voxel centres inside the hull of the voxel faces.
    voxels = np.argwhere(ball)
    faces = (voxels[:, None, :] + np.vstack([np.eye(3), -np.eye(3)]) / 2).reshape(-1, 3)
    planes = ConvexHull(faces).equations  # rows (normal, offset), normals point outwards
    grid = np.argwhere(np.ones_like(ball))
    inside = np.all(grid @ planes[:, :3].T + planes[:, 3] <= 1e-9, axis=1)
    assert row["solidity"] == pytest.approx(len(voxels) / inside.sum(), rel=1e-9)
    for absent in ("perimeter_px", "perimeter_um", "eccentricity", "orientation", "area_px"):
        assert absent not in table


def test_solidity_of_flat_objects_in_a_volume():
    labels = np.zeros((4, 12, 12), dtype=np.uint8)
    labels[1, 2:9, 3:8] = 1  # one voxel thick frame around a 3 x 1 hole: hull is the 7 x 5 box
    labels[1, 4:7, 5] = 0
    labels[0, 0, 0], labels[1, 1, 1], labels[1, 1, 0] = 2, 2, 2  # three voxels, diagonal plane
    solidity = measure(labels)["solidity"].tolist()
    assert solidity[0] == pytest.approx(32 / 35)
    assert np.isnan(solidity[1])


def test_time_series_with_channels_after_time():
    frames = [make_scene(seed=s) for s in range(3)]
    labels = np.stack([f[0] for f in frames])
    labels[1] = 0  # an empty frame in the middle
    labels[2][labels[2] == 1000] = 0
    image = np.stack([f[1] for f in frames])  # T, C, Y, X
    table = measure(labels, image, axes="TYX")
    assert list(table.columns[:2]) == ["frame", "label"]
    assert table["frame"].tolist() == [0] * 5 + [2] * 4
    for t in (0, 2):
        part = table[table["frame"] == t].reset_index(drop=True)
        check_against_reference(part, labels[t], image[t], ["ch0", "ch1"])
    channels_first = measure(labels, np.moveaxis(image, 1, 0), axes="TYX")  # C, T, Y, X
    pd.testing.assert_frame_equal(channels_first, table)


def test_time_series_3d_needs_axes():
    labels = np.zeros((2, 3, 10, 10), dtype=np.uint8)
    labels[1, 1:3, 2:5, 2:6] = 2
    with pytest.raises(ValueError, match="axes"):
        measure(labels)
    table = measure(labels, axes="TZYX", spacing=(1.0, 0.2, 0.2))
    assert table[["frame", "label", "volume_px"]].values.tolist() == [[1, 2, 24]]
    assert table.loc[0, "volume_um3"] == pytest.approx(24 * 0.04)


def test_huge_and_signed_label_ids():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[2:5, 2:5], labels[10:12, 3:9], labels[14:18, 15:19] = 2**40, 9, 3
    table = measure(labels)
    assert table["label"].tolist() == [3, 9, 2**40]
    check_against_reference(table, labels, [], [])
    with pytest.raises(ValueError, match="non-negative"):
        measure(-labels)
    with pytest.raises(TypeError):
        measure(labels.astype(np.float32))


def test_lazy_dask_input():
    da = pytest.importorskip("dask.array")
    labels, image = make_scene()
    lazy = measure(
        da.from_array(labels[None], chunks=(1, 60, 80)), da.from_array(image[None]), axes="TYX"
    )
    pd.testing.assert_frame_equal(lazy.drop(columns="frame"), measure(labels, image))


def test_empty_labels_give_all_columns():
    labels = np.zeros((30, 40), dtype=np.uint16)
    image = np.ones((2, 30, 40), dtype=np.uint8)
    table = measure(labels, image, channel_names=["a", "b"], spacing=(0.5, 0.5))
    assert len(table) == 0
    assert list(table.columns) == list(
        measure(labels + 1, image, channel_names=["a", "b"], spacing=(0.5, 0.5)).columns
    )
    assert table["label"].dtype == np.int64 and table["intensity_sum_b"].dtype == np.float64


@pytest.mark.parametrize("shape", [(30, 41), (2, 30, 41), (3, 2, 30, 40), (30, 40, 2, 1)])
def test_image_shape_mismatch_names_both_shapes(shape):
    labels = np.zeros((30, 40), dtype=np.uint16)
    with pytest.raises(ValueError) as error:
        measure(labels, np.zeros(shape))
    assert str(shape) in str(error.value) and "(30, 40)" in str(error.value)


@pytest.mark.parametrize("channel_axis", [3, -4, 0])
def test_bad_channel_axis(channel_axis):
    labels, image = make_scene()
    with pytest.raises(ValueError, match="channel_axis"):
        measure(labels, np.moveaxis(image, 0, -1), channel_axis=channel_axis)


@pytest.mark.parametrize(
    "spacing", [(0.5,), (0.5, 0.0), (0.5, -1.0), (0.5, np.nan), (np.inf, 1.0), 0.5]
)
def test_bad_spacing(spacing):
    with pytest.raises(ValueError, match="spacing"):
        measure(np.ones((5, 5), dtype=np.uint8), spacing=spacing)


def test_wrong_number_of_channel_names():
    labels, image = make_scene()
    with pytest.raises(ValueError, match="channel"):
        measure(labels, image, channel_names=["only one"])
    with pytest.raises(ValueError, match="channel"):
        measure(labels, channel_names=["no image"])


def test_write_csv_round_trip(tmp_path):
    labels, image = make_scene(np.float32)
    table = measure(labels, image, channel_names=["DAPI", "Alexa Fluor 488"], spacing=(0.5, 0.5))
    path = write_csv(table, tmp_path / "cells.csv")
    pd.testing.assert_frame_equal(pd.read_csv(path), table, check_exact=False, rtol=1e-12)
    write_csv(table.head(2), tmp_path / "cells.csv")  # overwrite in place
    assert len(pd.read_csv(tmp_path / "cells.csv")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.csv"]


def test_write_csv_into_missing_folder(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        write_csv(pd.DataFrame({"label": [1]}), tmp_path / "missing" / "cells.csv")
    assert list(tmp_path.iterdir()) == []
