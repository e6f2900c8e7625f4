"""``segment`` on a dask.distributed cluster: files, and blocks of big files, as tasks.

Each worker loads the model once and keeps it (and the file it is reading blocks of). Files
that are segmented whole are one task each and the worker writes their outputs (all or
nothing, as locally). A big file's blocks are tasks whose objects come back to this process,
which numbers them in block order and streams the labels and the CSV, exactly as a local run
does; so the outputs are the same as a local run's. How many block results this process
holds is bounded by a window that grows with the workers (see
:mod:`~napari_segnet.cli.block_window`); a wide cluster works on several big files at once.

A worker lost mid-run costs only its tasks: dask gives them to another worker, and since
outputs appear only when complete, nothing is written twice or half; temporaries a lost
worker left are removed at the end. A task that keeps killing its workers (dask's
``KilledWorker``) fails its file in one sentence, and the other files are still done.

Tasks receive the :class:`~napari_segnet.cli.job.SegmentJob` (absolute paths, the model
file, the device as a request that each worker resolves), never the command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from .block_window import BlockCounts, may_open_another, next_submissions, window_size
from .common import UserError
from .job import SegmentJob
from .one_file import describe_failure, oversized_warning

# On each worker: the model, and (per thread: reads ahead and tile caches are not shared)
# the file whose blocks it is segmenting.
_WORKER_MODEL: dict = {}
_MODEL_LOCK = threading.Lock()
_WORKER_THREAD = threading.local()


def add_options(parser) -> None:
    """Add ``--workers``, ``--scheduler`` and ``--scheduler-file``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run on N worker processes on this machine (a dask LocalCluster; with several "
        "GPUs, each worker uses its own)",
    )
    group.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="run on this dask scheduler"
    )
    group.add_argument(
        "--scheduler-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="run on the dask scheduler described in FILE (dask scheduler --scheduler-file)",
    )


@dataclass(frozen=True)
class ClusterSettings:
    """Where to run: ``workers`` local processes, or an existing scheduler."""

    workers: int | None = None
    scheduler: str | None = None
    scheduler_file: Path | None = None


def cluster_settings(args) -> ClusterSettings:
    """Return the :class:`ClusterSettings` of the options."""
    return ClusterSettings(args.workers, args.scheduler, args.scheduler_file)


def wants_cluster(args) -> bool:
    """Whether the options ask for a cluster."""
    return bool(args.workers or args.scheduler or args.scheduler_file)


