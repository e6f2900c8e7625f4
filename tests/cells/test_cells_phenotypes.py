import json

import numpy as np
import pandas as pd
import pytest

from napari_segnet.cells import (
    Marker,
    PhenotypeDefinition,
    automatic_threshold,
    classify,
    grow_on_stain,
    marker_column,
    measure_cells,
    phenotype_counts,
    resolve_thresholds,
)
from synthetic_cells import CHANNELS

DEFINITION = PhenotypeDefinition((Marker("CD8", "cytoplasm"), Marker("Ki67", "nucleus")))


@pytest.fixture(scope="module")
def measured(batch):
    tables, grown = [], []
    for tissue in batch:
        cells = grow_on_stain(
            tissue.nuclei, tissue.channel("membrane"), 15.0, spacing=tissue.spacing
        )
        grown.append(cells)
        tables.append(
            measure_cells(
                tissue.nuclei, cells, tissue.image, channel_names=CHANNELS, spacing=tissue.spacing
            )
        )
    return tables, grown


def accuracy(table, tissue, cells, channel):
    """Share of matched cells (IoU >= 0.5 with the true cell of the same nucleus) called right."""
    matched = [k for k in table["label"] if iou(tissue.cells == k, cells == k) >= 0.5]
    called = table.set_index("label").loc[matched, f"{channel}_positive"].to_numpy()
    truth = np.array([tissue.positive[channel][k] for k in matched])
    assert len(matched) >= 0.8 * len(table)
    return np.mean(called == truth)


def iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def test_automatic_thresholds_classify_the_known_positives(batch, measured):
    tables, grown = measured
    settled = resolve_thresholds(tables, DEFINITION)
    assert settled.is_resolved and len(grown) == len(tables) == len(batch)
    for tissue, table, cells in zip(batch, tables, grown):
        labelled = classify(table, settled)
        for channel in ("CD8", "Ki67"):
            assert accuracy(labelled, tissue, cells, channel) >= 0.95


def test_a_batch_threshold_finds_no_positives_where_there_are_none(measured):
    measured, _ = measured
    # The last image has no positive cell: the pooled threshold calls (almost) none there,
    # while a threshold chosen on that image alone splits its negatives in two.
    pooled = classify(measured[-1], resolve_thresholds(measured, DEFINITION))
    alone = classify(measured[-1], resolve_thresholds(measured[-1], DEFINITION))
    for channel in ("CD8", "Ki67"):
        assert pooled[f"{channel}_positive"].mean() <= 0.02
        assert alone[f"{channel}_positive"].mean() > pooled[f"{channel}_positive"].mean()


def test_otsu_is_available_and_documented_defaults_hold(measured):
    measured, _ = measured
    otsu = PhenotypeDefinition(
        tuple(Marker(m.channel, m.compartment, method="otsu") for m in DEFINITION.markers)
    )
    settled = resolve_thresholds(measured, otsu)
    assert all(m.method == "otsu" and m.threshold > 0 for m in settled.markers)
    assert DEFINITION.markers[0].method == "triangle"


def test_automatic_threshold_edge_cases():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(10, 2, 900), rng.normal(100, 30, 100)])
    for method in ("triangle", "otsu"):
        threshold = automatic_threshold(values, method)
        assert 16 < threshold < 70
    # A few saturated cells do not pull the threshold up to them.
    spiked = np.concatenate([values, [1e7]])  # under 0.1 % of the cells
    assert automatic_threshold(spiked) < 70
    assert automatic_threshold([5.0, 5.0, np.nan]) == 5.0  # nothing above it
    with pytest.raises(ValueError, match="no cells"):
        automatic_threshold([np.nan])
    with pytest.raises(ValueError, match="method"):
        automatic_threshold(values, "mean")


