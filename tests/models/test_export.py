"""Exported models (ONNX, TorchScript, BioImage Model Zoo) compute what the torch network does."""

import io
import json
import zipfile
from dataclasses import asdict

import numpy as np
import pytest
import torch
import yaml

from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.tiling import iter_predict_tiled
from napari_segnet.models import ModelLoadError, load_model, read_model_config
from napari_segnet.models.bundled import resolve_model
from napari_segnet.models.export import (
    check_onnx,
    export_onnx,
    export_torchscript,
    torch_outputs,
)
from napari_segnet.models.exported import METADATA_KEYS, ModelExportError, output_names
from napari_segnet.models.onnx_model import OnnxModel, load_onnx_model
from napari_segnet.progress import drain

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

SIZES = [(1, 1, 256, 320), (2, 1, 512, 512)]  # multiples of the network's stride, as tiles are


@pytest.fixture(scope="module")
def nuclei():
    return load_model(resolve_model("nuclei"))


@pytest.fixture(scope="module")
def onnx_file(nuclei, tmp_path_factory):
    model, provenance = nuclei
    path = tmp_path_factory.mktemp("onnx") / "nuclei.onnx"
    check = export_onnx(model, path, provenance=provenance)
    return path, check


def _random(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("shape", SIZES)
def test_onnx_export_matches_torch_at_other_sizes_and_batches(nuclei, onnx_file, shape):
    model, _ = nuclei
    exported, _ = load_onnx_model(onnx_file[0])
    batch = _random(shape)
    with torch.inference_mode():
        got = exported(torch.from_numpy(batch))
    (expected,) = torch_outputs(model, batch)
    assert got["instance"].shape == (shape[0], 3, *shape[2:])
    np.testing.assert_allclose(got["instance"].numpy(), expected, atol=1e-4)
    # Probabilities: the exported graph includes the softmax.
    np.testing.assert_allclose(got["instance"].sum(1).numpy(), 1.0, atol=1e-5)


def test_the_export_check_measured_small_differences(onnx_file):
    _, check = onnx_file
    assert check.runtime == "onnxruntime"
    assert len(check.differences) == 2  # a random batch and the sample image
    assert 0 <= check.max_difference < 1e-4


def test_onnx_file_describes_itself(nuclei, onnx_file):
    import onnx

    model, provenance = nuclei
    config, stored_provenance = read_model_config(onnx_file[0])
    assert config == model.config
    assert stored_provenance == json.loads(json.dumps(provenance, default=str))
    proto = onnx.load(onnx_file[0])
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata[METADATA_KEYS["outputs"]]) == list(output_names(model.config))


def test_tiled_prediction_with_the_onnx_model_matches_torch(nuclei, onnx_file):
    import tifffile

    from napari_segnet.data import sample_path

    model, _ = nuclei
    exported, _ = load_model(onnx_file[0])
    assert isinstance(exported, OnnxModel)
    plane = normalise(tifffile.imread(sample_path("nuclei"))[:200, :300])
    expected = drain(iter_predict_tiled(model, plane, tile=128, overlap=32))
    got = drain(iter_predict_tiled(exported, plane, tile=128, overlap=32))
    np.testing.assert_allclose(got["instance"], expected["instance"], atol=1e-4)


def test_a_wrong_export_is_refused(nuclei, onnx_file):
    import onnx

    model, _ = nuclei
    proto = onnx.load(onnx_file[0])
    weights = next(t for t in proto.graph.initializer if len(t.dims) == 4)
    values = onnx.numpy_helper.to_array(weights) * 1.5
    weights.CopyFrom(onnx.numpy_helper.from_array(values, weights.name))
    with pytest.raises(ModelExportError, match="differs from the torch network"):
        check_onnx(model, proto.SerializeToString())


def test_exported_models_run_only_for_inference(onnx_file):
    from napari_segnet.inference.inspect import inspect_network

    exported, _ = load_onnx_model(onnx_file[0])
    with pytest.raises(ModelLoadError, match="only for inference"):
        exported.train()
    with pytest.raises(ModelLoadError, match="only for inference"):
        exported.state_dict()
    with pytest.raises(ValueError, match=r"needs its \.safetensors model file"):
        inspect_network(exported, _random((64, 64)))


