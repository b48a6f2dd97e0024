"""The HTTP server, in-process on a free loopback port."""

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtime import SentimentClassifier
from runtime.serve import ClassifierPool, make_server
from tests.runtime.conftest import NEGATIVE, POSITIVE


@pytest.fixture(scope="module")
def server(bundle_dir):
    pool = ClassifierPool(2, folder=bundle_dir, threads=1)
    # Short enough for the stalled-client test, long enough that 32 client threads sharing this
    # process's GIL on a loaded machine are not dropped between their requests.
    httpd = make_server(pool, port=0, max_body=64 * 1024, max_batch=16, quiet=True, read_timeout=3)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_health_and_model(server):
    assert request(server, "GET", "/healthz") == (200, {"status": "ok"})
    status, model = request(server, "GET", "/v1/model")
    assert status == 200 and model["labels"] == ["negative", "positive"]
    assert model["model_config"]["lstm_units"] == 100


def test_predict(server):
    status, body = request(server, "POST", "/v1/predict", {"texts": [POSITIVE, NEGATIVE]})
    assert status == 200
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not UTF-8 JSON"),
    (b"\xff\xfe", 400, "not UTF-8 JSON"),
    ({"text": "wrong key"}, 400, "expected"),
    ({"texts": []}, 400, "at least one text"),
    ({"texts": ["fine", 7]}, 400, "texts[1] is int"),
    ({"texts": ["   "]}, 400, "no words"),
    ({"texts": ["a"] * 17}, 413, "at most 16"),
    ({"texts": ["x" * 70_000]}, 413, "at most 65536"),
])
def test_bad_requests_get_json_errors(server, body, status, message):
    got_status, got_body = request(server, "POST", "/v1/predict", body)
    assert got_status == status and message in got_body["error"]


def test_unknown_path_and_missing_length(server):
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/v1/other", {"texts": ["x"]})[0] == 404
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.putrequest("POST", "/v1/predict")
    connection.endheaders()
    assert connection.getresponse().status == 411


def test_a_stalled_client_is_dropped_and_others_are_served(server):
    stalled = socket.create_connection(("127.0.0.1", server))
    stalled.sendall(b"POST /v1/predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"texts\":")  # and nothing more
    assert request(server, "POST", "/v1/predict", {"texts": [POSITIVE]})[0] == 200
    stalled.settimeout(10)
    assert stalled.recv(1000) == b""  # closed by the server's read timeout, not left hanging
    stalled.close()


def test_32_concurrent_clients_get_the_single_threaded_answers(server, bundle_dir, shared_test_reviews):
    texts = shared_test_reviews.texts[:100]
    with SentimentClassifier.from_bundle(bundle_dir, threads=1) as classifier:
        expected = [prediction.to_dict() for prediction in classifier.classify_batch(texts)]

    def client(worker: int) -> list[str]:
        problems = []
        connection = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
        for step in range(100):
            index = (worker * 7 + step) % len(texts)
            connection.request("POST", "/v1/predict", body=json.dumps({"texts": [texts[index]]}))
            response = connection.getresponse()
            body = json.loads(response.read())
            if response.status != 200 or body["predictions"] != [expected[index]]:
                problems.append(f"worker {worker} step {step}: {response.status} {body}")
        connection.close()
        return problems

    with ThreadPoolExecutor(32) as executor:
        problems = [problem for result in executor.map(client, range(32)) for problem in result]
    assert problems == []  # 3,200 requests, every answer identical to the single-threaded one
    assert request(server, "GET", "/healthz") == (200, {"status": "ok"})
