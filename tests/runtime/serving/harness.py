"""What the server tests share (no tests here): a server in a subprocess on a free port, plain HTTP
requests to it, raw bytes for what a well-behaved client would never send, and an in-process server
for the tests that look inside it. Needs the `serve` extra; without it the server tests skip."""

from __future__ import annotations

import functools
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install '.[serve]')")

from runtime.serving.app import SentimentService, build_app  # noqa: E402
from runtime.serving.dataplane import DataPlane  # noqa: E402
from runtime.serving.metrics import Metrics  # noqa: E402
from runtime.serving.pool import ClassifierPool  # noqa: E402
from runtime.serving.protocol import Limits  # noqa: E402
from runtime.serving.server import DrainingServer, listen  # noqa: E402
from runtime.serving.uvicorn_internals import GuardedHttpToolsProtocol, Guards  # noqa: E402
from tests.conftest import ROOT, synthetic_review  # noqa: E402
from tests.runtime.conftest import NEGATIVE, POSITIVE  # noqa: E402

# Reviews of many lengths, made up but deterministic, and two written ones.
TEXTS = [POSITIVE, NEGATIVE] + [synthetic_review(index, index % 2 == 0) for index in range(40)]
LONG_TEXT = " ".join(synthetic_review(index, True) for index in range(12))  # about 500 tokens
STARTUP_SECONDS = 120  # a bound, never reached in practice: loading takes about a second


class ServerProcess:
    """`python -m runtime.serve --port 0 ...` with its access log (stdout) in a file and its stderr
    read line by line; the address comes from its "listening on" line. `launcher` replaces
    `-m runtime.serve`, e.g. `-c CODE` that changes something, then calls runtime.serve.main."""

    def __init__(
        self, tmp_path: Path, *args: str, wait_ready: bool = True, launcher: tuple[str, ...] = ("-m", "runtime.serve")
    ):
        self.log_path = tmp_path / f"access-{time.monotonic_ns()}.log"
        self._log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, *launcher, "--port", "0", *args],
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr_lines: list[str] = []
        self._listening = threading.Event()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._listening.wait(STARTUP_SECONDS):
            self.stop()
            raise AssertionError(f"the server did not start: {self.stderr}")
        self.port = int(re.search(r"http://[^ ]+:(\d+);", self.stderr).group(1))
        if wait_ready and not self._ready.wait(STARTUP_SECONDS):
            self.stop()
            raise AssertionError(f"the server did not load its model: {self.stderr}")

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            if line.startswith("listening on"):
                self._listening.set()
            if line.startswith("ready:"):
                self._ready.set()
        self._listening.set()  # the process ended: stop waiting

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, connection=None):
        """(status, headers, parsed JSON body or raw bytes) of one request."""
        own = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            is_json = response.getheader("content-type", "").startswith("application/json")
            return response.status, response.headers, json.loads(data) if is_json and data else data
        finally:
            if own:
                connection.close()

    def raw(self, data: bytes, timeout: float = 30) -> bytes:
        """Everything the server sends back for `data` until it closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            return read_until_closed(sock)

    def metric(self, name: str) -> float:
        """The value of one sample of /metrics, e.g. 'imdb_sentiment_http_requests_in_flight'."""
        text = self.request("GET", "/metrics")[2].decode()
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def access_log(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def threads(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))

    def stop(self, sig: int | None = None, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(timeout)
            self._log_file.close()


def serving(folder, *options: str):
    """A module fixture's body: the server with `options`, stopped cleanly (exit 0, no traceback) after."""
    process = ServerProcess(folder, *options)
    yield process
    assert process.stop() == 0
    assert "Traceback" not in process.stderr


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def responses_in(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each response in `data`: every one of this server's has a Content-Length."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        found.append((status, rest[:length]))
        data = rest[length:]
    return found


def expected_predictions(bundle_dir, texts: list[str]) -> list[dict]:
    from runtime import SentimentClassifier

    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        return [prediction.to_dict() for prediction in classifier.classify_batch(texts)]


class InProcessServer:
    """The server in a thread of the test process, for tests that look inside it (its data plane, its
    connections); `load_classifier` may be a stand-in that blocks."""

    def __init__(self, load_classifier, workers: int = 1, limits: Limits = Limits(), max_connections: int = 64):
        self.metrics = Metrics()
        self.dataplane = DataPlane(ClassifierPool(workers, load_classifier), self.metrics)
        import uvicorn

        guards = Guards(limits.request_timeout, max_connections, self.metrics)
        config = uvicorn.Config(
            build_app(SentimentService(self.dataplane, limits)),
            http=functools.partial(GuardedHttpToolsProtocol, guards=guards),
            loop="asyncio",
            ws="none",
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        self.server = DrainingServer(config, self.dataplane)
        listener = listen("127.0.0.1", 0)
        self.port = listener.getsockname()[1]
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def get(self, path: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(60)
