"""The HTTP application (ASGI, on Starlette): the endpoints of both protocols, the pool of
classifiers they share, Prometheus metrics and the JSON access log. `runtime.serve` runs it.

    POST /v1/predict                       {"texts": [...]} -> a prediction or an error per text
    POST /v1/explain                       {"text": "..."} -> the opinion after every word (runtime/explain.py)
    GET  /, /explain.js, /explain.css      a page to explain a review in a browser (runtime/explain.*)
    GET  /v1/model, /healthz               the loaded model; 200 when ready, else 503
    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/1][/ready]
    POST /v2/models/{name}[/versions/1]/infer   the Open Inference Protocol (KServe v2)
    GET  /metrics, /openapi.json

The classifiers load in a background thread, so the server answers (live, not ready) from its
first moment and a stop never waits for a load; requests that need the model get 503 until they
are loaded. Answers are built and rendered to JSON in the pool's threads, never on the event loop.
Before the endpoints, `ObservedApp` refuses what a browser page or a flood could send (a Host not
served, another origin, an Expect it cannot meet, a request over the connection bound that is not a
health check) and turns any unexpected error into one log line and a JSON 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from runtime import backends, bundle, protocol
from runtime.classifier import BatchError, Prediction, SentimentClassifier
from runtime.explain import Explanation
from runtime.protocol import RequestError

ACCESS_LOG = logging.getLogger("imdb_sentiment.access")
ERROR_LOG = logging.getLogger("uvicorn.error")  # stderr, set up by runtime.serve
# The scope extension through which the server (runtime.serve) tells the app when the request
# began, as an event-loop time, and whether it arrived over the connection bound.
GUARD_EXTENSION = "imdb_sentiment.guard"
# "Status" of a request whose client left before sending all of it: logged, never sent (nginx's 499).
CLIENT_GONE = 499
HERE = Path(__file__).resolve().parent
PAGE = HERE / "explain.html"
# The page's script and style, served from files beside it (read when first asked for).
PAGE_FILES = {"/explain.js": ("explain.js", "text/javascript; charset=utf-8"),
              "/explain.css": ("explain.css", "text/css; charset=utf-8")}
# The page may load its own script and style and talk to this server only; no inline code runs.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
               "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Health checks are answered even on a connection over the bound (--max-connections).
HEALTH_PATHS = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready"})
# An answer is handed to the server in pieces of this size; flow control holds each until the
# client has taken enough of the last (runtime.serve sets the transport's buffer limits).
WRITE_CHUNK = 64 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# A request with a body over this is heavy (up to a second of work for 1 MiB): heavy requests use at
# most all classifiers but one at once, so a short request always finds one free.
HEAVY_BODY_BYTES = 64 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_batch: int = 64
    request_timeout: float = 10.0  # seconds for a whole request to arrive


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


def package_version() -> str:
    try:
        return metadata.version("imdb-sentiment-edge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def log_access(**fields) -> None:
    """One JSON line on the access log (stdout; `--quiet` turns it off)."""
    if ACCESS_LOG.isEnabledFor(logging.INFO):
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ACCESS_LOG.info(json.dumps({"time": now, **fields}, ensure_ascii=False))


def classify_each(classifier: SentimentClassifier, texts: list[str]) -> list[Prediction | str]:
    """Each text's Prediction, or the message saying why it has none."""
    try:
        return classifier.classify_batch(texts)
    except BatchError as error:
        return [prediction if prediction is not None else error.errors[index]
                for index, prediction in enumerate(error.predictions)]


