"""Swapping model versions under load, and the cost of an update check that finds nothing new
(issue #37), written to benchmarks/swap.json and rendered into docs/fleet.md by
scripts/update_readme.py:

    python -m benchmarks.swap [--clients 64] [--swaps 8] [--checks 5]

1. A TUF repository (`export.sign`, `export.publish`, in a temporary folder) served by
   `python -m http.server` on loopback, and a device folder filled by `runtime.update` (two
   versions installed). Then update checks that find nothing new: `python -m runtime.update` as a
   process, as the systemd timer runs it, and `runtime.update.main` in a warm process (the check
   alone); the files each check asked the repository for, from the web server's log.
2. The real server (`python -m runtime.serve --models DEVICE --workers 2`) on loopback under
   `--clients` keep-alive clients (threads, each posting one review again and again). After a
   quiet phase, `--swaps` times: `current` switched to the other version and
   `POST /v2/repository/models/NAME/load`, whose round trip is the swap's duration (the new
   version loaded beside the old, checked, swapped in). Every answer is checked against the Python
   API's: a request lost is any error, status other than 200 or wrong answer.

Times are measured, never asserted (tests/fleet/test_serve_follow.py asserts the answers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.sections import cpu_name
from runtime import bundle, update
from runtime.serving.follow import current_target

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "benchmarks" / "swap.json"
REVIEWS = [line for line in (ROOT / "scripts" / "pi_reviews.txt").read_text().splitlines() if not line.startswith("#")]
STARTUP_SECONDS = 120


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it ran, and whether it was answered right."""

    start: float
    end: float
    ok: bool
    version: str | None
    problem: str | None = None


def device_bundle(destination: Path) -> Path:
    """A copy of the shipped bundle with its cached graphs only, as a device is sent."""
    return bundle.copy_bundle(bundle.REPOSITORY_BUNDLE, destination, lambda key, record: record.graph == "cached")


