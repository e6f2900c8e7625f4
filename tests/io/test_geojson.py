"""GeoJSON export for QuPath: one detection per object and plane, and the way back to labels."""

import json

import numpy as np
import pytest
from skimage.segmentation import expand_labels

from napari_segnet.io.geojson import geojson_extent, read_geojson, write_geojson
from napari_segnet.measure import measure


def mean_iou(original, redrawn):
    """Mean over the original objects of the IoU with the redrawn object of the same label."""
    scores = []
    for label in np.unique(original[original > 0]):
        a, b = original == label, redrawn == label
        scores.append((a & b).sum() / (a | b).sum())
    return float(np.mean(scores))


def touching_cells(shape=(80, 96), n=25, seed=3):
    """Cells that fill the plane and touch their neighbours, grown from random seeds."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint16)
    points = rng.integers(0, shape, size=(n, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, n + 1)
    return expand_labels(seeds, distance=max(shape))


def features(path):
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def test_nuclei_redraw_with_mean_iou_above_target(tmp_path, nuclei_pairs):
    scores = []
    for _, labels in nuclei_pairs:
        path = write_geojson(tmp_path / "nuclei.geojson", labels)
        scores.append(mean_iou(labels, read_geojson(path, labels.shape)))
    measured = float(np.mean(scores))
    print(f"GeoJSON redraw of synthetic nuclei: mean IoU {measured:.4f}")
    assert measured >= 0.85
    assert measured == pytest.approx(1.0)  # pixel-corner outlines lose nothing


def test_touching_objects_redraw_exactly_and_keep_their_labels(tmp_path):
    labels = touching_cells()
    path = write_geojson(tmp_path / "cells.geojson", labels)
    redrawn = read_geojson(path, labels.shape)
    print(f"GeoJSON redraw of touching cells: mean IoU {mean_iou(labels, redrawn):.4f}")
    np.testing.assert_array_equal(redrawn, labels)
    assert len(features(path)) == len(np.unique(labels[labels > 0]))


def test_features_follow_qupath_conventions_with_measurements_and_class(tmp_path, nuclei_pairs):
    _, labels = nuclei_pairs[0]
    table = measure(labels)
    table["class"] = ["tumour" if label % 2 else "normal" for label in table["label"]]
    path = write_geojson(tmp_path / "nuclei.geojson", labels, table=table)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["type"] == "FeatureCollection"
    found = document["features"]
    assert len(found) == labels.max()
    assert len({f["id"] for f in found}) == len(found)
    for feature in found:
        properties = feature["properties"]
        label = properties["label"]
        assert properties["objectType"] == "detection"
        assert properties["name"] == str(label)
        assert properties["classification"]["name"] == ("tumour" if label % 2 else "normal")
        assert len(properties["classification"]["color"]) == 3
        row = table[table["label"] == label].iloc[0]
        assert properties["measurements"]["area_px"] == row["area_px"]
        assert "class" not in properties["measurements"]  # QuPath measurements are numbers
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert feature["geometry"]["type"] == "Polygon"
        assert (ring[0] == ring[-1]).all()  # GeoJSON rings are closed
        # (x, y): the ring spans the object's columns along x.
        assert ring[:, 0].min() == row["bbox_x_min"] and ring[:, 0].max() == row["bbox_x_max"]
        assert ring[:, 1].min() == row["bbox_y_min"] and ring[:, 1].max() == row["bbox_y_max"]
        assert "plane" not in feature["geometry"]


def test_holes_are_interior_rings_and_pieces_one_multipolygon(tmp_path):
    labels = np.zeros((40, 40), np.uint16)
    labels[5:20, 5:20] = 1
    labels[9:12, 9:12] = 0  # a hole
    labels[25:30, 25:35] = 2
    labels[32:36, 2:6] = 2  # label 2 has a second piece
    path = write_geojson(tmp_path / "shapes.geojson", labels)
    by_label = {f["properties"]["label"]: f["geometry"] for f in features(path)}
    assert by_label[1]["type"] == "Polygon" and len(by_label[1]["coordinates"]) == 2
    assert by_label[2]["type"] == "MultiPolygon" and len(by_label[2]["coordinates"]) == 2
    np.testing.assert_array_equal(read_geojson(path, labels.shape), labels)


def test_stacks_and_time_series_carry_qupath_planes(tmp_path):
    stack = np.zeros((2, 3, 30, 30), np.uint16)
    stack[0, 1, 2:8, 2:8] = 4
    stack[0, 2, 3:9, 3:9] = 4  # the same object on the next plane
    stack[1, 0, 10:20, 5:15] = 7
    path = write_geojson(tmp_path / "stack.geojson", stack, axes="TZYX")
    planes = sorted(
        (f["properties"]["label"], f["geometry"]["plane"]["t"], f["geometry"]["plane"]["z"])
        for f in features(path)
    )
    assert planes == [(4, 0, 1), (4, 0, 2), (7, 1, 0)]
    np.testing.assert_array_equal(read_geojson(path, stack.shape, axes="TZYX"), stack)
    assert geojson_extent(path, "TZYX") == (2, 3, 20, 15)


def test_empty_labels_give_an_empty_collection(tmp_path):
    path = write_geojson(tmp_path / "empty.geojson", np.zeros((16, 16), np.uint8))
    assert features(path) == []
    assert not read_geojson(path, (16, 16)).any()


def test_qupath_objects_without_labels_are_numbered(tmp_path):
    square = [[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]
    document = [  # QuPath's export without "as FeatureCollection": a list of Features
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square}},
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [1, 1]},  # no area: skipped
        },
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[8, 1], [10, 1], [10, 3], [8, 1]]]},
            "properties": {"name": "Tumor", "objectType": "annotation"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 8], [3, 8], [3, 10], [0, 10]]]},
            "properties": {"name": "5"},
        },
    ]
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(document), encoding="utf-8")
    labels = read_geojson(path, (12, 12))
    assert labels[3, 3] == 6 and labels[1, 9] == 7 and labels[9, 1] == 5
    assert (labels == 6).sum() == 16


def test_unreadable_files_say_why_in_one_sentence(tmp_path):
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.geojson is not a GeoJSON file \(invalid JSON"):
        read_geojson(broken, (8, 8))
    other = tmp_path / "other.geojson"
    other.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a GeoJSON FeatureCollection"):
        read_geojson(other, (8, 8))
    binary = tmp_path / "binary.geojson"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="not a GeoJSON file"):
        read_geojson(binary, (8, 8))


def test_an_object_on_a_missing_plane_is_refused(tmp_path):
    stack = np.zeros((3, 10, 10), np.uint8)
    stack[2, 2:5, 2:5] = 1
    path = write_geojson(tmp_path / "stack.geojson", stack)
    with pytest.raises(ValueError, match="Object 1 lies on Z plane 3, but the image"):
        read_geojson(path, (2, 10, 10))


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_geojson(tmp_path / "missing" / "a.geojson", np.ones((4, 4), np.uint8))
    with pytest.raises(ValueError, match="integers"):
        write_geojson(tmp_path / "a.geojson", np.ones((4, 4), float))
    assert list(tmp_path.iterdir()) == []
