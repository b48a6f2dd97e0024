"""Serve predictions over HTTP: `python -m runtime.serve` (also `imdb-sentiment-serve`).

    POST /v1/predict                {"texts": [...]}: a prediction or an error for each text
    POST /v2/models/{name}/infer    the Open Inference Protocol (KServe v2); GET /v2/health/ready
    GET  /metrics, /openapi.json    (runtime/http_app.py and docs/serving.md list every endpoint)

The application (runtime/http_app.py) runs on uvicorn with its httptools parser, which refuses
malformed HTTP (duplicate Content-Length, Transfer-Encoding with Content-Length) instead of
guessing. This module adds what uvicorn leaves open: a deadline for the whole request to arrive
(uvicorn bounds only idle keep-alive time), a limit on the size of the request head, JSON for the
errors uvicorn answers itself, a bound on connections (a JSON 503, health checks still answered)
and on each client address's connections (429), a deadline for a client to read its answer, and
a stop on SIGTERM or SIGINT that finishes the requests in flight and exits 0 (uvicorn re-raises
the signal), even while the model is still loading.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import ipaddress
import json
import logging
import os
import resource
import signal
import socket
import sys
import threading
import warnings
from dataclasses import dataclass, field
from http import HTTPStatus

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime import backends, cli
from runtime.classifier import SentimentClassifier, UnverifiedArtifactWarning
from runtime.http_app import (CLIENT_GONE, GUARD_EXTENSION, LOOPBACK_NAMES, WRITE_CHUNK, Access, ClassifierPool,
                              Limits, Metrics, SentimentService, build_app, host_name, log_access,
                              unverified_warning)
from runtime.predict import add_model_arguments

MAX_HEAD_BYTES = 16 * 1024  # request line and headers, as uvicorn's h11 parser allows by default
DEFAULTS = Limits()
# Connections past --max-connections kept for health checks only; past these the connection is
# refused at once (503), before it can take the last file descriptors.
HEALTH_RESERVE = 16
# A connection's unsent answer above this pauses the app's writing (asyncio's flow control):
# with WRITE_CHUNK pieces, one connection holds at most about twice this much.
WRITE_BUFFER_HIGH = WRITE_CHUNK


class HeadTooLarge(Exception):
    """Raised inside the parser's callbacks to stop it: the request head is over the limit."""


