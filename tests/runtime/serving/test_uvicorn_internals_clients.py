"""The server under clients that misbehave: malformed HTTP, oversized heads, requests that trickle in
or never finish, connections left open then abandoned, more connections than the bound. Each test
asserts answers and errors, never a duration; the request deadline is set short (2 s) to keep them
quick, and every wait is bounded."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from tests.runtime.serving.harness import TEXTS, ServerProcess, expected_predictions, read_until_closed, responses_in

DEADLINE = 2  # --request-timeout of the server under test, seconds


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    process = ServerProcess(
        tmp_path_factory.mktemp("field"),
        "--model",
        str(bundle_dir),
        "--workers",
        "2",
        "--request-timeout",
        str(DEADLINE),
    )
    yield process
    assert process.stop() == 0
    assert "Traceback" not in process.stderr


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    return b"\r\n".join(
        [
            b"POST " + path.encode() + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Content-Type: application/json",
            *headers,
            b"",
            body,
        ]
    )


PREDICT = json.dumps({"texts": [TEXTS[0]]}).encode()
SMUGGLED = b"GET /v1/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        post("/v1/predict", PREDICT, b"Content-Length: %d" % len(PREDICT), b"Content-Length: %d" % len(PREDICT)),
        post("/v1/predict", PREDICT, b"Content-Length: %d" % len(PREDICT), b"Content-Length: 5"),
        post(
            "/v1/predict",
            b"0\r\n\r\n" + SMUGGLED,
            b"Content-Length: %d" % (5 + len(SMUGGLED)),
            b"Transfer-Encoding: chunked",
        ),
        post("/v1/predict", b"0\r\n\r\n" + SMUGGLED, b"Transfer-Encoding: chunked", b"Content-Length: 5"),
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=[
        "duplicate-length",
        "conflicting-lengths",
        "length-then-chunked",
        "chunked-then-length",
        "bad-header",
        "garbage",
    ],
)
def test_malformed_http_is_refused_never_misread(server, request_bytes):
    # The old server took the first Content-Length and ignored chunked, serving the request hidden in the body.
    answers = responses_in(server.raw(request_bytes))
    assert answers == [(400, b'{"error": "malformed HTTP request"}')]  # one answer, then the connection closes
    assert "/v1/smuggled" not in {line.get("path") for line in server.access_log()}


def test_chunked_bodies_are_read_and_bounded(server, bundle_dir):
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(PREDICT), PREDICT)
    [(status, body)] = responses_in(
        server.raw(post("/v1/predict", chunked, b"Transfer-Encoding: chunked", b"Connection: close"))
    )
    assert status == 200 and json.loads(body)["predictions"] == expected_predictions(bundle_dir, [TEXTS[0]])


def test_a_head_over_the_limit_is_431(server):
    for head in (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Many: header\r\n" * 2_000 + b"\r\n",
        b"GET /healthz?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ):
        [(status, body)] = responses_in(server.raw(head))
        assert status == 431 and "over 16384 bytes" in json.loads(body)["error"]


def trickle(port: int, data: bytes, every: float, outcome: dict) -> None:
    """Send `data` one byte every `every` seconds until the server answers or closes; record what it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed by the server
                break
            sock.settimeout(every)
            try:
                answer = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                answer = b""
            sock.settimeout(30)
            outcome["answer"] = answer + read_until_closed(sock) if answer else b""
            return
        outcome["answer"] = b"sent it all"


def test_trickling_clients_are_closed_by_the_deadline_while_others_are_served(server, bundle_dir):
    """40 clients sending a request one byte every 0.3 s (it would take them minutes): each gets a 408
    once the deadline passes, while another client's answers keep coming. The old server's timeout
    was per read, so none of them was ever dropped."""
    slow_request = post("/v1/predict", PREDICT, b"X-Padding: " + b"p" * 500, b"Content-Length: %d" % len(PREDICT))
    outcomes = [{} for _ in range(40)]
    slow = [threading.Thread(target=trickle, args=(server.port, slow_request, 0.3, outcome)) for outcome in outcomes]
    for thread in slow:
        thread.start()
    expected = expected_predictions(bundle_dir, [TEXTS[0]])
    answers = []
    while any(thread.is_alive() for thread in slow) and len(answers) < 10_000:
        answers.append(server.request("POST", "/v1/predict", {"texts": [TEXTS[0]]})[::2])
    for thread in slow:
        thread.join(60)
    assert answers and all(answer == (200, {"model_version": "1", "predictions": expected}) for answer in answers)
    for outcome in outcomes:
        [(status, body)] = responses_in(outcome["answer"])
        assert status == 408 and json.loads(body) == {"error": f"the request did not arrive within {DEADLINE} s"}
    assert server.request("GET", "/healthz")[::2] == (200, {"status": "ok"})


def test_a_body_that_stops_arriving_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(post("/v1/predict", PREDICT[:10], b"Content-Length: %d" % len(PREDICT)))  # and no more
        [(status, body)] = responses_in(read_until_closed(sock))
    assert status == 408 and "did not arrive" in json.loads(body)["error"]


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        [(status, _)] = responses_in(read_until_closed(sock))
    assert status == 408


def test_abandoned_clients_cost_no_thread_and_log_one_line_each(bundle_dir, tmp_path):
    """300 clients each send half a request and hang up. The old server held a thread for each (3,000
    clients: 3,003 threads), left /healthz unanswered for ~100 s and logged a traceback per client."""
    server = ServerProcess(
        tmp_path, "--model", str(bundle_dir), "--workers", "2", "--max-connections-per-client", "400"
    )
    threads_before = server.threads()
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(300)]
    for sock in clients:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    assert server.request("GET", "/healthz")[::2] == (200, {"status": "ok"})  # while all 300 are open
    assert server.threads() <= threads_before + 4  # no thread per connection
    for sock in clients:
        sock.close()
    assert server.request("GET", "/healthz")[::2] == (200, {"status": "ok"})
    # The access log gets its lines as the server notices each hang-up: wait for them, boundedly.
    for _ in range(500):
        gone = [line for line in server.access_log() if line["status"] == 499]
        if len(gone) >= 300:
            break
        time.sleep(0.02)
    assert server.stop() == 0
    gone = [line for line in server.access_log() if line["status"] == 499]
    assert len(gone) == 300 and gone[0]["error"] == "the client left before its request arrived"
    assert (
        "Traceback" not in server.stderr and len(server.stderr.splitlines()) == 4
    )  # listening, ready, stopping, stopped


def test_connections_over_the_bound_get_503_until_some_close(bundle_dir, tmp_path):
    server = ServerProcess(
        tmp_path, "--model", str(bundle_dir), "--workers", "1", "--max-connections", "4", "--keep-alive", "60"
    )
    held = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in range(4)]
    for connection in held:  # four connections answered and kept open
        assert server.request("GET", "/v2/health/live", connection=connection)[0] == 200
    status, headers, body = server.request("GET", "/v1/model")
    assert (status, headers["retry-after"], body) == (503, "1", {"error": "too many connections; try again shortly"})
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready"):  # health checks still answered
        assert server.request("GET", path)[0] == 200
    for connection in held:
        connection.close()
    for _ in range(100):  # the server notices the closes
        status = server.request("GET", "/v1/model")[0]
        if status == 200:
            break
        time.sleep(0.05)
    assert status == 200
    assert server.stop() == 0
