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

    cpu = DeviceStatus(
        "cpu",
        True,
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
    )
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


def select_device(requested: str = "auto"):
    """Return the torch device to run on.

    Parameters
    ----------
    requested : {"auto", "cpu", "cuda", "mps"} or a torch device string
        ``auto`` picks CUDA, then MPS, then CPU.

    Raises
    ------
    ValueError
        If an explicitly requested device cannot be used; the message says why.

    """
    import torch

    if requested == "auto":
        statuses = {s.name: s for s in device_report()}
        name = next(n for n in ("cuda", "mps", "cpu") if statuses[n].available)
        return torch.device(name)
    kind = requested.split(":")[0]
    if kind in ("cuda", "mps"):
        status = {s.name: s for s in device_report()}[kind]
        if not status.available:
            raise ValueError(f"Device {requested!r} is not usable: {status.detail}.")
    elif kind != "cpu":
        raise ValueError(f"Unknown device {requested!r}; use auto, cpu, cuda or mps.")
    return torch.device(requested)
