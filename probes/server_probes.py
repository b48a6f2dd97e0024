"""Probe HTTP servers on loopback with the acceptance probes, then write probes/server.json and the
server section of BENCHMARKS.md (between <!-- begin:server --> and <!-- end:server -->).

    python -m probes.server_probes                 # about 6 minutes; needs the serve extra,
                                                   # hypercorn and waitress (candidates only)

In one run it measures the old server (runtime/serve.py at a97845f, http.server, copied to a temporary
folder and run there against today's runtime) and the new one (runtime.serve) on the acceptance
probes: one keep-alive client, 64 clients for 30 s with and 30 s without keep-alive (answers checked
against the Python API, resident memory after 10 s and 60 s), 1,000 clients trickling a request while
a normal client asks, abandoned clients, malformed HTTP, and SIGTERM with requests in flight. Then
shorter runs of the same probes on the candidates the new server was chosen from: the same ASGI
application on stock uvicorn (httptools and h11 parsers) and on hypercorn, and a WSGI equivalent on
waitress. Every server runs 2 classifiers (one per core), the default backend, float32, cached graph.

`--serve NAME --port N` and `--trickle ...` are the script's own helpers (a candidate server, and
the trickling clients in a process of their own so that they do not slow the measuring client).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `runtime` and `training` from this clone

from benchmarks.sections import cpu_name  # noqa: E402

OLD_COMMIT = "a97845f"
RESULTS = ROOT / "probes" / "server.json"
MARKDOWN = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- begin:server -->", "<!-- end:server -->"
DATASET = ROOT.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"
WORKERS = 2
SHORT_REVIEW = "A wonderful film with a brilliant cast. I loved every minute and the ending moved me to tears."

FULL = {
    "latency_requests": 2000,
    "latency_seconds": 12,
    "load_seconds": 30,
    "clients": 64,
    "tricklers": 1000,
    "trickle_every": 2.5,
    "trickle_seconds": 16,
    "abandoned": 1000,
}
SHORT = {
    "latency_requests": 300,
    "latency_seconds": 5,
    "load_seconds": 6,
    "clients": 64,
    "tricklers": 200,
    "trickle_every": 2.5,
    "trickle_seconds": 12,
    "abandoned": 500,
}


# --- the servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server under test in a process of its own, its output in a file."""

    def __init__(self, name: str, command: list[str], workdir: Path, port: int):
        self.name, self.port = name, port
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if get(port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start: {self.log_path.read_text()[-2000:]}")

    def status(self, field: str) -> int:
        """A field of /proc/PID/status in its unit (kB for VmRSS)."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE).group(1))

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self._log.close()


def old_server(workdir: Path) -> Server:
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:runtime/serve.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = workdir / "old_serve.py"
    path.write_text(source)
    port = free_port()
    return Server(
        "old", [sys.executable, str(path), "--port", str(port), "--workers", str(WORKERS), "--quiet"], workdir, port
    )


def new_server(workdir: Path) -> Server:
    port = free_port()
    # The probes' thousand tricklers and abandoned clients all come from 127.0.0.1: lift the
    # per-address bound so that they measure the request deadline (benchmarks/hostile_probes.py measures the bound).
    return Server(
        "new",
        [
            sys.executable,
            "-m",
            "runtime.serve",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--max-connections-per-client",
            "4096",
            "--quiet",
        ],
        workdir,
        port,
    )


def candidate_server(name: str, workdir: Path) -> Server:
    port = free_port()
    return Server(
        name, [sys.executable, str(Path(__file__).resolve()), "--serve", name, "--port", str(port)], workdir, port
    )


def serve_candidate(name: str, port: int) -> None:
    """Run a candidate: the new server's ASGI application on a stock server, or a WSGI twin on waitress."""
    import logging

    from runtime import SentimentClassifier
    from runtime.serving.app import SentimentService, build_app
    from runtime.serving.metrics import Metrics
    from runtime.serving.pool import ClassifierPool, classify_each

    def load() -> SentimentClassifier:
        return SentimentClassifier.from_bundle()

    if name == "waitress":
        import waitress

        classifiers = queue.SimpleQueue()
        for _ in range(WORKERS):
            classifiers.put(load())

        def app(environ, start_response):
            path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
            status, answer = "404 Not Found", {"error": "no such endpoint"}
            if path == "/healthz":
                status, answer = "200 OK", {"status": "ok"}
            elif path == "/v1/predict" and method == "POST":
                texts = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))["texts"]
                classifier = classifiers.get()
                try:
                    outcomes = classify_each(classifier, texts)
                finally:
                    classifiers.put(classifier)
                status = "200 OK"
                answer = {"predictions": [{"error": o} if isinstance(o, str) else o.to_dict() for o in outcomes]}
            body = json.dumps(answer).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        logging.getLogger("waitress").setLevel(logging.ERROR)
        waitress.serve(app, host="127.0.0.1", port=port, threads=4)
        return
    service = SentimentService(ClassifierPool(WORKERS, load), Metrics())
    app = build_app(service)
    if name == "hypercorn":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.loglevel = "ERROR"
        config.graceful_timeout = 20
        asyncio.run(serve(app, config))
        return
    import uvicorn

    parser = {"uvicorn-httptools": "httptools", "uvicorn-h11": "h11"}[name]
    uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http=parser,
            loop="asyncio",
            lifespan="on",
            log_level="error",
            access_log=False,
            timeout_graceful_shutdown=20,
        )
    ).run()