class ClassifierPool:
    """`size` classifiers and as many threads, so `size` requests classify at once (one per core)
    while the event loop goes on serving; a thread borrows an idle classifier for one request."""

    def __init__(self, size: int, load_classifier: Callable[[], SentimentClassifier]):
        self.size = size
        self._load_classifier = load_classifier
        self._idle: queue.SimpleQueue[SentimentClassifier] = queue.SimpleQueue()
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="classifier")
        self._classifiers: list[SentimentClassifier] = []
        self.description: dict = {}

    def load(self) -> None:
        """Load every classifier (blocking; the server calls it from a thread)."""
        for _ in range(self.size):
            classifier = self._load_classifier()
            self._classifiers.append(classifier)
            self._idle.put(classifier)
        self.description = self._classifiers[0].describe()

    async def run(self, work: Callable[[SentimentClassifier], T]) -> T:
        """`work(classifier)` in a pool thread, with a classifier to itself: the classifying and the
        answer's JSON both happen there, so the event loop only moves bytes."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._borrow, work)

    def _borrow(self, work: Callable[[SentimentClassifier], T]) -> T:
        classifier = self._idle.get()
        try:
            return work(classifier)
        finally:
            self._idle.put(classifier)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for classifier in list(self._classifiers):
            classifier.close()


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("imdb_sentiment_http_requests", "HTTP requests answered, by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("imdb_sentiment_http_request_duration_seconds", "Time from a request's arrival "
                                 "at the application to its answer", ["endpoint"], registry=self.registry,
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10))
        self.in_flight = Gauge("imdb_sentiment_http_requests_in_flight", "Requests being answered",
                               registry=self.registry)
        self.reviews = Counter("imdb_sentiment_reviews_classified", "Reviews classified, by predicted label",
                               ["label"], registry=self.registry)
        self.reviews_refused = Counter("imdb_sentiment_reviews_refused", "Texts of a request that could not be "
                                       "classified (no words, too long)", registry=self.registry)
        self.ready = Gauge("imdb_sentiment_ready", "1 when the model is loaded and the server is not draining",
                           registry=self.registry)
        self.model = Info("imdb_sentiment_model", "The loaded model", registry=self.registry)

    def count_outcomes(self, outcomes: list[Prediction | str]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, str):
                self.reviews_refused.inc()
            else:
                self.reviews.labels(outcome.label).inc()

    def count_request(self, endpoint: str, method: str, status: int, seconds: float | None = None) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint).observe(seconds)


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers)


class RenderedJSON(Response):
    """A JSON answer rendered in a pool thread, handed to the server WRITE_CHUNK bytes at a time: the
    server waits for a slow reader between pieces (and drops one that stops reading), so a large
    answer never sits whole in a connection's buffer."""
    media_type = "application/json"

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body = self.body
        for start in range(0, max(len(body), 1), WRITE_CHUNK):
            end = start + WRITE_CHUNK
            await send({"type": "http.response.body", "body": body[start:end], "more_body": end < len(body)})


def unverified_warning(message: str) -> str:
    """What clients are told of an unverified artifact: the warning without the server's folders."""
    path, _, rest = message.partition(": ")
    return f"unverified model: {Path(path).name}: {rest}" if rest else f"unverified model: {message}"


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class ClientGone(Exception):
    """The client closed its connection before its request had arrived."""


