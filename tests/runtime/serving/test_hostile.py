"""The server against a hostile prober on loopback: crafted Open Inference Protocol bodies, pages of
other sites (no Content-Type, another Origin, DNS rebinding through the Host header), odd Expect
and Content-Encoding headers, one address flooding connections, an unverified model, and a stop
while the model is still loading. Every test asserts answers and errors, never a duration; every
wait is bounded."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import socket
import time

import pytest

from runtime import bundle
from tests.conftest import ROOT
from tests.runtime.serving.harness import TEXTS, ServerProcess, read_until_closed, responses_in

ALLOWED_ORIGIN = "http://allowed.example"
ALLOWED_HOST = "device.example"


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    process = ServerProcess(
        tmp_path_factory.mktemp("hostile"),
        "--model",
        str(bundle_dir),
        "--workers",
        "2",
        "--allow-origin",
        ALLOWED_ORIGIN,
        "--allowed-host",
        ALLOWED_HOST,
    )
    yield process
    assert process.stop() == 0
    assert "Traceback" not in process.stderr


def raw_request(method: str, path: str, headers: list[bytes], body: bytes = b"") -> bytes:
    return b"\r\n".join([f"{method} {path} HTTP/1.1".encode(), *headers, b"Connection: close", b"", body])


def one_answer(server, data: bytes) -> tuple[int, dict]:
    [(status, body)] = responses_in(server.raw(data))
    return status, json.loads(body) if body else {}


# --- the Open Inference Protocol: crafted bodies are 400s, never a 500 or a traceback ------------


def nested(depth: int) -> str:
    return "[" * depth + '"a wonderful film"' + "]" * depth


@pytest.mark.parametrize(
    "body, message",
    [
        # Deep enough for json.loads, too deep for the old recursive flattening (a 500 and 193 KB traceback).
        (
            '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": %s}]}' % nested(900),
            "element 0 is an array",
        ),
        (
            '{"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": %s}]}' % nested(600),
            "element 0 is an array",
        ),
        # A lone surrogate: not Unicode, so no answer could echo it (the old server failed to encode its answer).
        (
            '{"id": "\\ud800", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}',
            "lone surrogate",
        ),
        # Ragged nested data that happens to hold as many strings as the shape says (the old server took it).
        (
            '{"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": [["good", "bad"], ["fine"]]}]}',
            "2 elements",
        ),
        (
            '{"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["good", "bad"], []]}]}',
            "nested data",
        ),
        # A scalar where the protocol wants an array (the old server read it as one element).
        (
            '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": "a wonderful film"}]}',
            "is a string",
        ),
    ],
    ids=["nested-900", "nested-600-shape-n-1", "lone-surrogate-id", "ragged", "ragged-n-1", "scalar-data"],
)
def test_crafted_inference_requests_get_a_json_400(server, body, message):
    status, headers, answer = server.request(
        "POST", "/v2/models/imdb-lstm/infer", body.encode(), {"Content-Type": "application/json"}
    )
    assert (status, headers["content-type"]) == (400, "application/json")
    assert message in answer["error"]


def test_a_lone_surrogate_in_a_text_is_a_400_not_a_500(server):
    body = b'{"text": "a wonderful \\udc00film"}'
    for path in ("/v1/explain", "/v1/predict"):
        payload = body if path == "/v1/explain" else b'{"texts": ["a wonderful \\udc00film"]}'
        status, _, answer = server.request("POST", path, payload, {"Content-Type": "application/json"})
        assert status == 400 and "lone surrogate" in answer["error"]


def test_well_formed_nested_data_is_still_read(server):
    request = {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [[TEXTS[0]], [TEXTS[1]]]}]}
    assert server.request("POST", "/v2/models/imdb-lstm/infer", request)[0] == 200
    request["inputs"][0]["data"] = [TEXTS[0], TEXTS[1]]  # flat data for a [2, 1] tensor
    assert server.request("POST", "/v2/models/imdb-lstm/infer", request)[0] == 200


# --- what a page of another site can send --------------------------------------------------------


def test_a_post_must_say_its_body_is_json(server):
    """A page of any site may POST a form type or text/plain without asking the browser first:
    always 415. application/json needs a CORS preflight, which the server does not grant."""
    body = json.dumps({"text": TEXTS[0]}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, _, answer = server.request("POST", "/v1/explain", body, {"Content-Type": content_type})
        assert status == 415 and "application/json" in answer["error"], content_type
    assert server.request("POST", "/v1/explain", {"text": TEXTS[0]})[0] == 200


def test_a_body_without_a_content_type_is_json_from_a_client_that_is_no_browser_page(server):
    """tritonclient and many scripts send JSON without a Content-Type: a client that sends neither
    Origin nor Sec-Fetch-Site (which browsers send) is not a page of another site. (The rule was a
    415 for every body without a Content-Type, which locked those clients out.)"""
    body = json.dumps({"texts": [TEXTS[0]]}).encode()
    status, _, answer = server.request("POST", "/v1/predict", body)
    assert status == 200 and len(answer["predictions"]) == 1
    own = f"http://127.0.0.1:{server.port}"
    for headers in ({"Origin": own}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": ALLOWED_ORIGIN}):
        status, _, answer = server.request("POST", "/v1/predict", body, headers)
        assert status == 415 and "a page must send Content-Type: application/json" in answer["error"], headers


@pytest.mark.parametrize(
    "method, path, headers, status",
    [
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "cross-site"}, 403),
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "same-site"}, 403),
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, 403),
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, 403),
        ("GET", "/v1/model", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403),
        ("GET", "/metrics", {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image"}, 403),
        # a page of an allowed origin, the server's own page, and the user's own requests
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "cross-site", "Origin": ALLOWED_ORIGIN}, 200),
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "same-origin"}, 200),
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "none"}, 200),
        # a link to the page from another site opens it (a navigation, not a page's request)
        ("GET", "/", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, 200),
        ("POST", "/v1/predict", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, 403),
    ],
)
def test_a_request_of_another_sites_page_is_refused_by_its_fetch_metadata(server, method, path, headers, status):
    """Browsers say where a request comes from in Sec-Fetch-Site; another site's (or another origin
    of the same site) is refused, whatever its Content-Type, unless its Origin is allowed."""
    body = {"texts": [TEXTS[0]]} if method == "POST" and "Content-Type" not in headers else None
    if method == "POST" and body is None:
        body = json.dumps({"texts": [TEXTS[0]]}).encode()
    got, _, answer = server.request(method, path, body, headers)
    assert got == status, answer
    if status == 403:
        assert "another site" in answer["error"] or "not allowed" in answer["error"]


def test_another_origin_is_refused_unless_allowed(server):
    own = f"http://127.0.0.1:{server.port}"
    for origin, status in (("http://evil.example", 403), ("null", 403), (own, 200), (ALLOWED_ORIGIN, 200)):
        got, headers, answer = server.request("POST", "/v1/predict", {"texts": [TEXTS[0]]}, {"Origin": origin})
        assert got == status, (origin, answer)
    got, headers, _ = server.request("GET", "/v1/model", headers={"Origin": ALLOWED_ORIGIN})
    assert got == 200 and headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert server.request("GET", "/v1/model", headers={"Origin": "http://evil.example"})[0] == 403
    preflight = {
        "Origin": ALLOWED_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    got, headers, _ = server.request("OPTIONS", "/v1/explain", headers=preflight)
    assert got == 200 and headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    got, _, answer = server.request("OPTIONS", "/v1/explain", headers={**preflight, "Origin": "http://evil.example"})
    assert got == 403 and "not allowed" in answer["error"]


@pytest.mark.parametrize(
    "host, status",
    [
        (b"evil.example", 421),
        (b"evil.example:8000", 421),  # DNS rebinding: another name for this address
        (ALLOWED_HOST.encode(), 200),
        (b"localhost", 200),
        (b"LOCALHOST.:1", 200),
        (b"[::1]:8000", 200),
        (b"127.0.0.1", 200),
        (b"192.0.2.7", 200),  # an address is not a name that can be rebound
    ],
)
def test_the_host_header_names_this_server(server, host, status):
    got, answer = one_answer(server, raw_request("GET", "/v1/model", [b"Host: " + host]))
    assert got == status, answer
    if status == 421:
        assert "--allowed-host" in answer["error"]


def test_a_missing_or_doubled_host_is_400(server):
    for headers in ([], [b"Host: 127.0.0.1", b"Host: 127.0.0.1"], [b"Host: 127.0.0.1", b"Host: evil.example"]):
        got, answer = one_answer(server, raw_request("GET", "/healthz", headers))
        assert got == 400 and "Host" in answer["error"]


def test_expect_other_than_100_continue_is_417(server):
    body = json.dumps({"texts": [TEXTS[0]]}).encode()
    head = [b"Host: 127.0.0.1", b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    got, answer = one_answer(server, raw_request("POST", "/v1/predict", head + [b"Expect: 200-ok"], body))
    assert got == 417 and "100-continue" in answer["error"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:  # 100-continue still works
        sock.sendall(raw_request("POST", "/v1/predict", head + [b"Expect: 100-continue"]))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        [(status, _)] = responses_in(read_until_closed(sock))
    assert status == 200


def test_a_compressed_body_is_415(server):
    body = gzip.compress(json.dumps({"texts": [TEXTS[0]]}).encode())
    status, _, answer = server.request(
        "POST", "/v1/predict", body, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert status == 415 and "Content-Encoding" in answer["error"]


def test_the_page_runs_only_its_own_script_and_style(server):
    status, headers, _ = server.request("GET", "/")
    policy = headers["content-security-policy"]
    assert status == 200 and "unsafe-inline" not in policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for path, media_type in (("/explain.js", "text/javascript"), ("/explain.css", "text/css")):
        status, headers, body = server.request("GET", path)
        if (ROOT / "runtime" / path.lstrip("/")).exists():
            assert status == 200 and headers["content-type"].startswith(media_type) and body
            assert headers["x-content-type-options"] == "nosniff"
        else:  # not written yet: a JSON 404, never a traceback
            assert status == 404 and "no such file" in body["error"]


# --- one address flooding connections ---------------------------------------------------------------


def connect_from(address: str, port: int) -> socket.socket:
    """A connection from another loopback address (Linux routes all of 127.0.0.0/8 to lo)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_one_address_cannot_take_every_connection_and_health_is_answered_over_the_bound(bundle_dir, tmp_path):
    """A client holding 1,030 idle connections (and reopening them as the deadline closed them) made
    /healthz and /v1/predict answer 503 to everyone. Here one address opens 30 connections: 4 are
    kept, the others refused with 429 at once; other clients are served. Then four addresses fill
    the global bound: other requests get 503, health checks are still answered."""
    server = ServerProcess(
        tmp_path,
        "--model",
        str(bundle_dir),
        "--workers",
        "1",
        "--max-connections",
        "16",
        "--max-connections-per-client",
        "4",
        "--request-timeout",
        "30",
        "--quiet",
    )
    flood = []
    try:
        flood = [connect_from("127.0.0.2", server.port) for _ in range(30)]
        refused = []
        for sock in flood[4:]:
            [(status, body)] = responses_in(read_until_closed(sock))
            refused.append((status, json.loads(body)["error"]))
        assert refused == [(429, "more than 4 connections from one address")] * 26
        assert server.request("GET", "/healthz")[::2] == (200, {"status": "ok"})
        assert server.request("POST", "/v1/predict", {"texts": [TEXTS[0]]})[0] == 200
        # The global bound: 16 connections from four more addresses (4 each), plus the 4 kept above.
        flood += [connect_from(f"127.0.0.{host}", server.port) for host in range(3, 7) for _ in range(4)]
        for _ in range(100):  # until the server has counted them all (each is accepted on its own turn)
            status, headers, answer = server.request("GET", "/v1/model")
            if status == 503:
                break
            time.sleep(0.05)
        assert (status, headers["retry-after"], answer) == (
            503,
            "1",
            {"error": "too many connections; try again shortly"},
        )
        for path, expected in (
            ("/healthz", {"status": "ok"}),
            ("/v2/health/live", {"live": True}),
            ("/v2/health/ready", {"ready": True}),
        ):
            assert server.request("GET", path)[::2] == (200, expected)
    finally:
        for sock in flood:
            sock.close()
        assert server.stop() == 0
    assert "Traceback" not in server.stderr


