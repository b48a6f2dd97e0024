"""The HTTP server's endpoints, in a subprocess on a free loopback port: the simple protocol, the
Open Inference Protocol, errors as JSON with the status that fits, metrics, the OpenAPI document,
the access log, and 64 concurrent clients getting the single-threaded answers."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.runtime.conftest import copy_without_per_step_artifacts
from tests.runtime.serving.harness import TEXTS, ServerProcess, expected_predictions, serving

MAX_BATCH, MAX_BODY = 16, 256 * 1024


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    yield from serving(
        tmp_path_factory.mktemp("serve"),
        "--model",
        str(bundle_dir),
        "--workers",
        "2",
        "--max-batch",
        str(MAX_BATCH),
        "--max-body-bytes",
        str(MAX_BODY),
    )


@pytest.fixture(scope="module")
def expected(bundle_dir):
    return dict(zip(TEXTS, expected_predictions(bundle_dir, TEXTS)))


def test_predict_answers_equal_the_python_api(server, expected):
    texts = TEXTS[:MAX_BATCH]
    status, _, body = server.request("POST", "/v1/predict", {"texts": texts})
    assert status == 200
    assert body["predictions"] == [expected[text] for text in texts]


def test_a_text_without_words_is_an_error_for_that_text_only(server, expected):
    # The old server answered the whole request with a 400 that did not say which text.
    status, _, body = server.request("POST", "/v1/predict", {"texts": [TEXTS[0], "  ... !!", TEXTS[1]]})
    assert status == 200
    assert body["predictions"][0] == expected[TEXTS[0]] and body["predictions"][2] == expected[TEXTS[1]]
    assert body["predictions"][1] == {"error": "the text has no words to classify"}


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not JSON"),
        (b'{"texts": ["\xff\xfe"]}', 400, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),  # the old server dropped the connection
        (b'{"texts": [' + b"7" * 100_000 + b"]}", 400, "digits"),
        ({"text": "the wrong key"}, 422, 'expected {"texts"'),
        ({"texts": []}, 422, "at least one text"),
        ({"texts": ["fine", 7]}, 422, "texts[1] is a number"),
        ({"texts": ["a"] * (MAX_BATCH + 1)}, 413, f"at most {MAX_BATCH}"),
        ({"texts": ["x" * (MAX_BODY + 1)]}, 413, f"at most {MAX_BODY}"),
    ],
)
def test_bad_bodies_get_json_errors(server, body, status, message):
    headers = None if isinstance(body, dict) else {"Content-Type": "application/json"}
    got_status, got_headers, got = server.request("POST", "/v1/predict", body, headers)
    assert (got_status, got_headers["content-type"]) == (status, "application/json")
    assert message in got["error"]


def test_a_body_that_is_not_json_by_its_type_is_415_and_without_length_411(server):
    status, _, body = server.request(
        "POST", "/v1/predict", b"texts=hello", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415 and "JSON" in body["error"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/v1/predict")
    connection.putheader("Content-Type", "application/json")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()


def test_methods_paths_and_queries(server):
    # The old server: 404 for GET /v1/predict, an HTML 501 for PUT/DELETE/HEAD, 404 for /healthz?x=1.
    for method in ("GET", "PUT", "DELETE", "HEAD"):
        status, headers, body = server.request(method, "/v1/predict")
        assert (status, headers["allow"]) == (405, "POST")
        assert method == "HEAD" or f"{method} is not allowed" in body["error"]
    status, headers, body = server.request("DELETE", "/healthz")
    assert status == 405 and set(headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert server.request("HEAD", "/healthz")[:1] == (200,)
    assert server.request("GET", "/healthz?x=1")[::2] == (200, {"status": "ok"})
    status, headers, body = server.request("GET", "/v1/nope")
    assert (status, headers["content-type"], body) == (404, "application/json", {"error": "no such endpoint: /v1/nope"})


def test_model_description(server):
    status, _, model = server.request("GET", "/v1/model")
    assert status == 200 and model["name"] == "imdb-lstm" and model["model_config"]["lstm_units"] == 100
    assert model["labels"] == model["model_config"]["labels"]


# --- explain --------------------------------------------------------------------------------------


def test_explain_answers_equal_the_python_api(server, bundle_dir):
    from runtime import SentimentClassifier

    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        expected = [classifier.explain(text).to_dict() for text in TEXTS[:3]]
    for text, explanation in zip(TEXTS[:3], expected):
        status, headers, body = server.request("POST", "/v1/explain", {"text": text})
        assert (status, headers["content-type"]) == (200, "application/json")
        assert body == {**json.loads(json.dumps(explanation)), "model_version": "1"}  # after the same JSON round trip


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not JSON"),
        ({"texts": ["the predict key"]}, 422, 'expected {"text": "review"}; got no text'),
        ({"text": 7}, 422, "got a number"),
        ({"text": "  ... !!"}, 422, "no words"),
        ({"text": "x" * (MAX_BODY + 1)}, 413, f"at most {MAX_BODY}"),
    ],
)
def test_explain_errors_are_json_under_predict_s_limits(server, body, status, message):
    headers = None if isinstance(body, dict) else {"Content-Type": "application/json"}
    got_status, got_headers, got = server.request("POST", "/v1/explain", body, headers)
    assert (got_status, got_headers["content-type"]) == (status, "application/json")
    assert message in got["error"]
    assert server.request("GET", "/v1/explain")[0] == 405


def test_a_model_without_a_per_step_artifact_cannot_explain_but_still_predicts(bundle_dir, tmp_path):
    folder = copy_without_per_step_artifacts(bundle_dir, tmp_path / "no-steps")
    process = ServerProcess(tmp_path, "--model", str(folder), "--workers", "1", "--quiet")
    try:
        assert process.request("POST", "/v1/predict", {"texts": [TEXTS[0]]})[0] == 200
        status, _, body = process.request("POST", "/v1/explain", {"text": TEXTS[0]})
        assert status == 501 and "cannot explain" in body["error"] and "python -m export" in body["error"]
    finally:
        assert process.stop() == 0
    assert "Traceback" not in process.stderr


# --- the Open Inference Protocol, requests built as its documentation shows them ------------------


def test_oip_health_and_metadata(server):
    assert server.request("GET", "/v2/health/live")[::2] == (200, {"live": True})
    assert server.request("GET", "/v2/health/ready")[::2] == (200, {"ready": True})
    status, _, metadata = server.request("GET", "/v2")
    assert status == 200 and metadata["name"] == "imdb-sentiment" and metadata["extensions"] == ["binary_tensor_data"]
    model = server.request("GET", "/v1/model")[2]
    status, _, metadata = server.request("GET", "/v2/models/imdb-lstm")
    assert status == 200 and server.request("GET", "/v2/models/imdb-lstm/versions/1")[2] == metadata
    assert metadata["name"] == "imdb-lstm" and metadata["versions"] == ["1"] and metadata["labels"] == model["labels"]
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(model["labels"])]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "known_words", "datatype": "INT32", "shape": [-1]},
        {"name": "words", "datatype": "INT32", "shape": [-1]},
    ]
    assert server.request("GET", "/v2/models/imdb-lstm/ready")[::2] == (200, {"name": "imdb-lstm", "ready": True})
    assert server.request("GET", "/v2/models/imdb-lstm/versions/1/ready")[0] == 200
    for path in ("/v2/models/other", "/v2/models/imdb-lstm/versions/2", "/v2/models/other/ready"):
        status, _, body = server.request("GET", path)
        assert status == 404 and "error" in body


def test_oip_infer_equals_the_python_api(server, bundle_dir):
    from runtime import SentimentClassifier

    texts = TEXTS[:MAX_BATCH]
    request = {
        "id": "42",
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
        "outputs": [{"name": "probabilities"}, {"name": "label"}],
    }
    status, _, response = server.request("POST", "/v2/models/imdb-lstm/versions/1/infer", request)
    assert status == 200 and response["model_name"] == "imdb-lstm" and response["id"] == "42"
    outputs = {output["name"]: output for output in response["outputs"]}
    probabilities = outputs["probabilities"]
    assert probabilities["datatype"] == "FP32"
    got = np.array(probabilities["data"], np.float32).reshape(probabilities["shape"])
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        want = classifier.probabilities(texts)
        labels = [prediction.label for prediction in classifier.classify_batch(texts)]
    np.testing.assert_array_equal(got, want)  # bit for bit: FP32 values survive JSON
    assert (outputs["label"]["datatype"], outputs["label"]["shape"], outputs["label"]["data"]) == (
        "BYTES",
        [len(texts)],
        labels,
    )


def test_oip_infer_outputs_asked_for_and_nested_data(server):
    request = {
        "inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [[TEXTS[0]], [TEXTS[1]]]}],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
    }
    status, _, response = server.request("POST", "/v2/models/imdb-lstm/infer", request)
    assert status == 200 and "id" not in response
    assert [output["name"] for output in response["outputs"]] == ["label"]


@pytest.mark.parametrize(
    "tensor, message",
    [
        ({"name": "review", "shape": [1], "datatype": "BYTES", "data": ["x"]}, 'one input, "text"'),
        ({"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}, "datatype BYTES"),
        ({"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a", "b"]}, "but 2 elements"),
        (
            {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["good film", "!!!"]},
            "element 1: the text has no words",
        ),
    ],
)
def test_oip_infer_errors(server, tensor, message):
    status, _, body = server.request("POST", "/v2/models/imdb-lstm/infer", {"inputs": [tensor]})
    assert status == 400 and message in body["error"]


# --- operations ------------------------------------------------------------------------------------


def test_openapi_is_served(server):
    """What it describes: tests/runtime/serving/test_protocol.py."""
    status, _, document = server.request("GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.") and "/v1/predict" in document["paths"]


def test_metrics(server):
    server.request("POST", "/v1/predict", {"texts": [TEXTS[0], "!!!"]})
    text = server.request("GET", "/metrics")[2].decode()
    for sample in (
        'imdb_sentiment_http_requests_total{endpoint="/v1/predict",method="POST",status="200"}',
        'imdb_sentiment_http_request_duration_seconds_bucket{endpoint="/v1/predict",le="0.01"}',
        "imdb_sentiment_reviews_classified_total{label=",
        "imdb_sentiment_reviews_refused_total ",
        "imdb_sentiment_http_requests_in_flight ",
        "imdb_sentiment_ready 1.0",
        'imdb_sentiment_model_info{backend="',
    ):
        assert sample in text


def test_one_json_access_line_per_request(server):
    server.request("GET", "/v1/one-line-please")
    for _ in range(500):  # the line is written just after the answer is sent
        lines = [line for line in server.access_log() if line.get("path") == "/v1/one-line-please"]
        if lines:
            break
        time.sleep(0.01)
    assert [(line["method"], line["status"]) for line in lines] == [("GET", 404)]
    assert {"time", "client", "ms"} <= set(lines[0])


def test_quiet_logs_nothing(bundle_dir, tmp_path):
    quiet = ServerProcess(tmp_path, "--model", str(bundle_dir), "--workers", "1", "--quiet")
    quiet.request("GET", "/healthz")
    quiet.request("GET", "/nope")
    assert quiet.stop() == 0
    assert quiet.log_path.read_text() == ""


def test_64_concurrent_clients_get_the_single_threaded_answers(server, expected):
    """64 clients, half keeping their connection and half opening one per request: 1,280 requests,
    every answer identical to the Python API's, no error."""

    def client(worker: int) -> list[str]:
        keep_alive = worker % 2 == 0
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120) if keep_alive else None
        problems = []
        for step in range(20):
            text = TEXTS[(worker * 7 + step) % len(TEXTS)]
            try:
                status, _, body = server.request("POST", "/v1/predict", {"texts": [text]}, connection=connection)
            except OSError as error:
                problems.append(f"worker {worker} step {step}: {error!r}")
                continue
            if status != 200 or body["predictions"] != [expected[text]]:
                problems.append(f"worker {worker} step {step}: {status} {body}")
        if connection:
            connection.close()
        return problems

    with ThreadPoolExecutor(64) as executor:
        problems = [problem for found in executor.map(client, range(64)) for problem in found]
    assert problems == []
    assert server.request("GET", "/healthz")[::2] == (200, {"status": "ok"})
