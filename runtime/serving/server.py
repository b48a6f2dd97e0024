"""The server: uvicorn with its httptools parser, running the application (runtime/serving/app.py)
with the guarded connection (runtime/serving/uvicorn_internals.py). It listens at once, loads the
classifiers in the background, and on SIGTERM or SIGINT finishes the requests in flight and exits 0
(uvicorn re-raises the signal), even while the model is still loading. With --models it follows the
folder's `current` version (runtime/serving/follow.py) and says each swap or failed load on stderr.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import os
import resource
import socket
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from runtime.classifier import ClassifierOptions, UnverifiedArtifactWarning
from runtime.display import json_printable, printable
from runtime.serving import protocol
from runtime.serving.app import SentimentService, build_app
from runtime.serving.dataplane import DataPlane
from runtime.serving.follow import Follower, FollowSettings, ReloadError, ReloadOutcome, current_target
from runtime.serving.metrics import Metrics
from runtime.serving.middleware import Access, served_hosts
from runtime.serving.pool import ClassifierPool
from runtime.serving.protocol import Limits
from runtime.serving.uvicorn_internals import HEALTH_RESERVE, GuardedHttpToolsProtocol, Guards, SignalCatchingServer


@dataclass(frozen=True)
class ServerSettings:
    """How the server listens and what it allows (imdb-sentiment-serve's options; docs/serving.md)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # classifiers in the pool: one a core
    limits: Limits = field(default_factory=Limits)
    keep_alive: int = 5  # seconds an idle connection stays open
    max_connections: int = 1024
    max_connections_per_client: int = 128
    allowed_hosts: tuple[str, ...] = ()  # more names for the Host header
    allow_origins: tuple[str, ...] = ()  # other web origins whose pages may call the server
    grace: int = 20  # seconds for the requests in flight on SIGTERM or SIGINT
    quiet: bool = False  # no access log
    forwarded_allow_ips: tuple[str, ...] = ()  # proxies whose X-Forwarded-For is believed (none)


def say(line: str) -> None:
    """One line on stderr for the operator, control and format characters escaped: the manifest's
    name or an error quoting a value cannot drive the terminal or forge another line."""
    print(printable(line), file=sys.stderr, flush=True)


class EscapingFormatter(logging.Formatter):
    """A log line with its control and format characters escaped (`escape`): a client's path or
    header cannot drive the operator's terminal or forge a line."""

    def __init__(self, fmt: str, escape):
        super().__init__(fmt)
        self.escape = escape

    def format(self, record: logging.LogRecord) -> str:
        return self.escape(super().format(record))


class DrainingServer(SignalCatchingServer):
    """uvicorn's server: on SIGTERM or SIGINT it says not-ready, stops accepting, finishes the
    requests in flight (up to the grace period) and returns, so main() exits 0."""

    def __init__(self, config: uvicorn.Config, dataplane: DataPlane):
        super().__init__(config)
        self.dataplane, self.load_error = dataplane, None
        dataplane.on_loaded, dataplane.on_load_failed = self._loaded, self._load_failed

    def _loaded(self) -> None:
        d, size, version = (
            self.dataplane.pool.description,
            self.dataplane.pool.size,
            self.dataplane.holder.current.version,
        )
        say(
            f"ready: {d['name']} version {version} ({d['backend']} {d['precision']} {d['graph']}), "
            f"{size} classifier{'s' if size > 1 else ''}"
        )

    @staticmethod
    def _reloaded(outcome: ReloadOutcome) -> None:
        if outcome.outcome == "swapped":
            say(
                f"swapped: now serving version {outcome.version} ({outcome.trigger}; loaded and checked in {outcome.seconds:.2f} s)"
            )
        elif outcome.outcome == "failed":
            say(
                f"error: version {outcome.version or '?'} not loaded ({outcome.trigger}): {outcome.error}; version {outcome.serving} serves on"
            )

    def _load_failed(self, error: BaseException) -> None:
        self.load_error = error
        say(f"error: {error}")
        self.should_exit = True

    def handle_exit(self, sig, frame) -> None:
        self.dataplane.drain()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        grace = self.config.timeout_graceful_shutdown
        say(f"stopping: finishing the requests in flight (up to {grace} s)")
        await super().shutdown(sockets)
        say("stopped")


def configure_logging(quiet: bool) -> None:
    """The access log: JSON lines on stdout (none with --quiet). uvicorn's own log: errors only, on
    stderr (its warnings repeat what the access log says, e.g. a malformed request)."""
    access = logging.getLogger("imdb_sentiment.access")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(EscapingFormatter("%(message)s", json_printable))
    access.handlers, access.propagate = [handler], False
    access.setLevel(logging.WARNING if quiet else logging.INFO)
    server = logging.getLogger("uvicorn.error")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(levelname)s: %(message)s", printable))
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
    """The listening socket, marked as TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) on
    the connections of a listener whose protocol number says TCP, and socket.create_server says 0.
    With it on, uvicorn's answer body, written apart from its head, waited 40 ms for the client's
    delayed ACK (probes/uvicorn_public.py measures both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # "::" (every address) serves IPv4 clients too, as 0.0.0.0 does not serve IPv6 ones.
    both = family == socket.AF_INET6 and ipaddress.ip_address(host.partition("%")[0]).is_unspecified
    listener = socket.create_server((host, port), family=family, backlog=2048, dualstack_ipv6=both)
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=listener.detach())


def report_warnings(dataplane: DataPlane) -> None:
    """An unverified artifact's warning, from any thread (the pool's loads, explain's first use of
    its per-step artifact): one stderr line per artifact, not one per classifier, and kept for the
    answers' "warnings"."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, UnverifiedArtifactWarning):
            shown(message, category, filename, lineno, file, line)
        elif dataplane.note_warning(unverified_warning(str(message))):
            say(f"warning: {message}")

    warnings.filterwarnings("always", category=UnverifiedArtifactWarning)  # each reaches show(), which dedups
    warnings.showwarning = show


