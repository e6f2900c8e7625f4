"""The command line becomes a typed job once; workers resolve their own device and model."""

import argparse
from pathlib import Path

import pytest

from napari_segnet.cli import build_parser
from napari_segnet.cli.cluster import worker_device
from napari_segnet.cli.job import ModelRequest, segment_job
from napari_segnet.models.bundled import bundled_model


def job_of(*args):
    parsed = build_parser().parse_args(["segment", *map(str, args)])
    assert isinstance(parsed, argparse.Namespace)
    return segment_job(parsed)


def test_paths_become_absolute_and_bundled_models_are_named_by_version(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = job_of("in.tif", "--out", "results", "--export", "geojson", "--device", "cuda")
    assert job.outputs.folder == tmp_path / "results"
    assert job.model.path.is_absolute() and job.model.bundled == bundled_model("nuclei").reference
    assert job.model.device == "cuda"  # a request, resolved where the model runs
    assert job.outputs.paths("a") == [
        tmp_path / "results" / n for n in ("a_labels.tif", "a_measurements.csv")
    ]
    assert job.outputs.export_paths("a") == [tmp_path / "results" / "a.geojson"]


def test_a_worker_loads_its_own_copy_of_a_bundled_version(tmp_path):
    reference = bundled_model("nuclei").reference
    request = ModelRequest(tmp_path / "not-here.safetensors", reference)
    assert request.file() == bundled_model(reference).path


def test_a_model_file_missing_on_a_worker_is_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not on this machine"):
        ModelRequest(tmp_path / "mine.safetensors").file()


@pytest.mark.parametrize(
    ("requested", "name", "gpus", "expected"),
    [
        ("auto", 0, 2, "cuda:0"),
        ("auto", 3, 2, "cuda:1"),
        ("cuda", 1, 4, "cuda:1"),
        ("auto", 1, 1, "auto"),  # one GPU: every worker shares it
        ("cuda:1", 0, 2, "cuda:1"),  # asked for explicitly
        ("cpu", 1, 2, "cpu"),
        ("auto", "tcp://10.0.0.5:4000", 2, "auto"),  # not a local worker: its own visible GPUs
    ],
)
def test_local_workers_each_take_their_own_gpu(requested, name, gpus, expected):
    assert worker_device(requested, name, gpus) == expected


def test_bad_block_sizes_are_refused_in_one_sentence():
    from napari_segnet.cli import UserError

    with pytest.raises(UserError, match="--block must be 0 or at least 64"):
        job_of("in.tif", "--out", Path("out"), "--block", 10)
