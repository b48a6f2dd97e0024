"""Your own data from end to end: train quickly, export both backends with parity on the data's
re-created test texts, then classify through the Python API and the CLI and get the data's own
label names back; parity refuses other data, and compares any number of labels."""

import json
import subprocess
import sys

import numpy as np
import pytest

from export import parity
from runtime import bundle
from tests.training.own_data import FILLER, FIVE_LABELS, TWO_LABELS, cue_text, examples, write_folders, write_jsonl

QUICK = ["--epochs", "3", "--word2vec-epochs", "0", "--batch-size", "16", "--learning-rate", "0.005", "--quiet"]


def train(data, output, *options):
    from training import fit

    assert fit.main(["--data", str(data), "--output", str(output), *QUICK, *options]) == 0
    return output


@pytest.fixture(scope="module")
def five_labels(tmp_path_factory):
    """Five non-ASCII labels as a folder per label with train/ and test/, exported to TFLite and ONNX."""
    pytest.importorskip("tf2onnx", reason="needs the export extra")
    from export import onnx as onnx_export
    from export import tflite as tflite_export

    folder = tmp_path_factory.mktemp("five")
    data = write_folders(folder / "texts", examples(FIVE_LABELS, 40), splits=True)
    output = train(data, folder / "bundle")
    for export in (tflite_export, onnx_export):
        assert export.main(["--model", str(output), "--data", str(data), "--parity-limit", "40"]) == 0
    return data, output


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory):
    """Two labels as JSON lines (the test split carved), exported to ONNX."""
    pytest.importorskip("tf2onnx", reason="needs the export extra")
    from export import onnx as onnx_export

    folder = tmp_path_factory.mktemp("two")
    data = write_jsonl(folder / "zwei.jsonl", examples(TWO_LABELS, 50))
    output = train(data, folder / "bundle")
    assert onnx_export.main(["--model", str(output), "--data", str(data), "--parity-limit", "100"]) == 0
    return data, output


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "runtime.predict", *args], capture_output=True, timeout=300)


def test_every_artifact_passed_parity_on_the_data_s_test_texts(five_labels):
    _, output = five_labels
    manifest = bundle.read_manifest(output)
    assert manifest["training"]["data"]["format"] == "folder"
    device_artifacts = {key for key in manifest["artifacts"] if key != "keras"}
    assert len(device_artifacts) >= 8 and set(manifest["parity"]) == device_artifacts
    for key, result in manifest["parity"].items():
        assert result["passed"] and result["reviews"] == 40, (key, result["failures"])  # 40 of test/'s 50
        assert result["sha256"] == manifest["artifacts"][key]["sha256"]
        assert manifest["artifacts"][key]["labels"] == manifest["model_config"]["labels"] == sorted(FIVE_LABELS)


@pytest.mark.parametrize("backend", ["tflite", "onnx"])
@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_the_api_gives_the_data_s_labels(five_labels, backend, precision):
    from runtime import SentimentClassifier

    _, output = five_labels
    with SentimentClassifier.from_bundle(output, backend, precision) as classifier:
        predictions = classifier.classify_batch([cue_text(FIVE_LABELS, label) for label in FIVE_LABELS])
    assert [prediction.label for prediction in predictions] == list(FIVE_LABELS)
    assert all(list(prediction.probabilities) == sorted(FIVE_LABELS) for prediction in predictions)
    assert all(abs(sum(prediction.probabilities.values()) - 1) < 1e-4 for prediction in predictions)


@pytest.mark.parametrize("backend", ["tflite", "onnx"])
def test_the_cli_gives_the_data_s_labels(five_labels, backend):
    _, output = five_labels
    texts = [cue_text(FIVE_LABELS, label) for label in FIVE_LABELS]
    result = run_cli("--model", str(output), "--backend", backend, *texts)
    assert result.returncode == 0, result.stderr.decode()
    answers = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [answer["label"] for answer in answers] == list(FIVE_LABELS)
    assert set(answers[0]["probabilities"]) == set(FIVE_LABELS)
    text = run_cli("--model", str(output), "--backend", backend, "--format", "text", texts[3])
    assert text.returncode == 0 and text.stdout.decode("utf-8").split("\t")[1] == "良い"