def key_pair(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "release.pem", folder / "release.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"error: nothing listens on port {port}")


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def measure_update_checks(work: Path, checks: int) -> tuple[Path, Path, dict]:
    """Publish two versions, install them on a device folder, then time `checks` checks that find
    nothing new. Returns the device folder, the public key its bundles are signed for, and the figures."""
    from export import publish, sign

    private, public = key_pair(work)
    model = device_bundle(work / "models" / "imdb-lstm")
    sign.main(["--model", str(model), "--key", str(private)])
    repository, device, log = work / "repository", work / "device", work / "http.log"
    repository.mkdir()
    publish_argv = ["--repository", str(repository), "--keys", str(work / "keys"), "--model", str(model)]
    assert publish.main(publish_argv) == 0
    port = free_port()
    with open(log, "wb") as log_file:
        web = subprocess.Popen(
            python("-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(repository)),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            wait_for_port(port)
            argv = ["--repository", f"http://127.0.0.1:{port}", "--models", str(device), "--trust", str(public)]
            argv += ["--root", str(repository / "metadata" / "1.root.json")]
            installs = [update.main(argv)]
            assert publish.main(publish_argv) == 0  # a second version: the device keeps both, to swap between
            installs.append(update.main(argv))
            figures = time_checks(argv, checks, log, repository)
        finally:
            web.kill()
            web.wait()
    figures["installs_exit_status"] = installs
    return device, public, figures


def time_checks(argv: list[str], checks: int, log: Path, repository: Path) -> dict:
    """Process and in-process timings of checks that find nothing new, and what each fetched."""
    processes = []
    for _ in range(checks):
        started = time.perf_counter()
        done = subprocess.run(python("-m", "runtime.update", *argv), cwd=ROOT, capture_output=True, text=True)
        processes.append(time.perf_counter() - started)
        if done.returncode != 0 or not done.stdout.startswith("up to date"):
            raise SystemExit(f"error: an update check did not find the device up to date: {done.stdout}{done.stderr}")
    before = len(log.read_text().splitlines())
    warm = []
    for _ in range(checks):
        started = time.perf_counter()
        assert update.main(argv) == 0
        warm.append(time.perf_counter() - started)
    requests = re.findall(r'"GET (\S+) HTTP/1\.[01]" (\d+)', "\n".join(log.read_text().splitlines()[before:]))
    per_check = requests[: len(requests) // checks]
    fetched = sum((repository / path.lstrip("/")).stat().st_size for path, status in per_check if status == "200")
    return {
        "checks": checks,
        "process_seconds_median": round(statistics.median(processes), 3),
        "process_seconds_max": round(max(processes), 3),
        "in_process_ms_median": round(statistics.median(warm) * 1000, 1),
        "in_process_ms_max": round(max(warm) * 1000, 1),
        "requests_per_check": [f"{path} {status}" for path, status in per_check],
        "bytes_per_check": fetched,
    }


class Server:
    """`python -m runtime.serve --models DEVICE` on a free loopback port, until stopped."""

    def __init__(self, device: Path, trust: Path, workers: int):
        self.port = free_port()
        self.process = subprocess.Popen(
            python("-m", "runtime.serve", "--models", str(device), "--port", str(self.port), "--workers", str(workers))
            + ["--trust", str(trust), "--watch-interval", "3600", "--quiet"],  # swaps from the load endpoint only
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in self.process.stderr:
            if line.startswith("ready:"):
                return
            if line.startswith("error:"):
                break
        raise SystemExit(f"error: the server did not start: {line.strip()}")

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, data, {"Content-Type": "application/json"} if data else {})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


def client(port: int, text: str, expected: list, stop: threading.Event, answers: list) -> None:
    """Post one review again and again on a keep-alive connection, recording each answer."""
    body = json.dumps({"texts": [text]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        start = time.perf_counter()
        try:
            connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            ok = response.status == 200 and answer.get("predictions") == expected
            problem = None if ok else f"{response.status} {str(answer)[:200]}"
            answers.append(Answer(start, time.perf_counter(), ok, answer.get("model_version"), problem))
        except (OSError, http.client.HTTPException, ValueError) as error:
            answers.append(Answer(start, time.perf_counter(), False, None, repr(error)))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def measure_swaps(device: Path, trust: Path, clients: int, swaps: int, workers: int, quiet_seconds: float) -> dict:
    """Swap between the device's two versions `swaps` times under `clients` clients."""
    from runtime import SentimentClassifier

    versions = update.installed(device)
    with SentimentClassifier.from_bundle(device / "versions" / str(versions[-1])) as classifier:
        expected = {text: [classifier.classify(text).to_dict()] for text in REVIEWS}
    server = Server(device, trust, workers)
    name = server.request("GET", "/v1/model")[1]["name"]
    stop, answers, windows = threading.Event(), [], []
    threads = [
        threading.Thread(target=client, args=(server.port, text, json.loads(json.dumps(expected[text])), stop, answers))
        for text in (REVIEWS[index % len(REVIEWS)] for index in range(clients))
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(quiet_seconds)  # the quiet phase: the same load, no swap
        quiet_end = time.perf_counter()
        for index in range(swaps):
            update.switch(device, versions[index % 2])  # 2, 3, 2, ... from current 3
            started = time.perf_counter()
            status, answer = server.request("POST", f"/v2/repository/models/{name}/load")
            windows.append((started, time.perf_counter()))
            if status != 200 or answer["outcome"] != "swapped":
                raise SystemExit(f"error: swap {index + 1} did not swap: {status} {answer}")
            time.sleep(1.0)  # requests on the new version before the next swap
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        server.stop()
    return summarize(answers, windows, quiet_end, clients, workers)


def summarize(answers: list[Answer], windows: list[tuple[float, float]], quiet_end: float, clients: int, workers: int):
    during = [a for a in answers if any(a.end >= start and a.start <= end for start, end in windows)]
    quiet = [a for a in answers if a.end < quiet_end]
    lost = [a for a in answers if not a.ok]
    milliseconds = lambda group, share: round(percentile([(a.end - a.start) * 1000 for a in group], share), 1)  # noqa: E731
    durations = [end - start for start, end in windows]
    return {
        "clients": clients,
        "workers": workers,
        "swaps": len(windows),
        "requests": len(answers),
        "requests_lost": len(lost),
        "lost_examples": sorted({a.problem for a in lost})[:5],
        "versions_answering": sorted({a.version for a in answers if a.version}),
        "swap_seconds_median": round(statistics.median(durations), 3),
        "swap_seconds_max": round(max(durations), 3),
        "quiet": {"requests": len(quiet), "p50_ms": milliseconds(quiet, 0.5), "p99_ms": milliseconds(quiet, 0.99)},
        "during_swaps": {
            "requests": len(during),
            "p50_ms": milliseconds(during, 0.5),
            "p99_ms": milliseconds(during, 0.99),
            "max_ms": milliseconds(during, 1.0),
        },
    }


def watch_cost_microseconds(device: Path) -> float:
    """What the server's look at `current` costs (it makes one every --watch-interval)."""
    rounds = 2000
    return round(timeit.timeit(lambda: current_target(device), number=rounds) / rounds * 1e6, 1)


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "niceness": os.nice(0),  # 19 when run beside other work, as `nice -n 19`
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def markdown(results: dict) -> str:
    """docs/fleet.md's figures (scripts/update_readme.py fills the block)."""
    m, s, u = results["machine"], results["swaps"], results["update_check"]
    return "\n".join(
        [
            "| | measured |",
            "|---|---|",
            f"| requests lost while swapping | **{s['requests_lost']:,} of {s['requests']:,}** "
            f"({s['clients']} clients, {s['swaps']} swaps, {s['workers']} classifiers) |",
            f"| a swap (new version loaded beside the old, checked, swapped in) | median {s['swap_seconds_median']:.2f} s, "
            f"at most {s['swap_seconds_max']:.2f} s |",
            f"| request time, p50 / p99 | quiet {s['quiet']['p50_ms']:.1f} / {s['quiet']['p99_ms']:.1f} ms; "
            f"during swaps {s['during_swaps']['p50_ms']:.1f} / {s['during_swaps']['p99_ms']:.1f} ms "
            f"(worst {s['during_swaps']['max_ms']:.1f} ms) |",
            f"| an update check that finds nothing new | `python -m runtime.update` {u['process_seconds_median']:.2f} s "
            f"(a process, imports included); the check itself {u['in_process_ms_median']:.0f} ms; "
            f"{len(u['requests_per_check'])} requests, {u['bytes_per_check']:,} bytes |",
            f"| the server's look at `current` (every `--watch-interval`) | {results['watch_microseconds']:.0f} µs |",
            "",
            f"Measured by `python -m benchmarks.swap` on {m['date'][:10]} ({m['cpu']}, {m['cores']} cores, "
            f"Python {m['python']}, load average {m['load_average_at_start']} at the start: "
            + ("the machine was busy with other work" if m["load_average_at_start"] >= 1 else "an idle machine")
            + (f", this benchmark and its server at niceness {m['niceness']}" if m.get("niceness") else "")
            + "), the shipped model's cached graphs signed and served with `--trust` (each classifier of a "
            "new version checks its signature), all on loopback. A check that finds nothing new fetched "
            + ", ".join(f"`{request}`" for request in u["requests_per_check"])
            + " (the bytes are those of the files answered 200).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.swap", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent keep-alive clients")
    parser.add_argument("--swaps", type=int, default=8, help="swaps while the clients run")
    parser.add_argument("--workers", type=int, default=2, help="the server's classifiers")
    parser.add_argument("--checks", type=int, default=5, help="update checks that find nothing new")
    parser.add_argument("--quiet-seconds", type=float, default=5.0, help="load without swaps first")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the JSON written")
    args = parser.parse_args(argv)
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="swap-bench-") as work:
        device, trust, results["update_check"] = measure_update_checks(Path(work), args.checks)
        results["watch_microseconds"] = watch_cost_microseconds(device)
        swaps = measure_swaps(device, trust, args.clients, args.swaps, args.workers, args.quiet_seconds)
        results["swaps"] = swaps
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