# --- clients --------------------------------------------------------------------------------------


def get(port: int, path: str, timeout: float = 5) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def predict(connection: http.client.HTTPConnection, texts: list[str], close: bool = False) -> tuple[int, dict | bytes]:
    headers = {"Content-Type": "application/json", **({"Connection": "close"} if close else {})}
    connection.request("POST", "/v1/predict", body=json.dumps({"texts": texts}).encode(), headers=headers)
    response = connection.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.5) * 1000, 3), "p99_ms": round(pick(0.99) * 1000, 3), "requests": len(ordered)}


def latency(port: int, text: str, requests: int, seconds: float, close: bool = False) -> dict:
    """One client, one review a request, one after another; on one kept-alive connection unless `close`."""
    times, errors = [], 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    stop = time.perf_counter() + seconds
    for index in range(requests + 20):
        started = time.perf_counter()
        try:
            status, _ = predict(connection, [text], close)
        except OSError:
            status = None
        if close:
            connection.close()
        if status != 200:
            errors += 1
            connection.close()
        if index >= 20:  # the first 20 warm up
            times.append(time.perf_counter() - started)
        if time.perf_counter() > stop:
            break
    connection.close()
    return {**percentiles(times), "errors": errors}


def run_load(port: int, clients: int, seconds: float, close: bool, cases: Path) -> None:
    """The --load helper: `clients` connections on one event loop, each asking one review a request
    for `seconds` (on one kept-alive connection unless `close`), every answer compared with the
    expected one; prints the counts. A process of its own, parsing with h11, to cost the shared
    cores as little as a Python client can."""
    import h11

    requests = [(json.dumps({"texts": [text]}).encode(), answer) for text, answer in json.loads(cases.read_text())]
    counts = {"ok": 0, "errors": 0, "wrong": 0}

    async def ask(reader, writer, connection, body: bytes) -> tuple[int, bytes]:
        headers = [("Host", "127.0.0.1"), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        writer.write(
            connection.send(
                h11.Request(
                    method="POST", target="/v1/predict", headers=headers + ([("Connection", "close")] if close else [])
                )
            )
            + connection.send(h11.Data(data=body))
            + connection.send(h11.EndOfMessage())
        )
        status, chunks = None, []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed by the server")
                connection.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)

    async def client(worker: int, stop_at: float) -> None:
        loop, step, link = asyncio.get_running_loop(), 0, None
        while loop.time() < stop_at:
            body, answer = requests[(worker * 31 + step) % len(requests)]
            step += 1
            try:
                if link is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    link = (reader, writer, h11.Connection(h11.CLIENT))
                status, data = await ask(*link, body)
                outcome = (
                    "ok"
                    if status == 200 and json.loads(data)["predictions"] == [answer]
                    else ("wrong" if status == 200 else "errors")
                )
            except (OSError, ConnectionError, h11.ProtocolError, ValueError, KeyError):
                outcome = "errors"
            counts[outcome] += 1
            if link is not None and (close or outcome != "ok" or link[2].our_state is h11.MUST_CLOSE):
                link[1].close()
                link = None
            elif link is not None:
                link[2].start_next_cycle()
        if link is not None:
            link[1].close()

    async def main() -> None:
        stop_at = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(*(client(worker, stop_at) for worker in range(clients)))

    started = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started
    print(json.dumps({**counts, "requests_per_second": round((counts["ok"] + counts["wrong"]) / elapsed)}))


