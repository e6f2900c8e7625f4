"""Phenotypes of a batch: thresholds chosen once over all its cells, then every table classified.

An automatic threshold chosen per image would call the brightest cells of a well without
any positive cell "positive"; so ``segment`` first writes every image's measurements,
then pools the cells of all of them (also of images done earlier and skipped with
``--resume``), chooses each automatic threshold once, and rewrites every table with the
``<marker>_positive`` and ``phenotype`` columns. It records what it used beside the
outputs: ``phenotypes.json`` (the definition with every threshold a number, which
``--phenotypes`` applies unchanged to the next batch) and ``phenotype_counts.csv``
(cells of every phenotype per image, counts and percentages). Outline exports written
before the thresholds were known are written again, with every object's phenotype.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import UserError
from .job import SegmentJob

DEFINITION_FILE = "phenotypes.json"
COUNTS_FILE = "phenotype_counts.csv"
# Columns that name the model; they stay last when a table is rewritten.
MODEL_COLUMNS = ("model", "model_sha256")


def classify_batch(job: SegmentJob, inputs: list[Path], stems: dict[Path, str]) -> None:
    """Classify the cells of every input whose measurements exist; print a line per image.

    Raises
    ------
    UserError
        If a threshold cannot be chosen (no cell has a value), in one sentence; no
        table is then rewritten.
    """
    import pandas as pd

    from napari_segnet.cells import classify, phenotype_counts, resolve_thresholds
    from napari_segnet.io import atomic_paths
    from napari_segnet.measure import write_csv

    definition = job.cells.phenotypes
    stale = [m.positive_column for m in definition.markers] + ["phenotype"]
    tables = {}
    for path in inputs:
        csv = job.outputs.measurements(stems[path])
        if csv.exists():  # failed inputs have none
            table = pd.read_csv(csv)
            tables[path] = table.drop(columns=[c for c in stale if c in table.columns])
    if not tables:
        return
    try:
        resolved = resolve_thresholds(list(tables.values()), definition)
    except ValueError as error:
        raise UserError(f"Cannot choose the marker thresholds: {error}") from None
    classified = {}
    for path, table in tables.items():
        table = classify(table, resolved)
        last = [c for c in MODEL_COLUMNS if c in table.columns]
        classified[path] = table[[c for c in table.columns if c not in last] + last]
        write_csv(classified[path], job.outputs.measurements(stems[path]))
        if job.outputs.exports and not definition.is_resolved:  # written before the thresholds
            _rewrite_exports(job, stems[path], classified[path])
    pooled = pd.concat(
        [t.assign(image=stems[path]) for path, t in classified.items()], ignore_index=True
    )
    counts = phenotype_counts(pooled, by="image")
    folder = job.outputs.folder
    with atomic_paths(folder / DEFINITION_FILE, folder / COUNTS_FILE) as (used, counted):
        resolved.to_json(used)
        counts.to_csv(counted, index=False)
    print(describe_thresholds(definition, resolved, len(pooled)), file=sys.stderr)
    for path, table in classified.items():
        own = counts[counts["image"] == stems[path]]
        print(describe_counts(path.name, own, len(table)), file=sys.stderr)


def _rewrite_exports(job: SegmentJob, stem: str, table) -> None:
    """Write an input's outline exports again, now with every object's phenotype.

    The labels are read lazily, each object in its bounding box from the table (the
    nucleus' or the cell's), so a slide's exports are rewritten in bounded memory.
    """
    from napari_segnet.io import atomic_paths, read_image
    from napari_segnet.io.model_identity import METADATA_KEY, ModelIdentity
    from napari_segnet.io.outlines import boxes_from_table

    from .exports import write_exports

    written = [job.outputs.paths(stem, streamed=s) for s in (False, True)]
    paths = next((p for p in written if all(path.exists() for path in p)), written[0])
    labels = {"nuclei": read_image(paths[0])}
    if job.outputs.cells:
        labels["cells"] = read_image(paths[-1])
    model = ModelIdentity.from_metadata(labels["nuclei"].metadata.get(METADATA_KEY))
    exports = job.outputs.outline_exports(stem)
    with atomic_paths(*(path for _, path, _ in exports)) as temporaries:
        for temporary, (name, _, which) in zip(temporaries, exports):
            image = labels[which]
            boxes = table if which == "nuclei" else _cell_boxes(table)
            write_exports(
                [temporary],
                [name],
                image.data,
                axes=image.axes,
                table=table,
                boxes=lambda a=image.axes, b=boxes: boxes_from_table(b, a),
                model=model,
            )


def _cell_boxes(table):
    """Return the table with the cells' bounding boxes in the nucleus' box columns."""
    columns = {c: c.removeprefix("cell_") for c in table.columns if c.startswith("cell_bbox_")}
    return table[["label", *columns] + (["frame"] if "frame" in table.columns else [])].rename(
        columns=columns
    )


def describe_thresholds(asked, resolved, cells: int) -> str:
    """One line: every marker's threshold, and whether it was chosen or given."""
    parts = []
    for wanted, used in zip(asked.markers, resolved.markers):
        how = f"{used.method} over {cells:,} cells" if wanted.threshold is None else "given"
        parts.append(f"{used.channel} > {used.threshold:.4g} ({used.compartment}, {how})")
    return "phenotypes: " + "; ".join(parts)


def describe_counts(name: str, counts, cells: int) -> str:
    """One line: an image's cells of each phenotype, with percentages."""
    if not cells:
        return f"{name}: 0 cells"
    shares = [
        f"{row.phenotype} {row.count} ({row.percent:.1f} %)"
        for row in counts.itertuples()
        if row.count
    ]
    return f"{name}: {cells} cells: " + ", ".join(shares)
