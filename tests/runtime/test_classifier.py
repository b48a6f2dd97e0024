import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from runtime import Prediction, SentimentClassifier, backends, bundle
from runtime.classifier import MAX_TEXT_CHARACTERS, BatchError
from tests.runtime.conftest import AVAILABLE, NEGATIVE, POSITIVE


@pytest.mark.parametrize("precision", bundle.PRECISIONS)
@pytest.mark.parametrize("graph", bundle.GRAPHS)
def test_classifies_clear_reviews(bundle_dir, backend, precision, graph):
    with SentimentClassifier.from_bundle(bundle_dir, backend, precision, graph) as classifier:
        positive, negative = classifier.classify(POSITIVE), classifier.classify(NEGATIVE)
    assert isinstance(positive, Prediction)
    assert positive.label == "positive" and negative.label == "negative"
    assert list(positive.probabilities) == ["negative", "positive"]  # the manifest's label order
    assert sum(positive.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert positive.score == positive.probabilities["positive"] > 0.5


def test_batch_equals_one_by_one(bundle_dir, backend):
    texts = [POSITIVE, NEGATIVE, "It was fine, I guess.", POSITIVE * 30]
    with SentimentClassifier.from_bundle(bundle_dir, backend) as classifier:
        batch = classifier.classify_batch(texts)
        single = [classifier.classify(text) for text in texts]
    assert batch == single


@pytest.mark.slow
def test_cached_graph_matches_full_graph_on_real_reviews(bundle_dir, backend, shared_test_reviews):
    texts = shared_test_reviews.texts[:100]
    with (
        SentimentClassifier.from_bundle(bundle_dir, backend, graph="full") as full,
        SentimentClassifier.from_bundle(bundle_dir, backend, graph="cached") as cached,
    ):
        np.testing.assert_allclose(cached.probabilities(texts), full.probabilities(texts), atol=1e-5, rtol=0)


def test_backends_agree_on_real_reviews(bundle_dir, shared_test_reviews):
    if len(AVAILABLE) < 2:
        pytest.skip(f"only {AVAILABLE} installed in this environment")
    texts = shared_test_reviews.texts[:50]
    outputs = [SentimentClassifier.from_bundle(bundle_dir, name).probabilities(texts) for name in AVAILABLE]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5, rtol=0)


