"""``segment`` on dask.distributed: a real scheduler and two workers on 127.0.0.1, one killed."""

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


def start(*command, env):
    return subprocess.Popen(
        [sys.executable, "-m", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not come up")
        time.sleep(0.1)


def test_a_killed_worker_costs_only_its_tasks_and_the_outputs_equal_a_local_run(
    run_cli, batch, tmp_path
):
    local = tmp_path / "local"
    result = run_cli("segment", *batch, "--out", local, "--block", 512)
    assert result.returncode == 0, result.stderr

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
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
        for _ in range(2):
            processes.append(
                start(
                    "distributed.cli.dask_worker",
                    "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                    "--nthreads", "1", "--no-nanny", "--no-dashboard",
                    env=env,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)

        cluster_out = tmp_path / "cluster"
        command = [
            sys.executable, "-m", "napari_segnet.cli", "segment", *map(str, batch),
            "--out", str(cluster_out), "--block", "512", "--scheduler-file", str(scheduler_file),
        ]  # fmt: skip
        run = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        # Kill one worker as soon as the first output appears: the run is under way.
        wait_for(lambda: cluster_out.exists() and any(cluster_out.glob("*_labels.tif")), 120)
        os.kill(processes[1].pid, signal.SIGKILL)
        stderr = run.communicate(timeout=300)[1]
        assert run.returncode == 0, stderr
        assert processes[1].wait(timeout=10) == -signal.SIGKILL
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    assert_same(outputs(local), outputs(cluster_out))
    assert sorted(line.split(":")[0] for line in stderr.splitlines() if "objects" in line) == (
        sorted(path.name for path in batch)
    )
    table = pd.read_csv(cluster_out / "mosaic_measurements.csv")
    assert table["label"].tolist() == list(range(1, len(table) + 1))


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
    from types import SimpleNamespace

    from napari_segnet.cli.cluster import _remove_stale_temporaries

    names = [
        ".field0_labels.1-ab.partial.tif",  # an output's temporary
        "..field0_labels.1-ab.partial.2-cd.partial.tif",  # a temporary of that temporary
        ".field0_measurements.1-ab.partial.csv",
    ]
    kept = ["field0_labels.tif", "field0_measurements.csv", ".other_labels.1-ab.partial.tif"]
    for name in names + kept:
        (tmp_path / name).write_bytes(b"")
    _remove_stale_temporaries(SimpleNamespace(out=tmp_path), ["field0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
