"""The HTTP application (ASGI, on Starlette): one endpoints class for each protocol version over one
shared data plane (runtime/serving/dataplane.py), in the shape of MLServer's and KServe's Python
servers. `runtime.serving.server` runs it on uvicorn; it runs on any ASGI server (probes/server_probes.py).

    POST /v1/predict                       {"texts": [...]} -> a prediction or an error per text
    POST /v1/explain                       {"text": "..."} -> the opinion after every word (runtime/explain.py)
    GET  /v1/model, /healthz               the loaded model; 200 when ready, else 503
    GET  /, /explain.js, /explain.css      a page to explain a review in a browser (runtime/explain.*)
    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/N][/ready]
    POST /v2/models/{name}[/versions/N]/infer   the Open Inference Protocol (KServe v2)
    POST /v2/repository/models/{name}/load      its model repository extension: load what --models' current names
    GET  /metrics, /openapi.json
    GET  /docs                             the API page: Swagger UI over /openapi.json (runtime/serving/api_page.py)

The classifiers load in a background thread, so the server answers (live, not ready) from its
first moment and a stop never waits for a load; requests that need the model get 503 until they
are loaded. Before the endpoints, `middleware.ObservedApp` refuses what a browser page or a flood
could send and turns any unexpected error into one log line and a JSON 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from runtime.serving import protocol
from runtime.serving.api_page import ApiPage
from runtime.serving.dataplane import DataPlane
from runtime.serving.metrics import Metrics
from runtime.serving.middleware import (
    CLIENT_GONE,
    GUARD_EXTENSION,
    Access,
    ObservedApp,
    content_type_refusal,
    internal_error,
    json_error,
)
from runtime.serving.protocol import Limits, RequestError

# The explain page ships in runtime/ beside the explainer it shows (package data of `runtime`).
PAGE_FOLDER = Path(__file__).resolve().parent.parent
# The page's script and style, served from files beside it (read when first asked for).
PAGE_FILES = {
    "/explain.js": ("explain.js", "text/javascript; charset=utf-8"),
    "/explain.css": ("explain.css", "text/css; charset=utf-8"),
}
# The page may load its own script and style and talk to this server only; no inline code runs.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# An answer is handed to the server in pieces of this size; flow control holds each until the
# client has taken enough of the last (the connection sets the transport's buffer limits to it).
WRITE_CHUNK = 64 * 1024
GET, POST = ["GET"], ["POST"]  # Starlette answers HEAD for GET routes


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


class ClientGone(Exception):
    """The client closed its connection before its request had arrived."""


def check_body_headers(headers, limits: Limits, binary: bool = False) -> None:
    """Refuse a body by its headers, before reading it: not JSON (middleware.content_type_refusal),
    compressed, binary tensors (but with `binary`, an OIP infer request), no length, an unknown
    transfer encoding, or a Content-Length over the limit."""
    refused = content_type_refusal(headers, binary)
    if refused is not None:
        raise RequestError(415, refused)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise RequestError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    if not binary and protocol.INFERENCE_HEADER in headers:
        raise RequestError(415, "the binary tensor data extension is for /v2 infer only; send this body as JSON")
    encoding, length = headers.get("transfer-encoding"), headers.get("content-length")
    if encoding is None and length is None:
        raise RequestError(411, "a Content-Length header is required")
    if encoding is not None and encoding.strip().lower() != "chunked":
        raise RequestError(400, f"unsupported Transfer-Encoding {encoding!r}; only chunked")
    if length is not None and int(length) > limits.max_body_bytes:  # the HTTP parser has checked it is digits
        raise RequestError(413, f"body of {length} bytes; at most {limits.max_body_bytes}")


async def read_body(request: Request, limits: Limits, binary: bool = False) -> bytes:
    """The request's body, read within the request's deadline (which the connection started at its
    first byte) and the body limit, once its headers are found fit (check_body_headers)."""
    check_body_headers(request.headers, limits, binary)
    guard = request.scope.get("extensions", {}).get(GUARD_EXTENSION)
    deadline = guard["deadline"] if guard else asyncio.get_running_loop().time() + limits.request_timeout
    body = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limits.max_body_bytes:
                    raise RequestError(413, f"body over {limits.max_body_bytes} bytes")
    except TimeoutError:
        raise RequestError(408, f"the request did not arrive within {limits.request_timeout:g} s") from None
    except ClientDisconnect:
        raise ClientGone() from None
    return bytes(body)


async def read_json_body(request: Request, limits: Limits) -> tuple[object, int]:
    """The request's JSON body and its size in bytes (read_body)."""
    body = await read_body(request, limits)
    return protocol.read_json(body), len(body)


