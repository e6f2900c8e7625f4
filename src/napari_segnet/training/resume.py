"""Small resume files for long training runs that continue on another machine.

The resume file that :func:`~napari_segnet.training.loop.iter_train` writes
each epoch holds everything (float32 weights and the optimiser's moments: three
times the model's size). A run that continues on a new machine needs less: the
weights in float16, the schedule's position and the run's state, and the best
model so far (it could not be chosen again): its metadata, and its weights when
they are not the current ones.
The optimiser's moments are left out; AdamW rebuilds them within a few hundred
steps (its bias correction starts them afresh), which costs far less than
keeping three copies of the model in every version of a committed file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from napari_segnet.io import atomic_path


def _half(state: dict) -> dict:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def write_compact_resume(
    resume: str | os.PathLike, best_model: str | os.PathLike, out: str | os.PathLike
) -> Path:
    """Write a compact copy of a run's resume file (see the module's description).

    Parameters
    ----------
    resume : path
        The full resume file (``<model>.resume.pt``).
    best_model : path
        The run's best model file, kept inside the compact file when it is not
        the current epoch's weights.
    out : path
        The compact file; pass it as ``resume`` to continue the run.

    """
    import torch
    from safetensors.torch import load_file, save

    saved = torch.load(Path(resume), map_location="cpu", weights_only=True)
    compact = {key: saved[key] for key in ("schedule", "state", "settings")}
    compact["model"] = _half(saved["model"])
    if "averaged" in saved:  # TrainSettings.average_decay: the average goes on too
        compact["averaged"] = _half(saved["averaged"])
        compact["averaged_steps"] = saved["averaged_steps"]
    state, best_model = saved["state"], Path(best_model)
    if best_model.is_file():
        metadata = _metadata(best_model.read_bytes())
        if state["best_epoch"] == state["epoch"]:  # weights kept above: only its metadata
            compact["best_metadata"] = metadata
        else:
            packed = save(_half(load_file(str(best_model))), metadata=metadata)
            compact["best_model"] = torch.frombuffer(bytearray(packed), dtype=torch.uint8)
    with atomic_path(Path(out)) as temporary:
        torch.save(compact, temporary)
    return Path(out)


def restore_best_model(saved: dict, out: str | os.PathLike) -> bool:
    """Write the best model a compact resume file carries to ``out``.

    A model file already at ``out`` is kept when it is the run's best epoch
    (an earlier epoch's file, e.g. left from before the resume file was
    pulled, is replaced). Returns whether it wrote the file.
    """
    import torch
    from safetensors.torch import load, save_file

    out = Path(out)
    if out.exists() and _epoch_of(out) == saved["state"]["best_epoch"]:
        return False
    if "best_model" in saved:
        packed = saved["best_model"].numpy().tobytes()
        tensors, metadata = load(packed), _metadata(packed)
    elif "best_metadata" in saved:  # the best model is the saved weights (or their average)
        tensors, metadata = saved.get("averaged", saved["model"]), saved["best_metadata"]
    else:
        return False
    tensors = {
        k: (v.float() if v.dtype == torch.float16 else v).contiguous() for k, v in tensors.items()
    }
    with atomic_path(out) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return True


def _epoch_of(model_file: Path) -> int | None:
    """Return the training epoch a model file's provenance names (None if it names none)."""
    provenance = json.loads(_metadata(model_file.read_bytes()).get("provenance", "{}"))
    return provenance.get("epoch")


def _metadata(packed: bytes) -> dict[str, str]:
    """Return the string metadata in a safetensors file's JSON header."""
    size = int.from_bytes(packed[:8], "little")
    return json.loads(packed[8 : 8 + size]).get("__metadata__", {})