def test_two_labels_from_json_lines_end_to_end(two_labels):
    _, output = two_labels
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"]["labels"] == ["ja", "nein"]
    assert {key: result["reviews"] for key, result in manifest["parity"].items()} == {
        key: 20 for key in manifest["artifacts"] if key != "keras"
    }
    assert {f"onnx-{graph}-{precision}" for graph in bundle.GRAPHS for precision in bundle.PRECISIONS} <= set(
        manifest["parity"]
    )
    result = run_cli(
        "--model",
        str(output),
        "--backend",
        "onnx",
        "--format",
        "text",
        cue_text(TWO_LABELS, "nein"),
        cue_text(TWO_LABELS, "ja"),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert [line.split("\t")[1] for line in result.stdout.decode("utf-8").splitlines()] == ["nein", "ja"]


def test_parity_re_creates_the_carved_test_texts(two_labels):
    from training import sources, splits

    data, output = two_labels
    manifest = bundle.read_manifest(output)
    test = parity.test_reviews(str(data), None, bundle.Manifest.parse(manifest))
    _, expected = splits.held_out(sources.load(data), 0.2, manifest["training"]["settings"]["seed"])
    assert test.texts == expected.texts and len(test) == manifest["training"]["data"]["test_reviews"] == 20


def test_parity_refuses_other_data_naming_both_checksums(two_labels, tmp_path, capsys):
    from training import sources

    data, output = two_labels
    before = (output / bundle.MANIFEST_NAME).read_bytes()
    other = write_jsonl(tmp_path / "zwei.jsonl", examples(TWO_LABELS, 50, seed=9))
    assert parity.main(["--model", str(output), "--data", str(other)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and sources.checksum(other, "jsonl") in line
    assert bundle.read_manifest(output)["training"]["data"]["sha256"] in line
    assert (output / bundle.MANIFEST_NAME).read_bytes() == before


def test_float32_parity_compares_the_top_two_of_many_labels():
    keras_probs = np.array([[0.5, 0.3, 0.2], [0.33341, 0.33339, 0.3332], [0.2, 0.3, 0.5]], np.float32)
    swapped = keras_probs.copy()
    swapped[1] = [0.33339, 0.33341, 0.3332]  # within rounding of a tie: either label is right
    labels = np.array([0, 0, 2])
    assert parity.compare(keras_probs, swapped, labels, "float32")["failures"] == []
    wrong = keras_probs.copy()
    wrong[2] = [0.2, 0.5, 0.3]  # a clear answer changed
    assert any(
        "labels differ" in failure for failure in parity.compare(keras_probs, wrong, labels, "float32")["failures"]
    )


def test_the_server_gives_the_data_s_labels(five_labels, tmp_path):
    harness = pytest.importorskip("tests.runtime.serving.harness")
    _, output = five_labels
    server = harness.ServerProcess(tmp_path, "--model", str(output), "--backend", "onnx", "--workers", "1")
    try:
        status, _, body = server.request(
            "POST", "/v1/predict", {"texts": [cue_text(FIVE_LABELS, label) for label in FIVE_LABELS]}
        )
        assert status == 200 and [answer["label"] for answer in body["predictions"]] == list(FIVE_LABELS)
        status, _, body = server.request("GET", "/v1/model")
        assert status == 200 and body["labels"] == sorted(FIVE_LABELS)
    finally:
        assert server.stop() == 0


THREE_LABELS = {
    "Recommended": "gripping delightful superb",
    "Skip It": "tedious clumsy dreary",
    "Mixed Bag": "uneven patchy middling",
}


def write_verdicts(path, rows: int = 600, seed: int = 3):
    """A CSV as a user's export looks: `Ref #`, `Our Verdict`, `Review Body`, 3 labels. A third of
    the texts carry another label's cues too, so the model is unsure of some and int8 flips a few."""
    import csv
    import random

    rng, labels = random.Random(seed), list(THREE_LABELS)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Ref #", "Our Verdict", "Review Body"])
        for index in range(rows):
            label = labels[index % 3]
            cues = THREE_LABELS[label].split() + (
                THREE_LABELS[labels[(index + 1) % 3]].split() if index % 3 == 0 else []
            )
            words = [rng.choice(cues) if k % 3 == 0 else rng.choice(FILLER) for k in range(8 + index % 17)]
            writer.writerow([f"R-{index:04d}", label, " ".join(words).capitalize() + "."])
    return path


@pytest.mark.slow
def test_600_rows_of_3_labels_train_export_and_load_with_the_documented_commands(tmp_path):
    """Finding: 120 test texts, one int8 label flip is 0.83 points, and the export was refused,
    float32 artifacts included. With docs/your-own-data.md's commands it now exports and loads."""
    pytest.importorskip("tf2onnx", reason="needs the export extra")
    from export import onnx as onnx_export
    from export import tflite as tflite_export
    from runtime import SentimentClassifier
    from training import fit

    data = write_verdicts(tmp_path / "verdicts.csv")
    output = tmp_path / "bundle"
    assert (
        fit.main(
            [
                "--data",
                str(data),
                "--text-column",
                "Review Body",
                "--label-column",
                "Our Verdict",
                "--output",
                str(output),
                *QUICK,
            ]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    assert manifest["training"]["data"]["test_reviews"] == 120
    for export in (tflite_export, onnx_export):
        assert export.main(["--model", str(output), "--data", str(data)]) == 0
    manifest = bundle.read_manifest(output)
    assert {result["reviews"] for result in manifest["parity"].values()} == {120}
    for backend in ("tflite", "onnx"):
        for precision in ("float32", "int8"):
            with SentimentClassifier.from_bundle(output, backend, precision) as classifier:  # no allow_unverified
                answers = [classifier.classify(cue_text(THREE_LABELS, label)).label for label in THREE_LABELS]
            assert answers == list(THREE_LABELS), (backend, precision)
    result = run_cli("--model", str(output), "--format", "text", cue_text(THREE_LABELS, "Skip It"))
    assert result.returncode == 0 and result.stderr == b"" and result.stdout.decode().split("\t")[1] == "Skip It"
