"""The checks of a model bundle's manifest and files (runtime/bundle.py is the module to import):
the format's constants, BundleError, reading a file of the bundle without following a link or
blocking, the checks of the manifest's JSON values (`check_values`: finite numbers, Unicode text,
bounded depth) and of its structure and types (`check_structure`, `check_file_record`,
`check_plain`), and the sha256 that describes a file.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Mapping

from runtime.backends import BACKENDS, REGISTRY
from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID, OOV_ID, PAD_ID, START_ID

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
VOCABULARY_NAME = "vocab.txt"
PADDING_STATES_NAME = "padding_states.npy"
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is a few KiB
# Arrays and objects inside one another: a real manifest has 5 levels. Deeper is refused before
# anything recurses into it (the JSON parser, the records, an answer's JSON).
MAX_MANIFEST_DEPTH = 32
MAX_FILE_BYTES = 1 << 30  # a bundle's file (the largest real one, model.keras, is 16 MB)

# The device artifacts: each backend has a "full" graph (every review padded to the sequence
# length) and a "cached" graph (starts from the stored LSTM state after the review's padding and
# runs only its own tokens), in float32 and int8: the GRAPHS that classify. The "steps" graph is
# the cached graph answering after every token (runtime/explain.py); it never classifies, so it
# is not among GRAPHS, and only ARTIFACT_GRAPHS, the graphs a bundle may hold, names it.
GRAPHS = ("cached", "full")
STEPS_GRAPH = "steps"
ARTIFACT_GRAPHS = (*GRAPHS, STEPS_GRAPH)
PRECISIONS = ("float32", "int8")
# What the tokenizer settings in a manifest must say: the ids and padding runtime.text uses.
TOKENIZER_MODULE = "runtime.text"  # the manifest's tokenizer.module: what marks a folder as a bundle
TOKENIZER_SETTINGS = {
    "pad_id": PAD_ID,
    "start_id": START_ID,
    "oov_id": OOV_ID,
    "first_word_id": FIRST_WORD_ID,
    "padding": "pre",
    "truncating": "pre",
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(Exception):
    """A bundle that is missing, malformed, or whose files do not match its manifest."""


def artifact_key(backend: str, graph: str, precision: str) -> str:
    return f"{backend}-{graph}-{precision}"


def artifact_filename(backend: str, graph: str, precision: str) -> str:
    parts = ["model"] + ([graph] if graph != "full" else []) + (["int8"] if precision == "int8" else [])
    return ".".join(parts) + REGISTRY[backend].suffix


def load_manifest_json(folder: str | Path) -> tuple[object, Path]:
    """The JSON value of a bundle's manifest.json (not yet checked), and its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such model bundle folder")
    path = folder / MANIFEST_NAME
    raw = read_regular(path, MAX_MANIFEST_BYTES, f"missing; is {folder} a model bundle?")
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: larger than {MAX_MANIFEST_BYTES:,} bytes; not a manifest")
    try:
        text = raw.decode("utf-8")
        _check_depth(text, path)  # before parsing: the parser recurses
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: bad JSON, or an over-long number
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    check_values(value, path)
    return value, path


# Brackets past this are refused before parsing, unnamed; up to it the parsed value is walked
# (without recursion) and the key deeper than MAX_MANIFEST_DEPTH is named.
_PARSE_DEPTH = 4 * MAX_MANIFEST_DEPTH
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _check_depth(text: str, path: Path) -> None:
    depth = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        if depth > _PARSE_DEPTH:
            raise BundleError(f"{path}: nested too deeply (more than {MAX_MANIFEST_DEPTH} levels)")


