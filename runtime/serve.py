"""Serve predictions over HTTP: `python -m runtime.serve` (also `imdb-sentiment-serve`).

    POST /v1/predict                {"texts": [...]}: a prediction or an error for each text
    POST /v2/models/{name}/infer    the Open Inference Protocol (KServe v2); GET /v2/health/ready
    GET  /metrics, /openapi.json    (runtime/serving/app.py and docs/serving.md list every endpoint)

`--models DIR` serves DIR/current (the folder runtime.update writes) and follows it: a new version
is loaded beside the old one, checked and swapped in between requests (runtime/serving/follow.py).

This module is the command: its options, turned into the records the server takes
(`runtime.classifier.ClassifierOptions`, `runtime.serving.server.ServerSettings`). The server itself
is the package runtime/serving: uvicorn with its httptools parser, which refuses malformed HTTP
instead of guessing, and the guards it adds (deadlines, limits, bounds on connections, a drained stop).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from runtime import cli, model_options
from runtime.serving.follow import FollowSettings
from runtime.serving.protocol import Limits
from runtime.serving.server import ServerSettings, serve
from runtime.serving.uvicorn_internals import HEALTH_RESERVE

# The defaults are the records' own: one place for each (docs/serving.md lists them).
DEFAULTS, LIMITS = ServerSettings(), Limits()


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


def address_list(text: str) -> tuple[str, ...]:
    """--forwarded-allow-ips: addresses or networks (10.0.0.0/8), comma-separated, or *."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        try:
            if item != "*":
                ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not an IP address or network") from None
    return items


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser("runtime.serve", __doc__.split("\n")[0])
    model_options.add_model_arguments(parser)
    parser.add_argument("--host", default=DEFAULTS.host, help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument(
        "--port", type=port_number, default=DEFAULTS.port, help="TCP port; 0 takes a free one (printed at start)"
    )
    parser.add_argument(
        "--workers",
        type=positive(int),
        default=DEFAULTS.workers,
        help="classifiers in the pool, one interpreter thread each (CPU cores here)",
    )
    add_limit_arguments(parser)
    add_access_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no access log (JSON lines on stdout)")
    add_follow_arguments(parser)
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    if args.models is not None and any(arg == "--model" or arg.startswith("--model=") for arg in given):
        parser.error("--models and --model exclude each other: --models serves DIR/current")
    return args


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """What a request and a client may be: sizes, times, connections, and the words known."""
    parser.add_argument(
        "--max-body-bytes", type=positive(int), default=LIMITS.max_body_bytes, help="largest request body (413 above)"
    )
    parser.add_argument(
        "--max-batch", type=positive(int), default=LIMITS.max_batch, help="most texts in one request (413 above)"
    )
    parser.add_argument(
        "--request-timeout",
        type=positive(float),
        default=LIMITS.request_timeout,
        help="seconds for a whole request (line, headers, body) to arrive (408 after)",
    )
    parser.add_argument(
        "--keep-alive", type=positive(int), default=DEFAULTS.keep_alive, help="seconds an idle connection stays open"
    )
    parser.add_argument(
        "--max-connections",
        type=positive(int),
        default=DEFAULTS.max_connections,
        help=f"open connections; a request beyond them gets 503, but health checks are answered "
        f"on {HEALTH_RESERVE} more",
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=positive(int),
        default=DEFAULTS.max_connections_per_client,
        help="open connections from one client address; one more is refused with 429 (behind a "
        "reverse proxy every client has the proxy's address: raise it)",
    )
    parser.add_argument(
        "--grace",
        type=positive(int),
        default=DEFAULTS.grace,
        help="seconds to finish the requests in flight on SIGTERM or SIGINT",
    )
    parser.add_argument(
        "--min-known",
        type=cli.share,
        default=LIMITS.min_known,
        metavar="SHARE",
        help="refuse a text when the model knows fewer than this share of the words it read, 0 to 1; "
        "a request may ask for more (default: 0, none refused)",
    )


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    """Who may call: the names the server is reached by, other sites' pages, the proxies believed."""
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="another name clients may reach the server by (Host header), repeatable (default: the "
        "--host value, localhost names for loopback or all addresses, any IP address)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="a web origin (https://app.example) whose pages may call the server, repeatable "
        "(default: none; the server's own page always may)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        type=address_list,
        default=DEFAULTS.forwarded_allow_ips,
        metavar="IPS",
        help="comma-separated addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
        "are believed, for the access log's client address (default: none, not even loopback's)",
    )


def add_follow_arguments(parser: argparse.ArgumentParser) -> None:
    """--models DIR (the folder runtime.update writes) and how often its `current` is looked at."""
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="serve DIR/current (as runtime.update writes it) and swap to each new version it points at "
        "(checked every --watch-interval, on SIGHUP, or POST /v2/repository/models/NAME/load); not with --model",
    )
    parser.add_argument(
        "--watch-interval",
        type=positive(float),
        default=FollowSettings.interval,
        help="seconds between looks at DIR/current (--models)",
    )


def server_settings(args: argparse.Namespace) -> ServerSettings:
    """The server's options of `parse_arguments`, as the record the server takes."""
    return ServerSettings(
        host=args.host,
        port=args.port,
        workers=args.workers,
        limits=Limits(args.max_body_bytes, args.max_batch, args.request_timeout, args.min_known),
        keep_alive=args.keep_alive,
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
        allowed_hosts=tuple(args.allowed_host or ()),
        allow_origins=tuple(args.allow_origin or ()),
        grace=args.grace,
        quiet=args.quiet,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )


def follow_settings(args: argparse.Namespace) -> FollowSettings | None:
    return FollowSettings(args.models, args.watch_interval) if args.models is not None else None


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    return serve(model_options.from_arguments(args), server_settings(args), follow_settings(args))


if __name__ == "__main__":
    sys.exit(main())
