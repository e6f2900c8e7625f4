"""What ``segment`` is asked to do, typed once at the command line's edge.

The options become a :class:`SegmentJob`: the model to load (a file by its absolute
path, and the device as a request), the engine's
:class:`~napari_segnet.inference.segment.SegmentSettings`, how big planes are cut into
blocks, and the outputs (:class:`OutputSettings`). The engine, the local loop and the
dask tasks take the job, never the command line; so a worker needs no command line, and
paths mean the same on a worker with another working directory or ``$HOME``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .exports import export_paths

if TYPE_CHECKING:
    from napari_segnet.inference.segment import SegmentSettings

    from .cells_options import CellSettings


@dataclass(frozen=True)
class OutputSettings:
    """The files written for every input.

    Attributes
    ----------
    folder : pathlib.Path
        The output folder, absolute.
    measure : bool
        Whether a measurement table is written beside the labels.
    labels_format : {"tiff", "zarr"}
        Labels of block-by-block segmentation; planes segmented whole are TIFF.
    exports : tuple of str
        Outline exports (see :data:`napari_segnet.cli.exports.EXPORTS`).
    cells : bool
        Whether cell labels (``<stem>_cells.tif``; ``<stem>_cells.zarr`` beside Zarr labels
        of block-by-block segmentation) are written beside the nuclei's.
    """

    folder: Path
    measure: bool = True
    labels_format: str = "tiff"
    exports: tuple[str, ...] = ()
    cells: bool = False

    def paths(self, stem: str, *, streamed: bool = False) -> list[Path]:
        """Return the labels, measurements and cells of one input, in that order (as asked).

        Labels of block-by-block segmentation (``streamed``) take ``labels_format``.
        """
        from napari_segnet.inference.stream_outputs import CELL_SUFFIXES, LABEL_SUFFIXES

        labels_format = self.labels_format if streamed else "tiff"
        paths = [self.folder / f"{stem}{LABEL_SUFFIXES[labels_format]}"]
        if self.measure:
            paths.append(self.measurements(stem))
        if self.cells:
            paths.append(self.folder / f"{stem}{CELL_SUFFIXES[labels_format]}")
        return paths

    def measurements(self, stem: str) -> Path:
        """Return the measurement table of one input."""
        return self.folder / f"{stem}_measurements.csv"

    def export_paths(self, stem: str) -> list[Path]:
        """Return the outline exports of one input (see :meth:`outline_exports`)."""
        return [path for _, path, _ in self.outline_exports(stem)]

    def outline_exports(self, stem: str) -> list[tuple[str, Path, str]]:
        """Return ``(export, path, objects)`` of every outline export of one input.

        The nuclei's (``<stem>.geojson``, ``<stem>_rois.zip``), then, with cells, the
        cells' (``<stem>_cells.geojson``, ``<stem>_cells_rois.zip``).
        """
        kinds = [("nuclei", stem)] + ([("cells", f"{stem}_cells")] if self.cells else [])
        return [
            (name, path, which)
            for which, name_stem in kinds
            for name, path in zip(self.exports, export_paths(self.folder, name_stem, self.exports))
        ]

    def every_path(self, stem: str) -> list[Path]:
        """Every file one input can leave, of either kind of segmentation, and its exports."""
        finals = {*self.paths(stem), *self.paths(stem, streamed=True), *self.export_paths(stem)}
        return sorted(finals)

    def remove_temporaries(self, stems: list[str]) -> None:
        """Remove the temporaries that a killed writer of these inputs' outputs left behind.

        Only when no other run writes the same outputs: at the end of a cluster run,
        or when a run is resumed.
        """
        from napari_segnet.io.atomic import remove_stale_temporaries

        finals = [path.name for stem in stems for path in self.every_path(stem)]
        remove_stale_temporaries(self.folder, finals)

    def done(self, stem: str) -> bool:
        """Whether ``--resume`` may skip an input: its outputs, of either kind, are all there.

        That includes the exports asked for this time.
        """
        return all(path.exists() for path in self.export_paths(stem)) and any(
            all(path.exists() for path in self.paths(stem, streamed=streamed))
            for streamed in (False, True)
        )


@dataclass(frozen=True)
class ModelRequest:
    """The model to load, as any process on any machine of a cluster can load it.

    Attributes
    ----------
    path : pathlib.Path
        The model file, absolute.
    bundled : str or None
        ``name@version`` of a bundled model: a worker loads its own copy of that
        version (the same weights), wherever its package is installed.
    device : str
        The device asked for (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``),
        resolved by the process that runs the model: a cluster's client is often a
        login node without the workers' GPUs.
    """

    path: Path
    bundled: str | None = None
    device: str = "auto"

    def file(self) -> Path:
        """Return the file to load here: this installation's copy of a bundled model, or ``path``.

        Raises
        ------
        FileNotFoundError
            If the file is not on this machine, in one sentence.
        """
        from napari_segnet.models.bundled import bundled_model

        if self.bundled is not None:
            try:
                return bundled_model(self.bundled).path
            except ValueError:  # an older installation: the file itself, if it is there
                pass
        if not self.path.is_file():
            raise FileNotFoundError(
                f"The model file {self.path} is not on this machine: put it on a file system "
                "that every worker reads, or in each worker's models folder."
            )
        return self.path

    def load(self, *, device: str | None = None, tta: bool = False):
        """Load the model for inference on ``device`` (default: the one asked for).

        Returns ``(model, torch_device)``. With ``tta``, a model that test-time
        augmentation cannot average is refused in one sentence.

        Raises
        ------
        UserError
            If the device cannot be used or the model cannot average its views.
        """
        from napari_segnet.inference.devices import select_device
        from napari_segnet.models import load_model

        from .common import UserError

        try:
            torch_device = select_device(device or self.device)
        except ValueError as error:
            raise UserError(str(error)) from None
        model, _ = load_model(self.file(), device=torch_device, fuse=True)
        if tta:
            from napari_segnet.inference.augment import VIEWS, check_views

            try:
                check_views(model, VIEWS)
            except ValueError as error:
                raise UserError(str(error)) from None
        return model, torch_device


@dataclass(frozen=True)
class SegmentJob:
    """Everything ``segment`` needs besides its inputs.

    Attributes
    ----------
    model : ModelRequest
    settings : SegmentSettings
        The engine's settings (channel, object size, tiling, thresholds, precision).
    outputs : OutputSettings
    cells : CellSettings or None
        Cells grown from the nuclei, and markers read in them (None: nuclei only).
    block : int or None
        Planes larger than ``block`` × ``block`` are segmented block by block (None:
        the default size rule; 0: never).
    halo : int or None
        Context around each block in pixels (None: the model's default).
    threads : int or None
        Torch threads a worker process uses (None: torch's default).
    """

    model: ModelRequest
    settings: SegmentSettings
    outputs: OutputSettings
    cells: CellSettings | None = None
    block: int | None = None
    halo: int | None = None
    threads: int | None = None


def model_request(args: argparse.Namespace) -> ModelRequest:
    """Return the :class:`ModelRequest` of ``--model`` and ``--device``.

    Raises
    ------
    UserError
        If the model is neither a known name nor a file.
    """
    from napari_segnet.models.bundled import bundled_file_version, resolve_model

    from .common import UserError

    try:
        path = resolve_model(args.model).resolve()
    except ValueError as error:
        raise UserError(str(error)) from None
    bundled = bundled_file_version(path)
    reference = f"{bundled[0]}@{bundled[1]}" if bundled is not None else None
    return ModelRequest(path, reference, args.device)


def segment_job(args: argparse.Namespace) -> SegmentJob:
    """Turn ``segment``'s options into a :class:`SegmentJob` (paths made absolute)."""
    from .cells_options import cell_settings
    from .common import UserError, segment_settings

    cells = cell_settings(args)
    if cells is not None and cells.phenotypes is not None and args.no_measure:
        raise UserError("Markers are read from the measurements: drop --no-measure.")
    if args.block is not None and 0 < args.block < 64:
        raise UserError("--block must be 0 or at least 64 pixels.")
    if args.halo is not None and args.halo < 0:
        raise UserError("--halo must not be negative.")
    outputs = OutputSettings(
        folder=Path(os.path.abspath(Path(args.out).expanduser())),
        measure=not args.no_measure,
        labels_format=args.labels_format,
        exports=tuple(args.export),
        cells=cells is not None,
    )
    return SegmentJob(
        model=model_request(args),
        settings=segment_settings(args),
        outputs=outputs,
        cells=cells,
        block=args.block,
        halo=args.halo,
    )
