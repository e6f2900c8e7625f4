"""A viewer that has drawn with Mesa's OpenGL can still run a ResNet model afterwards."""

import subprocess
import sys

SCRIPT = """
import numpy as np, napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
viewer.add_image(np.random.rand(64, 64))
viewer.screenshot(flash=False)  # OpenGL has drawn: under Xvfb, Mesa's llvmpipe is loaded
import sys
import torch
from napari_segnet.models import ModelConfig, create_model
model = create_model(ModelConfig(encoder="resnet18", in_channels=1)).eval()  # imports torchvision
print("blocked" if sys.modules.get("triton", "loaded") is None else "not needed")
print(tuple(model(torch.zeros(1, 1, 64, 64))["instance"].shape))
viewer.close()
"""


def test_resnet_after_drawing_does_not_crash():
    # A fresh process: this test process loaded triton before any drawing (see conftest.py).
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    assert lines[-2] == "(1, 3, 64, 64)"
    assert lines[-3] in ("blocked", "not needed")
