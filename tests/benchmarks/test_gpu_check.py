"""``benchmarks/gpu_check.py --quick`` runs on a CPU, its CUDA parts skipped with the reason."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
CHECKS = ["precision", "blocks", "out_of_memory", "training", "star_head", "workers", "throughput"]
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "report.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(out.read_text())


def test_the_report_names_the_machine_and_every_check(report):
    assert list(report["checks"]) == CHECKS
    info = report["info"]
    assert info["torch"] == torch.__version__ and info["cpu_cores"] >= 1
    assert set(info["devices"]) == {"cpu", "cuda", "mps"}
    assert report["device"] == ("cuda" if CUDA else "cpu") and report["quick"] is True
    for check in report["checks"].values():
        assert check["status"] in ("passed", "skipped") and check["seconds"] >= 0


@pytest.mark.skipif(CUDA, reason="on a CUDA machine the CUDA parts run")
def test_without_cuda_its_parts_skip_with_the_reason_after_the_cpu_parts(report):
    checks = report["checks"]
    for name in ("precision", "out_of_memory", "star_head"):
        assert checks[name]["status"] == "skipped"
        assert checks[name]["reason"].startswith("no CUDA GPU: ")
    # The CPU reference of the precision check ran: the bundled samples have nuclei.
    assert min(checks["precision"]["objects_cpu_fp32"].values()) > 10
    assert checks["star_head"]["objects_cpu"] >= 0


def test_blocks_give_the_whole_planes_objects(report):
    blocks = report["checks"]["blocks"]
    assert blocks["fp32"]["same_objects"] is True
    assert blocks["fp32"]["objects_blocks"] == blocks["fp32"]["objects_whole"] > 50
    assert blocks["fp32"]["blocks"] == 4


def test_training_stopped_resumed_and_saved(report):
    training = report["checks"]["training"]
    assert training["steps"] == 4  # two epochs of two steps: one before the stop, one after
    assert training["saved_epoch"] in (1, 2)


def test_workers_give_the_local_runs_objects(report):
    workers = report["checks"]["workers"]
    if workers["status"] == "skipped":
        pytest.skip(workers["reason"])
    assert workers["same_objects"] is True and workers["images"] == 2


def test_throughput_says_where_the_time_goes(report):
    throughput = report["checks"]["throughput"]
    stages = {"read", "normalise", "network", "instances", "measure", "write"}
    for figures in throughput["end_to_end"].values():
        assert set(figures["seconds"]) == stages | {"transfer"}
        assert sum(figures["share"].values()) == pytest.approx(1, abs=0.01)
        assert figures["mp_per_s"] > 0 and figures["objects"] > 50
    assert throughput["whole_slide"]["objects"] > 100


def test_an_unknown_check_is_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "speed", "--out", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown check speed; choose from precision, blocks" in result.stderr
    assert not (tmp_path / "r.json").exists()