class SentimentService:
    """The endpoints, over one ClassifierPool. `phase`: loading -> ready -> draining (or failed)."""

    def __init__(self, pool: ClassifierPool, metrics: Metrics, limits: Limits = Limits()):
        self.pool, self.metrics, self.limits = pool, metrics, limits
        self.phase = "loading"
        self.version = package_version()
        self.on_loaded: Callable[[], None] | None = None  # set by the server: say so
        self.on_load_failed: Callable[[BaseException], None] | None = None  # set by the server: stop, exit 1
        self._openapi = protocol.openapi_document(self.version, limits.max_batch, limits.max_body_bytes)
        self._page = PAGE.read_bytes()
        self._page_files: dict[str, bytes] = {}
        # Warnings about the loaded model (an unverified artifact), in every answer about it.
        self.warnings: tuple[str, ...] = ()
        self._warnings_lock = threading.Lock()
        self._heavy_slots = asyncio.Semaphore(max(1, pool.size - 1))

    # --- life cycle ---

    def start_loading(self) -> None:
        """Load the classifiers in a daemon thread: the server answers meanwhile, and a stop never
        waits for a load that hangs (a stuck file, a slow disk); the process exits without it."""
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                self.pool.load()
                outcome = None
            except Exception as error:  # any load failure: said in one line, and the server stops
                outcome = error
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped meanwhile
                loop.call_soon_threadsafe(self._load_finished, outcome)

        threading.Thread(target=load, name="load-classifiers", daemon=True).start()

    def _load_finished(self, error: BaseException | None) -> None:
        if error is not None:
            self.phase = "failed"
            if self.on_load_failed is not None:
                self.on_load_failed(error)
            return
        description = self.pool.description
        self.metrics.model.info({key: str(description.get(key)) for key in ("name", "backend", "interpreter", "graph", "precision")}
                                | {"labels": ",".join(description["labels"])})
        if self.phase == "loading":
            self.phase = "ready"
            self.metrics.ready.set(1)
        if self.on_loaded is not None:
            self.on_loaded()

    def note_warning(self, message: str) -> bool:
        """Keep a warning about the model for the answers; False if it was already known."""
        with self._warnings_lock:
            if message in self.warnings:
                return False
            self.warnings += (message,)
            return True

    def drain(self) -> None:
        """Stop saying ready (the server stops accepting and finishes what is in flight)."""
        if self.phase in ("loading", "ready"):
            self.phase = "draining"
        self.metrics.ready.set(0)

    def _not_ready(self) -> str:
        return {"loading": "the model is loading", "draining": "the server is shutting down",
                "failed": "the model could not be loaded"}[self.phase]

    def _require_model(self) -> None:
        # Draining still answers (a request that reached the app before the stop is finished), if the
        # classifiers are loaded: a stop may come while they load.
        if not self.pool.description or self.phase == "failed":
            raise RequestError(503, self._not_ready(), {"Retry-After": "1"})

    def _require_named_model(self, request: Request) -> str:
        self._require_model()
        name, served = request.path_params["name"], self.pool.description["name"]
        if name != served:
            raise RequestError(404, f"no model named {name!r}; this server serves {served!r}")
        version = request.path_params.get("version")
        if version is not None and version != protocol.MODEL_VERSION:
            raise RequestError(404, f"model {name!r} has no version {version!r}; it has {protocol.MODEL_VERSION!r}")
        return name

    async def _run(self, request: Request, work: Callable[[SentimentClassifier], T]) -> T:
        """`work` on a classifier of the pool; a heavy request first waits (on the loop) for a slot."""
        if request.state.body_bytes <= HEAVY_BODY_BYTES:
            return await self.pool.run(work)
        async with self._heavy_slots:
            return await self.pool.run(work)

    async def _read_json(self, request: Request) -> object:
        """The request's JSON body, read within the request's deadline and the body limit."""
        headers = request.headers
        content_type = headers.get("content-type")
        # Required, not assumed: a page of another site can send a form type or none without asking
        # the browser's leave (a CORS preflight); application/json needs it.
        if content_type is None or not is_json_media_type(content_type):
            raise RequestError(415, f"the body must be JSON (Content-Type: application/json), not "
                                    f"{content_type or 'a body without a Content-Type'}")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise RequestError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
        if "inference-header-content-length" in headers:
            raise RequestError(415, "the binary tensor data extension is not supported; send the tensors as JSON")
        encoding, length = headers.get("transfer-encoding"), headers.get("content-length")
        if encoding is None and length is None:
            raise RequestError(411, "a Content-Length header is required")
        if encoding is not None and encoding.strip().lower() != "chunked":
            raise RequestError(400, f"unsupported Transfer-Encoding {encoding!r}; only chunked")
        limit = self.limits.max_body_bytes
        if length is not None and int(length) > limit:  # the HTTP parser has checked it is digits
            raise RequestError(413, f"body of {length} bytes; at most {limit}")
        guard = request.scope.get("extensions", {}).get(GUARD_EXTENSION)
        deadline = guard["deadline"] if guard else asyncio.get_running_loop().time() + self.limits.request_timeout
        body = bytearray()
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        raise RequestError(413, f"body over {limit} bytes")
        except TimeoutError:
            raise RequestError(408, f"the request did not arrive within {self.limits.request_timeout:g} s") from None
        except ClientDisconnect:
            raise ClientGone() from None
        request.state.body_bytes = len(body)
        return protocol.read_json(bytes(body))

    # --- the simple protocol ---

    async def predict(self, request: Request) -> Response:
        self._require_model()
        texts = protocol.predict_texts(await self._read_json(request), self.limits.max_batch)
        return RenderedJSON(await self._run(request, functools.partial(self._predict_answer, texts)))

    def _predict_answer(self, texts: list[str], classifier: SentimentClassifier) -> bytes:  # in a pool thread
        outcomes = classify_each(classifier, texts)
        self.metrics.count_outcomes(outcomes)
        return protocol.render(protocol.predict_response(outcomes, self.warnings))

    async def explain(self, request: Request) -> Response:
        self._require_model()
        text = protocol.explain_text(await self._read_json(request))
        try:
            answer = await self._run(request, functools.partial(self._explain_answer, text))
        except (bundle.BundleError, backends.BackendError) as error:  # no per-step artifact for this model
            raise RequestError(501, f"this model cannot explain: {error}") from None
        if isinstance(answer, str):
            raise RequestError(422, answer)
        return RenderedJSON(answer)

    def _explain_answer(self, text: str, classifier: SentimentClassifier) -> bytes | str:  # in a pool thread
        """The explanation's JSON, or the message saying why it has none (as for a text of /v1/predict)."""
        try:
            explanation: Explanation = classifier.explain(text)
        except (ValueError, TypeError) as error:
            self.metrics.count_outcomes([str(error)])
            return str(error)
        self.metrics.count_outcomes([explanation])
        return protocol.render(protocol.with_warnings(explanation.to_dict(), self.warnings))

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self._page, headers=self._page_headers())

    async def page_file(self, request: Request) -> Response:
        """The page's script or style, read from its file when first asked for."""
        name, media_type = PAGE_FILES[request.url.path]
        content = self._page_files.get(name)
        if content is None:
            try:
                content = self._page_files[name] = (HERE / name).read_bytes()
            except OSError:
                raise RequestError(404, f"no such file: {name}") from None
        return Response(content, media_type=media_type, headers=self._page_headers())

    @staticmethod
    def _page_headers() -> dict[str, str]:
        return {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}

    async def model_description(self, request: Request) -> Response:
        self._require_model()
        return JSONResponse(protocol.with_warnings(self.pool.description, self.warnings))

    async def healthz(self, request: Request) -> Response:
        if self.phase == "ready":
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": self.phase, "error": self._not_ready()}, 503)

    # --- the Open Inference Protocol ---

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(protocol.server_metadata(self.version))

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        if self.phase == "ready":
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "error": self._not_ready()}, 503)

    async def model_metadata(self, request: Request) -> Response:
        name = self._require_named_model(request)
        return JSONResponse(protocol.model_metadata(name, self.pool.description["backend"], self.pool.description["labels"]))

    async def model_ready(self, request: Request) -> Response:
        name = self._require_named_model(request)
        if self.phase != "ready":
            return JSONResponse({"name": name, "ready": False, "error": self._not_ready()}, 503)
        return JSONResponse({"name": name, "ready": True})

    async def infer(self, request: Request) -> Response:
        name = self._require_named_model(request)
        inference = protocol.infer_request(await self._read_json(request), self.limits.max_batch)
        answer = await self._run(request, functools.partial(self._infer_answer, name, inference))
        if isinstance(answer, str):
            raise RequestError(400, answer)
        return RenderedJSON(answer)

    def _infer_answer(self, name: str, inference: protocol.InferRequest, classifier: SentimentClassifier) -> bytes | str:
        """The inference response's JSON (in a pool thread), or why the request fails."""
        outcomes = classify_each(classifier, inference.texts)
        self.metrics.count_outcomes(outcomes)
        failed = [(index, outcome) for index, outcome in enumerate(outcomes) if isinstance(outcome, str)]
        if failed:  # the protocol has no per-item errors: the request fails, naming the texts
            shown = "; ".join(f"element {index}: {message}" for index, message in failed[:3])
            return f'input "{protocol.INPUT_TEXT}" {shown}' + (f"; and {len(failed) - 3} more" if len(failed) > 3 else "")
        return protocol.render(protocol.infer_response(name, inference, self.pool.description["labels"], outcomes))

    # --- operations ---

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)

    def routes(self) -> list[Route]:
        get, post = ["GET"], ["POST"]  # Starlette answers HEAD for GET routes
        model, version = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
        return [
            Route("/v1/predict", self.predict, methods=post),
            Route("/v1/explain", self.explain, methods=post),
            Route("/", self.page, methods=get),
            *(Route(path, self.page_file, methods=get) for path in PAGE_FILES),
            Route("/v1/model", self.model_description, methods=get),
            Route("/healthz", self.healthz, methods=get),
            Route("/v2", self.server_metadata, methods=get),
            Route("/v2/", self.server_metadata, methods=get),
            Route("/v2/health/live", self.live, methods=get),
            Route("/v2/health/ready", self.ready, methods=get),
            Route(model, self.model_metadata, methods=get),
            Route(version, self.model_metadata, methods=get),
            Route(model + "/ready", self.model_ready, methods=get),
            Route(version + "/ready", self.model_ready, methods=get),
            Route(model + "/infer", self.infer, methods=post),
            Route(version + "/infer", self.infer, methods=post),
            Route("/metrics", self.prometheus, methods=get),
            Route("/openapi.json", self.openapi, methods=get),
        ]


