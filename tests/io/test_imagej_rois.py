"""ImageJ ROI sets for Fiji's ROI Manager: one ROI per object and plane, and back to labels."""

import zipfile

import numpy as np
import pytest
from roifile import ROI_TYPE, roiread
from skimage.segmentation import expand_labels

from napari_segnet.io.imagej_rois import (
    imagej_rois_extent,
    is_imagej_roi_zip,
    read_imagej_rois,
    write_imagej_rois,
)


def mean_iou(original, redrawn):
    """Mean over the original objects of the IoU with the redrawn object of the same label."""
    scores = []
    for label in np.unique(original[original > 0]):
        a, b = original == label, redrawn == label
        scores.append((a & b).sum() / (a | b).sum())
    return float(np.mean(scores))


def test_nuclei_redraw_with_mean_iou_above_target(tmp_path, nuclei_pairs):
    scores = []
    for _, labels in nuclei_pairs:
        path = write_imagej_rois(tmp_path / "nuclei_rois.zip", labels)
        scores.append(mean_iou(labels, read_imagej_rois(path, labels.shape)))
    measured = float(np.mean(scores))
    print(f"ImageJ ROI redraw of synthetic nuclei: mean IoU {measured:.4f}")
    assert measured >= 0.85
    assert measured == pytest.approx(1.0)


def test_one_traced_polygon_per_object_named_by_its_label(tmp_path, nuclei_pairs):
    _, labels = nuclei_pairs[0]
    path = write_imagej_rois(tmp_path / "nuclei_rois.zip", labels)
    rois = roiread(path)
    assert [r.name for r in rois] == [f"{k:04d}" for k in range(1, labels.max() + 1)]
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [f"{k:04d}.roi" for k in range(1, labels.max() + 1)]
    for roi in rois:
        assert roi.roitype == ROI_TYPE.TRACED
        assert roi.position == roi.z_position == roi.t_position == 0
        rows, columns = np.nonzero(labels == int(roi.name))
        x, y = roi.coordinates().T
        assert (x.min(), x.max()) == (columns.min(), columns.max() + 1)  # pixel corners
        assert (y.min(), y.max()) == (rows.min(), rows.max() + 1)