def load(
    server: Server, cases: Path, clients: int, seconds: float, close: bool, memory_at: tuple[float, ...] = ()
) -> dict:
    """`clients` concurrent clients for `seconds` (the --load helper), resident memory sampled at `memory_at` s."""
    helper = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--load",
            str(clients),
            "--port",
            str(server.port),
            "--seconds",
            str(seconds),
            "--cases",
            str(cases),
        ]
        + (["--close"] if close else []),
        stdout=subprocess.PIPE,
        text=True,
    )
    started, memory = time.monotonic(), {}
    for at in memory_at:
        time.sleep(max(0.0, started + at - time.monotonic()))
        memory[f"rss_mib_after_{at:g}s"] = round(server.status("VmRSS") / 1024, 1)
    return {**json.loads(helper.communicate()[0]), **memory}


def run_trickle(port: int, count: int, every: float, seconds: float) -> None:
    """The --trickle helper: `count` connections each sending a request one byte every `every` s;
    prints when and how each ended (closed by the server, with the status it sent, or left)."""

    async def one(index: int, request: bytes, results: list) -> None:
        await asyncio.sleep(index * 0.002)  # connect over 2 s, not in one burst
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            results.append({"outcome": "refused"})
            return
        answer = asyncio.ensure_future(reader.read(200))
        outcome = {"outcome": "left"}
        for byte in request:
            if time.monotonic() - started > seconds:
                break
            try:
                writer.write(bytes([byte]))
            except OSError:
                break
            done, _ = await asyncio.wait([answer], timeout=every)
            if done:
                data = answer.result() if not answer.exception() else b""
                status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else None
                outcome = {
                    "outcome": "closed by server",
                    "status": status,
                    "after_s": round(time.monotonic() - started, 2),
                }
                break
        if not answer.done():
            answer.cancel()
        writer.close()
        results.append(outcome)

    async def main() -> list:
        request = (
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Padding: " + b"p" * 200 + b"\r\nContent-Length: 40\r\n\r\n" + b'{"texts": ["slow"]}'.ljust(40)
        )
        results = []
        await asyncio.gather(*(one(index, request, results) for index in range(count)))
        return results

    outcomes = asyncio.run(main())
    closed = [outcome for outcome in outcomes if outcome["outcome"] == "closed by server"]
    print(
        json.dumps(
            {
                "closed_by_server": len(closed),
                "closed_after_s": [min(o["after_s"] for o in closed), max(o["after_s"] for o in closed)]
                if closed
                else None,
                "statuses_sent": sorted({o["status"] for o in closed}, key=str),
                "refused_connections": sum(outcome["outcome"] == "refused" for outcome in outcomes),
            }
        )
    )


def trickle(server: Server, text: str, parameters: dict) -> dict:
    """1,000 (or fewer) trickling clients while one normal keep-alive client asks."""
    count, every, seconds = parameters["tricklers"], parameters["trickle_every"], parameters["trickle_seconds"]
    helper = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--trickle",
            str(count),
            "--port",
            str(server.port),
            "--every",
            str(every),
            "--seconds",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    times, errors, peak_threads, peak_rss = [], 0, 0, 0
    while helper.poll() is None:
        started = time.perf_counter()
        try:
            status, _ = predict(connection, [text])
        except OSError:
            status = None
        if status != 200:
            errors += 1
            connection.close()
        times.append(time.perf_counter() - started)
        if len(times) % 50 == 0:
            peak_threads = max(peak_threads, server.status("Threads"))
            peak_rss = max(peak_rss, server.status("VmRSS"))
    summary = json.loads(helper.stdout.read())  # a few lines: the helper never blocks on a full pipe
    # after the last trickler left (closed by the server or by itself): one more second of asking
    after_started = time.perf_counter()
    after = []
    while time.perf_counter() - after_started < 1:
        started = time.perf_counter()
        try:
            status, _ = predict(connection, [text])
        except OSError:
            status = None
        errors += status != 200
        after.append(time.perf_counter() - started)
    connection.close()
    return {
        "tricklers": count,
        "one_byte_every_s": every,
        "window_s": seconds,
        "normal_client": {**percentiles(times), "errors": errors},
        "normal_client_1s_after_they_left": percentiles(after),
        **summary,
        "peak_threads": peak_threads,
        "peak_rss_mib": round(peak_rss / 1024, 1),
    }


