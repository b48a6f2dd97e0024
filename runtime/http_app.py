"""The HTTP application (ASGI, on Starlette): the endpoints of both protocols, the pool of
classifiers they share, Prometheus metrics and the JSON access log. `runtime.serve` runs it.

    POST /v1/predict                       {"texts": [...]} -> a prediction or an error per text
    POST /v1/explain                       {"text": "..."} -> the opinion after every word (runtime/explain.py)
    GET  /                                 a page to explain a review in a browser (runtime/explain.html)
    GET  /v1/model, /healthz               the loaded model; 200 when ready, else 503
    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/1][/ready]
    POST /v2/models/{name}[/versions/1]/infer   the Open Inference Protocol (KServe v2)
    GET  /metrics, /openapi.json

The classifiers load in the background, so the server answers (live, not ready) from its first
moment; requests that need the model get 503 until they are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from runtime import backends, bundle, protocol
from runtime.classifier import BatchError, Prediction, SentimentClassifier
from runtime.explain import Explanation
from runtime.protocol import RequestError

ACCESS_LOG = logging.getLogger("imdb_sentiment.access")
# The scope extension through which the server (runtime.serve) tells the app when the request
# began, as an event-loop time, and whether it arrived over the connection bound.
GUARD_EXTENSION = "imdb_sentiment.guard"
# "Status" of a request whose client left before sending all of it: logged, never sent (nginx's 499).
CLIENT_GONE = 499
PAGE = Path(__file__).resolve().parent / "explain.html"
# The page may talk to this server only, and load nothing: a browser refuses anything else.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_batch: int = 64
    request_timeout: float = 10.0  # seconds for a whole request to arrive


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
    while the event loop goes on serving; a thread borrows an idle classifier for one batch."""

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

    async def classify(self, texts: list[str]) -> list[Prediction | str]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._classify, texts)

    def _classify(self, texts: list[str]) -> list[Prediction | str]:
        classifier = self._idle.get()
        try:
            return classify_each(classifier, texts)
        finally:
            self._idle.put(classifier)

    async def explain(self, text: str) -> Explanation | str:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._explain, text)

    def _explain(self, text: str) -> Explanation | str:
        """The text's explanation, or the message saying why it has none (as for a text of /v1/predict)."""
        classifier = self._idle.get()
        try:
            return classifier.explain(text)
        except (ValueError, TypeError) as error:
            return str(error)
        finally:
            self._idle.put(classifier)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for classifier in self._classifiers:
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

    # --- life cycle ---

    async def load(self) -> None:
        try:
            await asyncio.to_thread(self.pool.load)
        except Exception as error:  # any load failure: say it in one line and stop the server
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

    async def _read_json(self, request: Request) -> object:
        """The request's JSON body, read within the request's deadline and the body limit."""
        headers = request.headers
        content_type = headers.get("content-type")
        if content_type is not None and not is_json_media_type(content_type):
            raise RequestError(415, f"the body must be JSON (Content-Type: application/json), not {content_type}")
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
        return protocol.read_json(bytes(body))

    # --- the simple protocol ---

    async def predict(self, request: Request) -> Response:
        self._require_model()
        texts = protocol.predict_texts(await self._read_json(request), self.limits.max_batch)
        outcomes = await self.pool.classify(texts)
        self.metrics.count_outcomes(outcomes)
        return JSONResponse(protocol.predict_response(outcomes))

    async def explain(self, request: Request) -> Response:
        self._require_model()
        text = protocol.explain_text(await self._read_json(request))
        try:
            outcome = await self.pool.explain(text)
        except (bundle.BundleError, backends.BackendError) as error:  # no per-step artifact for this model
            raise RequestError(501, f"this model cannot explain: {error}") from None
        self.metrics.count_outcomes([outcome])
        if isinstance(outcome, str):
            raise RequestError(422, outcome)
        return JSONResponse(outcome.to_dict())

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self._page, headers={"Content-Security-Policy": PAGE_POLICY,
                                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    async def model_description(self, request: Request) -> Response:
        self._require_model()
        return JSONResponse(self.pool.description)

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
        outcomes = await self.pool.classify(inference.texts)
        self.metrics.count_outcomes(outcomes)
        failed = [(index, outcome) for index, outcome in enumerate(outcomes) if isinstance(outcome, str)]
        if failed:  # the protocol has no per-item errors: the request fails, naming the texts
            shown = "; ".join(f"element {index}: {message}" for index, message in failed[:3])
            raise RequestError(400, f'input "{protocol.INPUT_TEXT}" {shown}' + (f"; and {len(failed) - 3} more" if len(failed) > 3 else ""))
        return JSONResponse(protocol.infer_response(name, inference, self.pool.description["labels"], outcomes))

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


class ObservedApp:
    """ASGI middleware around the app: refuses requests over the connection bound (503), and counts,
    times and logs every request (one JSON line each)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before answering

        async def send_noting_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            guard = scope.get("extensions", {}).get(GUARD_EXTENSION)
            if guard and guard["over_capacity"]:
                response = json_error(503, "too many connections; try again shortly",
                                      {"Retry-After": "1", "Connection": "close"})
                await response(scope, receive, send_noting_status)
            else:
                await self.app(scope, receive, send_noting_status)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = scope.get("route")
            endpoint = route.path if route is not None else "none"
            self.metrics.count_request(endpoint, scope["method"], status, seconds)
            client = scope.get("client")
            log_access(client=client[0] if client else None, method=scope["method"], path=scope["path"],
                       status=status, ms=round(seconds * 1000, 3))


def build_app(service: SentimentService) -> ObservedApp:
    """The ASGI application: starts loading the classifiers at startup, closes them at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loading = asyncio.create_task(service.load())  # not awaited: serve (live, not ready) while it loads
        yield
        await loading
        service.pool.close()

    app = Starlette(routes=service.routes(), lifespan=lifespan,
                    exception_handlers={RequestError: request_error, HTTPException: http_error, ClientGone: client_gone})
    app.router.redirect_slashes = False  # /v1/model/ is a 404, not a redirect
    return ObservedApp(app, service.metrics)
