"""The server's life: not ready while loading, a load that fails ends it with status 1, SIGTERM and
SIGINT finish the requests in flight and exit 0, and its command line."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT
from tests.runtime.serving.harness import LONG_TEXT, InProcessServer, ServerProcess, expected_predictions


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_requests_in_flight_and_exits_0(bundle_dir, tmp_path, sig):
    """Eight requests of 64 long reviews on one classifier (seconds of work) are in flight when the
    signal comes: each gets its whole answer, then the server exits 0. The old server cut all eight
    off (and died of SIGTERM, status -15)."""
    server = ServerProcess(tmp_path, "--model", str(bundle_dir), "--workers", "1", "--quiet")
    texts = [LONG_TEXT] * 64
    answers = []

    def client() -> None:
        try:
            answers.append(server.request("POST", "/v1/predict", {"texts": texts})[::2])
        except OSError as error:
            answers.append(repr(error))

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for _ in range(3000):  # until all eight are inside the app (the /metrics request itself is a ninth)
        if server.metric("imdb_sentiment_http_requests_in_flight") >= 9:
            break
        time.sleep(0.01)
    status = server.stop(sig)
    for thread in clients:
        thread.join(60)
    expected = expected_predictions(bundle_dir, texts)
    assert answers == [(200, {"model_version": "1", "predictions": expected})] * 8
    assert status == 0
    assert "stopping: finishing the requests in flight" in server.stderr and "Traceback" not in server.stderr
    with pytest.raises(OSError):  # no longer listening
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_a_model_that_does_not_load_ends_the_server_with_status_1(tmp_path):
    server = ServerProcess(tmp_path, "--model", str(tmp_path / "no-such-bundle"), wait_ready=False)
    assert server.process.wait(60) == 1
    assert server.stop() == 1
    assert any(line.startswith("error: ") for line in server.stderr_lines) and "Traceback" not in server.stderr


def test_a_port_in_use_is_one_error_line_and_status_1():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "runtime.serve", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")


class BlockingLoad:
    """Stands in for the bundle: loading waits until released, then loads the real classifier."""

    def __init__(self, bundle_dir):
        self.bundle_dir, self.release = bundle_dir, threading.Event()

    def __call__(self):
        from runtime import SentimentClassifier

        assert self.release.wait(60)
        return SentimentClassifier.from_bundle(self.bundle_dir)


def test_not_ready_while_loading_then_ready_then_not_while_draining(bundle_dir):
    load = BlockingLoad(bundle_dir)
    server = InProcessServer(load)
    try:
        assert server.get("/v2/health/live") == (200, {"live": True})
        assert server.get("/v2/health/ready") == (503, {"ready": False, "error": "the model is loading"})
        assert server.get("/healthz") == (503, {"status": "loading", "error": "the model is loading"})
        assert server.get("/v1/model") == (503, {"error": "the model is loading"})
        assert server.get("/v2/models/imdb-lstm/ready")[0] == 503
        load.release.set()
        for _ in range(3000):
            if server.dataplane.phase != "loading":
                break
            time.sleep(0.01)
        assert server.get("/v2/health/ready") == (200, {"ready": True})
        assert server.get("/v2/models/imdb-lstm/ready") == (200, {"name": "imdb-lstm", "ready": True})
        # A signal makes the server drain: it stops saying ready at once, before it stops accepting.
        server.dataplane.drain()
        assert server.get("/v2/health/ready") == (503, {"ready": False, "error": "the server is shutting down"})
        assert server.get("/healthz")[0] == 503
        assert server.get("/v2/health/live") == (200, {"live": True})
    finally:
        load.release.set()
        server.stop()


def test_the_signal_handler_drains(bundle_dir):
    server = InProcessServer(lambda: __import__("runtime").SentimentClassifier.from_bundle(bundle_dir))
    try:
        server.server.handle_exit(signal.SIGTERM, None)
        assert server.dataplane.phase == "draining" and server.server.should_exit
    finally:
        server.stop()


def test_keep_alive_answers_do_not_wait_for_nagle(bundle_dir):
    """The old server's keep-alive p50 was 44 ms: headers and body left in two writes with Nagle's
    algorithm on, so the body waited for the client's delayed ACK. The server's sockets have
    TCP_NODELAY (probes/server_probes.py measures the latency)."""
    server = InProcessServer(lambda: __import__("runtime").SentimentClassifier.from_bundle(bundle_dir))
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for _ in range(3):  # the same connection, kept alive
            connection.request("GET", "/v2/health/live")
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"live": True})
        [protocol] = server.server.server_state.connections
        sock = protocol.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        connection.close()
    finally:
        server.stop()


def help_text(argv0: str) -> str:
    code = f"import sys; sys.argv[0] = {argv0!r}; from runtime.serve import main; main(['--help'])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout


def test_help_names_the_command_typed_and_shows_every_default():
    assert help_text("/usr/local/bin/imdb-sentiment-serve").startswith("usage: imdb-sentiment-serve ")
    text = help_text("/work/runtime/serve/__main__.py")
    assert text.startswith("usage: python -m runtime.serve ")
    options = text.split("\noptions:\n", 1)[1]
    entries = {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in re.split(r"\n(?=  -)", options)}
    # Nothing to show: off unless given.
    flags = {"-h", "--version", "--allow-unverified", "--trust", "--models", "--verbose", "--quiet"}
    assert {"--host", "--port", "--workers", "--max-connections", "--request-timeout", "--grace"} <= set(entries)
    for option, entry in entries.items():
        assert option in flags or "(default: " in entry, entry
    assert "(default: 127.0.0.1)" in entries["--host"] and "(default: 10.0)" in entries["--request-timeout"]


def test_the_systemd_unit_stops_the_server_gracefully_and_restarts_it_on_failure():
    """runtime/imdb-sentiment.service: the stop the tests above exercise (SIGTERM, drained within the
    grace period, exit 0) fits in the unit's stop timeout, and its command line is one the server takes."""
    from runtime.serve import parse_arguments

    unit = {}
    for line in (ROOT / "runtime" / "imdb-sentiment.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            unit[key.strip()] = value.strip()
    assert (unit["Restart"], unit["KillSignal"], unit["KillMode"]) == ("on-failure", "SIGTERM", "mixed")
    assert unit["User"] not in ("", "root") and unit["Group"] == unit["User"]
    command = unit["ExecStart"].split()
    assert command[0].endswith("/imdb-sentiment-serve")
    args = parse_arguments(command[1:])
    assert args.host == "127.0.0.1" and args.grace < int(unit["TimeoutStopSec"])
    assert int(unit["LimitNOFILE"]) > args.max_connections