def test_onnx_files_from_elsewhere_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 4, 4])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelLoadError, match="not one exported by napari-segnet"):
        load_model(path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="not a valid ONNX file"):
        load_model(garbage)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ModelLoadError, match="not a BioImage Model Zoo package"):
        load_model(other_zip)


def test_torchscript_export_matches_torch_and_carries_the_config(nuclei, tmp_path):
    model, provenance = nuclei
    path = tmp_path / "nuclei.pt"
    check = export_torchscript(model, path, provenance=provenance)
    assert check.max_difference < 1e-4
    extra = dict.fromkeys(METADATA_KEYS.values(), "")
    with pytest.warns(FutureWarning):  # torch.jit is deprecated, its files still load
        traced = torch.jit.load(io.BytesIO(path.read_bytes()), _extra_files=extra)
    assert model.config.from_json(extra[METADATA_KEYS["config"]]) == model.config
    for shape in SIZES:
        batch = _random(shape, seed=1)
        with torch.inference_mode():
            (got,) = traced(torch.from_numpy(batch))
        (expected,) = torch_outputs(model, batch)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_a_missing_export_extra_is_one_sentence(nuclei, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if it were not installed
    with pytest.raises(
        ModelExportError, match=r"onnxscript package: install napari-segnet\[export\]"
    ):
        export_onnx(nuclei[0], tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_bioimageio_package_passes_bioimageio_test_and_runs_here(nuclei, tmp_path):
    pytest.importorskip("bioimageio.core")
    from napari_segnet.models.bioimageio_package import export_bioimageio

    model, provenance = nuclei
    path = tmp_path / "nuclei.zip"
    report = export_bioimageio(model, path, provenance=provenance)  # runs bioimageio's test
    assert report.test == "passed"
    with zipfile.ZipFile(path) as package:
        names = set(package.namelist())
        description = yaml.safe_load(package.read("rdf.yaml"))
        card = package.read(description["documentation"]["source"]).decode()
    assert {"weights.onnx", "weights.pt", "test_input.npy", "cover.png", "README.md"} <= names
    assert description["format_version"].startswith("0.5")
    steps = {
        step["id"]: step.get("kwargs", {}) for step in description["inputs"][0]["preprocessing"]
    }
    low, high = model.config.normalise_percentiles
    assert steps["scale_range"]["min_percentile"] == low
    assert steps["scale_range"]["max_percentile"] == high
    assert description["outputs"][0]["axes"][1]["channel_names"] == list(
        model.config.instance_classes
    )
    ours = description["config"]["napari_segnet"]
    assert ours["model"] == json.loads(json.dumps(asdict(model.config)))
    assert ours["provenance"]["validation"] == provenance["validation"]
    assert "## Validation" in card and model.config.name in card
    report = provenance["report"]
    assert f"report split, all ({report['images']} images" in card
    assert f"ap50 {report['fluo']['ap50']:.3f}" in card
    exported, _ = load_model(path)
    assert isinstance(exported, OnnxModel) and exported.config == model.config


def test_every_head_is_exported(tmp_path):
    from napari_segnet.models import ModelConfig, create_model

    torch.manual_seed(0)
    config = ModelConfig(
        heads=("classes", "star"), star_rays=16, semantic_classes=("normal", "tumour")
    )
    model = create_model(config).eval()
    path = tmp_path / "star.onnx"
    export_onnx(model, path)
    exported, _ = load_model(path)
    plane = _random((96, 160), seed=2)
    expected = drain(iter_predict_tiled(model, plane, tile=64, overlap=16))
    got = drain(iter_predict_tiled(exported, plane, tile=64, overlap=16))
    assert set(got) == {"instance", "semantic", "star_prob", "star_dist"} == set(expected)
    for key in expected:
        assert got[key].shape == expected[key].shape
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4, rtol=1e-4)


def test_cuda_asked_of_an_onnxruntime_without_it_says_the_model_runs_on_the_cpu(onnx_file, caplog):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    with caplog.at_level("WARNING", logger="napari_segnet.models.onnx_model"):
        model, _ = load_model(onnx_file[0], device="cuda")
    note = model.device_note
    assert note.startswith("nuclei.onnx runs on the CPU, not on CUDA: onnxruntime ")
    assert "\n" not in note and note.endswith(".")
    assert [record.getMessage() for record in caplog.records] == [note]
    assert next(model.parameters()).device.type == "cpu"
    cpu_model, _ = load_model(onnx_file[0], device="cpu")
    assert cpu_model.device_note is None
