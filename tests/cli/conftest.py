import subprocess
import sys

import numpy as np
import pytest
import tifffile


@pytest.fixture
def run_cli():
    """Run ``napari-segnet ARGS...`` in a subprocess, as a user would."""

    def run(*args, env=None, preexec_fn=None):
        return subprocess.run(
            [sys.executable, "-m", "napari_segnet.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=preexec_fn,
        )

    return run


@pytest.fixture
def error_lines():
    """The ``napari-segnet: error:`` lines of a run that must have failed without a traceback."""

    def lines(result):
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        return [line for line in result.stderr.splitlines() if line.startswith("napari-segnet:")]

    return lines


@pytest.fixture
def calibrated_image(tmp_path, nuclei_pairs):
    """A 2-channel OME-TIFF (0.4 µm pixels, DAPI second) of synthetic nuclei, and its labels."""
    image, labels = nuclei_pairs[0]
    path = tmp_path / "cells.ome.tif"
    noise = np.random.default_rng(1).integers(0, 50, image.shape, dtype=np.uint8)
    tifffile.imwrite(
        path,
        np.stack([noise, image]),
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 0.4,
            "PhysicalSizeY": 0.4,
            "Channel": {"Name": ["Actin", "DAPI"]},
        },
    )
    return path, labels