def key_path(keys: tuple) -> str:
    """How an error names a value: metrics.test_loss, reports[0], training.'a key'."""
    name = ""
    for key in keys:
        if isinstance(key, int):
            name += f"[{key}]"
        else:
            shown = key if re.fullmatch(r"[A-Za-z_][\w-]*", key) else repr(key)
            name += f".{shown}" if name else shown
    return name or "the manifest"


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_values(value, path: Path) -> None:
    """Every value JSON could carry but the manifest must not: a number that is not finite (NaN,
    Infinity, 1e999), a string or key with a lone surrogate (not Unicode: no answer could carry
    it), nesting deeper than MAX_MANIFEST_DEPTH. Walked without recursion."""
    stack = [((), value)]
    while stack:
        keys, item = stack.pop()
        if len(keys) > MAX_MANIFEST_DEPTH:
            fail(
                path,
                key_path(keys[:MAX_MANIFEST_DEPTH]),
                f"is nested too deeply (more than {MAX_MANIFEST_DEPTH} levels)",
            )
        if isinstance(item, float) and not math.isfinite(item):
            fail(path, key_path(keys), f"is not a finite number ({item})")
        elif isinstance(item, str) and _has_surrogate(item):
            fail(path, key_path(keys), "holds a lone surrogate (not Unicode text)")
        elif isinstance(item, Mapping):
            for key, member in item.items():
                if isinstance(key, str) and _has_surrogate(key):
                    fail(path, key_path((*keys, key)), "holds a lone surrogate (not Unicode text)")
                stack.append(((*keys, key), member))
        elif isinstance(item, (list, tuple)):
            stack.extend(((*keys, index), member) for index, member in enumerate(item))


