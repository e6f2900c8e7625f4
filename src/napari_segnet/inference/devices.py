"""Which torch devices can run here, and in plain words why the others cannot."""

from __future__ import annotations

import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceStatus:
    """Whether one kind of torch device is usable.

    Attributes
    ----------
    name : str
        ``"cpu"``, ``"cuda"`` or ``"mps"``.
    available : bool
        True if torch can run on it now.
    detail : str
        What it is when available (e.g. the GPU's name), otherwise why not.

    """

    name: str
    available: bool
    detail: str


def device_report() -> list[DeviceStatus]:
    """Report CPU, CUDA and MPS availability. Imports torch.

    Returns
    -------
    list of DeviceStatus
        Always three entries, CPU first.

    """
    import torch

    cpu = DeviceStatus("cpu", True, f"{platform.processor() or platform.machine()}, "
                                    f"{torch.get_num_threads()} threads")  # fmt: skip
    return [cpu, _cuda_status(torch), _mps_status(torch)]


def _cuda_status(torch) -> DeviceStatus:
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return DeviceStatus(
            "cuda", False, "this torch build has no CUDA support (a CPU-only wheel)"
        )
    try:
        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return DeviceStatus("cuda", True, ", ".join(names))
        torch.cuda.init()  # raises with the driver's own explanation
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return DeviceStatus("cuda", False, f"torch has CUDA {torch.version.cuda} but {reason}")
    return DeviceStatus("cuda", False, "no CUDA GPU was found")


def _mps_status(torch) -> DeviceStatus:
    mps = getattr(torch.backends, "mps", None)
    if platform.system() != "Darwin":
        return DeviceStatus("mps", False, "Apple-silicon GPUs (MPS) exist only on macOS")
    if mps is None or not mps.is_built():
        return DeviceStatus("mps", False, "this torch build has no MPS support")
    if not mps.is_available():
        return DeviceStatus("mps", False, "macOS 12.3+ on Apple silicon is needed for MPS")
    return DeviceStatus("mps", True, "Apple-silicon GPU")
