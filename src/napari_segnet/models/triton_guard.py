"""Keep triton out of a process that has already loaded the system's LLVM.

torchvision (ResNet and VGG encoders) imports torch's compiler stack, which imports
triton; triton's library carries its own LLVM. Loaded into a process where Mesa's
OpenGL driver (llvmpipe, the software renderer of remote desktops and virtual
machines, or radeonsi) has already loaded the system's LLVM, as a napari viewer
does once it has drawn, it crashes the process. Inference never needs triton, and
torch works without it, so in exactly that situation the import of triton is made
to fail (as if it were not installed). The encoders call this before importing
torchvision.
"""

from __future__ import annotations

import sys
from pathlib import Path


def keep_triton_out_if_llvm_is_loaded() -> bool:
    """Block ``import triton`` if an LLVM library is loaded and triton is not; True if blocked."""
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: no such clash is known
        return False
    if "libLLVM" not in maps:
        return False
    sys.modules["triton"] = None
    return True
