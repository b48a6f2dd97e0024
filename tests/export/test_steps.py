"""The per-step artifacts (model.steps.*) of the shipped bundle: their graphs, fingerprints, recorded
parity, and their opinion after every token against Keras with return_sequences=True on 1,000 real
test reviews. The exporters writing them is covered by test_export.py's exported bundle."""

import shutil

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="needs the export extra")

import onnx  # noqa: E402

from export import common, step_parity  # noqa: E402
from export import onnx as onnx_export  # noqa: E402
from runtime import SentimentClassifier, backends, bundle  # noqa: E402
from tests.conftest import SHIPPED_BUNDLE  # noqa: E402
from tests.runtime.conftest import NEGATIVE, POSITIVE  # noqa: E402

STEPS = bundle.STEPS_GRAPH


@pytest.fixture(scope="module")
def manifest():
    manifest = bundle.read_manifest(SHIPPED_BUNDLE)
    if not any(record.get("graph") == STEPS for record in manifest["artifacts"].values()):
        pytest.skip("the shipped bundle has no per-step artifacts yet")
    return manifest


def steps_path(backend, precision):
    return SHIPPED_BUNDLE / bundle.artifact_filename(backend, STEPS, precision)


@pytest.mark.parametrize("backend", bundle.BACKENDS)
@pytest.mark.parametrize("precision", bundle.PRECISIONS)
def test_each_backend_and_precision_has_a_recorded_proven_per_step_artifact(manifest, backend, precision):
    key = bundle.artifact_key(backend, STEPS, precision)
    record = manifest["artifacts"][key]
    assert record["file"] == f"model.steps{'.int8' if precision == 'int8' else ''}.{backend}"
    assert (record["graph"], record["inputs"], record["outputs"]) == (
        STEPS,
        ["token_ids", "h0", "c0"],
        ["probabilities"],
    )
    bundle.verify_file(SHIPPED_BUNDLE, record)
    result = manifest["parity"][key]
    assert result["passed"] and result["sha256"] == record["sha256"] and result["reviews"] >= 1000
    assert result["max_abs_diff_last_step_vs_cached"] <= step_parity.LAST_STEP_ATOL[precision]
    if precision == "float32":
        assert result["max_abs_diff"] <= step_parity.STEP_ATOL
    content = steps_path(backend, precision).read_bytes()
    metadata = (
        backends.tflite_metadata(content)
        if backend == "tflite"
        else {prop.key: prop.value.encode() for prop in onnx.load_from_string(content).metadata_props}
    )
    assert backends.fingerprint_of(metadata)["graph"] == STEPS


def test_bundle_graphs_never_offer_the_per_step_graph_to_classify():
    assert STEPS not in bundle.GRAPHS and STEPS in bundle.ARTIFACT_GRAPHS
    with pytest.raises(ValueError, match="unknown graph 'steps'"):
        SentimentClassifier.from_bundle(SHIPPED_BUNDLE, graph=STEPS)


@pytest.mark.parametrize("precision", bundle.PRECISIONS)
def test_tflite_per_step_graph_is_builtin_operators_only(manifest, precision):
    from tests.export.test_export import tflite_operators

    report = tflite_operators(steps_path("tflite", precision))
    assert "WHILE" in report and "SOFTMAX" in report
    assert "Flex" not in report and "CUSTOM" not in report


def test_onnx_per_step_graph_is_one_lstm_whose_every_step_goes_through_the_dense_layer(manifest):
    model = onnx.load(str(steps_path("onnx", "float32")))
    onnx.checker.check_model(model, full_check=True)
    assert sorted(node.op_type for node in model.graph.node) == sorted(
        ["Gather", "LSTM", "Squeeze", "MatMul", "Add", "Softmax"]
    )
    (lstm,) = [node for node in model.graph.node if node.op_type == "LSTM"]
    (squeeze,) = [node for node in model.graph.node if node.op_type == "Squeeze"]
    assert squeeze.input[0] == lstm.output[0]  # Y, every step's state, not Y_h
    shapes = {
        value.name: [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in [*model.graph.input, *model.graph.output]
    }
    assert shapes == {
        "token_ids": ["length", 1],
        "h0": [1, 1, 100],
        "c0": [1, 1, 100],
        "probabilities": ["length", 1, 2],
    }
    quantized = onnx.load(str(steps_path("onnx", "int8")))
    assert onnx_export.lstm_node_count(quantized) == {"LSTM": 0, "DynamicQuantizeLSTM": 1, "Loop": 0, "Scan": 0}


@pytest.mark.slow
def test_per_step_parity_on_1000_real_reviews(manifest, shared_test_set):
    from training import data

    _, _, trained = common.load_trained(SHIPPED_BUNDLE)
    reviews = data.sample(shared_test_set, 1000, seed=0)
    results = step_parity.check_reviews(SHIPPED_BUNDLE, trained, reviews, record=False)
    assert sorted(results) == sorted(step_parity.step_keys(bundle.Manifest.parse(manifest))) and len(results) == 4
    for key, result in results.items():
        assert result.passed, (key, result.failures)
        figures = result.figures
        assert figures["reviews"] == 1000 and figures["steps"] > 100_000
        if key.endswith("float32"):
            assert figures["max_abs_diff"] <= 1e-5
        assert figures["max_abs_diff_last_step_vs_cached"] <= (1e-5 if key.endswith("float32") else 1e-3)


def test_per_step_parity_catches_a_broken_artifact(manifest, tmp_path):
    """Reverse the LSTM's weights in the float32 ONNX per-step graph: its steps no longer match Keras."""
    broken = shutil.copytree(SHIPPED_BUNDLE, tmp_path / "broken", ignore=shutil.ignore_patterns("*.tflite"))
    path = broken / bundle.artifact_filename("onnx", STEPS, "float32")
    model = onnx.load(str(path))
    for initializer in model.graph.initializer:
        array = onnx.numpy_helper.to_array(initializer)
        if array.dtype == np.float32 and array.ndim == 3:  # the LSTM's W and R
            initializer.CopyFrom(onnx.numpy_helper.from_array(array[..., ::-1].copy(), initializer.name))
    onnx.save(model, str(path))
    key = bundle.artifact_key("onnx", STEPS, "float32")
    common.record_artifacts(
        broken, {key: bundle.ArtifactRecord.from_dict({**manifest["artifacts"][key], **bundle.file_record(path)})}
    )
    _, _, trained = common.load_trained(broken)
    results = step_parity.run_step_parity(broken, trained, [POSITIVE, NEGATIVE] * 5, [key], record=False)
    assert not results[key].passed
    assert any(failure.startswith("max step diff") for failure in results[key].failures)
    assert any(failure.startswith("last step vs the cached graph") for failure in results[key].failures)