def test_phenotype_strings_and_counts():
    table = pd.DataFrame(
        {
            "image": ["a", "a", "a", "b"],
            "label": [1, 2, 3, 1],
            "cytoplasm_intensity_mean_CD8": [50.0, 1.0, 60.0, 2.0],
            "intensity_mean_Ki67": [1.0, 80.0, 90.0, np.nan],
        }
    )
    fixed = PhenotypeDefinition(
        (Marker("CD8", "cytoplasm", threshold=20), Marker("Ki67", "nucleus", threshold=40.0))
    )
    labelled = classify(table, fixed)
    assert labelled["phenotype"].tolist() == [
        "CD8+ Ki67-",
        "CD8- Ki67+",
        "CD8+ Ki67+",
        "CD8- Ki67-",
    ]
    assert labelled["CD8_positive"].dtype == bool
    counts = phenotype_counts(labelled, by="image")
    assert list(counts.columns) == ["image", "phenotype", "count", "percent"]
    a = counts[counts["image"] == "a"].set_index("phenotype")
    assert a["count"].to_dict() == {
        "CD8+ Ki67+": 1,
        "CD8+ Ki67-": 1,
        "CD8- Ki67+": 1,
        "CD8- Ki67-": 0,
    }
    assert a["percent"].sum() == pytest.approx(100)
    b = counts[counts["image"] == "b"].set_index("phenotype")
    assert b.loc["CD8- Ki67-", "percent"] == 100
    overall = phenotype_counts(labelled)
    assert overall["count"].sum() == 4 and overall["percent"].sum() == pytest.approx(100)


def test_a_definition_round_trips_through_json_and_applies_unchanged(tmp_path, measured):
    measured, _ = measured
    settled = resolve_thresholds(measured, DEFINITION)
    path = tmp_path / "phenotypes.json"
    settled.to_json(path)
    again = PhenotypeDefinition.from_json(path)
    assert again == settled
    assert PhenotypeDefinition.from_json(DEFINITION.to_json()) == DEFINITION
    # Given thresholds are kept, whatever the batch.
    assert resolve_thresholds(measured[:1], again) == again
    data = json.loads(path.read_text())
    assert data["markers"][0]["channel"] == "CD8" and data["version"] == 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"channel": "CD8", "threshold": "high"}, "threshold must be a finite number"),
        ({"channel": "CD8", "threshold": True}, "threshold must be a finite number"),
        ({"channel": "CD8", "threshold": float("nan")}, "threshold must be a finite number"),
        ({"channel": "CD8", "compartment": "membrane"}, "compartment must be one of"),
        ({"channel": "CD8", "method": "li"}, "method must be one of"),
        ({"channel": "CD 8"}, "not a column-safe name"),
        ({"channel": "CD8", "colour": "red"}, "unknown fields"),
        ({"compartment": "cell"}, "needs a 'channel'"),
    ],
)
def test_bad_definitions_are_refused_in_one_sentence(entry, message):
    with pytest.raises(ValueError, match=message):
        PhenotypeDefinition.from_dict({"markers": [entry]})


def test_other_bad_definitions(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        PhenotypeDefinition.from_json("{markers: }")
    with pytest.raises(ValueError, match="at least one marker"):
        PhenotypeDefinition(())
    with pytest.raises(ValueError, match="repeated: CD8"):
        PhenotypeDefinition((Marker("CD8"), Marker("CD8", "nucleus")))


def test_a_marker_channel_that_was_not_measured_is_refused(measured):
    measured, _ = measured
    missing = PhenotypeDefinition((Marker("PDL1", "cell"),))
    with pytest.raises(ValueError, match="'PDL1' has no column 'cell_intensity_mean_PDL1'"):
        resolve_thresholds(measured, missing)
    fixed = PhenotypeDefinition((Marker("PDL1", "cell", threshold=3.0),))
    with pytest.raises(ValueError, match="channels measured: CD8, DAPI, Ki67"):
        classify(measured[0], fixed)


def test_classify_wants_thresholds_settled_over_the_batch(measured):
    measured, _ = measured
    with pytest.raises(ValueError, match="resolve_thresholds"):
        classify(measured[0], DEFINITION)
    assert marker_column(DEFINITION.markers[0]) == "cytoplasm_intensity_mean_CD8"
    assert marker_column(DEFINITION.markers[1]) == "intensity_mean_Ki67"


def test_a_small_batch_gets_its_threshold_at_the_base_of_the_unstained_peak():
    from napari_segnet.cells import automatic_threshold

    rng = np.random.default_rng(3)
    negatives = rng.normal(15, 3, 50)  # a few dozen cells: a sparse histogram
    positives = rng.uniform(45, 140, 26)
    threshold = automatic_threshold(np.concatenate([negatives, positives]))
    assert negatives.max() < threshold < positives.min()
