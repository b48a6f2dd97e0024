"""Issue #33, findings 6, 8 and 10 against the real server over loopback: what the operator reads
(stderr, the access log) shows a manifest's or a client's control characters escaped, never obeyed;
a manifest value no answer could carry stops the server in one line; `--host ::` serves both
families; X-Forwarded-For is believed only from a proxy named; the per-client bound groups an IPv6
client by its /64; a 501 names no server folder."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys

import pytest

from runtime import bundle
from tests.conftest import ROOT
from tests.runtime.conftest import copy_without_per_step_artifacts
from tests.runtime.serving.harness import TEXTS, ServerProcess


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")


def renamed_bundle(bundle_dir, tmp_path, edit):
    folder = shutil.copytree(bundle_dir, tmp_path / "bundle", ignore=shutil.ignore_patterns("model.keras"))
    path = folder / bundle.MANIFEST_NAME
    path.write_text(edit(path.read_text()))
    return folder


def get(host: str, port: int, path: str, headers: dict | None = None, source: str | None = None) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=30, source_address=(source, 0) if source else None)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_manifest_name_cannot_forge_a_log_line(bundle_dir, tmp_path):
    forged = "imdb\x1b[2J\x9b31m\u202e\nready: forged"
    folder = renamed_bundle(
        bundle_dir, tmp_path, lambda text: text.replace('"name": "imdb-lstm"', json.dumps({"name": forged})[1:-1], 1)
    )
    assert bundle.Manifest.read(folder).name == forged
    server = ServerProcess(tmp_path, "--model", str(folder), "--workers", "1", "--quiet")
    try:
        assert server.request("GET", "/v1/model")[2]["name"] == forged  # the answer carries it as JSON
    finally:
        assert server.stop() == 0
    ready = [line for line in server.stderr_lines if line.startswith("ready:")]
    assert ready == [line for line in server.stderr_lines if "ready:" in line]  # one line: nothing forged
    assert len(ready) == 1 and "imdb\\x1b[2J\\x9b31m\\u202e\\x0aready: forged version 1 (" in ready[0]
    assert not any(character in server.stderr for character in "\x1b\x9b\u202e")


def test_client_values_reach_the_access_log_escaped(bundle_dir, tmp_path):
    server = ServerProcess(tmp_path, "--model", str(bundle_dir), "--workers", "1")
    try:
        assert get("127.0.0.1", server.port, "/v1/%C2%9B31m%E2%80%AE%1B[2Jx%0Aforged") == 404
    finally:
        assert server.stop() == 0
    lines = server.log_path.read_text(encoding="utf-8").splitlines()
    assert not any(character in "".join(lines) for character in "\x1b\x9b\u202e")
    assert json.loads(lines[-1])["path"] == "/v1/\x9b31m\u202e\x1b[2Jx\nforged"  # the same JSON, escaped


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda text: text.replace('"test_accuracy": ', '"test_accuracy": NaN, "was": ', 1), "metrics.test_accuracy"),
        (lambda text: text.replace('"test_loss": ', '"test_loss": 1e999, "was": ', 1), "metrics.test_loss"),
        (lambda text: text.replace('"name": "imdb-lstm"', '"name": "imdb\\ud800"', 1), "name"),
    ],
    ids=["NaN", "1e999", "lone surrogate"],
)
def test_a_manifest_value_no_answer_could_carry_stops_the_server_in_one_line(bundle_dir, tmp_path, edit, key):
    """Before: loaded, then /v1/model (and /metrics, for the name) answered 500 for the server's life."""
    folder = renamed_bundle(bundle_dir, tmp_path, edit)
    server = ServerProcess(tmp_path, "--model", str(folder), "--quiet", wait_ready=False)
    try:
        assert server.process.wait(60) == 1
    finally:
        server.stop()
    errors = [line for line in server.stderr_lines if line.startswith("error: ")]
    assert len(errors) == 1 and f"manifest.json: {key} " in errors[0], server.stderr
    assert "Traceback" not in server.stderr


