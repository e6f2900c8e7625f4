"""A viewer that has drawn with Mesa's OpenGL can still run a ResNet model afterwards."""

import json
import subprocess
import sys

SCRIPT = """
import importlib.util, json, sys
from pathlib import Path
import numpy as np, napari
viewer = napari.Viewer(show=True)
viewer.add_image(np.random.rand(64, 64))
viewer.screenshot(flash=False)  # OpenGL has drawn: under Xvfb, Mesa's llvmpipe is loaded
try:
    llvm = "libLLVM" in Path("/proc/self/maps").read_text()  # the guard's own condition
except OSError:
    llvm = False
installed = importlib.util.find_spec("triton") is not None
import torch
from napari_segnet.models import ModelConfig, create_model
model = create_model(ModelConfig(encoder="resnet18", in_channels=1)).eval()  # imports torchvision
shape = tuple(model(torch.zeros(1, 1, 64, 64))["instance"].shape)
kept_out = "triton" in sys.modules and sys.modules["triton"] is None
print(json.dumps({"llvm": llvm, "installed": installed, "kept_out": kept_out, "shape": shape}))
viewer.close()
"""


def test_resnet_after_drawing_does_not_crash():
    # A fresh process: this test process loaded triton before any drawing (see conftest.py).
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [1, 3, 64, 64]
    must_block = report["llvm"] and report["installed"]  # else triton cannot clash with LLVM
    outcome = "blocked" if report["installed"] and report["kept_out"] else "not needed"
    assert outcome == ("blocked" if must_block else "not needed"), report
