"""What stock uvicorn's public settings and ASGI middleware can carry of runtime/serving's guards.

    python -m probes.uvicorn_public             # about 1.5 minutes; writes probes/uvicorn-public.json
    python -m probes.uvicorn_public --render    # the same, and rewrites its table in docs/serving.md
    python -m probes.uvicorn_public --results probes/uvicorn-public.json --render   # only the table

Issue #27 (item 5) asks which of the guards in runtime/serving/uvicorn_internals.py (a subclass of
uvicorn's non-public HttpToolsProtocol) public settings and middleware could carry instead. This
starts stock uvicorn through its public API only (`uvicorn.Config`, `uvicorn.Server.run(sockets=...)`,
and its `started`, `should_exit` and `force_exit` flags to wait for it and stop it), with the
httptools and the h11 parser, in a thread of this process, on a loopback socket made here. It serves
a tiny Starlette application wrapped in the best pure-ASGI middleware written here for each guard:
a receive deadline (408), a head-size check (431), a bound on requests in flight (503, health
checks let through), a bound per client address (429) and a send timeout. A real client over a
socket then plays each case and records what came back: the status and Content-Type of any answer,
whether and when the connection was closed, and whether the middleware was called at all.

The server side of a connection is read from Linux's /proc/net/tcp (its state and unsent bytes) and,
for TCP_NODELAY, the option is read on the accepted socket itself, found through /proc/self/fd: the
server runs in this process, so nothing of uvicorn's internals is needed to see it.

Every case is bounded: a client gives up after GIVE_UP seconds. Nothing here is asserted but in
tests/probes/test_uvicorn_public.py, which runs the quickest cases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from benchmarks.sections import cpu_name, write_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "uvicorn-public.json"
MARKDOWN = HERE.parent / "docs" / "serving.md"
SECTION = "uvicorn-public"
PARSERS = ("httptools", "h11")

DEADLINE = 2.0  # the whole request's deadline, and the send timeout
KEEP_ALIVE = 1  # uvicorn's timeout_keep_alive (whole seconds)
GIVE_UP = 6.0  # a client waits at most this long for an answer or a close
HEAD_LIMIT = 16 * 1024  # as runtime/serving's MAX_HEAD_BYTES and h11's default
BOUND = 4  # connections (limit_concurrency), requests in flight, requests per address
IDLE = 16  # idle connections held open to show what middleware does not see
BIG = 8 * 1024 * 1024  # an answer the client does not read
CHUNK = 64 * 1024
ROUNDS = 20  # small answers timed on one keep-alive connection, per listener


# --- the application and the public middleware ----------------------------------------------------


async def root(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def echo(request: Request) -> Response:
    return JSONResponse({"bytes": len(await request.body())})


async def pause(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", DEADLINE)))
    return JSONResponse({"slept": True})


async def big(request: Request) -> Response:
    async def chunks():
        for _ in range(BIG // CHUNK):
            yield b"x" * CHUNK

    return StreamingResponse(chunks(), media_type="application/octet-stream", headers={"content-length": str(BIG)})


async def big_once(request: Request) -> Response:
    return Response(b"x" * BIG, media_type="application/octet-stream")


def application() -> Starlette:
    return Starlette(
        routes=[
            Route("/", root),
            Route("/healthz", healthz),
            Route("/echo", echo, methods=["POST"]),
            Route("/sleep", pause),
            Route("/big", big),
            Route("/big-once", big_once),
        ]
    )


async def send_json(send, status: int, message: str, close: bool = False) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Stop(BaseException):
    """Raised into the wrapped application to stop it (a BaseException: Starlette's error middleware
    catches Exception and would answer 500 first)."""


@dataclass
class Recorder:
    """The outermost middleware: notes each request that reached the ASGI application at all."""

    app: object
    calls: list = field(default_factory=list)
    events: list = field(default_factory=list)  # (monotonic time, what), noted by the middleware

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.calls.append((time.monotonic(), scope["path"]))
        await self.app(scope, receive, send)


class RequestDeadline:
    """408 JSON when the body has not arrived DEADLINE seconds after the middleware was called (that
    is, after the whole head arrived: middleware is not called before)."""

    def __init__(self, app, seconds: float = DEADLINE):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        started = False

        async def timed_receive():
            try:
                return await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise _Stop() from None

        async def noting_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, noting_send)
        except _Stop:
            if started:
                raise
            await send_json(send, 408, f"the request did not arrive within {self.seconds:g} s", close=True)


class HeadLimit:
    """431 JSON when the request line and headers (as the scope gives them) are over HEAD_LIMIT bytes."""

    def __init__(self, app, limit: int = HEAD_LIMIT):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            size = len(scope["method"]) + len(scope["raw_path"]) + len(scope["query_string"])
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:
                return await send_json(send, 431, f"the request head is over {self.limit} bytes", close=True)
        await self.app(scope, receive, send)


class InFlightBound:
    """503 JSON past BOUND requests in flight; health checks are always let through."""

    def __init__(self, app, limit: int = BOUND, exempt: frozenset = frozenset({"/healthz"})):
        self.app, self.limit, self.exempt, self.in_flight = app, limit, exempt, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit:
            return await send_json(send, 503, "too many requests in flight; try again shortly")
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class PerClientBound:
    """429 JSON past BOUND requests in flight from one client address."""

    def __init__(self, app, limit: int = BOUND):
        self.app, self.limit, self.in_flight = app, limit, {}

    async def __call__(self, scope, receive, send) -> None:
        address = (scope.get("client") or ("",))[0]
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.in_flight.get(address, 0) >= self.limit:
            return await send_json(send, 429, f"more than {self.limit} requests in flight from one address")
        self.in_flight[address] = self.in_flight.get(address, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[address] -= 1


class SendTimeout:
    """Each `send` bounded by asyncio.wait_for; past it the application is stopped by an exception,
    which uvicorn answers by closing the connection (close, not abort: the public way out)."""

    def __init__(self, app, events: list, seconds: float = DEADLINE):
        self.app, self.events, self.seconds = app, events, seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def timed_send(message):
            try:
                await asyncio.wait_for(send(message), self.seconds)
            except TimeoutError:
                self.events.append((time.monotonic(), "send timed out"))
                raise _Stop() from None

        await self.app(scope, receive, timed_send)


# --- stock uvicorn, in a thread ---------------------------------------------------------------------


@dataclass
class Running:
    port: int
    recorder: Recorder
    server: uvicorn.Server


@contextlib.contextmanager
def serving(parser: str, middleware=(), listener: socket.socket | None = None, **settings):
    """Stock uvicorn with `parser`, serving the application wrapped in `middleware` (innermost first,
    each a function of the app and the Recorder's events), with public `settings` for uvicorn.Config."""
    app = application()
    recorder = Recorder(app)
    for wrap in middleware:
        app = wrap(app, recorder.events)
    recorder.app = app
    sock = listener or socket.create_server(("127.0.0.1", 0))
    if parser == "h11":
        settings.setdefault("h11_max_incomplete_event_size", HEAD_LIMIT)
    config = uvicorn.Config(
        recorder,
        http=parser,
        loop="asyncio",
        ws="none",
        lifespan="off",
        interface="asgi3",
        log_config=None,  # and no log_level: uvicorn would set it on its loggers for the whole process
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=1,
        **settings,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started and thread.is_alive() and time.monotonic() - started < 10:
        time.sleep(0.01)
    try:
        yield Running(sock.getsockname()[1], recorder, server)
    finally:
        server.should_exit = True
        thread.join(timeout=3)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=3)
        sock.close()


def deadline(app, events):
    return RequestDeadline(app)


def head_limit(app, events):
    return HeadLimit(app)


def in_flight_bound(app, events):
    return InFlightBound(app)


def per_client_bound(app, events):
    return PerClientBound(app)


def send_timeout(app, events):
    return SendTimeout(app, events)


# --- the client -------------------------------------------------------------------------------------


class Client:
    """A blocking client over one socket, reading whatever the server answers and noting when."""

    def __init__(self, port: int, receive_buffer: int | None = None):
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.started = time.monotonic()
        self.buffer = b""
        self.answered = self.closed = None  # seconds since the start
        self.how_closed = None

    def restart_clock(self) -> None:
        self.started = time.monotonic()

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self._closed("reset")
            return False

    def _closed(self, how: str) -> None:
        if self.closed is None:
            self.closed, self.how_closed = time.monotonic() - self.started, how

    def _head(self) -> tuple[str, dict] | None:
        head, found, _ = self.buffer.partition(b"\r\n\r\n")
        if not found:
            return None
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def complete(self) -> bool:
        parsed = self._head()
        if parsed is None:
            return False
        body = len(self.buffer) - self.buffer.index(b"\r\n\r\n") - 4
        return body >= int(parsed[1].get("content-length", 0))

    def pump(self, until: float) -> None:
        """Read until `until` (monotonic), the connection's end, or a whole answer on a kept-alive one."""
        while self.closed is None:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                return
            except OSError:
                self._closed("reset")
                return
            if not data:
                self._closed("closed")
                return
            self.buffer += data
            if self.answered is None and b"\r\n\r\n" in self.buffer:
                self.answered = time.monotonic() - self.started
            if self.complete() and self._head()[1].get("connection", "").lower() != "close":
                return

    def outcome(self) -> dict:
        parsed = self._head()
        status, headers = parsed if parsed else (None, {})
        return {
            "status": int(status.split()[1]) if status else None,
            "content_type": headers.get("content-type"),
            "answered_s": _round(self.answered),
            "closed": self.how_closed or "open",
            "closed_s": _round(self.closed),
            "waited_s": _round(time.monotonic() - self.started),
            "body": self.buffer.partition(b"\r\n\r\n")[2][:100].decode("latin-1") if parsed else None,
        }

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def request(path: str = "/", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: probe\r\n{extra}\r\n".encode()


def ask(port: int, data: bytes) -> dict:
    client = Client(port)
    try:
        client.send(data)
        client.pump(client.started + GIVE_UP)
        return client.outcome()
    finally:
        client.close()


def called(running: Running, path: str | None = None) -> int:
    return sum(1 for _, called_path in running.recorder.calls if path is None or called_path == path)


@contextlib.contextmanager
def held(port: int, count: int, data: bytes = b""):
    """`count` connections held open, each having sent `data` (nothing: idle)."""
    clients = [Client(port) for _ in range(count)]
    try:
        for client in clients:
            client.send(data)
        yield clients
    finally:
        for client in clients:
            client.close()


def wait_for(condition, seconds: float = GIVE_UP) -> bool:
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.01)
    return True


# --- /proc: the server's side of a connection --------------------------------------------------------

TCP_STATES = {
    "01": "ESTABLISHED",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0B": "CLOSING",
}


def server_side(server_port: int, client_port: int) -> dict | None:
    """The server's socket of a loopback connection, from /proc/net/tcp: its state, the bytes its kernel
    has not sent yet, and whether a process still holds it (orphaned sockets have inode 0)."""
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            lines = table.readlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return {
                "state": TCP_STATES.get(state, state),
                "kernel_unsent": int(fields[4].split(":")[0], 16),
                "held_by_process": int(fields[9]) != 0,
                "inode": int(fields[9]),
            }
    return {"state": "gone", "kernel_unsent": 0, "held_by_process": False, "inode": 0}


def accepted_nodelay(server_port: int, client_port: int) -> bool | None:
    """TCP_NODELAY on the server's accepted socket of a connection, read on a duplicate of its file
    descriptor (the server runs in this process; /proc/self/fd names each descriptor's inode)."""
    found = server_side(server_port, client_port)
    if not found or not found["inode"]:
        return None
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == f"socket:[{found['inode']}]":
                duplicate = socket.socket(fileno=os.dup(int(fd)))
                try:
                    return bool(duplicate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                finally:
                    duplicate.close()
    return None


# --- the cases ----------------------------------------------------------------------------------------


def slow_head(parser: str) -> dict:
    """A request head trickled a header byte a second, never finished."""
    with serving(parser, [deadline]) as running:
        client = Client(running.port)
        try:
            client.send(request(extra="X-Slow: ")[:-2])
            while client.closed is None and time.monotonic() - client.started < GIVE_UP:
                if client.send(b"a"):
                    client.pump(min(time.monotonic() + 1, client.started + GIVE_UP))
            result = client.outcome()
        finally:
            client.close()
        return result | {"middleware_called": called(running)}


def idle_connection(parser: str) -> dict:
    """A connection that sends nothing."""
    with serving(parser, [deadline]) as running:
        client = Client(running.port)
        try:
            client.pump(client.started + GIVE_UP)
            return client.outcome() | {"middleware_called": called(running)}
        finally:
            client.close()


def slow_body(parser: str) -> dict:
    """A whole head promising 100 bytes of body, none sent."""
    with serving(parser, [deadline]) as running:
        return ask(running.port, request("/echo", "POST", "Content-Length: 100\r\n")) | {
            "middleware_called": called(running)
        }


def slow_head_then_no_body(parser: str) -> dict:
    """A head trickled over 1.5 deadlines, then no body: the middleware's clock starts at the head's end."""
    with serving(parser, [deadline]) as running:
        client = Client(running.port)
        try:
            data = request("/echo", "POST", "Content-Length: 100\r\n")
            pieces = 6
            step = -(-len(data) // pieces)
            for index in range(pieces):
                if not client.send(data[index * step : (index + 1) * step]):
                    break
                time.sleep(1.5 * DEADLINE / pieces)
            client.pump(client.started + 1.5 * DEADLINE + GIVE_UP)
            return client.outcome() | {"middleware_called": called(running)}
        finally:
            client.close()


def headers_of(size: int) -> str:
    line = "X-Filler-{:05d}: " + "y" * 1000 + "\r\n"
    return "".join(line.format(index) for index in range(size // (len(line) - 1)))


def oversized_head(parser: str, size: int = 64 * 1024) -> dict:
    """A request head of `size` bytes of headers."""
    with serving(parser, [head_limit]) as running:
        return ask(running.port, request(extra=headers_of(size))) | {"middleware_called": called(running)}


def huge_head(parser: str) -> dict:
    return oversized_head(parser, 1024 * 1024)


def duplicate_length(parser: str) -> dict:
    """Two different Content-Length headers."""
    with serving(parser, [deadline]) as running:
        data = request("/echo", "POST", "Content-Length: 5\r\nContent-Length: 6\r\n") + b"hello!"
        return ask(running.port, data) | {"middleware_called": called(running)}


def bad_request_line(parser: str) -> dict:
    with serving(parser, [deadline]) as running:
        return ask(running.port, b"GARBAGE\r\n\r\n") | {"middleware_called": called(running)}


def limit_concurrency(parser: str) -> dict:
    """uvicorn's limit_concurrency=BOUND with BOUND idle connections held; then a health check."""
    with serving(parser, [in_flight_bound], limit_concurrency=BOUND) as running:
        with held(running.port, BOUND):
            time.sleep(0.2)
            return ask(running.port, request("/healthz")) | {"middleware_called": called(running, "/healthz")}


def in_flight_idle(parser: str) -> dict:
    """Middleware bounding requests in flight to BOUND, with IDLE idle connections held; then GET /."""
    with serving(parser, [in_flight_bound]) as running:
        with held(running.port, IDLE):
            time.sleep(0.2)
            return ask(running.port, request()) | {"middleware_called": called(running, "/")}


def in_flight_busy(parser: str, path: str = "/") -> dict:
    """The same middleware with BOUND requests in flight; then a request to `path`."""
    with serving(parser, [in_flight_bound]) as running:
        with held(running.port, BOUND, request(f"/sleep?s={DEADLINE}")):
            wait_for(lambda: called(running) >= BOUND)
            return ask(running.port, request(path)) | {"middleware_called": called(running, path)}


def in_flight_health(parser: str) -> dict:
    return in_flight_busy(parser, "/healthz")


def per_client_idle(parser: str) -> dict:
    """Middleware bounding each address to BOUND requests in flight, IDLE idle connections held."""
    with serving(parser, [per_client_bound]) as running:
        with held(running.port, IDLE):
            time.sleep(0.2)
            return ask(running.port, request()) | {"middleware_called": called(running, "/")}


def per_client_busy(parser: str) -> dict:
    with serving(parser, [per_client_bound]) as running:
        with held(running.port, BOUND, request(f"/sleep?s={DEADLINE}")):
            wait_for(lambda: called(running) >= BOUND)
            return ask(running.port, request()) | {"middleware_called": called(running, "/")}


def unread_answer(parser: str, path: str = "/big", middleware=(send_timeout,)) -> dict:
    """A client that asks for BIG bytes and reads none of them for DEADLINE + 2 s: what the server
    still holds then, and what the client can still read afterwards."""
    with serving(parser, list(middleware)) as running:
        client = Client(running.port, receive_buffer=16 * 1024)
        try:
            client.send(request(path))
            time.sleep(DEADLINE + 2)
            side = server_side(running.port, client.port)
            timed_out = [round(at - client.started, 2) for at, what in running.recorder.events]
            received, ended = 0, "open"
            client.sock.settimeout(2)
            while received < BIG + 1024:
                try:
                    data = client.sock.recv(1 << 20)
                except TimeoutError:
                    break
                except OSError:
                    ended = "reset"
                    break
                if not data:
                    ended = "closed"
                    break
                received += len(data)
            return {
                "send_timed_out_s": timed_out[0] if timed_out else None,
                "server_side": side,
                "client_read_after": received,
                "then": ended,
                "middleware_called": called(running),
            }
        finally:
            client.close()


def unread_answer_stock(parser: str) -> dict:
    return unread_answer(parser, "/big", ())


def unread_single_body(parser: str) -> dict:
    return unread_answer(parser, "/big-once")


LISTENERS = {
    "socket.create_server": lambda: socket.create_server(("127.0.0.1", 0)),
    "create_server + TCP_NODELAY on the listener": lambda: _with_nodelay(socket.create_server(("127.0.0.1", 0))),
    "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)": lambda: _tcp_listener(),
}


def _with_nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _tcp_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def nodelay(parser: str, listener: str) -> dict:
    """Whether the accepted socket has TCP_NODELAY, and the median time of a small keep-alive answer."""
    with serving(parser, listener=LISTENERS[listener]()) as running:
        client = Client(running.port)
        try:
            client.send(request())
            client.pump(client.started + GIVE_UP)
            option = accepted_nodelay(running.port, client.port)
            times = []
            for _ in range(ROUNDS):
                client.buffer, client.answered = b"", None
                client.restart_clock()
                client.send(request())
                client.pump(client.started + GIVE_UP)
                if client.answered is None or not client.complete():
                    break
                times.append(time.monotonic() - client.started)
            return {
                "listener": listener,
                "accepted_nodelay": option,
                "median_ms": round(statistics.median(times) * 1000, 2) if times else None,
                "rounds": len(times),
            }
        finally:
            client.close()


@dataclass(frozen=True)
class Case:
    name: str
    guard: str
    setup: str
    run: object


CASES = [
    Case("slow-head", "deadline (408)", f"receive-deadline middleware, timeout_keep_alive={KEEP_ALIVE}", slow_head),
    Case(
        "idle-connection",
        "deadline (408)",
        f"receive-deadline middleware, timeout_keep_alive={KEEP_ALIVE}",
        idle_connection,
    ),
    Case("slow-body", "deadline (408)", "receive-deadline middleware", slow_body),
    Case("slow-head-then-no-body", "deadline (408)", "receive-deadline middleware", slow_head_then_no_body),
    Case(
        "head-64KiB",
        "head limit (431)",
        f"head-size middleware; h11_max_incomplete_event_size={HEAD_LIMIT}",
        oversized_head,
    ),
    Case(
        "head-1MiB", "head limit (431)", f"head-size middleware; h11_max_incomplete_event_size={HEAD_LIMIT}", huge_head
    ),
    Case("duplicate-content-length", "JSON errors (400)", "any middleware", duplicate_length),
    Case("bad-request-line", "JSON errors (400)", "any middleware", bad_request_line),
    Case(
        "connections-limit_concurrency",
        "connection bound (503)",
        f"limit_concurrency={BOUND}, {BOUND} idle held; GET /healthz",
        limit_concurrency,
    ),
    Case(
        "connections-middleware-idle",
        "connection bound (503)",
        f"in-flight middleware ({BOUND}), {IDLE} idle held; GET /",
        in_flight_idle,
    ),
    Case(
        "connections-middleware-busy",
        "connection bound (503)",
        f"in-flight middleware ({BOUND}), {BOUND} in flight; GET /",
        in_flight_busy,
    ),
    Case(
        "connections-middleware-health",
        "connection bound (503)",
        f"in-flight middleware ({BOUND}), {BOUND} in flight; GET /healthz",
        in_flight_health,
    ),
    Case(
        "per-client-idle",
        "per-client bound (429)",
        f"per-address middleware ({BOUND}), {IDLE} idle held; GET /",
        per_client_idle,
    ),
    Case(
        "per-client-busy",
        "per-client bound (429)",
        f"per-address middleware ({BOUND}), {BOUND} in flight; GET /",
        per_client_busy,
    ),
    Case(
        "unread-streamed-stock",
        "send timeout",
        f"none (stock): {BIG >> 20} MiB streamed, not read",
        unread_answer_stock,
    ),
    Case(
        "unread-streamed", "send timeout", f"send-timeout middleware: {BIG >> 20} MiB streamed, not read", unread_answer
    ),
    Case(
        "unread-one-body",
        "send timeout",
        f"send-timeout middleware: {BIG >> 20} MiB in one body, not read",
        unread_single_body,
    ),
]
CASES += [
    Case(f"nodelay-{index}", "TCP_NODELAY", listener, lambda parser, listener=listener: nodelay(parser, listener))
    for index, listener in enumerate(LISTENERS, 1)
]
BY_NAME = {case.name: case for case in CASES}


def run_case(name: str, parser: str) -> dict:
    case = BY_NAME[name]
    started = time.monotonic()
    result = case.run(parser)
    return {"case": name, "guard": case.guard, "setup": case.setup, "parser": parser, **result} | {
        "probe_s": round(time.monotonic() - started, 2)
    }


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "httptools": version("httptools"),
        "h11": version("h11"),
        "starlette": version("starlette"),
        "date": datetime.date.today().isoformat(),
    }


def run(names: list[str]) -> dict:
    results = []
    for name in names:
        for parser in PARSERS:
            results.append(run_case(name, parser))
            print(f"{name} ({parser}): {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    settings = {
        "deadline_s": DEADLINE,
        "timeout_keep_alive_s": KEEP_ALIVE,
        "client_gives_up_s": GIVE_UP,
        "head_limit_bytes": HEAD_LIMIT,
        "bound": BOUND,
        "idle_held": IDLE,
        "unread_answer_bytes": BIG,
    }
    return {"machine": machine(), "settings": settings, "results": results}


# --- the table ------------------------------------------------------------------------------------------


def cell(result: dict) -> str:
    if "accepted_nodelay" in result:
        option = {True: "on", False: "off", None: "not found"}[result["accepted_nodelay"]]
        median = "no answer" if result["median_ms"] is None else f"{result['median_ms']:.1f} ms"
        return f"the accepted socket's TCP_NODELAY: {option}; a small answer in {median} (median of {result['rounds']})"
    if "server_side" in result:
        side = result["server_side"] or {}
        timed_out = result["send_timed_out_s"]
        parts = ["send never timed out" if timed_out is None else f"send timed out at {timed_out:.1f} s"]
        held = "still held by the server" if side.get("held_by_process") else "no longer held by the server"
        parts.append(
            f"at {DEADLINE + 2:g} s the server's socket is {side.get('state', '?')}, {held}, "
            f"{side.get('kernel_unsent', 0) / 2**20:.1f} MiB in its kernel send queue"
        )
        parts.append(
            f"the client could still read {result['client_read_after'] / 2**20:.1f} MiB, then {result['then']}"
        )
        return "; ".join(parts)
    if result["status"] is None:
        answer = "no answer"
    else:
        answer = f"{result['status']} `{result['content_type']}` at {result['answered_s']:.1f} s"
    if result["closed"] == "open":
        ending = f"open at {result['waited_s']:.1f} s (the client gave up)" if result["status"] is None else "kept open"
    else:
        ending = f"{result['closed']} at {result['closed_s']:.1f} s"
    called = "middleware called" if result["middleware_called"] else "middleware not called"
    return f"{answer}; {ending}; {called}"


def render_table(results: dict) -> str:
    rows: dict[str, dict] = {}
    for result in results["results"]:
        rows.setdefault(result["case"], {"guard": result["guard"], "setup": result["setup"]})[result["parser"]] = cell(
            result
        )
    lines = [
        "| Guard | Case | Public setting or middleware | httptools | h11 |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {row['guard']} | {name} | {row['setup']} | {row.get('httptools', '')} | {row.get('h11', '')} |"
        )
    return "\n".join(lines) + "\n"


def render_section(results: dict) -> str:
    found = results["machine"]
    settings = results["settings"]
    heading = (
        f"Stock uvicorn {found['uvicorn']} (httptools {found['httptools']}, h11 {found['h11']}), Starlette "
        f"{found['starlette']}, Python {found['python']}, {found['cpu']} ({found['cores']} cores, load average "
        f"{found['load_average'][0]:g}), {found['date']}. Deadline and send timeout {settings['deadline_s']:g} s, "
        f"timeout_keep_alive {settings['timeout_keep_alive_s']} s, head limit {settings['head_limit_bytes']} bytes, "
        f"bounds {settings['bound']}; times are from the client's connect (from its request, for a small answer). "
        "Written by `python -m probes.uvicorn_public --render` from `probes/uvicorn-public.json`."
    )
    return f"<!-- begin:{SECTION} -->\n{heading}\n\n{render_table(results)}<!-- end:{SECTION} -->\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--render", action="store_true", help="also rewrite the table in docs/serving.md")
    parser.add_argument("--results", type=Path, metavar="JSON", help="render these results instead of running")
    parser.add_argument("--cases", nargs="+", choices=list(BY_NAME), help="run only these cases (not written)")
    args = parser.parse_args(argv)
    if args.results:
        results = json.loads(args.results.read_text())
    else:
        results = run(args.cases or list(BY_NAME))
        if not args.cases:
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if args.render:
        write_section(MARKDOWN, SECTION, render_section(results))
    print(render_table(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
