"""Which number format training and segmentation compute in."""

import pytest
import torch

from napari_segnet.inference.precision import (
    autocast,
    autocast_dtype,
    cpu_has_bf16_units,
    training_dtype,
)


def test_training_autocasts_to_bfloat16_only_where_the_cpu_computes_it():
    assert training_dtype("fp32", "cpu") is None
    assert training_dtype("bf16", "cpu") is torch.bfloat16
    expected = torch.bfloat16 if cpu_has_bf16_units() else None
    assert training_dtype("auto", "cpu") is expected
    assert training_dtype("auto", torch.device("cpu")) is expected


def test_training_refuses_float16_and_unknown_formats():
    for precision in ("fp16", "half"):
        with pytest.raises(ValueError, match="auto, fp32 or bf16"):
            training_dtype(precision, "cpu")


def test_segmentation_on_a_cpu_is_float32_unless_asked():
    assert autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="must be one of"):
        autocast_dtype("fp8", "cpu")


def test_autocast_is_a_context_only_for_a_reduced_format():
    with autocast("cpu", None):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") is torch.bfloat16
