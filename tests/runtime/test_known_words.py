"""Issue #34 item 14: every answer says how many of the words it read the model knows, warns when it
knows under half, and lets a caller refuse such a text: the Python API, the command line, and the
server over loopback (/v1 and the Open Inference Protocol, with tritonclient too)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime import SentimentClassifier
from runtime.classifier import BatchError, TooFewKnownWords
from tests.runtime.conftest import NEGATIVE, POSITIVE
from tests.runtime.test_predict import run_cli

CHINESE = "这部电影很好"  # "this film is very good": one word to the tokenizer, not in the vocabulary
MOSTLY_UNKNOWN = "Zxqv blorf wonderful"  # one word of three known


@pytest.fixture(scope="module")
def classifier(bundle_dir):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        yield classifier


def test_a_prediction_counts_the_known_words_and_warns_under_half(classifier):
    unread = classifier.classify(CHINESE)
    assert (unread.coverage.known_words, unread.coverage.words) == (0, 1)
    assert "knows 0 of 1 word read" in unread.warning and unread.to_dict()["warning"] == unread.warning
    assert unread.to_dict()["coverage"] == {"known_words": 0, "words": 1}
    assert classifier.classify(MOSTLY_UNKNOWN).coverage.known_words == 1
    read = classifier.classify("A wonderful film.")
    assert (read.coverage.known_words, read.coverage.words, read.warning) == (3, 3, None)
    assert "warning" not in read.to_dict()


def test_a_caller_refuses_a_text_below_its_threshold(classifier):
    with pytest.raises(TooFewKnownWords, match=r"knows 0 of 1 word read \(0%\); at least 50% asked for"):
        classifier.classify(CHINESE, min_known=0.5)
    assert classifier.classify(MOSTLY_UNKNOWN, min_known=0.3).label  # 1 of 3 is enough for 0.3
    with pytest.raises(BatchError) as error:
        classifier.classify_batch([POSITIVE, CHINESE], min_known=0.5)
    assert error.value.predictions[0].label == "positive" and "at least 50%" in error.value.errors[1]
    with pytest.raises(ValueError, match="from 0 to 1"):
        classifier.classify_batch([POSITIVE], min_known=1.5)


def test_an_explanation_counts_them_too(classifier):
    explanation = classifier.explain(MOSTLY_UNKNOWN)
    assert explanation.coverage == classifier.classify(MOSTLY_UNKNOWN).coverage
    assert explanation.coverage.known_words == sum(word.in_vocabulary for word in explanation.words)
    body = explanation.to_dict()
    assert body["coverage"] == {"known_words": 1, "words": 3} and "knows 1 of 3" in body["warning"]
    with pytest.raises(TooFewKnownWords):
        classifier.explain(CHINESE, min_known=0.5)


def test_a_long_text_counts_the_words_read(classifier):
    length = classifier.config.sequence_length
    known = classifier.classify(" ".join([CHINESE] * 1000 + ["good"] * (length - 1))).coverage
    assert (known.known_words, known.words) == (length - 1, length)  # the start token was cut off


# --- the command line ------------------------------------------------------------------------------


def test_cli_reports_and_warns_in_every_answer(bundle_dir):
    result = run_cli("--model", str(bundle_dir), CHINESE, POSITIVE)
    assert result.returncode == 0, result.stderr.decode()
    unread, read = (json.loads(line) for line in result.stdout.decode().splitlines())
    assert unread["coverage"] == {"known_words": 0, "words": 1} and "cannot read this text" in unread["warning"]
    assert read["coverage"]["known_words"] == read["coverage"]["words"] and "warning" not in read
    text = run_cli("--model", str(bundle_dir), "--format", "text", CHINESE, "A wonderful film.").stdout.decode()
    assert [line.split("\t")[3] for line in text.splitlines()] == ["known 0/1: too few", "known 3/3"]
    explained = run_cli("--model", str(bundle_dir), "--explain", "--format", "text", CHINESE).stdout.decode()
    assert "the model knows 0 of 1 word read" in explained and "warning: " in explained


def test_cli_min_known_refuses_with_exit_status_4(bundle_dir):
    result = run_cli("--model", str(bundle_dir), "--min-known", "0.5", CHINESE, POSITIVE)
    assert result.returncode == 4, result.stderr.decode()
    refused, answered = (json.loads(line) for line in result.stdout.decode().splitlines())
    assert refused["index"] == 0 and "at least 50% asked for" in refused["error"] and answered["label"] == "positive"
    assert "1 review(s) refused" in result.stderr.decode()
    # another failure beside a refusal: status 1, as for any failed input
    assert run_cli("--model", str(bundle_dir), "--min-known", "0.5", CHINESE, "!!!").returncode == 1
    assert run_cli("--model", str(bundle_dir), "--explain", "--min-known", "0.5", CHINESE).returncode == 4
    bad = run_cli("--min-known", "1.5", POSITIVE)
    assert bad.returncode == 2 and b"--min-known: must be a share from 0 to 1" in bad.stderr
    assert "exit status 4" in " ".join(run_cli("--help").stdout.decode().split())


# --- the server, over loopback -----------------------------------------------------------------------

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install '.[serve]')")
from tests.runtime.serving.harness import ServerProcess  # noqa: E402

INFER = "/v2/models/imdb-lstm/infer"


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("known"), "--model", str(bundle_dir), "--workers", "1")
    yield process
    assert process.stop() == 0


def infer_body(texts: list[str], **parameters) -> dict:
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    return {**body, "parameters": parameters} if parameters else body


def test_v1_predict_reports_warns_and_refuses_on_request(server):
    status, _, body = server.request("POST", "/v1/predict", {"texts": [CHINESE, POSITIVE]})
    assert status == 200
    unread, read = body["predictions"]
    assert unread["coverage"] == {"known_words": 0, "words": 1} and "cannot read" in unread["warning"]
    assert "warning" not in read and read["coverage"]["known_words"] > 0
    status, _, body = server.request("POST", "/v1/predict", {"texts": [CHINESE, POSITIVE], "min_known": 0.5})
    assert status == 200 and "at least 50%" in body["predictions"][0]["error"] and body["predictions"][1]["label"]
    for bad in (2, "half", True, None):
        status, _, body = server.request("POST", "/v1/predict", {"texts": [POSITIVE], "min_known": bad})
        assert (status, bad) == ((422, bad) if bad is not None else (200, None)), body
        assert bad is None or "min_known" in body["error"]


def test_v1_explain_reports_and_refuses_with_422(server):
    status, _, body = server.request("POST", "/v1/explain", {"text": MOSTLY_UNKNOWN})
    assert status == 200 and body["coverage"] == {"known_words": 1, "words": 3} and "knows 1 of 3" in body["warning"]
    status, _, body = server.request("POST", "/v1/explain", {"text": CHINESE, "min_known": 0.5})
    assert status == 422 and "knows 0 of 1 word read" in body["error"]


def test_oip_infer_answers_the_counts_as_outputs_and_refuses_with_400(server):
    status, _, body = server.request("POST", INFER, infer_body([CHINESE, NEGATIVE]))
    assert status == 200
    outputs = {output["name"]: output for output in body["outputs"]}
    assert outputs["known_words"]["datatype"] == "INT32" and outputs["known_words"]["data"][0] == 0
    assert outputs["words"]["data"][0] == 1 and outputs["known_words"]["data"][1] == outputs["words"]["data"][1]
    assert body["parameters"]["warning"].startswith("element 0: the model knows 0 of 1 word read")
    status, _, body = server.request("POST", INFER, infer_body([CHINESE, NEGATIVE], min_known=0.5))
    assert status == 400 and "element 0: the model knows 0 of 1 word read" in body["error"]
    status, _, body = server.request("POST", INFER, infer_body([NEGATIVE], min_known="all"))
    assert status == 400 and "min_known" in body["error"]


def test_tritonclient_reads_the_counts_as_binary_int32(server):
    httpclient = pytest.importorskip("tritonclient.http")
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=60)
    try:
        tensor = httpclient.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(np.array([CHINESE, "A wonderful film."], dtype=object))
        result = client.infer("imdb-lstm", [tensor])  # every output, as binary data
        assert result.as_numpy("known_words").tolist() == [0, 3] and result.as_numpy("words").tolist() == [1, 3]
        assert result.as_numpy("known_words").dtype == np.int32
    finally:
        client.close()


def test_a_server_started_with_min_known_refuses_and_no_request_can_lower_it(bundle_dir, tmp_path):
    process = ServerProcess(tmp_path, "--model", str(bundle_dir), "--workers", "1", "--min-known", "0.5")
    try:
        for body in ({"texts": [CHINESE]}, {"texts": [CHINESE], "min_known": 0}):
            status, _, answer = process.request("POST", "/v1/predict", body)
            assert status == 200 and "at least 50%" in answer["predictions"][0]["error"]
        assert process.request("POST", "/v1/explain", {"text": CHINESE, "min_known": 0})[0] == 422
        assert process.request("POST", INFER, infer_body([CHINESE]))[0] == 400
        assert process.request("POST", "/v1/predict", {"texts": [POSITIVE]})[0] == 200
    finally:
        assert process.stop() == 0