def test_touching_objects_holes_and_pieces_redraw_exactly(tmp_path):
    rng = np.random.default_rng(5)
    seeds = np.zeros((64, 80), np.uint16)
    points = rng.integers(0, seeds.shape, size=(20, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, 21)
    labels = expand_labels(seeds, distance=100)
    labels[labels == 3] = 0
    labels[np.nonzero(labels == 4)[0][0], np.nonzero(labels == 4)[1][0]] = 0
    ring = np.zeros_like(labels)
    ring[5:15, 5:15] = 30
    ring[8:11, 8:11] = 0  # a hole
    ring[40:44, 60:64] = 30  # and a second piece
    labels = np.where(ring > 0, ring, labels).astype(np.uint16)
    path = write_imagej_rois(tmp_path / "cells_rois.zip", labels)
    redrawn = read_imagej_rois(path, labels.shape)
    print(f"ImageJ ROI redraw of touching cells: mean IoU {mean_iou(labels, redrawn):.4f}")
    np.testing.assert_array_equal(redrawn, labels)
    composite = next(r for r in roiread(path) if r.name == "0030")
    assert composite.composite and len(composite.coordinates(multi=True)) == 3


def test_z_stack_rois_have_slice_positions(tmp_path):
    stack = np.zeros((5, 20, 20), np.uint16)
    stack[1:4, 4:10, 4:10] = 7
    stack[4, 12:18, 2:6] = 12
    path = write_imagej_rois(tmp_path / "stack_rois.zip", stack)
    rois = roiread(path)
    assert [(r.name, r.position) for r in rois] == [
        ("0007-z0002", 2),
        ("0007-z0003", 3),
        ("0007-z0004", 4),
        ("0012-z0005", 5),
    ]
    assert all(r.z_position == r.t_position == 0 for r in rois)  # ImageJ: one or the other
    np.testing.assert_array_equal(read_imagej_rois(path, stack.shape), stack)
    assert imagej_rois_extent(path) == ("ZYX", (5, 18, 10))


def test_time_series_of_stacks_have_hyperstack_positions(tmp_path):
    movie = np.zeros((3, 2, 16, 16), np.uint16)
    movie[0, 1, 2:6, 2:6] = 1
    movie[2, 0, 8:12, 8:14] = 2
    path = write_imagej_rois(tmp_path / "movie_rois.zip", movie, axes="TZYX")
    rois = roiread(path)
    assert [(r.name, r.position, r.t_position, r.z_position) for r in rois] == [
        ("0001-t0001-z0002", 0, 1, 2),
        ("0002-t0003-z0001", 0, 3, 1),
    ]
    np.testing.assert_array_equal(read_imagej_rois(path, movie.shape, axes="TZYX"), movie)
    frames = np.zeros((4, 16, 16), np.uint16)
    frames[3, 1:5, 1:5] = 9
    path = write_imagej_rois(tmp_path / "frames_rois.zip", frames, axes="TYX")
    assert [(r.name, r.position) for r in roiread(path)] == [("0009-t0004", 4)]
    np.testing.assert_array_equal(read_imagej_rois(path, frames.shape, axes="TYX"), frames)


def test_fiji_rois_without_labels_are_numbered_and_plain_positions_unfold(tmp_path):
    from roifile import ImagejRoi, roiwrite

    square = ImagejRoi.frompoints(np.array([[2, 2], [6, 2], [6, 6], [2, 6]]), name="0003-0004-0004")
    square.position = 4  # slice 4 of a stack of 2 frames × 3 slices: frame 2, slice 1
    labelled = ImagejRoi.frompoints(np.array([[8, 8], [10, 8], [10, 10], [8, 10]]), name="label-5")
    path = tmp_path / "fiji.zip"
    roiwrite(path, [square, labelled])
    labels = read_imagej_rois(path, (2, 3, 12, 12), axes="TZYX")
    assert labels[1, 0, 3, 3] == 6 and (labels == 6).sum() == 16
    assert labels[0, 0, 9, 9] == 5


def test_empty_labels_give_an_empty_roi_set(tmp_path):
    path = write_imagej_rois(tmp_path / "empty_rois.zip", np.zeros((8, 8), np.uint8))
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == []
    assert not read_imagej_rois(path, (8, 8)).any()


def test_only_roi_zips_are_recognised(tmp_path, nuclei_pairs):
    _, labels = nuclei_pairs[0]
    rois = write_imagej_rois(tmp_path / "nuclei_rois.zip", labels)
    other = tmp_path / "data.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    fake = tmp_path / "fake.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("a.roi", "not a roi")
    assert is_imagej_roi_zip(rois)
    assert not is_imagej_roi_zip(other)
    assert not is_imagej_roi_zip(fake)
    assert not is_imagej_roi_zip(tmp_path / "missing.zip")


def test_bad_files_say_why_in_one_sentence(tmp_path):
    text = tmp_path / "text.zip"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match=r"text\.zip is not an ImageJ ROI set \(not a zip file\)"):
        read_imagej_rois(text, (8, 8))
    other = tmp_path / "data.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match=r"holds files other than \.roi"):
        read_imagej_rois(other, (8, 8))
    fake = tmp_path / "fake.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("a.roi", "not a roi")
    with pytest.raises(ValueError, match=r"fake\.zip is not a readable ImageJ ROI set"):
        read_imagej_rois(fake, (8, 8))


def test_a_roi_on_a_missing_plane_is_refused_and_failed_writes_leave_nothing(tmp_path):
    stack = np.zeros((4, 10, 10), np.uint8)
    stack[3, 2:5, 2:5] = 1
    path = write_imagej_rois(tmp_path / "stack_rois.zip", stack)
    with pytest.raises(ValueError, match="lies on Z plane 4, but the image"):
        read_imagej_rois(path, (2, 10, 10))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_imagej_rois(tmp_path / "missing" / "a_rois.zip", stack)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack_rois.zip"]
