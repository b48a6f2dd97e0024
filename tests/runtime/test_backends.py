"""The backend registry is the one place an interpreter is named: loading, bundles and serving read it."""

import dataclasses

import numpy as np
import pytest

from runtime import backends, bundle
from runtime.classifier import SentimentClassifier
from runtime.serving import protocol
from tests.runtime.conftest import AVAILABLE, POSITIVE


def test_an_unknown_backend_name_is_an_error_not_another_interpreter():
    with pytest.raises(backends.BackendError, match="unknown backend 'tensorrt'; choose from auto, tflite, onnx"):
        backends.load_model("tensorrt", b"")
    with pytest.raises(backends.BackendError, match="unknown backend"):
        backends.resolve_backend("tensorrt")


def test_bundle_file_names_and_protocol_platforms_come_from_the_registry():
    assert bundle.BACKENDS == tuple(backends.REGISTRY)
    for name, entry in backends.REGISTRY.items():
        assert bundle.artifact_filename(name, "cached", "int8") == "model.cached.int8" + entry.suffix
        assert protocol.model_metadata("m", "1", name, ["neg", "pos"])["platform"] == entry.platform


@pytest.mark.parametrize("name", AVAILABLE)
def test_each_loaded_model_keeps_the_contract(bundle_dir, name):
    opened = bundle.Bundle.open(bundle_dir)
    record = opened.manifest.artifact(bundle.ArtifactKind(name, "cached", "float32"))
    model = backends.load_model(name, opened.read(record), threads=1)
    assert set(model.input_shapes) == set(record.inputs)
    assert backends.FINGERPRINT_KEY in model.metadata
    assert model.config_mismatch(opened.config, record.details.get("form", "while")) is None
    wrong = dataclasses.replace(opened.config, bidirectional=not opened.config.bidirectional)
    assert "bidirectional" in model.config_mismatch(wrong, record.details.get("form", "while"))


def test_a_registered_backend_is_offered_and_used_by_auto(monkeypatch, bundle_dir):
    """Loading goes through the registry entry's loader, whatever the name: swapping the entry swaps the interpreter."""
    real = backends.REGISTRY[AVAILABLE[0]]
    calls = []

    def load(content, threads=None, xnnpack=True, show_native_logs=False):
        calls.append(len(content))
        return real.load(content, threads, xnnpack, show_native_logs)

    wrapped = dataclasses.replace(real, load=load)
    monkeypatch.setitem(backends.REGISTRY, real.name, wrapped)
    assert backends.resolve_backend("auto") == real.name
    classifier = SentimentClassifier.from_bundle(bundle_dir, "auto")
    prediction = classifier.classify(POSITIVE)
    assert calls and prediction.label == "positive"
    assert np.isclose(sum(prediction.probabilities.values()), 1.0, atol=1e-4)


def test_an_interpreter_that_is_not_installed_names_its_install_command(monkeypatch):
    entry = backends.REGISTRY["onnx"]
    monkeypatch.setitem(backends.REGISTRY, "onnx", dataclasses.replace(entry, is_installed=lambda: False))
    with pytest.raises(backends.BackendError, match=r"not installed: pip install \"imdb-sentiment-edge\[onnx\]\""):
        backends.resolve_backend("onnx")


def test_auto_takes_the_first_installed_backend_whose_artifact_the_bundle_has(monkeypatch):
    for name, entry in backends.REGISTRY.items():
        monkeypatch.setitem(backends.REGISTRY, name, dataclasses.replace(entry, is_installed=lambda: True))
    assert backends.resolve_backend("auto") == "tflite"
    assert backends.resolve_backend("auto", in_bundle=lambda name: name == "onnx") == "onnx"
    # a bundle with none of them: the first installed, whose loading then says which artifact is missing
    assert backends.resolve_backend("auto", in_bundle=lambda name: False) == "tflite"
