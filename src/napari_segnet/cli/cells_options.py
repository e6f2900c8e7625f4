"""``--cells``, ``--cell-distance``, ``--stain-kind``, ``--positive`` and ``--phenotypes``.

Cells grow from the nuclei (see :mod:`napari_segnet.cells`): by a fixed expansion
(``--cells expand``) or on a membrane or cytoplasm channel (``--cells CellMask``; a
channel literally named ``expand`` is given by its index). Markers make every cell
positive or negative, and their signs its phenotype (``CD8+ Ki67-``); an automatic
threshold is chosen once over all cells of the batch (see
:mod:`~napari_segnet.cli.phenotype_batch`).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from .common import UserError

EXPAND = "expand"


@dataclass(frozen=True)
class CellSettings:
    """How cells are made and read.

    Attributes
    ----------
    stain : int, str or None
        The membrane or cytoplasm channel (index or name); None expands the nuclei.
    distance : float
        How far a cell reaches from its nucleus: µm in a calibrated image, else pixels.
    kind : {"auto", "membrane", "cytoplasm"}
        The stain's kind (see :func:`napari_segnet.cells.detect_stain_kind`).
    phenotypes : PhenotypeDefinition or None
        Markers, compartments and thresholds (None: no positivity).
    """

    stain: int | str | None = None
    distance: float = 5.0
    kind: str = "auto"
    phenotypes: object = None


def add_cells_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that make cells from nuclei and phenotypes from markers."""
    group = parser.add_argument_group("cells and phenotypes")
    group.add_argument(
        "--cells",
        default=None,
        metavar="expand|CHANNEL",
        help="grow every nucleus into its cell: 'expand' by --cell-distance, or on a membrane "
        "or cytoplasm CHANNEL (name or index) up to --cell-distance; writes <stem>_cells.tif "
        "and one measurement row per cell (nucleus, cytoplasm and cell)",
    )
    group.add_argument(
        "--cell-distance",
        type=float,
        default=None,
        metavar="D",
        help="how far a cell reaches from its nucleus: µm in a calibrated image, else pixels "
        "(default 5, as in QuPath)",
    )
    group.add_argument(
        "--stain-kind",
        choices=("auto", "membrane", "cytoplasm"),
        default="auto",
        help="the --cells channel's stain: membrane rims or a cytoplasm fill (auto detects it)",
    )
    markers = group.add_mutually_exclusive_group()
    markers.add_argument(
        "--positive",
        action="append",
        default=[],
        metavar="MARKER:COMPARTMENT[:THRESHOLD]",
        help="a marker channel, the compartment its mean is read in (nucleus, cytoplasm or "
        "cell) and a threshold (default: chosen once over all cells of the batch, triangle "
        "method); repeat for more markers; adds <MARKER>_positive and phenotype columns",
    )
    markers.add_argument(
        "--phenotypes",
        type=Path,
        default=None,
        metavar="FILE",
        help="a phenotype definition (JSON: markers, compartments, thresholds), as the Cells "
        "widget saves it or as a previous batch wrote it (phenotypes.json)",
    )


def cell_settings(args: argparse.Namespace) -> CellSettings | None:
    """Return the :class:`CellSettings` of the options, or None without ``--cells``.

    Raises
    ------
    UserError
        For a distance that is not a positive number, a malformed ``--positive``, an
        unreadable phenotype definition, or markers without ``--cells``.
    """
    phenotypes = phenotype_definition(args)
    if args.cells is None:
        if phenotypes is not None:
            raise UserError("Markers are read per cell: give --cells expand or --cells CHANNEL.")
        return None
    from napari_segnet.cells import DEFAULT_DISTANCE

    distance = DEFAULT_DISTANCE if args.cell_distance is None else args.cell_distance
    if not (math.isfinite(distance) and distance > 0):
        raise UserError(f"--cell-distance must be a positive number, not {distance:g}.")
    text = args.cells.strip()
    stain = None if text.casefold() == EXPAND else (int(text) if text.isdigit() else text)
    return CellSettings(stain, distance, args.stain_kind, phenotypes)


def phenotype_definition(args: argparse.Namespace):
    """Return the :class:`~napari_segnet.cells.PhenotypeDefinition` asked for, or None."""
    from napari_segnet.cells import Marker, PhenotypeDefinition

    if args.phenotypes is not None:
        try:
            return PhenotypeDefinition.from_json(args.phenotypes)
        except OSError as error:
            raise UserError(
                f"Cannot read the phenotype definition {args.phenotypes}: {error.strerror}."
            ) from None
        except ValueError as error:
            raise UserError(f"{args.phenotypes.name}: {error}") from None
    if not args.positive:
        return None
    markers = []
    for text in args.positive:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise UserError(
                f"--positive {text!r} must be MARKER:COMPARTMENT or MARKER:COMPARTMENT:THRESHOLD "
                "(e.g. CD8:cytoplasm or Ki67:nucleus:120)."
            )
        threshold = None
        if len(parts) == 3:
            try:
                threshold = float(parts[2])
            except ValueError:
                threshold = math.nan
            if not math.isfinite(threshold):
                raise UserError(f"--positive {text!r}: the threshold {parts[2]!r} is not a number.")
        try:
            markers.append(Marker(parts[0], parts[1].casefold(), threshold))
        except ValueError as error:
            raise UserError(f"--positive {text!r}: {error}") from None
    try:
        return PhenotypeDefinition(tuple(markers))
    except ValueError as error:
        raise UserError(f"--positive: {error}") from None
