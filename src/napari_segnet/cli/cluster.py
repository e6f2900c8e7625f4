"""``segment`` on a dask.distributed cluster: files, and blocks of big files, as tasks.

Each worker loads the model once and keeps it (and the file it is reading blocks of). Files
that are segmented whole are one task each and the worker writes their outputs (all or
nothing, as locally). A big file's blocks are tasks whose objects come back to this process,
which numbers them in block order and streams the labels and the CSV, exactly as a local run
does; so the outputs are the same as a local run's. A worker lost mid-run costs only its tasks:
dask gives them to another worker, and since outputs appear only when complete, nothing is
written twice or half.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .common import UserError, load_model_and_device, segment_settings

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
        help="run on N worker processes on this machine (a dask LocalCluster)",
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


def wants_cluster(args) -> bool:
    """Whether the options ask for a cluster."""
    return bool(args.workers or args.scheduler or args.scheduler_file)


@contextlib.contextmanager
def open_client(args):
    """Yield a dask client for the options; a LocalCluster is closed afterwards."""
    from distributed import Client, LocalCluster

    if args.workers is not None:
        if args.workers < 1:
            raise UserError("--workers must be at least 1.")
        args.worker_threads = max(1, (os.cpu_count() or 1) // args.workers)
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    args.worker_threads = None
    try:
        if args.scheduler_file is not None:
            client = Client(scheduler_file=str(args.scheduler_file), timeout="20s")
        else:
            client = Client(args.scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as error:
        where = args.scheduler_file or args.scheduler
        raise UserError(f"Cannot reach the dask scheduler at {where}: {error}") from error
    with client:
        yield client


def worker_model(args):
    """Return the model and device of this worker, loaded once."""
    key = (args.model, args.device)
    with _MODEL_LOCK:  # a worker's threads share one model
        if key not in _WORKER_MODEL:
            if getattr(args, "worker_threads", None):
                import torch

                torch.set_num_threads(args.worker_threads)
            _WORKER_MODEL.clear()
            _WORKER_MODEL[key] = load_model_and_device(args)
        return _WORKER_MODEL[key]


def segment_file_task(path: Path, stem: str, args) -> tuple[bool, str]:
    """Segment one file whole and write its outputs; return (ok, the line to print)."""
    from .segment import describe_failure, segment_one

    model, device = worker_model(args)
    try:
        n = segment_one(path, stem, args, model, segment_settings(args), device)
    except Exception as error:  # reported by the client, like a local failure
        return False, describe_failure(path, error)
    return True, f"{path.name}: {n} objects"


def segment_block_task(path: Path, args, channel, normalisation, scale, block, block_settings):
    """Segment one block of a big file at the file's zoom; return its :class:`BlockObjects`.

    ``scale`` (a float) is the zoom planned once for the whole file, so that every block
    sees the same zoomed plane.
    """
    from napari_segnet.inference.stream import PlaneSource, iter_segment_block, plane_predictors
    from napari_segnet.io import read_image
    from napari_segnet.progress import drain

    model, device = worker_model(args)
    key = (str(path), channel, normalisation, scale)
    if getattr(_WORKER_THREAD, "key", None) != key:
        _WORKER_THREAD.key = _WORKER_THREAD.plane = None
        source = PlaneSource(read_image(path), channel, normalisation, scale)
        predictors = plane_predictors(model, source, segment_settings(args), device)
        _WORKER_THREAD.key, _WORKER_THREAD.plane = key, (source, predictors)
    source, predictors = _WORKER_THREAD.plane
    return drain(iter_segment_block(predictors, source, block, block_settings))


@dataclass
class _BigFile:
    """A big file in progress: its plan, its open outputs, and its blocks' results."""

    path: Path
    plan: object
    files: object
    outputs: contextlib.ExitStack
    summary: object
    submitted: int = 0
    added: int = 0
    image: object = None
    spacing: tuple | None = None
    waiting: dict = field(default_factory=dict)
    futures: set = field(default_factory=set)