class V1Endpoints:
    """The simple protocol: /v1/predict, /v1/explain, /v1/model and /healthz."""

    def __init__(self, dataplane: DataPlane, limits: Limits):
        self.dataplane, self.limits = dataplane, limits

    async def predict(self, request: Request) -> Response:
        with self.dataplane.serving() as served:
            payload, size = await read_json_body(request, self.limits)
            texts = protocol.predict_texts(payload, self.limits.max_batch)
            least = protocol.min_known(payload, self.limits, 422)
            return RenderedJSON(await self.dataplane.predict(served, texts, size, least))

    async def explain(self, request: Request) -> Response:
        with self.dataplane.serving() as served:
            payload, size = await read_json_body(request, self.limits)
            text, least = protocol.explain_text(payload), protocol.min_known(payload, self.limits, 422)
            return RenderedJSON(await self.dataplane.explain(served, text, size, least))

    async def model_description(self, request: Request) -> Response:
        return JSONResponse(protocol.with_warnings(self.dataplane.describe(), self.dataplane.warnings))

    async def healthz(self, request: Request) -> Response:
        if self.dataplane.phase == "ready":
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": self.dataplane.phase, "error": self.dataplane.not_ready()}, 503)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/predict", self.predict, methods=POST),
            Route("/v1/explain", self.explain, methods=POST),
            Route("/v1/model", self.model_description, methods=GET),
            Route("/healthz", self.healthz, methods=GET),
        ]


class ExplainPage:
    """The explain page at / and its script and style, under a policy that lets it talk to this server only."""

    def __init__(self):
        self._page = (PAGE_FOLDER / "explain.html").read_bytes()
        self._files: dict[str, bytes] = {}

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self._page, headers=self._headers())

    async def page_file(self, request: Request) -> Response:
        """The page's script or style, read from its file when first asked for."""
        name, media_type = PAGE_FILES[request.url.path]
        content = self._files.get(name)
        if content is None:
            try:
                content = self._files[name] = (PAGE_FOLDER / name).read_bytes()
            except OSError:
                raise RequestError(404, f"no such file: {name}") from None
        return Response(content, media_type=media_type, headers=self._headers())

    @staticmethod
    def _headers() -> dict[str, str]:
        return {
            "Content-Security-Policy": PAGE_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    def routes(self) -> list[Route]:
        return [Route("/", self.page, methods=GET), *(Route(path, self.page_file, methods=GET) for path in PAGE_FILES)]


class V2Endpoints:
    """The Open Inference Protocol (KServe v2): server and model metadata, health, infer."""

    def __init__(self, dataplane: DataPlane, limits: Limits):
        self.dataplane, self.limits = dataplane, limits

    def _named_model(self, request: Request, served) -> str:
        params = request.path_params
        return self.dataplane.require_named_model(served, params["name"], params.get("version"))

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(protocol.server_metadata(self.dataplane.version))

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        if self.dataplane.phase == "ready":
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "error": self.dataplane.not_ready()}, 503)

    async def model_metadata(self, request: Request) -> Response:
        with self.dataplane.serving() as served:
            name, description = self._named_model(request, served), served.pool.description
            return JSONResponse(
                protocol.model_metadata(name, served.version, description["backend"], description["labels"])
            )

    async def model_ready(self, request: Request) -> Response:
        with self.dataplane.serving() as served:
            name = self._named_model(request, served)
        if self.dataplane.phase != "ready":
            return JSONResponse({"name": name, "ready": False, "error": self.dataplane.not_ready()}, 503)
        return JSONResponse({"name": name, "ready": True})

    async def infer(self, request: Request) -> Response:
        """JSON, or JSON and binary tensor data (Inference-Header-Content-Length) both ways."""
        with self.dataplane.serving() as served:
            name = self._named_model(request, served)
            header_length = request.headers.get(protocol.INFERENCE_HEADER)
            body = await read_body(request, self.limits, binary=header_length is not None)
            inference = protocol.infer_request_from_body(body, header_length, self.limits)
            answer, json_length = await self.dataplane.infer(served, name, inference, len(body))
        if json_length is None:
            return RenderedJSON(answer)
        headers = {"Inference-Header-Content-Length": str(json_length)}
        return RenderedJSON(answer, headers=headers, media_type="application/octet-stream")

    async def load(self, request: Request) -> Response:
        """The model repository extension's load: load the version MODELS/current names beside the
        one serving, check it, swap it in (200), or keep the old one serving (400 and why)."""
        with self.dataplane.serving() as served:
            name = self._named_model(request, served)
        follower = self.dataplane.follower
        if follower is None:
            raise RequestError(
                409, "this server serves one folder (--model); start it with --models DIR to load versions"
            )
        outcome = await follower.reload("load endpoint")
        if outcome.outcome == "failed":
            raise RequestError(
                400,
                f"version {outcome.version or '?'} not loaded ({outcome.error}); version {outcome.serving} serves on",
            )
        return JSONResponse({"name": name, "version": outcome.serving, "outcome": outcome.outcome})

    def routes(self) -> list[Route]:
        model, version = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
        return [
            Route("/v2", self.server_metadata, methods=GET),
            Route("/v2/", self.server_metadata, methods=GET),
            Route("/v2/health/live", self.live, methods=GET),
            Route("/v2/health/ready", self.ready, methods=GET),
            *(Route(path, self.model_metadata, methods=GET) for path in (model, version)),
            *(Route(path + "/ready", self.model_ready, methods=GET) for path in (model, version)),
            *(Route(path + "/infer", self.infer, methods=POST) for path in (model, version)),
            Route("/v2/repository/models/{name}/load", self.load, methods=POST),
        ]


