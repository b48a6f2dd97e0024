"""A quick run (--limit) of each model option: trained, exported to TFLite and ONNX in float32 and
int8 with parity on real test reviews (the padded, masked Keras model against the device graphs fed
the review's own tokens), then answering through the CLI and the server; explain runs for a stack
of forward LSTMs and is refused, with a clear message, for a backward direction or attention."""

import json
import shutil

import pytest

pytest.importorskip("tf2onnx", reason="needs the export extra")

import onnx  # noqa: E402

from export import onnx as onnx_export  # noqa: E402
from export import parity  # noqa: E402
from export import tflite as tflite_export  # noqa: E402
from runtime import SentimentClassifier, bundle, predict  # noqa: E402
from runtime.explain import NoRunningOpinion  # noqa: E402
from tests.conftest import SHARED_ARCHIVE, write_archive  # noqa: E402
from tests.export.test_export import tflite_operators  # noqa: E402
from training import fit  # noqa: E402

OPTIONS = {
    "layers-2": ["--layers", "2"],
    "bidirectional": ["--bidirectional"],
    "attention": ["--attention"],
    "all": ["--layers", "3", "--bidirectional", "--attention"],
}
PARITY_REVIEWS = 100
REVIEW = "A wonderful film with a brilliant cast, though the plot is thin."


@pytest.fixture(scope="module", params=list(OPTIONS))
def exported(request, tmp_path_factory):
    """One option, trained for one epoch on a few synthetic reviews with small layers, exported to
    both formats with the exporters' own parity check on real test reviews (synthetic without them)."""
    folder = tmp_path_factory.mktemp(request.param)
    archive = write_archive(folder / "small.tar.gz", per_folder=40)
    output = folder / "bundle"
    small = ["--lstm-units", "8", "--embedding-dim", "16", "--sequence-length", "200", "--word2vec-epochs", "0"]
    argv = ["--data", str(archive), "--output", str(output), "--epochs", "1", "--limit", "60", "--quiet", *small]
    assert fit.main(argv + OPTIONS[request.param]) == 0
    data_source = SHARED_ARCHIVE if SHARED_ARCHIVE.is_file() else archive
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_DATA", str(data_source))
        assert tflite_export.main(["--model", str(output), "--parity-limit", str(PARITY_REVIEWS)]) == 0
        assert onnx_export.main(["--model", str(output), "--parity-limit", str(PARITY_REVIEWS)]) == 0
    return output


def graphs(manifest: bundle.Manifest) -> tuple[str, ...]:
    return ("cached", "steps") if manifest.model_config.has_running_opinion else ("cached",)


def test_every_artifact_passed_parity_and_no_padding_states(exported):
    manifest = bundle.Manifest.read(exported)
    expected = {
        bundle.artifact_key(backend, graph, precision)
        for backend in bundle.BACKENDS
        for graph in graphs(manifest)
        for precision in bundle.PRECISIONS
    }
    assert set(manifest.artifacts) == expected | {"keras"}
    assert manifest.padding_states is None and not (exported / bundle.PADDING_STATES_NAME).exists()
    for key in expected:
        result = manifest.parity_of(key)
        assert result is not None and result.passed, key
        figures = result.figures
        assert figures["reviews"] == PARITY_REVIEWS
        if key.endswith("float32"):
            assert figures["max_abs_diff"] <= parity.FLOAT_ATOL
        assert manifest.artifacts[key].inputs == ("token_ids",)


def test_the_onnx_graphs_have_one_lstm_node_a_layer_and_no_loop(exported):
    config = bundle.Manifest.read(exported).model_config
    for graph in graphs(bundle.Manifest.read(exported)):
        for precision, op in (("float32", "LSTM"), ("int8", "DynamicQuantizeLSTM")):
            proto = onnx.load(str(exported / bundle.artifact_filename("onnx", graph, precision)))
            nodes = [node for node in proto.graph.node if node.op_type == op]
            assert len(nodes) == config.layers
            assert not {"Loop", "Scan"} & {node.op_type for node in proto.graph.node}
            direction = "bidirectional" if config.bidirectional else "forward"
            for node in nodes:
                assert {a.s.decode() for a in node.attribute if a.name == "direction"} in ({direction}, set())


