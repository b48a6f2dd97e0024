"""Everything that leans on uvicorn's non-public internals, in one module: the connection protocol
(a subclass of uvicorn's httptools one) that closes uvicorn's gaps, and the server's signal
handling. `check_internals()` lists what of uvicorn they rely on; a test runs it, so an upgrade
of uvicorn (pinned to 0.54.* in the serve extra) that changes one fails by name, not by a
misbehaving server.

The connection adds: a deadline for the whole request to arrive (uvicorn bounds only idle
keep-alive time), a limit on the request head (431), JSON for the errors uvicorn answers itself,
a bound on connections (health checks still answered) and on each client address's (429), and a
deadline for a client to read its answer. What uvicorn's public settings and ASGI middleware can
carry instead was measured (probes/uvicorn_public.py, docs/serving.md): none of these without loss.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import ipaddress
import json
import signal
import threading
from dataclasses import dataclass, field
from http import HTTPStatus

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from runtime.serving.app import WRITE_CHUNK
from runtime.serving.metrics import Metrics
from runtime.serving.middleware import CLIENT_GONE, GUARD_EXTENSION, log_access

MAX_HEAD_BYTES = 16 * 1024  # request line and headers, as uvicorn's h11 parser allows by default
# Connections past --max-connections kept for health checks only; past these the connection is
# refused at once (503), before it can take the last file descriptors.
HEALTH_RESERVE = 16
# A connection's unsent answer above this pauses the app's writing (asyncio's flow control):
# with WRITE_CHUNK pieces, one connection holds at most about twice this much.
WRITE_BUFFER_HIGH = WRITE_CHUNK


def client_group(address: str) -> str:
    """What the per-client bound counts connections by: an IPv4 address (also one an IPv6 socket
    shows as ::ffff:a.b.c.d), or an IPv6 client's /64, which one host is given whole (counted per
    address, a client could open its bound from each of 2**64 addresses)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address  # not an IP address (a Unix socket's path): as given
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
    then hands its deadline to the app (in the scope's GUARD_EXTENSION), which enforces it on the body."""

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

    def _address(self) -> str:
        """The client's group for the per-client bound (`client_group`)."""
        return client_group(self.client[0]) if self.client else ""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # Bounded buffers: above this, the transport pauses the app's writing until the client reads.
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._start_clock()
        self.guards.per_client[self._address()] += 1
        if len(self.connections) > self.guards.max_connections + HEALTH_RESERVE:
            self._refuse(503, "too many connections; try again shortly", {"retry-after": "1"})
        elif self.guards.per_client[self._address()] > self.guards.max_connections_per_client:
            # One address holding hundreds of connections would starve everyone else.
            self._refuse(
                429,
                f"more than {self.guards.max_connections_per_client} connections from one address",
                {"retry-after": "1"},
            )

    def connection_lost(self, exc) -> None:
        if self._deadline_timer is not None and self._request_begun:
            self._log(CLIENT_GONE, "the client left before its request arrived")
        self._stop_clock()
        self._stop_write_timer()
        address = self._address()
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
        log_access(
            client=self.client[0] if self.client else None,
            status=CLIENT_GONE,
            error=f"the client did not read its answer for {self.guards.request_timeout:g} s; dropped",
        )

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
            "deadline": self._deadline,
            "over_capacity": len(self.connections) > self.guards.max_connections,
        }

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


class SignalCatchingServer(uvicorn.Server):
    """uvicorn's server whose signal handling only catches: uvicorn's own capture_signals raises the
    signal again once it has shut down, so a drained server would still die of SIGTERM (status -15)."""

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# --- what of uvicorn the classes above (and server.DrainingServer) rely on -----------------------

# Each method overridden or called, with its parameters as this module calls them.
METHODS = {
    HttpToolsProtocol: {
        "__init__": ("self", "config", "server_state", "app_state", "_loop"),
        "connection_made": ("self", "transport"),
        "connection_lost": ("self", "exc"),
        "data_received": ("self", "data"),
        "on_url": ("self", "url"),
        "on_header": ("self", "name", "value"),
        "on_message_begin": ("self",),
        "on_headers_complete": ("self",),
        "shutdown": ("self",),
        "send_400_response": ("self", "msg"),
        "pause_writing": ("self",),
        "resume_writing": ("self",),
    },
    uvicorn.Server: {
        "capture_signals": ("self",),
        "handle_exit": ("self", "sig", "frame"),
        "shutdown": ("self", "sockets"),
    },
}
# Attributes of a connection read above, set by HttpToolsProtocol.__init__ or connection_made.
PROTOCOL_ATTRIBUTES = ("loop", "transport", "client", "connections", "cycle", "scope", "server_state")
# What a piece of uvicorn's code must still say: (function, text in its source, why it matters).
SOURCES = (
    (
        HttpToolsProtocol.data_received,
        "send_400_response",
        "a parser error (HeadTooLarge raised in a callback) is answered through send_400_response",
    ),
    (HttpToolsProtocol.connection_made, "self.client", "the client's address is set when the connection is made"),
    (RequestResponseCycle.__init__, "self.response_complete", "a cycle says when its response is complete"),
    (ServerState.__init__, "self.default_headers", "the server's default headers, sent on every answer"),
    (uvicorn.Server.handle_exit, "self.should_exit", "a signal sets should_exit, which starts the shutdown"),
)


def check_internals() -> list[str]:
    """What of uvicorn's internals this module relies on but the installed uvicorn lacks or changed,
    one sentence each naming the internal; empty when all is as expected."""
    problems = []
    for owner, methods in METHODS.items():
        for name, expected in methods.items():
            method = getattr(owner, name, None)
            if method is None:
                problems.append(f"uvicorn {uvicorn.__version__}: {owner.__qualname__}.{name} is gone")
                continue
            found = tuple(inspect.signature(inspect.unwrap(method)).parameters)
            if found != expected:
                problems.append(
                    f"uvicorn {uvicorn.__version__}: {owner.__qualname__}.{name} takes {found}, not {expected}"
                )
    for function, text, why in SOURCES:
        if text not in inspect.getsource(function):
            problems.append(f"uvicorn {uvicorn.__version__}: {function.__qualname__} no longer mentions {text} ({why})")
    loop = asyncio.new_event_loop()
    try:
        connection = HttpToolsProtocol(
            uvicorn.Config(app=_no_app, log_config=None, interface="asgi3"), ServerState(), {}, _loop=loop
        )
    finally:
        loop.close()
    problems += [
        f"uvicorn {uvicorn.__version__}: HttpToolsProtocol has no attribute {name!r}"
        for name in PROTOCOL_ATTRIBUTES
        if not hasattr(connection, name)
    ]
    return problems


async def _no_app(scope, receive, send) -> None:
    """An ASGI app for check_internals' connection, which never serves."""
