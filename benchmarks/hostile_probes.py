"""Measure the server under a hostile prober on loopback and write the figures into docs/serving.md
(between <!-- begin:hostile-probes --> and <!-- end:hostile-probes -->), with the machine and date.

    python -m benchmarks.hostile_probes             # about 3 minutes; run it with the machine to itself
    python -m benchmarks.hostile_probes --quick     # small counts: checks the harness, writes nothing
                                                    # unless --write

Three probes, each on a fresh `python -m runtime.serve --workers 2` (the shipped model, defaults):

1. **Large explains.** Three clients (a process of their own) send the largest explain request the
   server accepts (a body of --max-body-bytes holding one text of review words) again and again,
   while a keep-alive client asks a short /v1/predict and /healthz in turn: their p50, p99 and
   worst times (goal: p99 under 50 ms on 2 cores), and the size of an explain answer.
2. **Unread answers.** Six clients send that explain request and never read (a 4 KiB receive
   window): the server's resident memory (RSS) before, at its peak while they hold their answers,
   and once the send timeout (--request-timeout) has passed; how many connections the server closed.
3. **A reconnecting flood from one address.** A process holds 1,030 connections from 127.0.0.2,
   reopening each as the server closes it, while another address asks /healthz and /v1/predict
   every 50 ms: their answers by status, and the p99 of /healthz.

Times are measured, never asserted: the tests (tests/runtime/serving/) assert the answers.
`--explain-clients` and `--flood` are the script's own helpers (clients in processes of their own,
so that they do not slow the measuring client).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sections import cpu_name, write_section  # noqa: E402

DOC = ROOT / "docs" / "serving.md"
SECTION = "hostile-probes"
SHORT_REVIEW = "A wonderful film with a brilliant cast. I loved every minute and the ending moved me to tears."
MAX_BODY_BYTES = 1 << 20  # the server's default --max-body-bytes
FULL = {
    "explain_seconds": 40,
    "unread_clients": 6,
    "request_timeout": 10,
    "flood_connections": 1030,
    "flood_seconds": 40,
}
QUICK = {"explain_seconds": 8, "unread_clients": 3, "request_timeout": 3, "flood_connections": 300, "flood_seconds": 8}


# --- the server -----------------------------------------------------------------------------------


class Server:
    """`python -m runtime.serve --port 0 --workers 2 --quiet ...`, ready to answer."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.serve", "--port", "0", "--workers", "2", "--quiet", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stderr:
                self.stderr.append(line)
                if line.startswith(("ready:", "error:")):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(180) or not any(line.startswith("ready:") for line in self.stderr):
            self.stop()
            raise RuntimeError("the server did not start: " + "".join(self.stderr))
        self.port = int(re.search(r"http://[^ ]+:(\d+);", "".join(self.stderr)).group(1))

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE).group(1)) / 1024

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def largest_explain_body(limit: int = MAX_BODY_BYTES) -> bytes:
    """{"text": review words...}: the largest body the server accepts (and a text under the classifier's
    1,048,576 characters)."""
    from tests.conftest import synthetic_review

    words = " ".join(synthetic_review(index, index % 2 == 0) for index in range(400)).replace("<br />", " ")
    text = (words + " ") * (limit // len(words) + 1)
    body = json.dumps({"text": text[: limit - len('{"text": ""}')]}).encode()
    assert len(body) <= limit, len(body)
    return body


def ms(samples: list[float]) -> dict:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered) * 1000, 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


