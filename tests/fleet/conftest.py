"""Fixtures of the fleet tests: a small device bundle (one cached float32 artifact) and key pairs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import bundle

pytest.importorskip("model_signing")
from cryptography.hazmat.primitives import serialization  # noqa: E402  (model-signing brings it)
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

KEPT = ("tflite-cached-float32", "onnx-cached-float32")


def small_bundle(destination: Path) -> Path:
    """A copy of the shipped bundle with only its cached float32 graphs: a few MiB."""
    return bundle.copy_bundle(bundle.REPOSITORY_BUNDLE, destination, lambda key, record: key in KEPT)


def write_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture
def keys(tmp_path) -> dict:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: write_key_pair(folder, name) for name in ("release", "stranger")}


@pytest.fixture
def model(tmp_path) -> Path:
    return small_bundle(tmp_path / "models" / "imdb-small")


@pytest.fixture
def served(tmp_path):
    """A static HTTP server of tmp_path/repository on a free loopback port: its URL."""
    folder = tmp_path / "repository"
    folder.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield folder, f"http://127.0.0.1:{port}"
    server.kill()
    server.wait()
