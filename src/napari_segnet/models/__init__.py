"""The encoder–decoder–classifier network, its encoders, model files and bundled models."""

from .checkpoint import (
    ModelLoadError,
    load_model,
    model_identity,
    read_model_config,
    read_model_file,
    save_model,
)
from .config import ModelConfig
from .encoders import ENCODERS
from .identity import ModelIdentity
from .network import (
    SegNet,
    create_model,
    with_full_resolution_path,
    with_rgb_input,
    with_star_head,
)

__all__ = [
    "ENCODERS",
    "ModelConfig",
    "ModelIdentity",
    "ModelLoadError",
    "SegNet",
    "create_model",
    "load_model",
    "model_identity",
    "read_model_config",
    "read_model_file",
    "save_model",
    "with_full_resolution_path",
    "with_rgb_input",
    "with_star_head",
]
