"""``segment --export`` block by block: outlines streamed as blocks come, the whole image's."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from roifile import roiread

from napari_segnet.io import read_image
from napari_segnet.io.geojson import write_geojson
from napari_segnet.io.imagej_rois import read_imagej_rois, write_imagej_rois
from napari_segnet.io.model_identity import METADATA_KEY, ModelIdentity

EXPORTS = ("--export", "geojson,imagej-roi", "--channel", "DAPI")
CELLS = ("--cells", "membrane", "--cell-distance", "6")
BLOCKS = ("--block", 64, "--halo", 32)


@pytest.fixture(scope="module")
def tissue(tmp_path_factory):
    from test_cli_block_cells import write_field

    return write_field(tmp_path_factory.mktemp("tissue") / "t.ome.tif")


def alike(a, b) -> bool:
    """Whether two JSON values are equal, floats up to their last digits."""
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(alike(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(alike, a, b))
    return a == b


def features(path) -> dict:
    """Label → (geometry, classification name) of every feature of a GeoJSON file."""
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection"
    return {
        f["properties"]["label"]: (
            f["geometry"],
            f["properties"].get("classification", {}).get("name"),
        )
        for f in document["features"]
    }


def test_outlines_of_nuclei_and_cells_stream_block_by_block(run_cli, tissue, tmp_path):
    whole, blocks = tmp_path / "whole", tmp_path / "blocks"
    for out, options in ((whole, ("--block", 0)), (blocks, BLOCKS)):
        result = run_cli("segment", tissue, "--out", out, *EXPORTS, *CELLS, *options)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in blocks.iterdir()) == sorted(p.name for p in whole.iterdir())
    table = pd.read_csv(blocks / "t_measurements.csv")
    for kind, stem in (("labels", "t"), ("cells", "t_cells")):
        a = tifffile.imread(whole / f"t_{kind}.tif")
        b = read_image(blocks / f"t_{kind}.tif")
        mapping = dict(np.unique(np.stack([a.ravel(), b.data.ravel()]), axis=1).T)
        # The whole image's outlines, numbered as the blocks number them.
        expected = {mapping[k]: v for k, v in features(whole / f"{stem}.geojson").items()}
        assert features(blocks / f"{stem}.geojson") == expected and len(expected) > 80
        # Exactly what the exports of the streamed labels and table are.
        model = ModelIdentity.from_metadata(b.metadata.get(METADATA_KEY))
        write_geojson(tmp_path / "again.geojson", b.data, table=table, model=model)
        # The measurements went through the CSV: equal up to its float text's last digit.
        again = json.loads((tmp_path / "again.geojson").read_text())
        assert alike(again, json.loads((blocks / f"{stem}.geojson").read_text()))
        write_imagej_rois(tmp_path / "again.zip", b.data, table=table, model=model)
        streamed = roiread(blocks / f"{stem}_rois.zip")
        assert [r.name for r in streamed] == [r.name for r in roiread(tmp_path / "again.zip")]
        assert [r.tobytes() for r in streamed] == [
            r.tobytes() for r in roiread(tmp_path / "again.zip")
        ]
        assert np.array_equal(read_imagej_rois(blocks / f"{stem}_rois.zip", a.shape), b.data)


def test_phenotypes_chosen_after_the_blocks_reach_their_outlines(run_cli, tissue, tmp_path):
    markers = ("--positive", "CD8:cytoplasm")
    result = run_cli("segment", tissue, "--out", tmp_path, *EXPORTS, *CELLS, *BLOCKS, *markers)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "t_measurements.csv").set_index("label")
    assert set(table["phenotype"]) == {"CD8+", "CD8-"}
    for stem in ("t", "t_cells"):
        named = {k: v[1] for k, v in features(tmp_path / f"{stem}.geojson").items()}
        assert named == table["phenotype"].to_dict()
        rois = roiread(tmp_path / f"{stem}_rois.zip")
        assert {int(r.name): r.props.splitlines()[-1] for r in rois} == {
            label: f"phenotype: {phenotype}" for label, phenotype in table["phenotype"].items()
        }
