"""Cells from nuclei: growth, compartment measurements, marker positivity and phenotypes."""

from napari_segnet.cells.compartments import (
    COMPARTMENTS,
    cytoplasm_labels,
    measure_cells,
    ratio_column,
)
from napari_segnet.cells.grow import DEFAULT_DISTANCE, expand_nuclei, grow_cells, grow_on_stain
from napari_segnet.cells.phenotypes import (
    Marker,
    PhenotypeDefinition,
    classify,
    marker_column,
    phenotype_counts,
    resolve_thresholds,
)
from napari_segnet.cells.positivity import automatic_threshold
from napari_segnet.cells.stain import default_threshold, detect_stain_kind

__all__ = [
    "COMPARTMENTS",
    "DEFAULT_DISTANCE",
    "Marker",
    "PhenotypeDefinition",
    "automatic_threshold",
    "classify",
    "cytoplasm_labels",
    "default_threshold",
    "detect_stain_kind",
    "expand_nuclei",
    "grow_cells",
    "grow_on_stain",
    "marker_column",
    "measure_cells",
    "phenotype_counts",
    "ratio_column",
    "resolve_thresholds",
]
