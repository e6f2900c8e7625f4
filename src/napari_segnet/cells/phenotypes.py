"""Marker positivity and phenotypes from per-cell compartment measurements.

A :class:`PhenotypeDefinition` names the markers, the compartment each is read
in and its threshold, given or automatic. Saved as a small JSON file, it is
applied unchanged to any number of images:

>>> definition = PhenotypeDefinition(
...     (Marker("CD8", "cytoplasm"), Marker("Ki67", "nucleus", threshold=800.0))
... )
>>> settled = resolve_thresholds(tables, definition)  # doctest: +SKIP
>>> labelled = [classify(t, settled) for t in tables]  # doctest: +SKIP

Automatic thresholds are chosen once for a whole batch from the pooled cells
of all its images (:func:`resolve_thresholds`), never per image: per image, a
well without a single positive cell would still have its cells split in two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from os import PathLike

import numpy as np
import pandas as pd

from napari_segnet.cells.compartments import COMPARTMENTS
from napari_segnet.cells.positivity import METHODS, automatic_threshold
from napari_segnet.measure import sanitise_channel_names

FORMAT_VERSION = 1

__all__ = [
    "Marker",
    "PhenotypeDefinition",
    "classify",
    "marker_column",
    "phenotype_counts",
    "resolve_thresholds",
]


@dataclass(frozen=True)
class Marker:
    """One marker: which channel, read in which compartment, cut at which level.

    Attributes
    ----------
    channel : str
        Channel name as in the measurement columns (sanitised like
        :func:`~napari_segnet.measure.sanitise_channel_names`).
    compartment : {"nucleus", "cytoplasm", "cell"}
        Where the per-cell mean intensity is read.
    threshold : float or None
        Cells whose mean is above it are positive; ``None`` is automatic.
    method : {"triangle", "otsu"}
        How an automatic threshold is chosen (see :func:`automatic_threshold`).

    """

    channel: str
    compartment: str = "cell"
    threshold: float | None = None
    method: str = "triangle"

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel:
            raise ValueError(f"A marker's channel must be a non-empty name, not {self.channel!r}.")
        clean = sanitise_channel_names([self.channel])[0]
        if clean != self.channel:
            raise ValueError(
                f"Marker channel {self.channel!r} is not a column-safe name; use {clean!r}."
            )
        if self.compartment not in COMPARTMENTS:
            raise ValueError(
                f"Marker {self.channel!r}: compartment must be one of {COMPARTMENTS}, "
                f"not {self.compartment!r}."
            )
        if self.method not in METHODS:
            raise ValueError(
                f"Marker {self.channel!r}: method must be one of {METHODS}, not {self.method!r}."
            )
        if self.threshold is not None:
            valid = isinstance(self.threshold, int | float | np.integer | np.floating)
            if isinstance(self.threshold, bool) or not valid or not math.isfinite(self.threshold):
                raise ValueError(
                    f"Marker {self.channel!r}: the threshold must be a finite number or null "
                    f"(automatic), not {self.threshold!r}."
                )
            object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def positive_column(self) -> str:
        """Name of this marker's boolean column, e.g. ``CD8_positive``."""
        return f"{self.channel}_positive"


