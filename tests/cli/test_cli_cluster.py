"""``segment`` on dask.distributed: a real scheduler and two workers on 127.0.0.1, one killed."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_segnet.data import sample_path


@pytest.fixture
def batch(tmp_path, nuclei_pairs):
    """Eight small images (segmented whole, one task each) and a big one (in blocks)."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    images = [image for image, _ in nuclei_pairs]
    for n in range(8):
        path = folder / f"field{n}.tif"
        a, b, c, d = (images[(n + k) % len(images)] for k in range(4))
        tifffile.imwrite(path, np.block([[a, b], [c, d]]))
        paths.append(path)
    big = folder / "mosaic.tif"
    sample = tifffile.imread(sample_path("nuclei"))
    tifffile.imwrite(big, np.block([[sample, sample[:, ::-1]], [sample[::-1], sample]]))
    return [*paths, big]


def outputs(folder):
    """Every output's content: label pixels (files differ in time stamps) and CSV text."""
    result = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".tif":
            result[path.name] = tifffile.imread(path)
        else:
            result[path.name] = path.read_text()
    return result


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        if isinstance(a[name], np.ndarray):
            assert np.array_equal(a[name], b[name]), name
        else:
            assert a[name] == b[name], name


def start(*command, env, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-m", *command],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not come up")
        time.sleep(0.05)


@contextlib.contextmanager
def dask_cluster(
    tmp_path, workers: int, *, nanny: bool = False, allowed_failures: int = 3, elsewhere=None
):
    """A scheduler and worker processes on 127.0.0.1; yields (scheduler file, client).

    The scheduler records which worker finished each task (``finished_on``). Workers
    run in ``elsewhere`` (a folder, also their ``$HOME``) when given.
    """
    import cloudpickle
    from distributed import Client

    # The scheduler runs functions of this module, which it cannot import.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(allowed_failures)
    scheduler_file = tmp_path / "scheduler.json"
    processes = [
        start(
            "distributed.cli.dask_scheduler",
            "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(scheduler_file),
            env=env,
        )
    ]  # fmt: skip
    try:
        wait_for(scheduler_file.exists)
        for _ in range(workers):
            processes.append(
                start(
                    "distributed.cli.dask_worker",
                    "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                    "--nthreads", "1", "--no-dashboard", "--nanny" if nanny else "--no-nanny",
                    env={**env, "HOME": str(elsewhere)} if elsewhere else env,
                    cwd=elsewhere,
                )
            )  # fmt: skip
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
            client.run_on_scheduler(_record_finished_tasks)
            yield scheduler_file, client
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _record_finished_tasks(dask_scheduler):
    from distributed.diagnostics.plugin import SchedulerPlugin

    finished = []

    class FinishedOn(SchedulerPlugin):
        name = "finished-on"

        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "memory" and "worker" in kwargs:
                finished.append((key, kwargs["worker"]))

    dask_scheduler.add_plugin(FinishedOn())
    dask_scheduler.finished_on = finished


def finished_on(client) -> dict:
    """Task key → the workers that finished it."""
    pairs = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.finished_on))
    result = {}
    for key, worker in pairs:
        result.setdefault(key, []).append(worker)
    return result


