"""Serve predictions over HTTP with the standard library only: `python -m runtime.serve`.

    POST /v1/predict   {"texts": ["...", ...]}  ->  {"predictions": [{"label", "score", "probabilities"}, ...]}
    GET  /v1/model     the loaded model's description (manifest config, metrics, backend)
    GET  /healthz      {"status": "ok"}

Interpreters are not thread-safe, so the server keeps a pool of classifiers, one per worker
(default: one per CPU core); a request borrows one for its batch and gives it back. Requests
beyond the pool wait their turn instead of sharing an interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from runtime import backends, bundle
from runtime.classifier import SentimentClassifier
from runtime.predict import add_model_arguments

MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 64
READ_TIMEOUT_SECONDS = 10


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class ClassifierPool:
    """`size` classifiers of one bundle, each used by one request at a time."""

    def __init__(self, size: int, **load_options):
        self._idle: queue.Queue[SentimentClassifier] = queue.Queue()
        for _ in range(size):
            self._idle.put(SentimentClassifier.from_bundle(**load_options))
        self.size = size
        self.description = self._idle.queue[0].describe()

    @contextmanager
    def borrow(self):
        classifier = self._idle.get()
        try:
            yield classifier
        finally:
            self._idle.put(classifier)


def parse_texts(body: bytes, max_batch: int) -> list[str]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not UTF-8 JSON ({error})") from None
    texts = payload.get("texts") if isinstance(payload, dict) else None
    if not isinstance(texts, list) or not texts:
        raise RequestError(HTTPStatus.BAD_REQUEST, 'expected {"texts": ["review", ...]} with at least one text')
    if len(texts) > max_batch:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(texts)} texts; at most {max_batch} per request")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"texts[{index}] is {type(text).__name__}, not a string")
    return texts


def make_handler(pool: ClassifierPool, max_body: int, max_batch: int, quiet: bool, read_timeout: float):
    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout  # a client that stops sending is dropped, not waited on forever
        protocol_version = "HTTP/1.1"
        server_version = "imdb-sentiment"

        def send_json(self, status: HTTPStatus, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_error_json(self, status: HTTPStatus, message: str) -> None:
            if status >= 400 and self.command == "POST":
                self.close_connection = True  # the unread body may still be in the socket
            self.send_json(status, {"error": message})

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self.send_json(HTTPStatus.OK, {"status": "ok"})
            elif self.path == "/v1/model":
                self.send_json(HTTPStatus.OK, pool.description)
            else:
                self.send_error_json(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {self.path}")

        def do_POST(self) -> None:
            try:
                if self.path != "/v1/predict":
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
                texts = parse_texts(self.read_body(), max_batch)
                with pool.borrow() as classifier:
                    try:
                        predictions = [prediction.to_dict() for prediction in classifier.classify_batch(texts)]
                    except ValueError as error:
                        raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None
                self.send_json(HTTPStatus.OK, {"predictions": predictions})
            except RequestError as error:
                self.send_error_json(error.status, str(error))
            except TimeoutError:
                self.close_connection = True

        def read_body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            if int(length) > max_body:
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes; at most {max_body}")
            body = self.rfile.read(int(length))
            if len(body) < int(length):
                raise RequestError(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
            return body

        def log_message(self, format: str, *args) -> None:
            if not quiet:
                super().log_message(format, *args)

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Connections waiting to be accepted. socketserver's default, 5, is overrun when dozens of
    # clients connect at once, and a client can then see its connection reset.
    request_queue_size = 128


def make_server(pool: ClassifierPool, host: str = "127.0.0.1", port: int = 8000, max_body: int = MAX_BODY_BYTES,
                max_batch: int = MAX_BATCH, quiet: bool = False,
                read_timeout: float = READ_TIMEOUT_SECONDS) -> ThreadingHTTPServer:
    return Server((host, port), make_handler(pool, max_body, max_batch, quiet, read_timeout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.serve", description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="classifiers in the pool, each with one thread (default: CPU cores)")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH)
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)
    if min(args.workers, args.max_body_bytes, args.max_batch) < 1 or not 0 <= args.port < 65536:
        parser.error("--workers, --max-body-bytes and --max-batch must be positive, --port 0..65535")
    try:
        pool = ClassifierPool(args.workers, folder=args.model, backend=args.backend, precision=args.precision,
                              graph=args.graph, threads=1)
        server = make_server(pool, args.host, args.port, args.max_body_bytes, args.max_batch, args.quiet)
    except (bundle.BundleError, backends.BackendError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    print(f"serving {pool.description['name']} ({pool.description['backend']}, {args.precision}) "
          f"on http://{host}:{port} with {args.workers} workers", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