class OperationsEndpoints:
    """/metrics (Prometheus) and /openapi.json."""

    def __init__(self, metrics: Metrics, openapi: dict):
        self.metrics, self.openapi_document = metrics, openapi

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self.openapi_document)

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.prometheus, methods=GET), Route("/openapi.json", self.openapi, methods=GET)]


class SentimentService:
    """The HTTP face of one data plane (as MLServer's endpoints hold theirs): the endpoints of both
    protocols, the page and operations, all over it. The server drains the data plane."""

    def __init__(self, dataplane: DataPlane, limits: Limits = Limits()):
        self.dataplane, self.limits = dataplane, limits

    def routes(self) -> list[Route]:
        openapi = protocol.openapi_document(self.dataplane.version, self.limits)
        return [
            *V1Endpoints(self.dataplane, self.limits).routes(),
            *ExplainPage().routes(),
            *ApiPage(ExplainPage._headers()).routes(),  # the same policy as the explain page
            *V2Endpoints(self.dataplane, self.limits).routes(),
            *OperationsEndpoints(self.dataplane.metrics, openapi).routes(),
        ]


async def request_error(request: Request, error: RequestError) -> Response:
    headers = dict(error.headers)
    if request.method == "POST":
        headers["Connection"] = "close"  # its body may be unread; the next request would start inside it
    return json_error(error.status, error.message, headers)


async def http_error(request: Request, error: HTTPException) -> Response:
    messages = {
        404: f"no such endpoint: {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}; use {(error.headers or {}).get('Allow')}",
    }
    return json_error(error.status_code, messages.get(error.status_code, str(error.detail)), error.headers)


async def client_gone(request: Request, error: ClientGone) -> Response:
    return Response(status_code=CLIENT_GONE)  # never reaches the client; the access log says 499


def build_app(service: SentimentService, access: Access = Access()) -> ObservedApp:
    """The ASGI application: starts loading the classifiers at startup, closes them at shutdown
    (a load still running is left to its daemon thread)."""

    dataplane = service.dataplane

    @contextlib.asynccontextmanager
    async def lifespan(app):
        dataplane.start_loading()  # not awaited: serve (live, not ready) while it loads
        if dataplane.follower is not None:
            dataplane.follower.start()
        yield
        if dataplane.follower is not None:
            dataplane.follower.stop()
        dataplane.holder.close()

    middleware = []
    if access.origins:  # the pages allowed need CORS answers (and their browsers' preflights) to call the API
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=sorted(access.origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=service.routes(),
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={
            RequestError: request_error,
            HTTPException: http_error,
            ClientGone: client_gone,
            Exception: internal_error,
        },
    )
    app.router.redirect_slashes = False  # /v1/model/ is a 404, not a redirect
    return ObservedApp(app, dataplane.metrics, access)
