"""Write measurement tables to disk."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from napari_segnet.io.atomic import atomic_path, writable_destination
from napari_segnet.io.model_identity import ModelIdentity, with_model_columns


def write_csv(
    table: pd.DataFrame, path: str | os.PathLike, *, model: ModelIdentity | None = None
) -> Path:
    """Write `table` to a CSV file atomically, without the index.

    The table is first written to a temporary file in the destination folder
    and then renamed, so a reader never sees a half-written CSV and a failed
    write leaves any previous file untouched.

    Parameters
    ----------
    table : pandas.DataFrame
        The measurements, e.g. from :func:`napari_segnet.measure.measure`.
    path : str or os.PathLike
        The destination file. Its folder must already exist.
    model : ModelIdentity, optional
        The model that made the labels measured: every row gets the constant
        columns ``model`` (``nuclei@2``) and ``model_sha256`` (the first 16 hex
        digits of its weights hash), after the table's own columns.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileNotFoundError
        If the destination folder does not exist (an :class:`OSError`).
    PermissionError
        If the destination folder is not writable (an :class:`OSError`).

    """
    # Checked up front so the user reads one clear sentence, not a temp-file name.
    destination = writable_destination(path)
    with atomic_path(destination) as temporary:
        with_model_columns(table, model).to_csv(temporary, index=False)
    return destination
