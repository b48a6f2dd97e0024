"""How the server builds and sends answers, looked at from inside: a real server on loopback in a
thread of this process, its classifier a stand-in that answers at once (of any size) or fails.
Answers are built and rendered to JSON in the pool's threads, never on the event loop; a client
that does not read a large answer is dropped within the request deadline; an unexpected error is
one log line and a JSON 500. Nothing here asserts a duration; every wait is bounded."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from runtime.classifier import Coverage, Prediction
from runtime.serving import protocol
from runtime.serving.protocol import Limits
from tests.runtime.serving.harness import InProcessServer

LABELS = ["negative", "positive"]
BUILT_IN: list[str] = []  # the threads answers were built and rendered in


@dataclass(frozen=True)
class NotedPrediction(Prediction):
    def to_dict(self) -> dict:
        BUILT_IN.append(threading.current_thread().name)
        return super().to_dict()


@dataclass(frozen=True)
class NotedExplanation:
    words: int
    label: str = "positive"

    def to_dict(self) -> dict:
        BUILT_IN.append(threading.current_thread().name)
        word = {
            "word": "w" * 80,
            "start": 0,
            "end": 80,
            "in_vocabulary": True,
            "truncated": False,
            "probabilities": {"negative": 0.25, "positive": 0.75},
            "effect": 0.01,
        }
        return {
            "label": "positive",
            "score": 0.75,
            "probabilities": {"negative": 0.25, "positive": 0.75},
            "start": None,
            "truncated_words": 0,
            "words": [word] * self.words,
        }


class StandIn:
    """A classifier that answers at once: `words` words an explanation, or fails if `fail`."""

    def __init__(self, words: int = 3, fail: bool = False):
        self.words, self.fail = words, fail

    def describe(self) -> dict:
        return {
            "name": "stand-in",
            "backend": "onnx",
            "interpreter": "none",
            "graph": "cached",
            "precision": "float32",
            "labels": LABELS,
        }

    def classify_batch(self, texts: list[str], min_known: float = 0.0) -> list[Prediction]:
        if self.fail:
            raise RuntimeError("the interpreter fell over\nwith a second line")
        return [NotedPrediction("positive", 0.75, {"negative": 0.25, "positive": 0.75}, Coverage(3, 3)) for _ in texts]

    def explain(self, text: str, min_known: float = 0.0) -> NotedExplanation:
        return NotedExplanation(self.words)

    def close(self) -> None:
        pass


def started(classifier: StandIn, **options) -> InProcessServer:
    server = InProcessServer(lambda: classifier, workers=2, **options)
    for _ in range(3000):  # the stand-in loads at once; the load's thread reports it to the loop
        if server.dataplane.phase == "ready":
            return server
        time.sleep(0.01)
    server.stop()
    raise AssertionError("the stand-in did not load")


def post(port: int, path: str, payload: dict) -> tuple[int, str, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("content-type"), json.loads(response.read())
    finally:
        connection.close()


def test_answers_are_built_and_rendered_in_the_pool_threads_not_the_event_loop(monkeypatch):
    """With 3 clients sending 1 MiB explain requests, /healthz took up to 5.5 s: each answer was
    built (to_dict) and serialised on the event loop. Now both happen in the classifier's thread."""
    render = protocol.render

    def noted_render(answer: dict) -> bytes:
        BUILT_IN.append(threading.current_thread().name)
        return render(answer)

    monkeypatch.setattr(protocol, "render", noted_render)
    BUILT_IN.clear()
    server = started(StandIn(words=500))
    try:
        assert post(server.port, "/v1/predict", {"texts": ["good", "fine"]})[0] == 200
        status, _, answer = post(server.port, "/v1/explain", {"text": "good"})
        assert status == 200 and len(answer["words"]) == 500
        request = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}
        status, _, answer = post(server.port, "/v2/models/stand-in/infer", request)
        assert status == 200 and answer["outputs"][1]["data"] == ["positive"]
    finally:
        server.stop()
    assert len(BUILT_IN) == 2 + 1 + 1 + 1 + 1  # two predictions, an explanation, three renderings
    assert all(name.startswith("classifier") for name in BUILT_IN), BUILT_IN


def unread_request(port: int, body: bytes) -> socket.socket:
    """A client that sends its request and reads nothing: its receive window stays a few KiB."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: sets the window
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    return sock


def test_a_client_that_does_not_read_its_answer_is_dropped_within_the_deadline():
    """Six connections sending an explain and never reading held the answers' memory until they
    closed (326 -> 632 MiB). An answer of about 20 MB, unread: the server stops waiting for the
    client after the request deadline (2 s here), drops what it had not sent and closes."""
    server = started(StandIn(words=120_000), limits=Limits(request_timeout=2))
    clients = []
    try:
        clients = [unread_request(server.port, b'{"text": "good"}') for _ in range(3)]
        for _ in range(600):  # until the three are answering (bounded, as every wait here: 30 s)
            if server.metrics.in_flight._value.get() == 3:
                break
            time.sleep(0.05)
        for _ in range(600):
            if not server.server.server_state.connections and server.metrics.in_flight._value.get() == 0:
                break
            time.sleep(0.05)
        assert not server.server.server_state.connections  # every connection closed by the server
        assert server.metrics.in_flight._value.get() == 0  # and every request's task has ended
        for sock in clients:  # each got the head and part of its answer, then the end of the connection
            received = b""
            with pytest.raises((ConnectionResetError, EOFError)):
                while True:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise EOFError
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200 OK") and len(received) < 20_000_000
        assert server.get("/healthz") == (200, {"status": "ok"})
    finally:
        for sock in clients:
            sock.close()
        server.stop()


def test_an_unexpected_error_is_one_log_line_and_a_json_500(caplog):
    server = started(StandIn(fail=True))
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                status, content_type, answer = post(server.port, "/v1/predict", {"texts": ["good"]})
                assert (status, content_type) == (500, "application/json")
                assert answer == {"error": "internal error; the server's log says more"}
            assert server.get("/healthz") == (200, {"status": "ok"})  # the server goes on
    finally:
        server.stop()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 3 and all(record.exc_info is None for record in errors)  # no traceback
    assert errors[0].getMessage() == ("POST /v1/predict: RuntimeError: the interpreter fell over with a second line")