@contextlib.contextmanager
def open_client(cluster: ClusterSettings):
    """Yield ``(client, threads)`` for the settings: a LocalCluster is closed afterwards.

    ``threads`` is what each local worker process gives torch (None on a scheduler's
    workers: their own default).
    """
    from distributed import Client, LocalCluster

    if cluster.workers is not None:
        if cluster.workers < 1:
            raise UserError("--workers must be at least 1.")
        with (
            LocalCluster(
                n_workers=cluster.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as local,
            Client(local) as client,
        ):
            yield client, max(1, (os.cpu_count() or 1) // cluster.workers)
        return
    try:
        if cluster.scheduler_file is not None:
            client = Client(scheduler_file=str(cluster.scheduler_file), timeout="20s")
        else:
            client = Client(cluster.scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as error:
        where = cluster.scheduler_file or cluster.scheduler
        raise UserError(f"Cannot reach the dask scheduler at {where}: {error}") from error
    with client:
        yield client, None


def worker_device(requested: str, worker_name, gpus: int) -> str:
    """Return the device a worker asks torch for: its own GPU when a machine has several.

    Local workers are named 0, 1, …: with ``--device auto`` or ``cuda`` and several
    GPUs, worker k takes GPU k modulo their number. Workers of other clusters (named
    otherwise, usually given their GPUs by ``CUDA_VISIBLE_DEVICES``) and explicit
    devices (``cuda:1``) are left as asked.
    """
    if requested not in ("auto", "cuda") or gpus < 2:
        return requested
    try:
        index = int(worker_name)
    except (TypeError, ValueError):
        return requested
    return f"cuda:{index % gpus}"


def worker_model(job: SegmentJob):
    """Return the model and device of this worker, loaded once."""
    key = (job.model, job.threads, job.settings.tta)
    with _MODEL_LOCK:  # a worker's threads share one model
        if key not in _WORKER_MODEL:
            import torch
            from distributed import get_worker

            if job.threads:
                torch.set_num_threads(job.threads)
            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            try:
                name = get_worker().name
            except ValueError:  # not on a worker: no GPU of its own
                name = None
            device = worker_device(job.model.device, name, gpus)
            _WORKER_MODEL.clear()
            _WORKER_MODEL[key] = job.model.load(device=device, tta=job.settings.tta)
        return _WORKER_MODEL[key]


def segment_file_task(path: Path, stem: str, job: SegmentJob) -> tuple[bool, str]:
    """Segment one file whole and write its outputs; return (ok, the line to print)."""
    from .one_file import segment_one

    try:
        model, device = worker_model(job)
        n = segment_one(path, stem, job, model, device)
    except Exception as error:  # reported by the client, like a local failure
        return False, describe_failure(path, error)
    return True, f"{path.name}: {n} objects"


def segment_block_task(path: Path, job: SegmentJob, plane, block, block_settings):
    """Segment one block of a big file at the file's zoom.

    ``plane`` is ``(channel, normalisation, scale)`` as planned once for the whole file,
    so that every block sees the same normalised, zoomed plane. Returns the block's
    :class:`BlockObjects` and the warnings it gave (e.g. a full GPU's fallback).
    """
    from napari_segnet.inference.plane_source import PlaneSource
    from napari_segnet.inference.stream import plane_predictors
    from napari_segnet.inference.stream_block import iter_segment_block
    from napari_segnet.io import read_image
    from napari_segnet.progress import drain

    model, device = worker_model(job)
    # Workers outlive a run: the key holds everything the predictors were made with.
    key = (str(path), *plane, id(model), job.settings)
    if getattr(_WORKER_THREAD, "key", None) != key:
        _WORKER_THREAD.key = _WORKER_THREAD.plane = None
        source = PlaneSource(read_image(path), *plane)
        predictors = plane_predictors(model, source, job.settings, device)
        _WORKER_THREAD.key, _WORKER_THREAD.plane = key, (source, predictors)
    source, predictors = _WORKER_THREAD.plane
    warnings: list[str] = []

    def keep_warning(event) -> None:
        if "warning" in event.info:
            warnings.append(event.info["warning"])

    objects = drain(iter_segment_block(predictors, source, block, block_settings), keep_warning)
    return objects, warnings


@dataclass(eq=False)
class _BigFile:
    """A big file in progress: its plan, its open outputs, and its blocks' results."""

    path: Path
    plan: object
    files: object
    outputs: contextlib.ExitStack
    summary: object
    counts: BlockCounts
    image: object = None
    spacing: tuple | None = None
    waiting: dict = field(default_factory=dict)
    futures: set = field(default_factory=set)
    warned: set = field(default_factory=set)


def _planning_model(job: SegmentJob):
    """Load the model here, to plan big files.

    On the device asked for if this machine has it, else on the CPU: a cluster's client
    is often a login node without the workers' GPUs.
    """
    try:
        return job.model.load(tta=job.settings.tta)
    except UserError:
        if job.model.device == "cpu":
            raise
        return job.model.load(device="cpu", tta=job.settings.tta)


def run_on_cluster(
    job: SegmentJob,
    inputs: list[Path],
    stems: dict[Path, str],
    cluster: ClusterSettings,
    resume: bool = False,
) -> tuple[set[Path], int]:
    """Segment ``inputs`` on the cluster; return (the inputs that failed, inputs tried)."""
    with open_client(cluster) as (client, threads):
        run = _ClusterRun(client, replace(job, threads=threads), stems)
        try:
            for path in inputs:
                if resume and job.outputs.done(stems[path]):
                    print(f"{path.name}: already done", file=sys.stderr)
                    continue
                run.add(path)
            run.collect()
        finally:  # also when interrupted: no big file's temporaries stay behind
            run.close()
    job.outputs.remove_temporaries([stems[p] for p in inputs])  # a lost worker's
    return run.failed, run.tried


class _ClusterRun:
    """The client's side of a run: tasks sent, big files open, results written in order."""

    def __init__(self, client, job: SegmentJob, stems: dict[Path, str]):
        from distributed import as_completed
        from tqdm import tqdm

        self.client, self.job, self.stems = client, job, stems
        self.pending = as_completed()
        self.kinds: dict = {}
        self.big: deque = deque()
        self.open_files: list[_BigFile] = []
        self.planning = None  # the model here, loaded for the first big file
        self.failed: set[Path] = set()
        self.tried = 0
        self.bar = tqdm(total=0, desc="cluster", file=sys.stderr, leave=False, disable=None)

    def add(self, path: Path) -> None:
        """Send a file segmented whole as one task, or queue a big file."""
        from napari_segnet.io import read_image

        from .one_file import block_by_block

        self.tried += 1
        try:
            is_big = block_by_block(read_image(path), self.job.block)
        except Exception as error:
            self.fail(path, error)
            return
        if is_big:
            self.big.append(path)
            return
        key = f"segment {path.name}-{uuid.uuid4().hex}"
        future = self.client.submit(segment_file_task, path, self.stems[path], self.job, key=key)
        self.kinds[future] = ("file", path)
        self.pending.add(future)
        self.bar.total += 1

    def fail(self, path: Path, error: BaseException) -> None:
        self.failed.add(path)
        self.bar.write(f"napari-segnet: error: {describe_failure(path, error)}", file=sys.stderr)

    def window(self) -> int:
        return window_size(len(self.client.scheduler_info().get("workers", {})))

    def submit_blocks(self) -> None:
        """Open big files and send their blocks while the window has room."""
        size = self.window()
        while self.big and may_open_another([f.counts for f in self.open_files], size):
            self.open_next()
        for index in next_submissions([f.counts for f in self.open_files], size):
            state = self.open_files[index]
            block = state.plan.blocks[state.counts.submitted]
            source = state.plan.source
            future = self.client.submit(
                segment_block_task,
                state.path,
                self.job,
                (source.channel, source.normalisation, source.scale),
                block,
                state.plan.block_settings,
                key=f"block {block.index} of {state.path.name}-{uuid.uuid4().hex}",
            )
            self.kinds[future] = ("block", (state, block.index))
            state.futures.add(future)
            self.pending.add(future)
            state.counts.submitted += 1

    def open_next(self) -> None:
        path = self.big.popleft()
        try:
            if self.planning is None:
                self.planning = _planning_model(self.job)[0]
            state = _open_big_file(path, self.stems[path], self.job, self.planning)
        except Exception as error:
            self.fail(path, error)
            return
        estimate = state.plan.diameter_estimate
        if estimate is not None and state.plan.scale != 1.0:
            self.bar.write(f"{path.name}: {estimate.describe()}", file=sys.stderr)
        self.bar.total += len(state.plan.blocks)
        self.bar.refresh()
        self.open_files.append(state)

    def collect(self) -> None:
        """Take results as they come: report files, write big files' blocks in order."""
        self.submit_blocks()
        for future in self.pending:
            kind, what = self.kinds.pop(future)
            self.bar.update(1)
            if kind == "file":
                try:
                    ok, line = future.result()
                except Exception as error:  # e.g. the task's workers kept dying
                    ok, line = False, describe_failure(what, error)
                if not ok:
                    self.failed.add(what)
                self.bar.write(line if ok else f"napari-segnet: error: {line}", file=sys.stderr)
                continue
            state, index = what
            if state in self.open_files and future in state.futures:
                state.futures.discard(future)
                self.add_block(state, index, future)
            self.submit_blocks()

    def add_block(self, state: _BigFile, index: int, future) -> None:
        """Keep a block's result; write those next in order; finish the file when complete."""
        try:
            state.waiting[index], warnings = future.result()
            for warning in [w for w in dict.fromkeys(warnings) if w not in state.warned]:
                state.warned.add(warning)
                self.bar.write(f"{state.path.name}: {warning}", file=sys.stderr)
            _add_ready_blocks(state)
            if state.counts.added == state.counts.total:
                line = _finish_big_file(state)
                self.open_files.remove(state)
                self.bar.write(line, file=sys.stderr)
        except Exception as error:
            self.open_files.remove(state)
            _abandon_big_file(state, error)
            self.fail(state.path, error)

    def close(self) -> None:
        """Abandon the big files still open (their temporaries are removed)."""
        while self.open_files:
            _abandon_big_file(self.open_files.pop(), RuntimeError("interrupted"))
        self.bar.close()


def _open_big_file(path: Path, stem: str, job: SegmentJob, model) -> _BigFile:
    from napari_segnet.inference.blocks import BLOCK
    from napari_segnet.inference.stream import StreamSummary, plan_stream
    from napari_segnet.inference.stream_outputs import StreamedFiles, labels_spacing
    from napari_segnet.io import atomic_paths, read_image

    from .cells_step import cell_growth, check_markers

    image = read_image(path)
    check_markers(image, job.cells)
    spacing = labels_spacing(image)
    cells = None if job.cells is None else cell_growth(image, job.cells, spacing)
    plan = plan_stream(
        image,
        model,
        job.settings,
        block=job.block or BLOCK,
        halo=job.halo,
        measure=job.outputs.measure,
        spacing=spacing,
        cells=cells,
    )
    with contextlib.ExitStack() as opening:
        paths = job.outputs.paths(stem, streamed=True)
        exports = job.outputs.outline_exports(stem)
        temporaries = opening.enter_context(atomic_paths(*paths, *(path for _, path, _ in exports)))
        outlines = [(n, t, w) for (n, _, w), t in zip(exports, temporaries[len(paths) :])]
        temporaries = temporaries[: len(paths)]
        files = StreamedFiles(
            temporaries[0],
            temporaries[1] if job.outputs.measure else None,
            plan.source.labels_shape,
            spacing=spacing,
            labels_format=job.outputs.labels_format,
            model=getattr(model, "identity", None),
            cells_path=temporaries[-1] if cells is not None else None,
            exports=outlines,
        )
        outputs = opening.pop_all()  # open until the file is finished or abandoned
    summary = StreamSummary(blocks=len(plan.blocks), halo=plan.halo)
    counts = BlockCounts(total=len(plan.blocks))
    return _BigFile(path, plan, files, outputs, summary, counts, image=image, spacing=spacing)


def _add_ready_blocks(state: _BigFile) -> None:
    """Hand the blocks that are next in order to the files."""
    while state.counts.added in state.waiting:
        objects = state.waiting.pop(state.counts.added)
        state.files(objects, state.plan.final_row(state.counts.added))
        state.summary.add(objects)
        state.counts.added += 1


def _finish_big_file(state: _BigFile) -> str:
    from napari_segnet.inference.stream_outputs import empty_table

    state.files.close(
        empty_table=None if state.files.csv is None else empty_table(state.image, state.spacing)
    )
    state.outputs.close()  # the outputs move into place
    line = f"{state.path.name}: {state.files.count} objects"
    if state.summary.oversized:
        line += "\n" + oversized_warning(state.path, state.summary)
    return line


def _abandon_big_file(state: _BigFile, error: BaseException) -> None:
    for future in state.futures:
        future.cancel()
    try:
        state.files.abort()
    finally:  # also after a failed finish: the temporaries are removed
        state.outputs.__exit__(type(error), error, error.__traceback__)
