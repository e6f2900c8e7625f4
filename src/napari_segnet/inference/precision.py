"""Which number format the network computes in: float32, or bfloat16/float16 autocast.

Thresholds were chosen on float32 outputs; reduced precision is faster and smaller on a
GPU and agrees closely (see ``benchmarks/gpu_check.py``, which measures it).
"""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`; raise ValueError otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"The precision must be one of {', '.join(PRECISIONS)}, not {precision!r}."
        )
    return precision


def autocast_dtype(precision: str, device):
    """Return the torch dtype to autocast to on ``device``, or None for float32.

    ``auto`` is bfloat16 on a CUDA GPU that supports it, float16 on an older one,
    and float32 elsewhere (a CPU gains nothing from autocast at inference). ``bf16``
    and ``fp16`` are used as asked on any device type that autocasts.

    Raises
    ------
    ValueError
        For an unknown precision, or bfloat16 asked of a CUDA GPU without it.
    """
    import torch

    check_precision(precision)
    kind = torch.device(device).type
    if precision == "fp32" or (precision == "auto" and kind != "cuda"):
        return None
    if precision == "fp16":
        return torch.float16
    bf16 = kind != "cuda" or torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16:
        raise ValueError("This GPU has no bfloat16 support; use --precision fp16 or fp32.")
    return torch.bfloat16 if bf16 else torch.float16
