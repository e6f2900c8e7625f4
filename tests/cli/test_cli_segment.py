"""``napari-segnet segment`` in a subprocess: outputs, batches with failures, names, bad models."""

import pickle
import resource
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_segnet.cli.one_file import describe_failure
from napari_segnet.io import read_image


def test_segment_writes_calibrated_labels_and_measurements(run_cli, calibrated_image, tmp_path):
    path, truth = calibrated_image
    out = tmp_path / "out"
    result = run_cli("segment", path, "--out", out)
    assert result.returncode == 0, result.stderr
    labels = read_image(out / "cells_labels.tif")
    assert labels.data.shape == truth.shape
    assert labels.pixel_size == pytest.approx({"Y": 0.4, "X": 0.4})
    table = pd.read_csv(out / "cells_measurements.csv")
    assert len(table) == labels.data.max() > 0
    assert {"area_um2", "intensity_mean_DAPI", "intensity_mean_Actin"} <= set(table.columns)
    assert sorted(p.name for p in out.iterdir()) == ["cells_labels.tif", "cells_measurements.csv"]


def test_a_batch_goes_on_after_failures_of_any_kind(
    run_cli, error_lines, calibrated_image, tmp_path
):
    path, _ = calibrated_image
    zeros, broken, huge = tmp_path / "zeros.tif", tmp_path / "broken.tif", tmp_path / "huge.tif"
    tifffile.imwrite(zeros, np.zeros((50, 60), np.uint16))
    broken.write_bytes(b"II*\x00garbage")
    # 900 MB of zeros on disk (a sparse file): it opens lazily, as a memory map, and the
    # memory limit below leaves too little to segment it in memory (--block 0; block by block
    # it would be done in bounded memory, see test_cli_blocks.py).
    tifffile.memmap(huge, shape=(30_000, 30_000), dtype=np.uint8).flush()

    def limit_memory():  # the address space torch needs, the memory map and 1.5 GiB more
        resource.setrlimit(resource.RLIMIT_AS, (int(5.5 * 2**30), resource.RLIM_INFINITY))

    out = tmp_path / "out"
    result = run_cli(
        "segment", broken, path, huge, zeros, "--out", out, "--block", 0, preexec_fn=limit_memory
    )
    lines = error_lines(result)
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith("napari-segnet: error: Cannot read broken.tif")
    assert lines[1].startswith(
        "napari-segnet: error: huge.tif: Segmenting a 30000 × 30000 plane needs about 36.0 GB "
        "of memory, more than the "
    )
    assert lines[1].endswith("a cropped region, or a lower-resolution level of the file.")
    assert lines[2] == "napari-segnet: 2 of 4 inputs failed."
    assert read_image(out / "zeros_labels.tif").data.max() == 0  # zero objects is a valid answer
    assert read_image(out / "cells_labels.tif").data.max() > 0
    expected = ["cells_labels.tif", "cells_measurements.csv", "zeros_labels.tif"]
    expected += ["zeros_measurements.csv"]
    assert sorted(p.name for p in out.iterdir()) == expected  # no partial files


def test_running_out_of_memory_is_one_sentence_with_what_to_try():
    with pytest.raises(MemoryError) as caught:
        np.empty(2**62, np.uint8)  # numpy's own MemoryError, with its own message
    message = describe_failure(Path("big.tif"), caught.value)
    assert message.startswith("big.tif: not enough memory to segment it (Unable to allocate ")
    assert message.endswith("; try a smaller --tile, or split the image.")


def test_unexpected_errors_name_the_file_and_the_way_to_details():
    try:
        {}["axes"]
    except KeyError as error:
        message = describe_failure(Path("odd.tif"), error)
    assert message == "odd.tif: unexpected KeyError: 'axes'. (run with --debug for details)"


def test_outputs_of_one_image_are_all_or_nothing(run_cli, error_lines, calibrated_image, tmp_path):
    path, _ = calibrated_image
    out = tmp_path / "out"
    assert run_cli("segment", path, "--out", out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    sizes = sorted(len(content) for content in before.values())

    def small_disk():  # files above the smaller output cannot be written: a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (sizes[0] + 1, resource.RLIM_INFINITY))

    result = run_cli("segment", path, "--out", out, "--invert", "yes", preexec_fn=small_disk)
    (line,) = error_lines(result)
    assert (
        line == "napari-segnet: error: cells.ome.tif: File too large (nothing was written for it)."
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old pair, unchanged


def test_outputs_never_overwrite_each_other(run_cli, tmp_path, nuclei_pairs):
    image = nuclei_pairs[1][0]
    inputs = [tmp_path / "a.b.tif", tmp_path / "a.c.tif"]
    for folder in ("plate1", "plate2"):
        (tmp_path / folder).mkdir()
        inputs.append(tmp_path / folder / "img.tif")
    for n, path in enumerate(inputs):
        tifffile.imwrite(path, np.roll(image, 7 * n, axis=1))
    out = tmp_path / "out"
    result = run_cli("segment", *inputs, inputs[0], "--out", out, "--no-measure")
    assert result.returncode == 0, result.stderr
    names = ["a.b_labels.tif", "a.c_labels.tif", "plate1_img_labels.tif", "plate2_img_labels.tif"]
    assert sorted(p.name for p in out.iterdir()) == names
    for n, name in enumerate(names):  # each output is its own input's
        shifted = read_image(out / name).data
        first = read_image(out / names[0]).data
        assert (np.roll(first, 7 * n, axis=1)[:, 40:-40] > 0).mean() == pytest.approx(
            (shifted[:, 40:-40] > 0).mean(), abs=0.02
        )
    assert len({read_image(out / name).data.tobytes() for name in names}) == 4


@pytest.mark.parametrize("content", ["pickle", "garbage", "missing"])
def test_bad_model_files_are_refused_in_one_sentence(
    run_cli, error_lines, content, calibrated_image, tmp_path
):
    path, _ = calibrated_image
    model = tmp_path / "model.safetensors"
    marker = tmp_path / "pwned"
    if content == "pickle":

        class Exploit:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        model.write_bytes(pickle.dumps(Exploit()))
    elif content == "garbage":
        model.write_bytes(np.random.default_rng(0).bytes(1000))
    result = run_cli("segment", path, "--out", tmp_path / "out", "--model", model)
    (line,) = error_lines(result)
    assert "model" in line
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unwritable_output_folder(run_cli, error_lines, calibrated_image, tmp_path):
    path, _ = calibrated_image
    blocker = tmp_path / "file"
    blocker.write_text("")
    (line,) = error_lines(run_cli("segment", path, "--out", blocker / "out"))
    assert "Cannot create the output folder" in line


def test_too_small_a_tile_is_one_sentence(run_cli, error_lines, calibrated_image, tmp_path):
    path, _ = calibrated_image
    (line,) = error_lines(run_cli("segment", path, "--out", tmp_path, "--tile", "8"))
    assert line == "napari-segnet: error: --tile must be at least 32 pixels."


def test_unusable_device_is_explained(run_cli, error_lines, calibrated_image, tmp_path):
    import torch

    path, _ = calibrated_image
    result = run_cli("segment", path, "--out", tmp_path / "out", "--device", "cuda")
    if torch.cuda.is_available():
        assert result.returncode == 0, result.stderr
        return
    (line,) = error_lines(result)
    assert "not usable" in line