def abandoned(server: Server, count: int) -> dict:
    """`count` clients send half a request, wait, hang up; then: is /healthz answered, what was logged?"""
    log_before = server.log_text()
    clients = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b'POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"texts":')
            clients.append(sock)
        except OSError:
            pass
    time.sleep(1)
    threads, rss = server.status("Threads"), server.status("VmRSS")
    for sock in clients:
        sock.close()
    started = time.perf_counter()
    answered = None
    while time.perf_counter() - started < 15:
        try:
            if get(server.port, "/healthz", timeout=15)[0] == 200:
                answered = round(time.perf_counter() - started, 3)
                break
        except OSError:
            pass
    time.sleep(1)
    logged = server.log_text()[len(log_before) :]
    return {
        "clients": count,
        "connected": len(clients),
        "threads_while_open": threads,
        "rss_mib_while_open": round(rss / 1024, 1),
        "healthz_answered_after_s": answered,
        "log_lines": len(logged.splitlines()),
        "tracebacks": logged.count("Traceback"),
    }


SMUGGLED_BODY = b'{"texts": ["A fine film."]}'
SMUGGLED_REQUEST = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CHUNKED_THEN_SMUGGLED = b"%x\r\n%s\r\n0\r\n\r\n%s" % (len(SMUGGLED_BODY), SMUGGLED_BODY, SMUGGLED_REQUEST)
MALFORMED = {
    "duplicate Content-Length": b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED_BODY), len(SMUGGLED_BODY), SMUGGLED_BODY),
    # Read as chunked, the body is JSON and a second request follows; by Content-Length it is all body.
    "chunked with Content-Length, a request inside the body": b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%s" % (len(CHUNKED_THEN_SMUGGLED), CHUNKED_THEN_SMUGGLED),
    # Read by Content-Length the body is JSON and a second request follows; read as chunked it is neither.
    "chunked with Content-Length, a request after the body": b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%s%s" % (len(SMUGGLED_BODY), SMUGGLED_BODY, SMUGGLED_REQUEST),
}


def malformed(server: Server) -> dict:
    results = {}
    for name, data in MALFORMED.items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(data)
            received = b""
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except OSError:
                pass
        statuses = [int(match) for match in re.findall(rb"HTTP/1\.[01] (\d{3})", received)]
        results[name] = {"statuses": statuses, "refused": bool(statuses) and statuses[0] == 400 and len(statuses) == 1}
    return results


def drain(server: Server, text: str, expected: dict, sig=signal.SIGTERM) -> dict:
    """8 requests of 64 long reviews in flight, then the signal: complete answers? exit status?"""
    answers = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            status, body = predict(connection, [text] * 64)
            answers.append(status == 200 and body["predictions"] == [expected[text]] * 64)
        except (OSError, http.client.HTTPException, TypeError, KeyError):
            answers.append(False)
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # the requests are sent and being classified (about 1.5 s of work on 2 cores)
    started = time.monotonic()
    status = server.stop(sig)
    for thread in threads:
        thread.join(60)
    return {
        "in_flight": 8,
        "complete_answers": sum(answers),
        "exit_status": status,
        "exit_after_s": round(time.monotonic() - started, 2),
    }


# --- the run --------------------------------------------------------------------------------------


def reviews() -> tuple[list[str], str]:
    """256 real test reviews (seeded sample) if the dataset is beside the project, else made-up ones."""
    if DATASET.is_file():
        from training import data

        return data.sample(
            data.load_imdb(DATASET).test, 256, seed=0
        ).texts, f"{DATASET.name}, 256 test reviews (seed 0)"
    from tests.conftest import synthetic_review

    return [
        synthetic_review(index, index % 2 == 0) for index in range(256)
    ], "256 synthetic reviews (the dataset is absent)"