@needs_ipv6
def test_host_all_addresses_serves_ipv4_and_ipv6(bundle_dir, tmp_path):
    server = ServerProcess(tmp_path, "--model", str(bundle_dir), "--workers", "1", "--quiet", "--host", "::")
    try:
        assert get("::1", server.port, "/healthz") == 200
        assert get("127.0.0.1", server.port, "/healthz") == 200
    finally:
        assert server.stop() == 0


def test_x_forwarded_for_is_believed_only_from_a_proxy_named(bundle_dir, tmp_path):
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    server = ServerProcess(tmp_path, "--model", str(bundle_dir), "--workers", "1")
    try:
        assert get("127.0.0.1", server.port, "/healthz", forwarded) == 200
    finally:
        assert server.stop() == 0
    assert server.access_log()[-1]["client"] == "127.0.0.1"
    proxied = ServerProcess(
        tmp_path, "--model", str(bundle_dir), "--workers", "1", "--forwarded-allow-ips", "127.0.0.1"
    )
    try:
        assert get("127.0.0.1", proxied.port, "/healthz", forwarded) == 200
    finally:
        assert proxied.stop() == 0
    assert proxied.access_log()[-1]["client"] == "203.0.113.9"


def test_a_forwarded_allow_ips_that_is_not_an_address_is_a_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "runtime.serve", "--forwarded-allow-ips", "127.0.0.1,proxy"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "'proxy' is not an IP address or network" in done.stderr


def test_the_per_client_bound_groups_ipv6_by_its_64():
    from runtime.serving.uvicorn_internals import client_group

    assert client_group("2001:db8:1:2::1") == client_group("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert client_group("2001:db8:1:3::1") != client_group("2001:db8:1:2::1")
    assert client_group("fe80::1%eth0") == "fe80::/64"
    # IPv4 clients of a dual-stack socket are still counted one address each, not as one /64.
    assert client_group("::ffff:127.0.0.2") == "127.0.0.2" != client_group("::ffff:127.0.0.3")
    assert client_group("192.0.2.1") == "192.0.2.1"


def refused(port: int, source: str, family=socket.AF_INET) -> bool:
    """Whether a new connection from `source` is answered 429 at once (else it stays open, unanswered)."""
    sock = socket.socket(family)
    sock.settimeout(1)
    sock.bind((source, 0))
    sock.connect(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
    try:
        return b" 429 " in sock.recv(1024)
    except TimeoutError:
        return False
    finally:
        sock.close()


@needs_ipv6
def test_the_per_client_bound_on_a_dual_stack_socket(bundle_dir, tmp_path):
    server = ServerProcess(
        tmp_path, "--model", str(bundle_dir), "--quiet", "--host", "::", "--max-connections-per-client", "2"
    )
    held = []
    try:
        for source, family in [("127.0.0.1", socket.AF_INET)] * 2 + [("::1", socket.AF_INET6)] * 2:
            held.append(
                socket.create_connection(
                    ("::1" if family == socket.AF_INET6 else "127.0.0.1", server.port), source_address=(source, 0)
                )
            )
        assert refused(server.port, "127.0.0.1") and refused(server.port, "::1", socket.AF_INET6)
        assert not refused(server.port, "127.0.0.2")  # another IPv4 address: its own bound
    finally:
        for sock in held:
            sock.close()
        assert server.stop() == 0


def test_a_501_names_no_server_folder(bundle_dir, tmp_path):
    folder = copy_without_per_step_artifacts(bundle_dir, tmp_path / "no-steps")
    server = ServerProcess(tmp_path, "--model", str(folder), "--workers", "1", "--quiet")
    try:
        status, _, body = server.request("POST", "/v1/explain", {"text": TEXTS[0]})
    finally:
        assert server.stop() == 0
    assert status == 501 and "cannot explain" in body["error"] and "python -m export" in body["error"]
    assert str(tmp_path) not in body["error"] and "no-steps" in body["error"]
    assert any(line.startswith("ERROR: explain: ") and str(folder) in line for line in server.stderr_lines)
