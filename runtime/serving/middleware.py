"""What runs around every request, before and after the endpoints: who may call (the Host a client
names, the origin of a browser's page and where the browser says a request comes from, an Expect,
the connection bound), what a body's Content-Type may be, one JSON access-log line a request, its
metrics, and one log line and a JSON 500 for an unexpected error, never a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from starlette.responses import JSONResponse

from runtime.serving.metrics import Metrics

ACCESS_LOG = logging.getLogger("imdb_sentiment.access")
ERROR_LOG = logging.getLogger("uvicorn.error")  # stderr, set up by runtime.serving.server
# The scope extension through which the connection (runtime.serving.uvicorn_internals) tells the app
# when the request began, as an event-loop time, and whether it arrived over the connection bound.
GUARD_EXTENSION = "imdb_sentiment.guard"
# "Status" of a request whose client left before sending all of it: logged, never sent (nginx's 499).
CLIENT_GONE = 499
# Health checks are answered even on a connection over the bound (--max-connections).
HEALTH_PATHS = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# What a browser says in Sec-Fetch-Site of a request made by a page of another origin (of another
# site, or another origin of the same site). Browsers send it with every request to a trustworthy
# origin (loopback, https); and an Origin header with every request but a GET or HEAD.
OTHER_ORIGIN_FETCHES = frozenset({"cross-site", "same-site"})


@dataclass(frozen=True)
class Access:
    """Whom the server answers. `hosts`: the names a Host header may give (an IP address is always
    fine: there is no DNS name to rebind). `origins`: pages of other origins allowed to call it
    (a browser's Origin header; the server's own origin always is)."""

    hosts: frozenset[str] = LOOPBACK_NAMES
    origins: frozenset[str] = frozenset()


def host_name(value: str) -> str:
    """A Host header's name without its port, lowercased: "[::1]:8000" -> "::1", "Pi.local." -> "pi.local"."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def served_hosts(host: str, allowed: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a Host header may give: --host itself, the loopback names if it listens there,
    the machine's own name (and its mDNS .local) if it listens on every address, and --allowed-host."""
    names = {host_name(host)} | {host_name(name) for name in allowed}
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


def content_type_refusal(headers, binary: bool = False) -> str | None:
    """Why a POST body may not be read, by its Content-Type (a 415's message), else None. `headers`:
    the request's, case-insensitive (Starlette's Headers). JSON (`application/json`, `*+json`) always
    may; with `binary` (an OIP body with binary tensor data), `application/octet-stream` too.

    A page of another site can send a form type, text/plain or none without asking the browser's
    leave (a CORS preflight): those are what must never be read as JSON from a page. A body without a
    Content-Type is JSON from a client that is no browser page (tritonclient and many scripts send
    none): one that sends neither Origin nor Sec-Fetch-Site, which browsers send (requests of
    another site's pages are refused before this, in `ObservedApp.refusal`)."""
    content_type = headers.get("content-type")
    if content_type is None:
        if "origin" in headers or "sec-fetch-site" in headers:
            return "a page must send Content-Type: application/json with its body"
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    if binary and media_type == "application/octet-stream":
        return None
    expected = "application/octet-stream or application/json" if binary else "application/json"
    return f"the body must be JSON (Content-Type: {expected}), not {content_type[:100]}"


def log_access(**fields) -> None:
    """One JSON line on the access log (stdout; `--quiet` turns it off)."""
    if ACCESS_LOG.isEnabledFor(logging.INFO):
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ACCESS_LOG.info(json.dumps({"time": now, **fields}, ensure_ascii=False))


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers)


async def internal_error(request, error: Exception) -> JSONResponse:
    # Starlette sends this, then raises the error again: ObservedApp logs it, in one line.
    return json_error(500, "internal error; the server's log says more", {"Connection": "close"})


def one_line(error: BaseException) -> str:
    return re.sub(r"\s+", " ", f"{type(error).__name__}: {error}")[:300]