def test_the_tflite_graphs_are_builtin_operators(exported):
    config = bundle.Manifest.read(exported).model_config
    for precision in bundle.PRECISIONS:
        report = tflite_operators(exported / bundle.artifact_filename("tflite", "cached", precision))
        assert "WHILE" in report and "Flex" not in report
        assert ("REVERSE_V2" in report) is config.bidirectional
        assert ("TANH" in report and "SUM" in report) or not config.attention


def test_the_cli_answers_with_every_artifact(exported, capsys):
    for backend in bundle.BACKENDS:
        for precision in bundle.PRECISIONS:
            argv = ["--model", str(exported), "--backend", backend, "--precision", precision, REVIEW]
            assert predict.main(argv) == 0
            answer = json.loads(capsys.readouterr().out)
            assert answer["label"] in ("negative", "positive")


def test_explain_runs_or_refuses_with_one_line(exported, capsys):
    config = bundle.Manifest.read(exported).model_config
    status = predict.main(["--model", str(exported), "--explain", "--format", "json", REVIEW])
    captured = capsys.readouterr()
    if config.has_running_opinion:
        assert status == 0
        explanation = json.loads(captured.out)
        with SentimentClassifier.from_bundle(exported) as classifier:
            assert explanation["probabilities"] == classifier.classify(REVIEW).probabilities
    else:
        assert status == predict.NO_RUNNING_OPINION_STATUS == 3
        assert captured.out == ""
        assert captured.err.count("\n") == 1 and "explain is not defined for this model" in captured.err
        with SentimentClassifier.from_bundle(exported) as classifier, pytest.raises(NoRunningOpinion):
            classifier.explain(REVIEW)


def test_a_full_graph_is_refused_with_why(exported):
    with pytest.raises(bundle.BundleError, match="masks its padding"):
        SentimentClassifier.from_bundle(exported, graph="full")


def test_the_server_predicts_and_answers_explain(exported, tmp_path):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from tests.runtime.serving.harness import ServerProcess

    server = ServerProcess(tmp_path, "--model", str(exported), "--backend", "onnx")
    try:
        status, _, body = server.request("POST", "/v1/predict", {"texts": [REVIEW, "dull and boring"]})
        assert status == 200
        with SentimentClassifier.from_bundle(exported, backend="onnx") as classifier:
            expected = [prediction.to_dict() for prediction in classifier.classify_batch([REVIEW, "dull and boring"])]
        assert [{key: p[key] for key in ("label", "probabilities")} for p in body["predictions"]] == [
            {key: p[key] for key in ("label", "probabilities")} for p in expected
        ]
        status, _, body = server.request("POST", "/v1/explain", {"text": REVIEW})
        if bundle.Manifest.read(exported).model_config.has_running_opinion:
            assert status == 200 and body["label"] == expected[0]["label"]
        else:
            assert status == 409 and "explain is not defined for this model" in body["error"]
    finally:
        server.stop()


@pytest.mark.parametrize("key, value", [("layers", 3), ("lstm_units", 64), ("bidirectional", True)])
def test_a_relabelled_model_config_is_refused_by_the_graphs_and_by_export(exported, tmp_path, capsys, key, value):
    """Issue 33, finding 7: a 2-layer bundle relabelled loaded and reported the false values."""
    manifest = bundle.read_manifest(exported)
    if manifest["model_config"].get("layers") != 2:
        pytest.skip("the 2-layer bundle's case")
    folder = shutil.copytree(exported, tmp_path / "relabelled")
    manifest["model_config"][key] = value
    bundle.write_manifest(folder, manifest)
    # A TFLite graph of the options shows its loops and directions, not its units.
    for backend in bundle.BACKENDS if key != "lstm_units" else ("onnx",):
        for precision in bundle.PRECISIONS:
            with pytest.raises(bundle.BundleError, match=f"model_config.{key} does not match the graph"):
                SentimentClassifier.from_bundle(folder, backend, precision)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert onnx_export.main(["--model", str(folder), "--parity-limit", "0"]) == 1  # was a Keras traceback
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}: the manifest's model_config.{key} is ") and err.count("\n") == 1
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    for backend in bundle.BACKENDS:  # the true config loads
        with SentimentClassifier.from_bundle(exported, backend) as classifier:
            assert classifier.classify(REVIEW).label in ("negative", "positive")