def unverified_warning(message: str) -> str:
    """What clients are told of an unverified artifact: the warning without the server's folders."""
    path, _, rest = message.partition(": ")
    return f"unverified model: {Path(path).name}: {rest}" if rest else f"unverified model: {message}"


def build_server(
    model: ClassifierOptions, settings: ServerSettings, follow: FollowSettings | None = None
) -> DrainingServer:
    """The application, its classifier pool (loaded once the server runs) and uvicorn, as asked.
    With `follow`, `model.folder` is the version folder that follow.models/current points at."""
    metrics = Metrics()
    version = model.folder.name if follow is not None else protocol.MODEL_VERSION
    pool = ClassifierPool.for_model(model, settings.workers)
    dataplane = DataPlane(pool, metrics, version)
    if follow is not None:
        dataplane.follower = Follower(follow, model, settings.workers, dataplane.holder, metrics)
        dataplane.follower.on_outcome = DrainingServer._reloaded
    guards = Guards(
        settings.limits.request_timeout,
        settings.max_connections,
        metrics,
        max_connections_per_client=settings.max_connections_per_client,
    )
    access = Access(
        served_hosts(settings.host, settings.allowed_hosts),
        frozenset(origin.strip().rstrip("/").lower() for origin in settings.allow_origins),
    )
    config = uvicorn.Config(
        build_app(SentimentService(dataplane, settings.limits), access),
        http=functools.partial(GuardedHttpToolsProtocol, guards=guards),
        loop="asyncio",
        ws="none",
        lifespan="on",
        interface="asgi3",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=settings.grace,
        # X-Forwarded-For is believed only from the proxies named (uvicorn trusts loopback's by default).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=",".join(settings.forwarded_allow_ips) or None,
    )
    return DrainingServer(config, dataplane)


def serve(model: ClassifierOptions, settings: ServerSettings, follow: FollowSettings | None = None) -> int:
    """Listen, load and serve until a signal; the exit status (1: cannot listen, no version to
    serve in follow.models, or the model failed to load)."""
    configure_logging(settings.quiet)
    if follow is not None:
        try:
            model = dataclasses.replace(model, folder=current_target(follow.models))
        except ReloadError as error:
            say(f"error: {error}")
            return 1
    wanted = settings.max_connections + HEALTH_RESERVE + 64  # + the model files, logs and listener
    open_files = raise_open_file_limit(wanted)
    if open_files < wanted:
        say(f"warning: at most {open_files} open files (ulimit -n): fewer connections than --max-connections")
    try:
        listener = listen(settings.host, settings.port)
    except OSError as error:
        say(f"error: cannot listen on {settings.host}:{settings.port}: {error}")
        return 1
    server = build_server(model, settings, follow)
    report_warnings(server.dataplane)
    host, port = listener.getsockname()[:2]
    say(f"listening on http://{f'[{host}]' if ':' in host else host}:{port}; loading {model.folder}")
    server.run(sockets=[listener])
    return 1 if server.load_error else 0
