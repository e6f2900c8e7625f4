"""Which number format the network computes in: float32, or bfloat16/float16 autocast.

Thresholds were chosen on float32 outputs; reduced precision is faster and smaller on a
GPU and agrees closely (see ``benchmarks/gpu_check.py``, which measures it). Training
autocasts to bfloat16 where the device computes it natively (see :func:`training_dtype`).
"""

from __future__ import annotations

from contextlib import nullcontext

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
    and float32 on a CPU, so that a plane segmented block by block gives exactly
    the whole plane's objects, and every CPU the same ones. ``bf16`` and ``fp16``
    are used as asked on any device type that autocasts (a CPU with bfloat16
    units, :func:`cpu_has_bf16_units`, segments about twice as fast in ``bf16``
    with the same scores; the README's *Benchmarks*).

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


def autocast(device, dtype):
    """Return a context in which ``device`` computes in ``dtype``; None: float32, no context.

    No autocast context at all unless it is used: not every device type supports one.
    """
    import torch

    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX tiles or AVX-512 BF16).

    Without them, bfloat16 is emulated and several times slower than float32.
    """
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def training_dtype(precision: str, device):
    """Return the dtype a training step's forward pass autocasts to on ``device``, or None.

    ``auto`` is bfloat16 on a CUDA GPU that supports it and on a CPU with bfloat16
    units (:func:`cpu_has_bf16_units`; 2.4 × faster a step there,
    ``benchmarks/bench_train_step.py``), float32 elsewhere. Weights, optimiser
    and loss stay float32. float16 needs loss scaling and is not offered.

    Raises
    ------
    ValueError
        For a precision other than ``auto``, ``fp32`` and ``bf16``, or bfloat16
        asked of a CUDA GPU without it.
    """
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"Training precision must be auto, fp32 or bf16, not {precision!r}.")
    kind = torch.device(device).type
    if kind == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = kind == "cpu" and cpu_has_bf16_units()
    if precision == "bf16" and kind == "cuda" and not native:
        raise ValueError("This GPU has no bfloat16 support; train with precision fp32.")
    if precision == "bf16" or (precision == "auto" and native):
        return torch.bfloat16
    return None
