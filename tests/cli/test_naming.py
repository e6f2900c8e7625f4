from pathlib import Path

from napari_segnet.cli.naming import output_stems


def test_suffixes_only_are_removed():
    paths = [Path("/d/a.b.tif"), Path("/d/a.c.tif"), Path("/d/cells.ome.tiff"), Path("/d/X.TIF")]
    assert list(output_stems(paths).values()) == ["a.b", "a.c", "cells", "X"]


def test_same_names_in_other_folders_are_told_apart_by_their_folders():
    paths = [Path("/data/plate1/img.tif"), Path("/data/plate2/img.tif"), Path("/data/b.tif")]
    assert list(output_stems(paths).values()) == ["plate1_img", "plate2_img", "b"]


def test_folders_are_added_until_names_differ():
    paths = [Path("/r/p1/w1/img.tif"), Path("/r/p2/w1/img.tif"), Path("/r/p2/w2/img.tif")]
    assert list(output_stems(paths).values()) == ["p1_w1_img", "p2_w1_img", "w2_img"]


def test_names_that_still_clash_get_numbers():
    # "a/b_c.tif" and "a_b/c.tif" both become "a_b_c"; case differences count as clashes.
    paths = [Path("/x/a/b_c.tif"), Path("/x/a_b/c.tif"), Path("/y/Cells.tif"), Path("/y/cells.tif")]
    stems = list(output_stems(paths).values())
    assert len({s.casefold() for s in stems}) == 4
    assert stems[2:] == ["Cells", "cells_2"]


def test_zarr_suffixes_are_removed_too():
    paths = [
        Path("/d/slide.ome.zarr"),
        Path("/d/b.zarr"),
        Path("/d/c.OME.ZARR"),
        Path("/d/x.y.zarr"),
    ]
    assert list(output_stems(paths).values()) == ["slide", "b", "c", "x.y"]
    same = [Path("/p1/img.ome.zarr"), Path("/p2/img.tif")]
    assert list(output_stems(same).values()) == ["p1_img", "p2_img"]