def run_on_cluster(args, inputs: list[Path], stems: dict[Path, str]) -> tuple[int, int]:
    """Segment ``inputs`` on the cluster the options name; return (failures, inputs tried)."""
    from distributed import as_completed
    from tqdm import tqdm

    from napari_segnet.io import read_image

    from .segment import (
        already_done,
        block_by_block,
        describe_failure,
        refuse_export_block_by_block,
    )

    model, _ = load_model_and_device(args)  # here only to plan big files
    settings = segment_settings(args)
    failures = tried = 0
    with open_client(args) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = max(8, 4 * workers)  # blocks in flight (and results held) per big file
        pending = as_completed()
        kinds: dict = {}
        big: deque = deque()
        for path in inputs:
            if args.resume and already_done(args, stems[path]):
                print(f"{path.name}: already done", file=sys.stderr)
                continue
            tried += 1
            try:
                image = read_image(path)
                is_big = block_by_block(image, args)
                if is_big:
                    refuse_export_block_by_block(path, args)
            except Exception as error:
                failures += 1
                print(f"napari-segnet: error: {describe_failure(path, error)}", file=sys.stderr)
                continue
            if is_big:
                big.append(path)
                continue
            future = client.submit(segment_file_task, path, stems[path], args, pure=False)
            kinds[future] = ("file", path)
            pending.add(future)
        bar = tqdm(total=len(kinds), desc="cluster", file=sys.stderr, leave=False, disable=None)
        current = None

        def submit_blocks(state: _BigFile) -> None:
            plan = state.plan
            while state.submitted < len(plan.blocks) and len(state.futures) < window:
                block = plan.blocks[state.submitted]
                future = client.submit(
                    segment_block_task,
                    state.path,
                    args,
                    plan.source.channel,
                    plan.source.normalisation,
                    plan.source.scale,
                    block,
                    plan.block_settings,
                    pure=False,
                )
                kinds[future] = ("block", block.index)
                state.futures.add(future)
                pending.add(future)
                state.submitted += 1

        def start_big() -> _BigFile | None:
            nonlocal failures
            while big:
                path = big.popleft()
                try:
                    state = _open_big_file(path, stems[path], args, model, settings)
                except Exception as error:
                    failures += 1
                    print(f"napari-segnet: error: {describe_failure(path, error)}", file=sys.stderr)
                    continue
                estimate = state.plan.diameter_estimate
                if estimate is not None and state.plan.scale != 1.0:
                    bar.write(f"{path.name}: {estimate.describe()}", file=sys.stderr)
                bar.total += len(state.plan.blocks)
                bar.refresh()
                submit_blocks(state)
                return state
            return None

        current = start_big()
        for future in pending:
            kind, what = kinds.pop(future)
            bar.update(1)
            if kind == "file":
                try:
                    ok, line = future.result()
                except Exception as error:  # e.g. the task's workers kept dying
                    ok, line = False, describe_failure(what, error)
                failures += not ok
                bar.write(line if ok else f"napari-segnet: error: {line}", file=sys.stderr)
                continue
            if current is None or future not in current.futures:
                continue  # a block of a big file that already failed
            current.futures.discard(future)
            try:
                current.waiting[what] = future.result()
                _add_ready_blocks(current)
                submit_blocks(current)
                if current.added < len(current.plan.blocks):
                    continue
                bar.write(_finish_big_file(current), file=sys.stderr)
            except Exception as error:
                failures += 1
                _abandon_big_file(current, error, client)
                bar.write(
                    f"napari-segnet: error: {describe_failure(current.path, error)}",
                    file=sys.stderr,
                )
            current = start_big()
        bar.close()
    _remove_stale_temporaries(args, [stems[p] for p in inputs])
    return failures, tried


def _open_big_file(path: Path, stem: str, args, model, settings) -> _BigFile:
    from napari_segnet.inference.blocks import BLOCK
    from napari_segnet.inference.stream import StreamSummary, plan_stream
    from napari_segnet.inference.stream_outputs import StreamedFiles, labels_spacing
    from napari_segnet.io import atomic_paths, read_image

    from .segment import output_paths

    image = read_image(path)
    spacing = labels_spacing(image)
    plan = plan_stream(
        image,
        model,
        settings,
        block=args.block or BLOCK,
        halo=args.halo,
        measure=not args.no_measure,
        spacing=spacing,
    )
    outputs = contextlib.ExitStack()
    temporaries = outputs.enter_context(atomic_paths(*output_paths(args, stem, streamed=True)))
    files = StreamedFiles(
        temporaries[0],
        None if args.no_measure else temporaries[1],
        plan.source.labels_shape,
        spacing=spacing,
        labels_format=args.labels_format,
        model=getattr(model, "identity", None),
    )
    summary = StreamSummary(blocks=len(plan.blocks), halo=plan.halo)
    return _BigFile(path, plan, files, outputs, summary, image=image, spacing=spacing)


def _add_ready_blocks(state: _BigFile) -> None:
    """Hand the blocks that are next in order to the files."""
    while state.added in state.waiting:
        objects = state.waiting.pop(state.added)
        state.files(objects, state.plan.final_row(state.added))
        state.summary.add(objects)
        state.added += 1


def _finish_big_file(state: _BigFile) -> str:
    from napari_segnet.inference.stream_outputs import empty_table

    from .segment import oversized_warning

    state.files.close(
        empty_table=None if state.files.csv is None else empty_table(state.image, state.spacing)
    )
    state.outputs.close()  # the outputs move into place
    line = f"{state.path.name}: {state.files.count} objects"
    if state.summary.oversized:
        line += "\n" + oversized_warning(state.path, state.summary)
    return line


def _abandon_big_file(state: _BigFile, error: BaseException, client) -> None:
    for future in state.futures:
        future.cancel()
    state.files.abort()
    state.outputs.__exit__(type(error), error, error.__traceback__)  # removes the temporaries


def _remove_stale_temporaries(args, stems: list[str]) -> None:
    """Remove temporary outputs that a worker lost mid-write left behind.

    A writer that is atomic itself, writing into an output's temporary, makes a temporary
    of that temporary (``..<stem>_labels.<token>.partial.<token>.partial.tif``); a lost
    worker can leave either kind.
    """
    for stem in stems:
        for final in (f"{stem}_labels", f"{stem}_measurements"):
            leftovers = [*args.out.glob(f".{final}.*.partial*"), *args.out.glob(f"..{final}.*")]
            for stale in leftovers:
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        stale.unlink()