def read_regular(path: Path, limit: int, missing: str = "missing from the bundle") -> bytes:
    """At most limit + 1 bytes of `path`, which must be a regular file and not a link.

    Opened without following a link and without blocking (a FIFO or a device could block or
    never end), then checked with fstat, so what is checked is what is read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise BundleError(f"{path}: {missing}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise BundleError(f"{path}: a symbolic link, not a regular file") from None
        raise BundleError(f"{path}: cannot be read ({error.strerror})") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):  # before fdopen, which refuses a folder itself
        os.close(descriptor)
        raise BundleError(f"{path}: not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        # read(n) allocates n bytes first: never more than the file has. One byte more shows a
        # file over the limit, or one that grew.
        return handle.read(min(limit, status.st_size) + 1)


def fail(path: Path, key: str, problem: str):
    raise BundleError(f"{path}: {key} {problem}")


def require(container: dict, key: str, kind, path: Path, where: str):
    """container[key], which must be of `kind` (a type or tuple of types; bool is never an int)."""
    name = f"{where}.{key}" if where else key
    if key not in container:
        fail(path, name, "is missing")
    value = container[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        fail(path, name, f"must be {expected}, not {type(value).__name__}")
    return value


def check_strings(value: list, path: Path, name: str) -> None:
    if not all(isinstance(item, str) for item in value):
        fail(path, name, "must be a list of strings")


def check_file_record(record, path: Path, name: str) -> None:
    """A file record: a plain file name inside the bundle, its size and its sha256."""
    if not isinstance(record, dict):
        fail(path, name, f"must be an object, not {type(record).__name__}")
    file = require(record, "file", str, path, name)
    if file in ("", ".", "..", MANIFEST_NAME) or any(sep in file for sep in ("/", "\\", "\0")):
        fail(path, f"{name}.file", f"must be a plain file name inside the bundle, not {file!r}")
    size = require(record, "bytes", int, path, name)
    if size < 0:
        fail(path, f"{name}.bytes", "must not be negative")
    if size > MAX_FILE_BYTES:
        fail(path, f"{name}.bytes", f"is {size:,}; a bundle's file may have at most {MAX_FILE_BYTES:,} bytes")
    if not _SHA256.fullmatch(require(record, "sha256", str, path, name)):
        fail(path, f"{name}.sha256", "must be 64 lowercase hex digits")


def check_structure(manifest, path: Path) -> None:
    """Every key the runtime, export and tests read, with its type, but the plain records'
    (`manifest_records.check_manifest` adds those); raise BundleError on the first miss."""
    if not isinstance(manifest, dict):
        fail(path, "the manifest", f"must be an object, not {type(manifest).__name__}")
    version = manifest.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        fail(path, "schema_version", f"is {version!r}; this code reads {SCHEMA_VERSION}")
    require(manifest, "name", str, path, "")
    if "created" in manifest:
        require(manifest, "created", str, path, "")
    try:
        config = ModelConfig.from_dict(require(manifest, "model_config", dict, path, ""))
    except (ValueError, TypeError) as error:
        fail(path, "model_config", f"is invalid: {error}")
    tokenizer = require(manifest, "tokenizer", dict, path, "")
    check_file_record(require(tokenizer, "vocabulary", dict, path, "tokenizer"), path, "tokenizer.vocabulary")
    words = require(tokenizer, "words", int, path, "tokenizer")
    if not 0 < words <= config.vocab_size - FIRST_WORD_ID:
        fail(path, "tokenizer.words", f"is {words}; the model reads at most {config.vocab_size - FIRST_WORD_ID}")
    for key, expected in TOKENIZER_SETTINGS.items():
        if tokenizer.get(key) != expected:
            fail(path, f"tokenizer.{key}", f"is {tokenizer.get(key)!r}; this runtime's tokenizer uses {expected!r}")
    for key, record in require(manifest, "artifacts", dict, path, "").items():
        name = f"artifacts.{key}"
        check_file_record(record, path, name)
        backend = require(record, "format", str, path, name)
        if backend == "keras":
            continue
        graph, precision = (require(record, key_name, str, path, name) for key_name in ("graph", "precision"))
        if (
            key != artifact_key(backend, graph, precision)
            or backend not in BACKENDS
            or graph not in ARTIFACT_GRAPHS
            or precision not in PRECISIONS
        ):
            fail(path, name, f"is not a known artifact (format {backend!r}, graph {graph!r}, precision {precision!r})")
        for list_name in ("inputs", "outputs", "labels"):
            check_strings(require(record, list_name, list, path, name), path, f"{name}.{list_name}")
        if not _SHA256.fullmatch(require(record, "vocabulary_sha256", str, path, name)):
            fail(path, f"{name}.vocabulary_sha256", "must be 64 lowercase hex digits")
        require(record, "sequence_length", (int, type(None)), path, name)
    if "padding_states" in manifest:
        check_file_record(manifest["padding_states"], path, "padding_states")
        if require(manifest["padding_states"], "steps", int, path, "padding_states") < 0:
            fail(path, "padding_states.steps", "must not be negative")
    for index, record in enumerate(require(manifest, "reports", list, path, "") if "reports" in manifest else []):
        check_file_record(record, path, f"reports[{index}]")
    for key, result in (require(manifest, "parity", dict, path, "") if "parity" in manifest else {}).items():
        if not isinstance(result, dict):
            fail(path, f"parity.{key}", f"must be an object, not {type(result).__name__}")
        require(result, "passed", bool, path, f"parity.{key}")


# What each field type of the training and metrics records takes (their annotations, as strings);
# a wrongly typed value is refused rather than dropped, so a manifest is written back as read.
_PLAIN_TYPES = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a string"),
    "Mapping": ((dict,), "an object"),
    "tuple[str, ...]": ((list,), "a list of strings"),
}


def check_plain(data: dict, record: type, path: Path, where: str) -> None:
    """The fields of a _PlainRecord (or PackagedRecord) that `data` has, each of its annotated type."""
    for item in dataclasses.fields(record):
        if item.name not in data or item.name in ("extra", "order"):
            continue
        name, value = f"{where}.{item.name}", data[item.name]
        annotation = item.type.removesuffix(" | None")
        nullable = annotation != item.type
        nested = getattr(record, "NESTED", {}).get(item.name)
        kinds, expected = ((dict,), "an object") if nested else _PLAIN_TYPES.get(annotation, ((object,), ""))
        if value is None and nullable or kinds == (object,):  # a type not in _PLAIN_TYPES: kept as read
            continue
        if isinstance(value, bool) is not (bool in kinds) or not isinstance(value, kinds):
            fail(path, name, f"must be {expected}{' or null' if nullable else ''}, not {type(value).__name__}")
        if annotation.startswith("tuple"):
            check_strings(value, path, name)
        if nested:
            check_plain(value, nested, path, name)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict:  # as a FileRecord: FileRecord.of(path)
    """How the manifest describes a file: its name, size and sha256."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