def test_runtime_never_imports_tensorflow(bundle_dir):
    code = (
        "import sys; from runtime import SentimentClassifier\n"
        f"c = SentimentClassifier.from_bundle({str(bundle_dir)!r}); print(c.classify('a fine film').label)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'tf2onnx') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("positive", "negative")


@pytest.mark.parametrize("text", ["", "   \n\t  ", "!!! ... ???", "😀😀😀"])
def test_text_without_words_is_a_clear_error(bundle_dir, text):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        with pytest.raises(ValueError, match="no words"):
            classifier.classify(text)


@pytest.mark.parametrize("graph", bundle.GRAPHS)
def test_token_ids_in_and_out_of_range(bundle_dir, graph):
    with SentimentClassifier.from_bundle(bundle_dir, graph=graph) as classifier:
        ids = classifier.tokenizer.token_ids(POSITIVE * 100)
        assert len(ids) == 500
        np.testing.assert_array_equal(
            classifier.probabilities_of_ids(ids), classifier.probabilities([POSITIVE * 100])[0]
        )
        for wrong in ([], ids + [3]):
            with pytest.raises(ValueError, match="1 to 500 token ids"):
                classifier.probabilities_of_ids(wrong)


def test_non_string_is_a_type_error(bundle_dir):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        with pytest.raises(TypeError, match="must be a str"):
            classifier.classify(42)


@pytest.mark.parametrize(
    "text",
    [
        "Great\x00 movie\x07 with\x1b[31m control characters",
        "Loved it 😀🎬👍 best film of the year",
        "映画はとても良かった。 great acting",
        "فيلم رائع جدا and a wonderful cast",
        "Wonderful film " * 69_000,  # about 1 MB, under the limit
    ],
)
def test_unusual_text_gets_an_answer(bundle_dir, text):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        prediction = classifier.classify(text)
    assert prediction.label in ("negative", "positive")
    assert np.isfinite(list(prediction.probabilities.values())).all()


def copy_bundle(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.keras"))
    return target


def test_corrupt_artifact_is_named(bundle_dir, backend, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path / "corrupt")
    name = bundle.artifact_filename(backend, "cached", "float32")
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match=f"{name}: does not match the manifest"):
        SentimentClassifier.from_bundle(folder, backend)


@pytest.mark.parametrize("which", ["artifact", "padding_states.npy", "vocab.txt"])
def test_truncated_or_missing_file_is_named(bundle_dir, backend, tmp_path, which):
    folder = copy_bundle(bundle_dir, tmp_path / "truncated")
    name = bundle.artifact_filename(backend, "cached", "int8") if which == "artifact" else which
    path = folder / name
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(bundle.BundleError, match=f"{name}: does not match the manifest"):
        SentimentClassifier.from_bundle(folder, backend, precision="int8")
    path.unlink()
    with pytest.raises(bundle.BundleError, match=f"{name}: missing"):
        SentimentClassifier.from_bundle(folder, backend, precision="int8")


def test_vocabulary_of_another_model_is_refused(bundle_dir, backend, tmp_path):
    """A vocabulary swapped in along with a manifest that vouches for it still does not match
    the artifact, which records the vocabulary it was exported with."""
    folder = copy_bundle(bundle_dir, tmp_path / "other-vocab")
    vocabulary = folder / "vocab.txt"
    words = vocabulary.read_text().splitlines()
    words[0], words[1] = words[1], words[0]
    vocabulary.write_text("\n".join(words) + "\n")
    manifest = bundle.read_manifest(folder)
    manifest["tokenizer"]["vocabulary"] = bundle.file_record(vocabulary)
    bundle.write_manifest(folder, manifest)
    with pytest.raises(bundle.BundleError, match="vocabulary does not belong"):
        SentimentClassifier.from_bundle(folder, backend)


def test_other_schema_version_and_missing_bundle(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path / "future")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_version"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="schema_version is 2; this code reads 1"):
        SentimentClassifier.from_bundle(folder)
    with pytest.raises(bundle.BundleError, match="no such model bundle folder"):
        SentimentClassifier.from_bundle(tmp_path / "nowhere")
    (folder / "manifest.json").write_text("{ not json")
    with pytest.raises(bundle.BundleError, match="not valid JSON"):
        SentimentClassifier.from_bundle(folder)


def test_unknown_or_missing_backend_and_options(bundle_dir, monkeypatch):
    with pytest.raises(backends.BackendError, match="unknown backend 'gpu'"):
        SentimentClassifier.from_bundle(bundle_dir, "gpu")
    with pytest.raises(ValueError, match="unknown precision"):
        SentimentClassifier.from_bundle(bundle_dir, precision="int4")
    monkeypatch.setattr(backends, "available_backends", lambda: ["onnx"])
    with pytest.raises(
        backends.BackendError,
        match="'tflite' is not installed: "
        r'pip install "imdb-sentiment-edge\[litert\]"',
    ):
        SentimentClassifier.from_bundle(bundle_dir, "tflite")
    monkeypatch.setattr(backends, "available_backends", lambda: [])
    with pytest.raises(backends.BackendError, match="no interpreter installed"):
        SentimentClassifier.from_bundle(bundle_dir, "auto")


def test_a_missing_interpreter_names_the_package_extra_to_install(bundle_dir, monkeypatch):
    """The hint named bare interpreter packages (pip install onnxruntime), not this package's extras."""
    monkeypatch.setattr(backends, "available_backends", lambda: ["tflite"])
    with pytest.raises(backends.BackendError) as caught:
        SentimentClassifier.from_bundle(bundle_dir, "onnx")
    assert str(caught.value) == "backend 'onnx' is not installed: pip install \"imdb-sentiment-edge[onnx]\""
    monkeypatch.setattr(backends, "available_backends", lambda: [])
    with pytest.raises(backends.BackendError) as caught:
        SentimentClassifier.from_bundle(bundle_dir, "auto")
    assert '"imdb-sentiment-edge[litert]"' in str(caught.value) and "[tflite-runtime]" in str(caught.value)


def test_an_unverified_artifact_warns_at_the_caller_s_line(bundle_dir, tmp_path):
    """The warning of explain's per-step artifact pointed into classifier.py (self._steps = ...)."""
    from runtime.classifier import UnverifiedArtifactWarning

    folder = copy_bundle(bundle_dir, tmp_path / "unverified")
    manifest = bundle.read_manifest(folder)
    manifest["parity"] = {}
    bundle.write_manifest(folder, manifest)
    with pytest.warns(UnverifiedArtifactWarning) as loading:
        classifier = SentimentClassifier.from_bundle(folder, allow_unverified=True)
    with pytest.warns(UnverifiedArtifactWarning) as explaining:
        classifier.explain(POSITIVE)
    for caught in (*loading, *explaining):
        assert caught.filename == __file__, (caught.filename, caught.lineno)


def test_describe_reports_the_manifest(bundle_dir):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        description = classifier.describe()
    assert description["labels"] == ["negative", "positive"]
    assert description["model_config"]["sequence_length"] == 500
    assert description["backend"] == AVAILABLE[0]


def test_cached_graph_that_is_not_for_one_review_is_refused(bundle_dir, tmp_path):
    """A cached ONNX graph declaring (batch, length) token ids, as exports before the time-major
    one did, cannot be fed one review in its shape: loading says so instead of failing per review."""
    onnx = pytest.importorskip("onnx")
    if "onnx" not in AVAILABLE:
        pytest.skip("ONNX Runtime is not installed")
    folder = copy_bundle(bundle_dir, tmp_path / "batch-major")
    key = bundle.artifact_key("onnx", "cached", "float32")
    path = folder / bundle.artifact_filename("onnx", "cached", "float32")
    model = onnx.load(str(path))
    (token_ids,) = [value for value in model.graph.input if value.name == "token_ids"]
    token_ids.type.tensor_type.shape.dim[1].dim_param = "batch"  # (length, 1) -> (length, batch)
    onnx.save(model, str(path))
    manifest = bundle.read_manifest(folder)
    manifest["artifacts"][key].update(bundle.file_record(path))
    manifest["parity"][key]["sha256"] = manifest["artifacts"][key]["sha256"]
    bundle.write_manifest(folder, manifest)
    with pytest.raises(bundle.BundleError, match="inputs are not one review's"):
        SentimentClassifier.from_bundle(folder, "onnx")


@pytest.mark.slow
def test_one_classifier_shared_by_8_threads_answers_as_one_thread_does(bundle_dir, backend, shared_test_reviews):
    """Finding 7: eight threads sharing a TFLite classifier got each other's probabilities."""
    texts = shared_test_reviews.texts[:100]
    classifier = SentimentClassifier.from_bundle(bundle_dir, backend)
    expected = classifier.probabilities(texts)
    mismatches, errors = [], []

    def work(worker: int) -> None:
        for call in range(1000):
            index = (worker * 1000 + call * 7) % len(texts)
            try:
                got = classifier.probabilities_of_ids(classifier.tokenizer.token_ids(texts[index]))
            except Exception as error:  # noqa: BLE001 - every failure is counted
                errors.append(repr(error))
                continue
            if not np.array_equal(got, expected[index]):
                mismatches.append(index)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and mismatches == []


def test_a_failed_item_does_not_lose_the_batch(bundle_dir, backend):
    """Finding 8: one text without words raised and lost every good answer."""
    texts = [POSITIVE, "!!! ???", NEGATIVE, 42, "x" * (MAX_TEXT_CHARACTERS + 1)]
    with SentimentClassifier.from_bundle(bundle_dir, backend) as classifier:
        with pytest.raises(BatchError) as caught:
            classifier.classify_batch(texts)
        assert classifier.classify_batch([POSITIVE, NEGATIVE]) == [
            classifier.classify(POSITIVE),
            classifier.classify(NEGATIVE),
        ]
    error = caught.value
    assert [p.label if p else None for p in error.predictions] == ["positive", None, "negative", None, None]
    assert sorted(error.errors) == [1, 3, 4]
    assert "no words" in error.errors[1] and "must be a str" in error.errors[3] and "at most" in error.errors[4]
    assert str(error).startswith("3 of 5 texts could not be classified: texts[1]: ")


def test_a_string_is_not_a_batch(bundle_dir):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        with pytest.raises(TypeError, match="not one str"):
            classifier.classify_batch("a string")
        with pytest.raises(TypeError, match="not one str"):
            classifier.probabilities("a string")


@pytest.mark.parametrize("threads", [0, -1, 65, 65536, True, 2.5])
def test_thread_counts_out_of_range_are_refused(bundle_dir, backend, threads):
    """Finding 9: --threads 65536 crashed LiteRT and made ONNX Runtime take gigabytes."""
    with pytest.raises(ValueError, match="threads must be an integer from 1 to 64"):
        SentimentClassifier.from_bundle(bundle_dir, backend, threads=threads)


def test_a_text_over_the_limit_is_refused_and_one_at_it_classified(bundle_dir):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        assert classifier.classify("good " * (MAX_TEXT_CHARACTERS // 5)).label in ("negative", "positive")
        with pytest.raises(ValueError, match="at most 1,048,576 are classified"):
            classifier.classify("x" * (MAX_TEXT_CHARACTERS + 1))