class ObservedApp:
    """ASGI middleware around the app: refuses what must not reach the endpoints (a Host this server
    does not answer for, a request of another origin's page, an Expect it cannot meet, a request over
    the connection bound that is not a health check), counts, times and logs every request (one JSON line each),
    and turns an unexpected error into one line on stderr and a JSON 500, never a traceback."""

    def __init__(self, app, metrics: Metrics, access: Access = Access()):
        self.app, self.metrics, self.access = app, metrics, access

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, message) if this request is refused before the application, else None."""
        headers = scope["headers"]
        hosts = [value for name, value in headers if name == b"host"]
        if len(hosts) > 1 or (not hosts and scope["http_version"] != "1.0"):
            return 400, "a request needs exactly one Host header"
        host = hosts[0].decode("latin-1") if hosts else ""
        name = host_name(host)
        if hosts and name not in self.access.hosts and not is_ip_address(name):
            # DNS rebinding: a page of attacker.example resolved to this address still says so in Host.
            return 421, f"this server does not answer for the host {name!r} (see --allowed-host)"
        origin = next((value.decode("latin-1") for name, value in headers if name == b"origin"), None)
        if origin is not None:
            origin = origin.strip().rstrip("/").lower()
            if not self._origin_allowed(origin, host):
                return 403, f"requests from pages of {origin} are not allowed (see --allow-origin)"
        elif self._fetched_by_another_origin(scope):
            # A page of another origin whose browser sent no Origin (a GET or HEAD): refused too, but
            # for a link to the page followed from another site (a navigation, which no page reads).
            return 403, "requests from pages of another site are not allowed (see --allow-origin)"
        expect = next((value for name, value in headers if name == b"expect"), None)
        if expect is not None and expect.strip().lower() != b"100-continue":
            return 417, "only Expect: 100-continue is supported"
        guard = scope.get("extensions", {}).get(GUARD_EXTENSION)
        if guard and guard["over_capacity"] and scope["path"] not in HEALTH_PATHS:
            return 503, "too many connections; try again shortly"
        return None

    @staticmethod
    def _fetched_by_another_origin(scope) -> bool:
        """The browser says the request comes from a page of another origin (Sec-Fetch-Site), and it
        is not a top-level navigation (the policy of web.dev's "resource isolation policy")."""
        fetch = {
            name: value.decode("latin-1").strip().lower()
            for name, value in scope["headers"]
            if name.startswith(b"sec-fetch-")
        }
        if fetch.get(b"sec-fetch-site") not in OTHER_ORIGIN_FETCHES:
            return False
        navigation = fetch.get(b"sec-fetch-mode") == "navigate" and scope["method"] in ("GET", "HEAD")
        return not (navigation and fetch.get(b"sec-fetch-dest") not in ("object", "embed"))

    def _origin_allowed(self, origin: str, host: str) -> bool:
        # The server's own page names the host it was loaded from (behind a TLS proxy its scheme is
        # https while this server sees http: the host is what tells a page of this server).
        own = "://" in origin and origin.split("://", 1)[1] == host.strip().lower()
        return own or origin in self.access.origins

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before answering
        response_started = False

        async def send_noting_status(message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
            await send(message)

        self.metrics.in_flight.inc()
        try:
            refused = self.refusal(scope)
            if refused is not None:
                # Closed after: an unread body must not be read as the next request.
                headers = {"Connection": "close", **({"Retry-After": "1"} if refused[0] == 503 else {})}
                await json_error(*refused, headers)(scope, receive, send_noting_status)
            else:
                await self.app(scope, receive, send_noting_status)
        except Exception as error:  # a bug, or a failure no endpoint foresaw: one line, a JSON 500
            ERROR_LOG.error("%s %s: %s", scope["method"], scope["path"], one_line(error))
            if not response_started:
                await (await internal_error(None, error))(scope, receive, send_noting_status)
        finally:
            self.metrics.in_flight.dec()
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope, status: int, seconds: float) -> None:
        """The request's metrics and its access-log line."""
        route = scope.get("route")
        self.metrics.count_request(route.path if route is not None else "none", scope["method"], status, seconds)
        client = scope.get("client")
        log_access(
            client=client[0] if client else None,
            method=scope["method"],
            path=scope["path"],
            status=status,
            ms=round(seconds * 1000, 3),
        )