async def request_error(request: Request, error: RequestError) -> Response:
    headers = dict(error.headers)
    if request.method == "POST":
        headers["Connection"] = "close"  # its body may be unread; the next request would start inside it
    return json_error(error.status, error.message, headers)


async def http_error(request: Request, error: HTTPException) -> Response:
    messages = {404: f"no such endpoint: {request.url.path}",
                405: f"{request.method} is not allowed on {request.url.path}; use {(error.headers or {}).get('Allow')}"}
    return json_error(error.status_code, messages.get(error.status_code, str(error.detail)), error.headers)


async def client_gone(request: Request, error: ClientGone) -> Response:
    return Response(status_code=CLIENT_GONE)  # never reaches the client; the access log says 499


async def internal_error(request: Request, error: Exception) -> Response:
    # Starlette sends this, then raises the error again: ObservedApp logs it, in one line.
    return json_error(500, "internal error; the server's log says more", {"Connection": "close"})


def one_line(error: BaseException) -> str:
    return re.sub(r"\s+", " ", f"{type(error).__name__}: {error}")[:300]


class ObservedApp:
    """ASGI middleware around the app: refuses what must not reach the endpoints (a Host this server
    does not answer for, another origin, an Expect it cannot meet, a request over the connection
    bound that is not a health check), counts, times and logs every request (one JSON line each),
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
            # The server's own page names the host it was loaded from (behind a TLS proxy its scheme is
            # https while this server sees http: the host is what tells a page of this server).
            own = "://" in origin and origin.split("://", 1)[1] == host.strip().lower()
            if not own and origin not in self.access.origins:
                return 403, f"requests from pages of {origin} are not allowed (see --allow-origin)"
        expect = next((value for name, value in headers if name == b"expect"), None)
        if expect is not None and expect.strip().lower() != b"100-continue":
            return 417, "only Expect: 100-continue is supported"
        guard = scope.get("extensions", {}).get(GUARD_EXTENSION)
        if guard and guard["over_capacity"] and scope["path"] not in HEALTH_PATHS:
            return 503, "too many connections; try again shortly"
        return None

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
                await internal_error(None, error)(scope, receive, send_noting_status)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = scope.get("route")
            endpoint = route.path if route is not None else "none"
            self.metrics.count_request(endpoint, scope["method"], status, seconds)
            client = scope.get("client")
            log_access(client=client[0] if client else None, method=scope["method"], path=scope["path"],
                       status=status, ms=round(seconds * 1000, 3))


def build_app(service: SentimentService, access: Access = Access()) -> ObservedApp:
    """The ASGI application: starts loading the classifiers at startup, closes them at shutdown
    (a load still running is left to its daemon thread)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.start_loading()  # not awaited: serve (live, not ready) while it loads
        yield
        if service.pool.description:
            service.pool.close()

    middleware = []
    if access.origins:  # the pages allowed need CORS answers (and their browsers' preflights) to call the API
        middleware.append(Middleware(CORSMiddleware, allow_origins=sorted(access.origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Content-Type"], max_age=600))
    app = Starlette(routes=service.routes(), lifespan=lifespan, middleware=middleware,
                    exception_handlers={RequestError: request_error, HTTPException: http_error, ClientGone: client_gone,
                                        Exception: internal_error})
    app.router.redirect_slashes = False  # /v1/model/ is a 404, not a redirect
    return ObservedApp(app, service.metrics, access)