# --- an unverified model, and the model's name ------------------------------------------------------


def test_an_unverified_model_warns_once_and_says_so_in_its_answers(bundle_dir, tmp_path):
    """Two classifiers of an artifact without a passing parity record: one warning line on stderr (not
    one per classifier), and "warnings" in the answers about it. The served name is the manifest's
    "name", not the folder's."""
    folder = shutil.copytree(bundle_dir, tmp_path / "folder-name", ignore=shutil.ignore_patterns("*.keras", "*.png"))
    manifest = bundle.read_manifest(folder)
    manifest["name"] = "renamed-model"
    for key, record in manifest["artifacts"].items():
        if record.get("graph") == "cached":
            manifest.setdefault("parity", {})[key] = {**manifest.get("parity", {}).get(key, {}), "passed": False}
    bundle.write_manifest(folder, manifest)
    server = ServerProcess(tmp_path, "--model", str(folder), "--workers", "2", "--allow-unverified", "--quiet")
    try:
        status, _, model = server.request("GET", "/v1/model")
        assert status == 200 and model["name"] == "renamed-model"
        [warning] = model["warnings"]
        assert warning.startswith("unverified model: model.cached.") and str(tmp_path) not in warning
        assert server.request("GET", "/v2/models/renamed-model")[0] == 200
        assert server.request("GET", "/v2/models/folder-name")[0] == 404
        status, _, answer = server.request("POST", "/v1/predict", {"texts": [TEXTS[0]]})
        assert status == 200 and answer["warnings"] == [warning]
        status, _, answer = server.request("POST", "/v1/explain", {"text": TEXTS[0]})
        assert status == 200 and answer["warnings"] == [warning]  # the per-step artifact is verified
    finally:
        assert server.stop() == 0
    lines = [line for line in server.stderr_lines if line.startswith("warning:")]
    assert len(lines) == 1 and "loaded without a passing parity record" in lines[0]
    assert "Traceback" not in server.stderr


# --- a stop while the model loads ----------------------------------------------------------------

# The bundle's load never ends (as when manifest.json was a FIFO nobody writes to).
BLOCKED_LOAD = (
    "import sys, threading; from runtime.classifier import SentimentClassifier; "
    "SentimentClassifier.create_from_options = classmethod(lambda cls, *a, **k: threading.Event().wait()); "
    "from runtime.serve import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_while_the_model_is_still_loading(tmp_path, sig):
    server = ServerProcess(tmp_path, "--quiet", wait_ready=False, launcher=("-c", BLOCKED_LOAD))
    try:
        assert server.request("GET", "/healthz")[::2] == (503, {"status": "loading", "error": "the model is loading"})
        server.process.send_signal(sig)
        status = server.process.wait(60)  # a bound: the old server waited for the load for ever
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.stop()
    assert status == 0 and "stopped" in server.stderr and "Traceback" not in server.stderr
