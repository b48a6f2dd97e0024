"""The model bundle: a folder with everything a device needs, described by manifest.json.

    models/imdb-lstm/
        manifest.json     schema version, model config, tokenizer, artifacts with sha256, metrics
        vocab.txt         the tokenizer's vocabulary, one word a line
        model.keras       the trained Keras model (training and export only)
        model*.tflite     device artifacts written by `python -m export.tflite`
        model*.onnx       device artifacts written by `python -m export.onnx`
        padding_states.npy  the LSTM state after each number of padding steps (cached graphs)
        history.json, accuracy.png, loss.png   the training run's curves ("reports")

Every file is written to a temporary name and moved into place, and the manifest is written
last, so an interrupted run never leaves a manifest that describes a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from runtime.config import ModelConfig

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
VOCABULARY_NAME = "vocab.txt"
DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "imdb-lstm"


class BundleError(Exception):
    """A bundle that is missing, of another schema version, or whose files do not match it."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_manifest(bundle: str | Path) -> dict:
    """The bundle's manifest, checked for existence and schema version."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_NAME
    if not bundle.is_dir():
        raise BundleError(f"{bundle}: no such model bundle folder")
    if not path.is_file():
        raise BundleError(f"{path}: missing; is {bundle} a model bundle?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        found = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise BundleError(f"{path}: schema version {found!r}, this code reads {SCHEMA_VERSION}")
    return manifest


def write_manifest(bundle: str | Path, manifest: dict) -> None:
    write_json(Path(bundle) / MANIFEST_NAME, manifest)


def model_config(manifest: dict) -> ModelConfig:
    return ModelConfig.from_dict(manifest["model_config"])


def file_record(path: Path) -> dict:
    """How the manifest describes a file: its name, size and sha256."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def file_records(manifest: dict) -> list[dict]:
    """The manifest's record of every file in the bundle but the manifest itself."""
    return [manifest["tokenizer"]["vocabulary"], *manifest.get("artifacts", {}).values(),
            *([manifest["padding_states"]] if "padding_states" in manifest else []), *manifest.get("reports", [])]


def verify_file(bundle: str | Path, record: dict) -> Path:
    """Check one file of the bundle against its manifest record; return its path."""
    path = Path(bundle) / record["file"]
    if not path.is_file():
        raise BundleError(f"{path}: missing from the bundle")
    if path.stat().st_size != record["bytes"] or sha256_file(path) != record["sha256"]:
        raise BundleError(f"{path}: does not match the manifest (truncated, corrupt or replaced)")
    return path


# The device artifacts: each backend has a "full" graph (every review padded to the sequence
# length) and a "cached" graph (starts from the stored LSTM state after the review's padding and
# runs only its own tokens), in float32 and int8.
GRAPHS = ("cached", "full")
PRECISIONS = ("float32", "int8")
PADDING_STATES_NAME = "padding_states.npy"


def artifact_key(backend: str, graph: str, precision: str) -> str:
    return f"{backend}-{graph}-{precision}"


def artifact_filename(backend: str, graph: str, precision: str) -> str:
    parts = ["model"] + (["cached"] if graph == "cached" else []) + (["int8"] if precision == "int8" else [])
    return ".".join(parts) + {"tflite": ".tflite", "onnx": ".onnx"}[backend]