@dataclass(frozen=True)
class Guards:
    """What the connection-level guards need, given to every connection's protocol."""
    request_timeout: float  # also the time a client has to take each part of its answer
    max_connections: int
    metrics: Metrics
    max_head_bytes: int = MAX_HEAD_BYTES
    max_connections_per_client: int = 128
    # Open connections by client address, shared by every connection (mutable, unlike the fields).
    per_client: collections.Counter = field(default_factory=collections.Counter)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools connection, with a clock from a request's first byte (or the connection's
    opening) to its last: while the request line and headers arrive this class enforces it (408),
    then hands its deadline to the app, which enforces it on the body."""

    def __init__(self, *args, guards: Guards, **kwargs):
        super().__init__(*args, **kwargs)
        self.guards = guards
        self._deadline = 0.0
        self._deadline_timer = None  # set while a request's head is arriving
        self._head_bytes = self._unparsed_head_bytes = 0
        self._head_too_large = self._request_begun = False
        self._write_timer = None  # set while the client is not taking its answer

    def _start_clock(self) -> None:
        if self._deadline_timer is None:
            self._deadline = self.loop.time() + self.guards.request_timeout
            self._deadline_timer = self.loop.call_at(self._deadline, self._request_too_slow)
            self._head_bytes = self._unparsed_head_bytes = 0
            self._head_too_large = self._request_begun = False

    def _stop_clock(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # uvicorn writes a response's head and body apart; with Nagle's algorithm on, the body would
        # wait for the client's delayed ACK (40 ms). asyncio turns it off only for sockets whose
        # protocol number says TCP, and a socket from socket.create_server says 0.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Bounded buffers: above this, the transport pauses the app's writing until the client reads.
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._start_clock()
        address = self.client[0] if self.client else ""
        self.guards.per_client[address] += 1
        if len(self.connections) > self.guards.max_connections + HEALTH_RESERVE:
            self._refuse(503, "too many connections; try again shortly", {"retry-after": "1"})
        elif self.guards.per_client[address] > self.guards.max_connections_per_client:
            # One address holding hundreds of connections would starve everyone else.
            self._refuse(429, f"more than {self.guards.max_connections_per_client} connections from one address",
                         {"retry-after": "1"})

    def connection_lost(self, exc) -> None:
        if self._deadline_timer is not None and self._request_begun:
            self._log(CLIENT_GONE, "the client left before its request arrived")
        self._stop_clock()
        self._stop_write_timer()
        address = self.client[0] if self.client else ""
        self.guards.per_client[address] -= 1
        if self.guards.per_client[address] <= 0:
            del self.guards.per_client[address]
        super().connection_lost(exc)

    # Flow control (asyncio calls these at the buffer limits): a client that takes none of its
    # answer within the request timeout is dropped, and the answer's memory with it.
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.guards.request_timeout, self._answer_not_read)

    def resume_writing(self) -> None:
        self._stop_write_timer()
        super().resume_writing()

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _answer_not_read(self) -> None:
        self._write_timer = None
        self.transport.abort()  # unlike close(), drops the unsent bytes now; uvicorn then ends the response
        log_access(client=self.client[0] if self.client else None, status=CLIENT_GONE,
                   error=f"the client did not read its answer for {self.guards.request_timeout:g} s; dropped")

    def data_received(self, data: bytes) -> None:
        reading_head = self._deadline_timer is not None
        super().data_received(data)
        if reading_head and self._deadline_timer is not None and not self.transport.is_closing():
            self._unparsed_head_bytes += len(data)  # a head still arriving: the parser holds it all so far
            if self._unparsed_head_bytes > self.guards.max_head_bytes:
                self._refuse(431, f"the request line and headers are over {self.guards.max_head_bytes} bytes")

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.guards.max_head_bytes and not self._head_too_large:
            self._head_too_large = True
            raise HeadTooLarge()  # stops the parser; uvicorn then calls send_400_response

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_clock()  # already running on a new connection: its first request's clock started at connect
        self._request_begun = True
        self.scope.setdefault("extensions", {})[GUARD_EXTENSION] = {
            "deadline": self._deadline, "over_capacity": len(self.connections) > self.guards.max_connections}

    def on_headers_complete(self) -> None:
        self._stop_clock()  # from here the app holds the request to the same deadline
        super().on_headers_complete()

    def shutdown(self) -> None:
        self._stop_clock()  # the server is stopping: closing a half-sent request is not the client's doing
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(431, f"the request line and headers are over {self.guards.max_head_bytes} bytes")
        else:
            self._refuse(400, "malformed HTTP request")

    def _request_too_slow(self) -> None:
        self._deadline_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request behind a response still being written: no room for a 408
        else:
            self._refuse(408, f"the request did not arrive within {self.guards.request_timeout:g} s")

    def _refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer `status` with a JSON error and close: what follows in the stream cannot be trusted."""
        self._stop_clock()
        if self.transport.is_closing():
            return
        body = json.dumps({"error": message}).encode()
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [f"{name}: {value}".encode() for name, value in (headers or {}).items()]
        head += [b"content-type: application/json", b"content-length: %d" % len(body), b"connection: close"]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()
        self._log(status, message)

    def _log(self, status: int, message: str) -> None:
        self.guards.metrics.count_request("none", "-", status)
        log_access(client=self.client[0] if self.client else None, status=status, error=message)


class DrainingServer(uvicorn.Server):
    """uvicorn's server: on SIGTERM or SIGINT it says not-ready, stops accepting, finishes the
    requests in flight (up to the grace period) and returns, so main() exits 0."""

    def __init__(self, config: uvicorn.Config, service: SentimentService):
        super().__init__(config)
        self.service, self.load_error = service, None
        service.on_loaded, service.on_load_failed = self._loaded, self._load_failed

    def _loaded(self) -> None:
        d, size = self.service.pool.description, self.service.pool.size
        print(f"ready: {d['name']} ({d['backend']} {d['precision']} {d['graph']}), "
              f"{size} classifier{'s' if size > 1 else ''}", file=sys.stderr, flush=True)

    def _load_failed(self, error: BaseException) -> None:
        self.load_error = error
        print(f"error: {error}", file=sys.stderr, flush=True)
        self.should_exit = True

    def handle_exit(self, sig, frame) -> None:
        self.service.drain()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        # uvicorn's own version raises the signal again once it has shut down, so a drained
        # server would still die of SIGTERM (status -15); this one only catches them.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets=None) -> None:
        grace = self.config.timeout_graceful_shutdown
        print(f"stopping: finishing the requests in flight (up to {grace} s)", file=sys.stderr, flush=True)
        await super().shutdown(sockets)
        print("stopped", file=sys.stderr, flush=True)


def configure_logging(quiet: bool) -> None:
    """The access log: JSON lines on stdout (none with --quiet). uvicorn's own log: errors only, on
    stderr (its warnings repeat what the access log says, e.g. a malformed request)."""
    access = logging.getLogger("imdb_sentiment.access")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.handlers, access.propagate = [handler], False
    access.setLevel(logging.WARNING if quiet else logging.INFO)
    server = logging.getLogger("uvicorn.error")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    server.handlers, server.propagate = [handler], False
    server.setLevel(logging.ERROR)