def kill_a_worker_holding(client, wanted, timeout=240.0) -> tuple[str, str]:
    """SIGKILL a worker while it provably holds a task whose key ``wanted`` accepts.

    The worker is frozen first (SIGSTOP); only if the scheduler still has the task
    processing on it, unfinished, a second later is it killed; otherwise it is thawed
    and the next such task is tried. Returns (key, worker address).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = client.run(os.getpid, on_error="return")  # a dying worker does not answer
        pids = {address: pid for address, pid in answers.items() if isinstance(pid, int)}
        for address, keys in client.processing().items():
            held = [key for key in keys if wanted(str(key))]
            if not held or address not in pids:
                continue
            os.kill(pids[address], signal.SIGSTOP)
            time.sleep(1.0)
            still = set(map(str, client.processing().get(address, ())))
            done = finished_on(client)
            unfinished = [key for key in held if str(key) in still and key not in done]
            if unfinished:
                os.kill(pids[address], signal.SIGKILL)
                return str(unfinished[0]), address
            os.kill(pids[address], signal.SIGCONT)
        time.sleep(0.05)
    raise TimeoutError("no worker held such a task")


def segment_on(scheduler_file, *args):
    command = [
        sys.executable, "-m", "napari_segnet.cli", "segment", *map(str, args),
        "--scheduler-file", str(scheduler_file),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def test_a_killed_worker_costs_only_its_tasks_and_the_outputs_equal_a_local_run(
    run_cli, batch, tmp_path
):
    local = tmp_path / "local"
    result = run_cli("segment", *batch, "--out", local, "--block", 512)
    assert result.returncode == 0, result.stderr

    cluster_out = tmp_path / "cluster"
    with dask_cluster(tmp_path, 2) as (scheduler_file, client):
        run = segment_on(scheduler_file, *batch, "--out", cluster_out, "--block", 512)
        try:
            key, killed = kill_a_worker_holding(client, lambda key: True)
            stderr = run.communicate(timeout=600)[1]
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, stderr
        finishers = finished_on(client)[key]
    # The task the killed worker held was done again, elsewhere.
    assert finishers and killed not in finishers, (key, killed, finishers)

    assert_same(outputs(local), outputs(cluster_out))
    assert sorted(line.split(":")[0] for line in stderr.splitlines() if "objects" in line) == (
        sorted(path.name for path in batch)
    )
    table = pd.read_csv(cluster_out / "mosaic_measurements.csv")
    assert table["label"].tolist() == list(range(1, len(table) + 1))


def test_a_file_that_keeps_killing_workers_is_one_sentence_and_the_rest_is_done(
    batch, tmp_path, nuclei_pairs
):
    # A bigger field, so that its task is still running when the test looks for it.
    doomed = tmp_path / "in" / "doomed.tif"
    tifffile.imwrite(doomed, np.tile(tifffile.imread(batch[0]), (4, 4)))
    inputs = [batch[0], doomed, batch[1]]
    out = tmp_path / "out"
    with dask_cluster(tmp_path, 2, nanny=True, allowed_failures=1) as (scheduler_file, client):
        run = segment_on(scheduler_file, *inputs, "--out", out)
        try:
            for _ in range(2):  # each death restarts the worker; the second gives the file up
                client.wait_for_workers(2, timeout=120)
                kill_a_worker_holding(client, lambda key: key.startswith("segment doomed.tif"))
            stderr = run.communicate(timeout=600)[1]
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 1
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("napari-segnet: error:")]
    assert len(errors) == 1 and "doomed.tif" in errors[0] and "died" in errors[0], stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{kind}" for stem in ("field0", "field1")
        for kind in ("labels.tif", "measurements.csv")
    )  # fmt: skip


def test_relative_paths_and_a_model_file_reach_workers_that_run_elsewhere(
    batch, tmp_path, monkeypatch
):
    import shutil

    from napari_segnet.models.bundled import bundled_model_path

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "models").mkdir()
    shutil.copy(bundled_model_path("nuclei"), tmp_path / "models" / "mine.safetensors")
    monkeypatch.chdir(tmp_path)
    with dask_cluster(tmp_path, 1, elsewhere=elsewhere) as (scheduler_file, _):
        run = segment_on(
            scheduler_file, "in/field0.tif", "--out", "out", "--model", "models/mine.safetensors"
        )
        stderr = run.communicate(timeout=300)[1]
    assert run.returncode == 0, stderr
    table = pd.read_csv(tmp_path / "out" / "field0_measurements.csv")
    assert len(table) > 0 and set(table["model"]) == {"mine"}
    # Nothing of ours was written where the worker runs (dask may keep its own files there).
    assert not [p for p in elsewhere.rglob("*") if p.suffix in (".tif", ".csv", ".zarr")]


def test_local_workers_and_resume(run_cli, batch, tmp_path):
    out = tmp_path / "out"
    result = run_cli("segment", *batch[:2], batch[-1], "--out", out, "--block", 512, "--workers", 2)
    assert result.returncode == 0, result.stderr
    local = tmp_path / "local"
    assert run_cli("segment", *batch[:2], batch[-1], "--out", local, "--block", 512).returncode == 0
    assert_same(outputs(local), outputs(out))
    again = run_cli("segment", *batch[:3], "--out", out, "--workers", 1, "--resume")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already done") == 2 and "field2.tif: " in again.stderr


def test_an_unreachable_scheduler_is_one_sentence(run_cli, error_lines, batch, tmp_path):
    result = run_cli(
        "segment", batch[0], "--out", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9"
    )
    lines = error_lines(result)
    assert len(lines) == 1 and "Cannot reach the dask scheduler at tcp://127.0.0.1:9" in lines[0]


def test_temporaries_that_a_lost_worker_left_are_removed(tmp_path):
    from napari_segnet.cli.job import ModelRequest, OutputSettings, SegmentJob

    names = [
        ".field0_labels.12-0123abcd.partial.tif",  # an output's temporary
        "..field0_labels.12-0123abcd.partial.13-89abcdef.partial.tif",  # one of an older version
        ".field0_measurements.12-0123abcd.partial.csv",
        ".field0_labels.12-0123abcd.partial.zarr",  # a folder
        ".field0.12-0123abcd.partial.geojson",
        ".field0_rois.12-0123abcd.partial.zip",
    ]
    kept = [
        "field0_labels.tif",
        "field0_measurements.csv",
        ".other_labels.12-0123abcd.partial.tif",  # not this run's
        ".field0_labels.12-0123abcd.backup.tif",  # a backup is not a temporary
        "notes.12-0123abcd.partial.txt",
    ]
    for name in names + kept:
        if name.endswith(".zarr"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "zarr.json").write_text("{}")
        else:
            (tmp_path / name).write_bytes(b"")
    outputs = OutputSettings(tmp_path, labels_format="zarr", exports=("geojson", "imagej-roi"))
    job = SegmentJob(ModelRequest(tmp_path / "m.safetensors"), None, outputs)
    job.outputs.remove_temporaries(["field0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