def ask(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> tuple[int, float]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    begin = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - begin


# --- 1. large explains ----------------------------------------------------------------------------


def run_explain_clients(port: int, seconds: float, clients: int = 3) -> None:
    """Helper process: `clients` threads sending the largest explain until `seconds` have passed;
    prints one JSON line: statuses, answer sizes, times."""
    body = largest_explain_body()
    stop_at = time.monotonic() + seconds
    outcomes: list[tuple[int, int, float]] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while time.monotonic() < stop_at:
            begin = time.perf_counter()
            try:
                connection.request("POST", "/v1/explain", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                size = len(response.read())
                outcomes.append((response.status, size, time.perf_counter() - begin))
            except OSError as error:
                outcomes.append((0, 0, time.perf_counter() - begin))
                print(f"explain client: {error!r}", file=sys.stderr)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        json.dumps(
            {
                "statuses": dict(collections.Counter(str(status) for status, _, _ in outcomes)),
                "answer_bytes": max((size for _, size, _ in outcomes), default=0),
                "explain": ms([seconds for _, _, seconds in outcomes]),
            }
        )
    )


def probe_explains(parameters: dict) -> dict:
    server = Server()
    try:
        helper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.hostile_probes",
                "--explain-clients",
                "--port",
                str(server.port),
                "--seconds",
                str(parameters["explain_seconds"]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        predict_body = json.dumps({"texts": [SHORT_REVIEW]}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        times = {"predict": [], "healthz": []}
        statuses = collections.Counter()
        rss_peak = server.rss_mib()
        time.sleep(1)  # the explains under way
        while helper.poll() is None:
            for name, method, path, body in (
                ("predict", "POST", "/v1/predict", predict_body),
                ("healthz", "GET", "/healthz", None),
            ):
                status, seconds = ask(connection, method, path, body)
                statuses[f"{name} {status}"] += 1
                times[name].append(seconds)
            rss_peak = max(rss_peak, server.rss_mib())
            time.sleep(0.01)
        explains = json.loads(helper.stdout.read().strip().splitlines()[-1])
        connection.close()
        return {
            "predict": ms(times["predict"]),
            "healthz": ms(times["healthz"]),
            "statuses": dict(statuses),
            "explains": explains,
            "request_bytes": len(largest_explain_body()),
            "rss_peak_mib": round(rss_peak, 1),
        }
    finally:
        server.stop()


# --- 2. unread answers ----------------------------------------------------------------------------


def unread_client(port: int, body: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"POST /v1/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (reading what it had sent, at most 30 s)."""
    sock.settimeout(30)
    try:
        while sock.recv(1 << 20):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def probe_unread(parameters: dict) -> dict:
    timeout = parameters["request_timeout"]
    server = Server("--request-timeout", str(timeout))
    body = largest_explain_body()
    try:
        before = server.rss_mib()
        clients = [unread_client(server.port, body) for _ in range(parameters["unread_clients"])]
        began, peak = time.monotonic(), before
        while time.monotonic() - began < timeout + 5:  # the answers are built, then held until the send timeout
            peak = max(peak, server.rss_mib())
            time.sleep(0.1)
        after = server.rss_mib()
        closed = sum(closed_by_server(sock) for sock in clients)
        for sock in clients:
            sock.close()
        return {
            "clients": len(clients),
            "request_timeout": timeout,
            "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(peak, 1),
            "rss_after_timeout_mib": round(after, 1),
            "closed_by_server": closed,
        }
    finally:
        server.stop()


# --- 3. a reconnecting flood from one address -----------------------------------------------------


def run_flood(port: int, connections: int, seconds: float) -> None:
    """Helper process: hold `connections` idle connections from 127.0.0.2, reopening each as the server
    closes it (a refused one after 0.5 s); prints one JSON line with what the server answered."""
    answers = collections.Counter()
    held = 0
    most_held = 0

    async def slot(stop_at: float) -> None:
        nonlocal held, most_held
        loop = asyncio.get_running_loop()
        while loop.time() < stop_at:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.bind(("127.0.0.2", 0))
                await loop.sock_connect(sock, ("127.0.0.1", port))
                reader, writer = await asyncio.open_connection(sock=sock)
            except OSError as error:
                answers[type(error).__name__] += 1
                await asyncio.sleep(0.5)
                continue
            held += 1
            most_held = max(most_held, held)
            try:
                data = await asyncio.wait_for(reader.read(), max(0.01, stop_at - loop.time()))
                status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
            except (asyncio.TimeoutError, OSError):
                status = "held to the end"
            held -= 1
            answers[status] += 1
            writer.close()
            if status != "408":
                await asyncio.sleep(0.5)

    async def main() -> None:
        stop_at = asyncio.get_running_loop().time() + seconds
        await asyncio.gather(*(slot(stop_at) for _ in range(connections)))

    asyncio.run(main())
    print(json.dumps({"answers": dict(answers), "most_held": most_held}))


def probe_flood(parameters: dict) -> dict:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))  # the flood's own sockets
    server = Server()
    try:
        helper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.hostile_probes",
                "--flood",
                "--port",
                str(server.port),
                "--connections",
                str(parameters["flood_connections"]),
                "--seconds",
                str(parameters["flood_seconds"]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # the flood's connections open
        statuses = collections.Counter()
        health_times = []
        predict_body = json.dumps({"texts": [SHORT_REVIEW]}).encode()
        while helper.poll() is None:
            for name, method, path, body in (
                ("healthz", "GET", "/healthz", None),
                ("predict", "POST", "/v1/predict", predict_body),
            ):
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                try:
                    status, seconds = ask(connection, method, path, body)
                    if name == "healthz":
                        health_times.append(seconds)
                except OSError as error:
                    status = type(error).__name__
                finally:
                    connection.close()
                statuses[f"{name} {status}"] += 1
            time.sleep(0.05)
        flood = json.loads(helper.stdout.read().strip().splitlines()[-1])
        return {
            "connections": parameters["flood_connections"],
            "seconds": parameters["flood_seconds"],
            "statuses": dict(statuses),
            "healthz": ms(health_times),
            "flood": flood,
        }
    finally:
        server.stop()


# --- the report -----------------------------------------------------------------------------------


def machine() -> dict:
    cpu = cpu_name()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def markdown(results: dict) -> str:
    m, e, u, f = results["machine"], results["explains"], results["unread"], results["flood"]
    counts = lambda statuses: ", ".join(f"{key}: {value:,}" for key, value in sorted(statuses.items()))  # noqa: E731
    return "\n".join(
        [
            f"<!-- begin:{SECTION} -->",
            f"Measured by `python -m benchmarks.hostile_probes` on {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"{results['generated'][:10]} at {results['commit']} (load average {m['load_average_at_start']} at the start, "
            f"{m['load_average_at_end']} at the end{'; a quick run with small counts' if results['quick'] else ''}):",
            "",
            "| probe | result |",
            "|---|---|",
            f"| 3 clients sending the largest explain request ({e['request_bytes']:,} bytes), for "
            f"{results['parameters']['explain_seconds']} s | short `/v1/predict` p50 {e['predict'].get('p50')} ms, "
            f"**p99 {e['predict'].get('p99')} ms**, worst {e['predict'].get('max')} ms; `/healthz` p50 {e['healthz'].get('p50')} ms, "
            f"**p99 {e['healthz'].get('p99')} ms**, worst {e['healthz'].get('max')} ms (goal: p99 under 50 ms) |",
            f"| the largest explain answer | {e['explains']['answer_bytes']:,} bytes; {e['explains']['explain'].get('count')} "
            f"explains, p50 {e['explains']['explain'].get('p50')} ms each; answers {counts(e['explains']['statuses'])} |",
            f"| {u['clients']} clients holding unread explain answers | server RSS {u['rss_before_mib']} MiB before, "
            f"{u['rss_peak_mib']} MiB at the peak, {u['rss_after_timeout_mib']} MiB after the send timeout "
            f"({u['request_timeout']} s); {u['closed_by_server']} of {u['clients']} connections closed by the server |",
            f"| one address holding {f['connections']:,} connections, reopening them, for {f['seconds']} s | "
            f"{counts(f['statuses'])}; `/healthz` p99 {f['healthz'].get('p99')} ms; the flood was answered "
            f"{counts(f['flood']['answers'])} (connections open at once, counting those about to be refused: "
            f"{f['flood']['most_held']:,}) |",
            f"<!-- end:{SECTION} -->",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, to check the harness")
    parser.add_argument("--write", action="store_true", help="with --quick: write the section anyway")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--only", choices=("explains", "unread", "flood"), help="run one probe (writes nothing)")
    parser.add_argument("--explain-clients", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flood", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.explain_clients:
        run_explain_clients(args.port, args.seconds)
        return 0
    if args.flood:
        run_flood(args.port, args.connections, args.seconds)
        return 0

    parameters = QUICK if args.quick else FULL
    results = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": machine(),
        "parameters": parameters,
    }
    for name, probe in (("explains", probe_explains), ("unread", probe_unread), ("flood", probe_flood)):
        if args.only and name != args.only:
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = probe(parameters)
        print(json.dumps(results[name]), file=sys.stderr, flush=True)
    results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.only:
        print(json.dumps(results, indent=1))
        return 0
    section = markdown(results)
    print(section)
    if not args.quick or args.write:
        write_section(DOC, SECTION, section)
        print(f"wrote the {SECTION} section of {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