@dataclass(frozen=True)
class PhenotypeDefinition:
    """Markers, compartments and thresholds that turn measurements into phenotypes.

    Attributes
    ----------
    markers : tuple of Marker
        In the order they appear in the phenotype string (``"CD8+ Ki67-"``).

    """

    markers: tuple[Marker, ...]

    def __post_init__(self) -> None:
        markers = tuple(self.markers)
        if not markers or not all(isinstance(m, Marker) for m in markers):
            raise ValueError("A phenotype definition needs at least one marker.")
        channels = [m.channel for m in markers]
        repeated = sorted({c for c in channels if channels.count(c) > 1})
        if repeated:
            raise ValueError(f"Markers must be distinct channels; repeated: {', '.join(repeated)}.")
        object.__setattr__(self, "markers", markers)

    @property
    def is_resolved(self) -> bool:
        """Whether every marker has a threshold (none is left automatic)."""
        return all(m.threshold is not None for m in self.markers)

    def to_dict(self) -> dict:
        """Return this definition as plain JSON types."""
        return {"version": FORMAT_VERSION, "markers": [asdict(m) for m in self.markers]}

    @classmethod
    def from_dict(cls, data: dict) -> PhenotypeDefinition:
        """Build a definition from :meth:`to_dict`'s output, checking every field.

        Raises
        ------
        ValueError
            If a field is missing, unknown or invalid.

        """
        if not isinstance(data, dict) or not isinstance(data.get("markers"), list):
            raise ValueError("A phenotype definition is an object with a list of 'markers'.")
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise ValueError(f"Unknown phenotype definition version {data.get('version')!r}.")
        fields = {"channel", "compartment", "threshold", "method"}
        markers = []
        for entry in data["markers"]:
            if not isinstance(entry, dict) or "channel" not in entry:
                raise ValueError(f"Every marker needs a 'channel'; got {entry!r}.")
            unknown = sorted(set(entry) - fields)
            if unknown:
                raise ValueError(f"Marker {entry['channel']!r} has unknown fields: {unknown}.")
            markers.append(Marker(**entry))
        return cls(tuple(markers))

    def to_json(self, path: str | PathLike | None = None) -> str:
        """Return this definition as JSON text, and write it to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        return text

    @classmethod
    def from_json(cls, source: str | PathLike) -> PhenotypeDefinition:
        """Read a definition from a JSON file path, or from JSON text starting with ``{``.

        Raises
        ------
        ValueError
            If the text is not valid JSON or not a valid definition.

        """
        text = str(source)
        if not text.lstrip().startswith("{"):
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"The phenotype definition is not valid JSON: {error}.") from None
        return cls.from_dict(data)


def marker_column(marker: Marker) -> str:
    """Return the measurement column a marker is read from, e.g. ``cytoplasm_intensity_mean_CD8``.

    Nucleus means are in :func:`~napari_segnet.measure.measure`'s own
    ``intensity_mean_<channel>`` column.
    """
    prefix = "" if marker.compartment == "nucleus" else f"{marker.compartment}_"
    return f"{prefix}intensity_mean_{marker.channel}"


def resolve_thresholds(
    tables: pd.DataFrame | Iterable[pd.DataFrame], definition: PhenotypeDefinition
) -> PhenotypeDefinition:
    """Choose every automatic threshold once, from the cells of all tables pooled.

    Parameters
    ----------
    tables : DataFrame or iterable of DataFrame
        Per-cell measurements (:func:`~napari_segnet.cells.measure_cells`) of
        every image of the batch.
    definition : PhenotypeDefinition
        Markers; given thresholds are kept as they are.

    Returns
    -------
    PhenotypeDefinition
        The same markers, every threshold a number. Save it with
        :meth:`PhenotypeDefinition.to_json` to record and repeat the batch.

    Raises
    ------
    ValueError
        If a marker's column is missing from a table or it has no cell to
        choose a threshold from.

    """
    tables = [tables] if isinstance(tables, pd.DataFrame) else list(tables)
    markers = []
    for marker in definition.markers:
        if marker.threshold is None:
            column = marker_column(marker)
            pooled = [_column(t, marker).to_numpy(dtype=np.float64) for t in tables]
            values = np.concatenate(pooled) if pooled else np.empty(0)
            if not np.isfinite(values).any():
                raise ValueError(f"Marker {marker.channel!r} has no cell with a {column}.")
            marker = replace(marker, threshold=automatic_threshold(values, marker.method))
        else:
            for table in tables:
                _column(table, marker)
        markers.append(marker)
    return PhenotypeDefinition(tuple(markers))


def classify(table: pd.DataFrame, definition: PhenotypeDefinition) -> pd.DataFrame:
    """Add a boolean ``<channel>_positive`` column per marker and a ``phenotype`` column.

    Parameters
    ----------
    table : pandas.DataFrame
        Per-cell measurements.
    definition : PhenotypeDefinition
        Markers with every threshold set (see :func:`resolve_thresholds`).

    Returns
    -------
    pandas.DataFrame
        A copy of `table` with the new columns. A cell is positive when its
        mean is above the threshold; a cell without a value (e.g. no
        cytoplasm) is negative. ``phenotype`` reads e.g. ``"CD8+ Ki67-"``.

    Raises
    ------
    ValueError
        If a threshold is still automatic or a marker's column is missing.

    """
    if not definition.is_resolved:
        automatic = [m.channel for m in definition.markers if m.threshold is None]
        raise ValueError(
            f"Automatic thresholds ({', '.join(automatic)}) must first be chosen over the "
            "whole batch with resolve_thresholds."
        )
    out = table.copy()
    signs = []
    for marker in definition.markers:
        values = _column(table, marker).to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            positive = values > marker.threshold
        out[marker.positive_column] = positive
        signs.append(np.where(positive, f"{marker.channel}+", f"{marker.channel}-"))
    out["phenotype"] = [" ".join(parts) for parts in zip(*signs)] if len(out) else []
    return out


def phenotype_counts(table: pd.DataFrame, *, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Count the cells of every phenotype, per group (e.g. per image or frame).

    Parameters
    ----------
    table : pandas.DataFrame
        Classified cells (:func:`classify`), with a ``phenotype`` column.
    by : str or sequence of str, optional
        Columns that name a group, e.g. ``"image"``; default: one group.

    Returns
    -------
    pandas.DataFrame
        Columns `by`, ``phenotype``, ``count`` and ``percent`` (of the group's
        cells). Every phenotype seen anywhere in `table` has a row in every
        group, with 0 where the group has none.

    Raises
    ------
    ValueError
        If a column is missing.

    """
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, "phenotype"] if c not in table.columns]
    if missing:
        raise ValueError(f"The table has no column {', '.join(map(repr, missing))}.")
    phenotypes = sorted(table["phenotype"].unique())
    if not keys:
        counts = table["phenotype"].value_counts().reindex(phenotypes, fill_value=0)
        out = counts.rename_axis("phenotype").reset_index(name="count")
        total = max(int(out["count"].sum()), 1)
    else:
        grouped = table.groupby([*keys, "phenotype"], sort=True).size()
        groups = table[keys].drop_duplicates().sort_values(keys)
        full = groups.merge(pd.DataFrame({"phenotype": phenotypes}), how="cross")
        out = full.merge(grouped.rename("count").reset_index(), on=[*keys, "phenotype"], how="left")
        out["count"] = out["count"].fillna(0)
        total = out.groupby(keys)["count"].transform("sum").to_numpy()
    out["count"] = out["count"].astype(np.int64)
    out["percent"] = 100.0 * out["count"] / np.maximum(total, 1)
    return out.reset_index(drop=True)


def _column(table: pd.DataFrame, marker: Marker) -> pd.Series:
    column = marker_column(marker)
    if column not in table.columns:
        channels = sorted(
            c.removeprefix("intensity_mean_")
            for c in table.columns
            if c.startswith("intensity_mean_")
        )
        raise ValueError(
            f"Marker {marker.channel!r} has no column {column!r} in the measurements; "
            f"channels measured: {', '.join(channels) or 'none'}."
        )
    return table[column]