def machine() -> dict:
    cpu = cpu_name()
    versions = {}
    for package in (
        "uvicorn",
        "httptools",
        "starlette",
        "prometheus-client",
        "hypercorn",
        "waitress",
        "ai-edge-litert",
        "numpy",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def probe(server: Server, texts: list[str], expected: dict, cases: Path, parameters: dict, full: bool) -> dict:
    median = sorted(texts, key=len)[len(texts) // 2]
    print(f"  {server.name}: latency", file=sys.stderr, flush=True)
    result = {
        "keep_alive_short_review": latency(
            server.port, SHORT_REVIEW, parameters["latency_requests"], parameters["latency_seconds"]
        )
    }
    if full:
        result["keep_alive_median_review"] = latency(server.port, median, 500, parameters["latency_seconds"] / 2)
        result["close_short_review"] = latency(
            server.port, SHORT_REVIEW, 500, parameters["latency_seconds"] / 2, close=True
        )
    print(f"  {server.name}: {parameters['clients']} clients", file=sys.stderr, flush=True)
    seconds = parameters["load_seconds"]
    result["load_keep_alive"] = load(
        server, cases, parameters["clients"], seconds, close=False, memory_at=(10,) if full else ()
    )
    rss_after_10 = result["load_keep_alive"].pop("rss_mib_after_10s", None)
    result["load_close"] = load(
        server, cases, parameters["clients"], seconds, close=True, memory_at=(seconds - 0.5,) if full else ()
    )
    if full:
        rss_after_60 = result["load_close"].pop(f"rss_mib_after_{seconds - 0.5:g}s")
        result["rss_mib_after_10s_of_load"], result["rss_mib_after_60s_of_load"] = rss_after_10, rss_after_60
    print(f"  {server.name}: {parameters['tricklers']} trickling clients", file=sys.stderr, flush=True)
    result["trickle"] = trickle(server, SHORT_REVIEW, parameters)
    print(f"  {server.name}: abandoned clients, malformed HTTP, SIGTERM", file=sys.stderr, flush=True)
    result["abandoned"] = abandoned(server, parameters["abandoned"])
    result["malformed"] = malformed(server)
    result["sigterm"] = drain(server, median, expected)
    return result


def acceptance(new: dict) -> dict:
    rss10, rss60 = new["rss_mib_after_10s_of_load"], new["rss_mib_after_60s_of_load"]
    checks = {
        "keep-alive p50 <= 2 ms (short review)": new["keep_alive_short_review"]["p50_ms"] <= 2,
        "64 clients: 0 errors, every answer the single-threaded one": all(
            new[key]["errors"] == 0 and new[key]["wrong"] == 0 for key in ("load_keep_alive", "load_close")
        ),
        "memory after 60 s of load within 10 % of after 10 s": abs(rss60 - rss10) <= 0.1 * rss10,
        "trickle: normal client p99 <= 50 ms, 0 errors": new["trickle"]["normal_client"]["p99_ms"] <= 50
        and new["trickle"]["normal_client"]["errors"] == 0,
        "trickle: every trickling connection closed by the deadline": new["trickle"]["closed_by_server"]
        == new["trickle"]["tricklers"],
        "SIGTERM: every request in flight answered, exit 0": new["sigterm"]["complete_answers"]
        == new["sigterm"]["in_flight"]
        and new["sigterm"]["exit_status"] == 0,
        "malformed HTTP refused": all(entry["refused"] for entry in new["malformed"].values()),
    }
    return {name: "pass" if ok else "MISS" for name, ok in checks.items()}


def markdown(results: dict) -> str:
    servers, candidates = results["servers"], results["candidates"]
    m = results["machine"]
    lines = [
        BEGIN,
        "## HTTP server on loopback (the server probes)",
        "",
        f"Produced by `python -m probes.server_probes` on {results['generated']} at {results['commit']}: "
        f"{m['cpu']}, {m['cores']} cores, {m['platform']} (load average {m['load_average_at_start']} at the start, "
        f"{m['load_average_at_end']} at the end); Python {m['python']}, "
        + ", ".join(f"{name} {version}" for name, version in m["packages"].items())
        + ". "
        f"Every server runs {WORKERS} classifiers ({results['model']}); reviews: {results['reviews']}. "
        f"The model alone (in process) takes {results['model_alone_ms']['short_review']} ms p50 on the short review "
        f"({results['short_review_tokens']} tokens) and {results['model_alone_ms']['median_review']} ms on the median one. "
        "The clients run on the same 2 cores as the server.",
        "",
        "| probe | old (http.server, a97845f) | new (uvicorn + httptools, runtime.serve) |",
        "|---|---|---|",
    ]

    def row(name: str, value) -> None:
        lines.append(f"| {name} | {value(servers['old'])} | {value(servers['new'])} |")

    row(
        "keep-alive, one client, short review: p50 / p99 ms",
        lambda s: f"{s['keep_alive_short_review']['p50_ms']} / {s['keep_alive_short_review']['p99_ms']}",
    )
    row(
        "keep-alive, one client, median review: p50 / p99 ms",
        lambda s: f"{s['keep_alive_median_review']['p50_ms']} / {s['keep_alive_median_review']['p99_ms']}",
    )
    row("a connection per request, short review: p50 ms", lambda s: s["close_short_review"]["p50_ms"])
    for key, label in (("load_keep_alive", "keep-alive"), ("load_close", "a connection per request")):
        row(
            f"64 clients x {FULL['load_seconds']} s, {label}: req/s, errors, wrong answers",
            lambda s, key=key: f"{s[key]['requests_per_second']:,}, {s[key]['errors']}, {s[key]['wrong']}",
        )
    row(
        "resident memory after 10 s / 60 s of that load (MiB)",
        lambda s: f"{s['rss_mib_after_10s_of_load']} / {s['rss_mib_after_60s_of_load']}",
    )
    t = FULL
    row(
        f"{t['tricklers']:,} clients trickling a byte every {t['trickle_every']} s for {t['trickle_seconds']} s: "
        "normal client p50 / p99 ms, errors",
        lambda s: (
            f"{s['trickle']['normal_client']['p50_ms']} / {s['trickle']['normal_client']['p99_ms']}, {s['trickle']['normal_client']['errors']}"
        ),
    )
    row(
        "... trickling connections closed by the server (after s), status sent",
        lambda s: (
            f"{s['trickle']['closed_by_server']:,}"
            + (
                f" ({s['trickle']['closed_after_s'][0]}-{s['trickle']['closed_after_s'][1]} s), "
                f"{', '.join(map(str, s['trickle']['statuses_sent']))}"
                if s["trickle"]["closed_after_s"]
                else ""
            )
        ),
    )
    row(
        "... server threads, resident MiB at the peak",
        lambda s: f"{s['trickle']['peak_threads']:,}, {s['trickle']['peak_rss_mib']}",
    )
    row(
        "... normal client in the second after they left: p99 ms",
        lambda s: s["trickle"]["normal_client_1s_after_they_left"]["p99_ms"],
    )
    row(
        f"{t['abandoned']:,} clients send half a request: threads while open; /healthz after they hang up (s)",
        lambda s: (
            f"{s['abandoned']['threads_while_open']:,}; {s['abandoned']['healthz_answered_after_s'] if s['abandoned']['healthz_answered_after_s'] is not None else 'none within 15 s'}"
        ),
    )
    row(
        "... lines logged (`--quiet`), tracebacks",
        lambda s: f"{s['abandoned']['log_lines']:,}, {s['abandoned']['tracebacks']:,}",
    )
    for name in MALFORMED:
        row(
            f"{name}: statuses sent",
            lambda s, name=name: " + ".join(map(str, s["malformed"][name]["statuses"])) or "none",
        )
    row(
        "SIGTERM with 8 requests in flight: complete answers, exit status, seconds",
        lambda s: (
            f"{s['sigterm']['complete_answers']} of 8, {s['sigterm']['exit_status']}, {s['sigterm']['exit_after_s']}"
        ),
    )
    lines += [
        "",
        "Against the targets (new server): "
        + "; ".join(f"{name}: **{verdict}**" for name, verdict in results["acceptance"].items())
        + ".",
        "",
        f"### Candidates (shorter runs: {SHORT['latency_requests']} requests, 64 clients x {SHORT['load_seconds']} s, "
        f"{SHORT['tricklers']} tricklers x {SHORT['trickle_seconds']} s, {SHORT['abandoned']} abandoned clients)",
        "",
        "| server | keep-alive p50 ms | 64 clients req/s (keep-alive / close) | tricklers closed (status) | normal p99 while they trickle | threads with abandoned clients open | "
        + " | ".join(MALFORMED)
        + " | SIGTERM: answers, exit |",
        "|---|---|---|---|---|---|" + "---|" * len(MALFORMED) + "---|",
    ]
    for name, c in candidates.items():
        lines.append(
            f"| {name} | {c['keep_alive_short_review']['p50_ms']} | {c['load_keep_alive']['requests_per_second']:,} / "
            f"{c['load_close']['requests_per_second']:,} | {c['trickle']['closed_by_server']} of {c['trickle']['tricklers']}"
            f" ({', '.join(str(status or 'none') for status in c['trickle']['statuses_sent']) or '-'}) | "
            f"{c['trickle']['normal_client']['p99_ms']} ms | {c['abandoned']['threads_while_open']} | "
            + " | ".join(" + ".join(map(str, c["malformed"][m]["statuses"])) or "none" for m in MALFORMED)
            + f" | {c['sigterm']['complete_answers']} of 8, {c['sigterm']['exit_status']} |"
        )
    lines += [
        "",
        "Why uvicorn with httptools, and what runtime/serving adds to it: [docs/serving.md](docs/serving.md).",
        END,
    ]
    return "\n".join(lines)


def write_markdown(section: str) -> None:
    text = MARKDOWN.read_text() if MARKDOWN.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    MARKDOWN.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--serve", choices=("uvicorn-httptools", "uvicorn-h11", "hypercorn", "waitress"), help=argparse.SUPPRESS
    )
    parser.add_argument("--trickle", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--close", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--every", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--candidates",
        default="uvicorn-httptools,uvicorn-h11,hypercorn,waitress",
        help="candidate servers to probe, comma-separated ('' for none)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve_candidate(args.serve, args.port)
        return 0
    if args.trickle:
        run_trickle(args.port, args.trickle, args.every, args.seconds)
        return 0
    if args.load:
        run_load(args.port, args.load, args.seconds, args.close, args.cases)
        return 0

    from runtime import SentimentClassifier

    started = time.monotonic()
    texts, source = reviews()
    with SentimentClassifier.from_bundle() as classifier:
        expected = {
            text: prediction.to_dict()
            for text, prediction in zip(texts + [SHORT_REVIEW], classifier.classify_batch(texts + [SHORT_REVIEW]))
        }
        median = sorted(texts, key=len)[len(texts) // 2]
        alone = {}
        for name, text in (("short_review", SHORT_REVIEW), ("median_review", median)):
            times = []
            for _ in range(200):
                begin = time.perf_counter()
                classifier.classify(text)
                times.append(time.perf_counter() - begin)
            alone[name] = round(statistics.median(times) * 1000, 3)
        description = classifier.describe()
        short_tokens = len(classifier.tokenizer.token_ids(SHORT_REVIEW)) - 1
    results = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": machine(),
        "model": f"{description['backend']} {description['precision']} {description['graph']}",
        "reviews": source,
        "short_review_tokens": short_tokens,
        "model_alone_ms": alone,
        "settings": {"full": FULL, "candidates": SHORT, "workers": WORKERS},
        "servers": {},
        "candidates": {},
    }
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        cases = workdir / "cases.json"  # each review and the Python API's answer, for the load helper
        cases.write_text(json.dumps([[text, expected[text]] for text in texts]))
        for name, start in (("old", old_server), ("new", new_server)):
            print(f"{name} server", file=sys.stderr, flush=True)
            server = start(workdir)
            try:
                results["servers"][name] = probe(server, texts, expected, cases, FULL, full=True)
            finally:
                server.stop(signal.SIGKILL)
        for name in filter(None, args.candidates.split(",")):
            print(f"candidate {name}", file=sys.stderr, flush=True)
            server = candidate_server(name, workdir)
            try:
                results["candidates"][name] = probe(server, texts, expected, cases, SHORT, full=False)
            finally:
                server.stop(signal.SIGKILL)
    results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)  # other work on the machine
    results["acceptance"] = acceptance(results["servers"]["new"])
    results["seconds"] = round(time.monotonic() - started)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(markdown(results))
    print(f"wrote {RESULTS} and the server section of {MARKDOWN} in {results['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