def raise_open_file_limit(wanted: int) -> int:
    """Lift the soft limit on open files (1,024 under systemd) to `wanted` if the hard limit allows;
    return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text}")
        return value
    return parse


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {text}")
    return int(text)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser("runtime.serve", __doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=port_number, default=8000, help="TCP port; 0 takes a free one (printed at start)")
    parser.add_argument("--workers", type=positive(int), default=os.cpu_count() or 1,
                        help="classifiers in the pool, one interpreter thread each (CPU cores here)")
    parser.add_argument("--max-body-bytes", type=positive(int), default=DEFAULTS.max_body_bytes, help="largest request body (413 above)")
    parser.add_argument("--max-batch", type=positive(int), default=DEFAULTS.max_batch, help="most texts in one request (413 above)")
    parser.add_argument("--request-timeout", type=positive(float), default=DEFAULTS.request_timeout,
                        help="seconds for a whole request (line, headers, body) to arrive (408 after)")
    parser.add_argument("--keep-alive", type=positive(int), default=5, help="seconds an idle connection stays open")
    parser.add_argument("--max-connections", type=positive(int), default=1024,
                        help=f"open connections; a request beyond them gets 503, but health checks are answered "
                             f"on {HEALTH_RESERVE} more")
    parser.add_argument("--max-connections-per-client", type=positive(int), default=128,
                        help="open connections from one client address; one more is refused with 429 (behind a "
                             "reverse proxy every client has the proxy's address: raise it)")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="another name clients may reach the server by (Host header), repeatable (default: the "
                             "--host value, localhost names for loopback or all addresses, any IP address)")
    parser.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                        help="a web origin (https://app.example) whose pages may call the server, repeatable "
                             "(default: none; the server's own page always may)")
    parser.add_argument("--grace", type=positive(int), default=20,
                        help="seconds to finish the requests in flight on SIGTERM or SIGINT")
    parser.add_argument("--quiet", action="store_true", help="no access log (JSON lines on stdout)")
    return parser.parse_args(argv)


def served_hosts(host: str, allowed: list[str] | None) -> frozenset[str]:
    """The names a Host header may give: --host itself, the loopback names if it listens there,
    the machine's own name (and its mDNS .local) if it listens on every address, and --allowed-host."""
    names = {host_name(host)} | {host_name(name) for name in allowed or ()}
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or address is None or address.is_loopback or address.is_unspecified:
        names |= LOOPBACK_NAMES
    if address is not None and address.is_unspecified:
        machine = socket.gethostname().lower()
        names |= {machine, f"{machine}.local"}
    return frozenset(names)


def load_classifier(args: argparse.Namespace) -> SentimentClassifier:
    """One classifier of the pool (one interpreter thread); its warnings go to `report_warnings`."""
    return SentimentClassifier.from_bundle(args.model, args.backend, args.precision, args.graph, 1,
                                           allow_unverified=args.allow_unverified)


def report_warnings(service: SentimentService) -> None:
    """An unverified artifact's warning, from any thread (the pool's loads, explain's first use of
    its per-step artifact): one stderr line per artifact, not one per classifier, and kept for the
    answers' "warnings"."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, UnverifiedArtifactWarning):
            shown(message, category, filename, lineno, file, line)
        elif service.note_warning(unverified_warning(str(message))):
            print(f"warning: {message}", file=sys.stderr, flush=True)

    warnings.filterwarnings("always", category=UnverifiedArtifactWarning)  # each reaches show(), which dedups
    warnings.showwarning = show


def build_server(args: argparse.Namespace) -> DrainingServer:
    """The application, its classifier pool (loaded once the server runs) and uvicorn, as `args` ask."""
    metrics = Metrics()
    pool = ClassifierPool(args.workers, functools.partial(load_classifier, args))
    service = SentimentService(pool, metrics, Limits(args.max_body_bytes, args.max_batch, args.request_timeout))
    guards = Guards(args.request_timeout, args.max_connections, metrics,
                    max_connections_per_client=args.max_connections_per_client)
    access = Access(served_hosts(args.host, args.allowed_host),
                    frozenset(origin.strip().rstrip("/").lower() for origin in args.allow_origin or ()))
    config = uvicorn.Config(build_app(service, access), http=functools.partial(GuardedHttpToolsProtocol, guards=guards),
                            loop="asyncio", ws="none", lifespan="on", interface="asgi3", log_config=None,
                            access_log=False, server_header=False, timeout_keep_alive=args.keep_alive,
                            timeout_graceful_shutdown=args.grace)
    return DrainingServer(config, service)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    backends.show_native_logs = args.verbose
    configure_logging(args.quiet)
    wanted = args.max_connections + HEALTH_RESERVE + 64  # + the model files, logs and listener
    open_files = raise_open_file_limit(wanted)
    if open_files < wanted:
        print(f"warning: at most {open_files} open files (ulimit -n): fewer connections than --max-connections",
              file=sys.stderr)
    try:
        listener = listen(args.host, args.port)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    server = build_server(args)
    report_warnings(server.service)
    host, port = listener.getsockname()[:2]
    print(f"listening on http://{f'[{host}]' if ':' in host else host}:{port}; loading {args.model}",
          file=sys.stderr, flush=True)
    server.run(sockets=[listener])
    return 1 if server.load_error else 0


if __name__ == "__main__":
    sys.exit(main())
