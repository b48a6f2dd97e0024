"""The model bundle: a folder with everything a device needs, described by manifest.json.

    models/imdb-lstm/
        manifest.json     schema version, model config, tokenizer, artifacts with sha256, parity, metrics
        vocab.txt         the tokenizer's vocabulary, one word a line
        model.keras       the trained Keras model (training and export only)
        model*.tflite     device artifacts written by `python -m export.tflite`
        model*.onnx       device artifacts written by `python -m export.onnx`
                          (model.steps.*: the per-step graphs that `explain` runs)
        padding_states.npy  the LSTM state after each number of padding steps (cached and steps graphs)
        history.json, accuracy.png, loss.png   the training run's curves ("reports")
        metrics.json, confusion.png            per-label test figures and the confusion matrix ("reports")

`Manifest.read(folder)` is the one reader of a manifest: it checks its structure and types once
(`check_manifest`: every violation is a BundleError naming the file and key; `check_values`:
no value JSON allows but a manifest must not, such as NaN or nesting past MAX_MANIFEST_DEPTH) and returns frozen,
typed records (Manifest, TokenizerRecord, ArtifactRecord with its ArtifactKind, FileRecord,
PaddingStatesRecord, ParityRecord, PackagedRecord) that the rest of the code reads by attribute;
`write_manifest` (of `Manifest.to_dict()`) is the one writer. `read_manifest` gives the same
checked manifest as a plain dict, for code that edits it as JSON (the exporters, tests).
`Bundle.open(folder)` opens a bundle once: its Manifest, and its files handed out verified. A file
record names a plain file inside the bundle folder; `read_file` reads it once, checks its size and
sha256, and returns those bytes, which are what gets loaded.

Writers put every file under a temporary name and move it into place, and a whole bundle is
built in a staging folder and swapped in, so a failed run leaves the previous bundle as it was.
Only a bundle is ever replaced (`check_replaceable`, which `staging_folder` applies).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping

from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID, OOV_ID, PAD_ID, START_ID

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
VOCABULARY_NAME = "vocab.txt"
PADDING_STATES_NAME = "padding_states.npy"
# Where training and export write the shipped model in a clone, and where a built wheel carries
# its device part (setup.py); the default model is the wheel's when installed, else the clone's.
REPOSITORY_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "imdb-lstm"
PACKAGED_BUNDLE = Path(__file__).resolve().parent / "models" / "imdb-lstm"
DEFAULT_BUNDLE = PACKAGED_BUNDLE if (PACKAGED_BUNDLE / MANIFEST_NAME).is_file() else REPOSITORY_BUNDLE
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
BACKENDS = ("tflite", "onnx")
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
    return ".".join(parts) + {"tflite": ".tflite", "onnx": ".onnx"}[backend]


# Reading ---------------------------------------------------------------------------------------


def read_manifest(folder: str | Path) -> dict:
    """The bundle's manifest as a plain dict, checked for structure and types (`check_manifest`):
    for tests that tamper with one. Everything else reads the typed `Manifest.read(folder)` (or
    `Bundle.open(folder).manifest`)."""
    manifest, path = _load_manifest_json(folder)
    check_manifest(manifest, path)
    return manifest


def _load_manifest_json(folder: str | Path) -> tuple[object, Path]:
    """The JSON value of a bundle's manifest.json (not yet checked), and its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such model bundle folder")
    path = folder / MANIFEST_NAME
    raw = _read_regular(path, MAX_MANIFEST_BYTES, f"missing; is {folder} a model bundle?")
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


def _key_path(keys: tuple) -> str:
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
            _fail(
                path,
                _key_path(keys[:MAX_MANIFEST_DEPTH]),
                f"is nested too deeply (more than {MAX_MANIFEST_DEPTH} levels)",
            )
        if isinstance(item, float) and not math.isfinite(item):
            _fail(path, _key_path(keys), f"is not a finite number ({item})")
        elif isinstance(item, str) and _has_surrogate(item):
            _fail(path, _key_path(keys), "holds a lone surrogate (not Unicode text)")
        elif isinstance(item, Mapping):
            for key, member in item.items():
                if isinstance(key, str) and _has_surrogate(key):
                    _fail(path, _key_path((*keys, key)), "holds a lone surrogate (not Unicode text)")
                stack.append(((*keys, key), member))
        elif isinstance(item, (list, tuple)):
            stack.extend(((*keys, index), member) for index, member in enumerate(item))


def _read_regular(path: Path, limit: int, missing: str = "missing from the bundle") -> bytes:
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


def _fail(path: Path, key: str, problem: str):
    raise BundleError(f"{path}: {key} {problem}")


def _require(container: dict, key: str, kind, path: Path, where: str):
    """container[key], which must be of `kind` (a type or tuple of types; bool is never an int)."""
    name = f"{where}.{key}" if where else key
    if key not in container:
        _fail(path, name, "is missing")
    value = container[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        _fail(path, name, f"must be {expected}, not {type(value).__name__}")
    return value


def _check_strings(value: list, path: Path, name: str) -> None:
    if not all(isinstance(item, str) for item in value):
        _fail(path, name, "must be a list of strings")


def check_file_record(record, path: Path, name: str) -> None:
    """A file record: a plain file name inside the bundle, its size and its sha256."""
    if not isinstance(record, dict):
        _fail(path, name, f"must be an object, not {type(record).__name__}")
    file = _require(record, "file", str, path, name)
    if file in ("", ".", "..", MANIFEST_NAME) or any(sep in file for sep in ("/", "\\", "\0")):
        _fail(path, f"{name}.file", f"must be a plain file name inside the bundle, not {file!r}")
    size = _require(record, "bytes", int, path, name)
    if size < 0:
        _fail(path, f"{name}.bytes", "must not be negative")
    if size > MAX_FILE_BYTES:
        _fail(path, f"{name}.bytes", f"is {size:,}; a bundle's file may have at most {MAX_FILE_BYTES:,} bytes")
    if not _SHA256.fullmatch(_require(record, "sha256", str, path, name)):
        _fail(path, f"{name}.sha256", "must be 64 lowercase hex digits")


def check_manifest(manifest, path: Path) -> None:
    """Every key the runtime, export and tests read, with its type; raise BundleError on the first miss."""
    if not isinstance(manifest, dict):
        _fail(path, "the manifest", f"must be an object, not {type(manifest).__name__}")
    version = manifest.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        _fail(path, "schema_version", f"is {version!r}; this code reads {SCHEMA_VERSION}")
    _require(manifest, "name", str, path, "")
    if "created" in manifest:
        _require(manifest, "created", str, path, "")
    try:
        config = ModelConfig.from_dict(_require(manifest, "model_config", dict, path, ""))
    except (ValueError, TypeError) as error:
        _fail(path, "model_config", f"is invalid: {error}")
    tokenizer = _require(manifest, "tokenizer", dict, path, "")
    check_file_record(_require(tokenizer, "vocabulary", dict, path, "tokenizer"), path, "tokenizer.vocabulary")
    words = _require(tokenizer, "words", int, path, "tokenizer")
    if not 0 < words <= config.vocab_size - FIRST_WORD_ID:
        _fail(path, "tokenizer.words", f"is {words}; the model reads at most {config.vocab_size - FIRST_WORD_ID}")
    for key, expected in TOKENIZER_SETTINGS.items():
        if tokenizer.get(key) != expected:
            _fail(path, f"tokenizer.{key}", f"is {tokenizer.get(key)!r}; this runtime's tokenizer uses {expected!r}")
    for key, record in _require(manifest, "artifacts", dict, path, "").items():
        name = f"artifacts.{key}"
        check_file_record(record, path, name)
        backend = _require(record, "format", str, path, name)
        if backend == "keras":
            continue
        graph, precision = (_require(record, key_name, str, path, name) for key_name in ("graph", "precision"))
        if (
            key != artifact_key(backend, graph, precision)
            or backend not in BACKENDS
            or graph not in ARTIFACT_GRAPHS
            or precision not in PRECISIONS
        ):
            _fail(path, name, f"is not a known artifact (format {backend!r}, graph {graph!r}, precision {precision!r})")
        for list_name in ("inputs", "outputs", "labels"):
            _check_strings(_require(record, list_name, list, path, name), path, f"{name}.{list_name}")
        if not _SHA256.fullmatch(_require(record, "vocabulary_sha256", str, path, name)):
            _fail(path, f"{name}.vocabulary_sha256", "must be 64 lowercase hex digits")
        _require(record, "sequence_length", (int, type(None)), path, name)
    if "padding_states" in manifest:
        check_file_record(manifest["padding_states"], path, "padding_states")
        if _require(manifest["padding_states"], "steps", int, path, "padding_states") < 0:
            _fail(path, "padding_states.steps", "must not be negative")
    for index, record in enumerate(_require(manifest, "reports", list, path, "") if "reports" in manifest else []):
        check_file_record(record, path, f"reports[{index}]")
    for key, result in (_require(manifest, "parity", dict, path, "") if "parity" in manifest else {}).items():
        if not isinstance(result, dict):
            _fail(path, f"parity.{key}", f"must be an object, not {type(result).__name__}")
        _require(result, "passed", bool, path, f"parity.{key}")
    for key, record in (("metrics", MetricsRecord), ("training", TrainingRecord), ("packaged", PackagedRecord)):
        if key in manifest:
            _check_plain(_require(manifest, key, dict, path, ""), record, path, key)


# What each field type of the training and metrics records takes (their annotations, as strings);
# a wrongly typed value is refused rather than dropped, so a manifest is written back as read.
_PLAIN_TYPES = {
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a string"),
    "Mapping": ((dict,), "an object"),
    "tuple[str, ...]": ((list,), "a list of strings"),
}


def _check_plain(data: dict, record: type, path: Path, where: str) -> None:
    """The fields of a _PlainRecord (or PackagedRecord) that `data` has, each of its annotated type."""
    for item in dataclasses.fields(record):
        if item.name not in data or item.name in ("extra", "order"):
            continue
        name, value = f"{where}.{item.name}", data[item.name]
        annotation = item.type.removesuffix(" | None")
        nullable = annotation != item.type
        nested = getattr(record, "NESTED", {}).get(item.name)
        kinds, expected = ((dict,), "an object") if nested else _PLAIN_TYPES[annotation]
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            _fail(path, name, f"must be {expected}{' or null' if nullable else ''}, not {type(value).__name__}")
        if annotation.startswith("tuple"):
            _check_strings(value, path, name)
        if nested:
            _check_plain(value, nested, path, name)


# The typed manifest --------------------------------------------------------------------------------
#
# `check_manifest` says what a manifest must hold; `Manifest.parse` checks it once and turns it into
# the frozen records below, which the rest of the code reads by attribute. Keys a record does not
# model (the exporters' `form`, `opset`, ...; parity's figures; `training` and `metrics`) are kept as
# read-only mappings, and each record remembers its keys' order, so `to_dict()` writes back what
# was read. The format is unchanged: SCHEMA_VERSION stays 1.


def _frozen(value):
    """A JSON value made read-only: objects as mappingproxy, arrays as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


def to_plain(value):
    """A value of the typed manifest as plain JSON data (dicts and lists): for json.dumps."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    return value


_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class _Record:
    """A manifest object: typed fields, the keys it does not model (`extra`) and its keys' order."""

    extra: Mapping = field(default_factory=lambda: _EMPTY)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def _known(self) -> dict:
        raise NotImplementedError

    def to_dict(self) -> dict:
        merged = {**{key: to_plain(value) for key, value in self._known().items()}, **to_plain(self.extra)}
        ordered = {key: merged[key] for key in self.order if key in merged}
        return {**ordered, **{key: value for key, value in merged.items() if key not in ordered}}

    @staticmethod
    def _split(data: Mapping, known: tuple[str, ...]) -> dict:
        return {"extra": _frozen({key: value for key, value in data.items() if key not in known}), "order": tuple(data)}


@dataclass(frozen=True, kw_only=True)
class FileRecord(_Record):
    """A file of the bundle: a plain name inside the folder, its size and its sha256."""

    file: str
    bytes: int
    sha256: str
    _KEYS = ("file", "bytes", "sha256")

    def _known(self) -> dict:
        return {"file": self.file, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping) -> "FileRecord":
        return cls(file=data["file"], bytes=data["bytes"], sha256=data["sha256"], **cls._split(data, cls._KEYS))

    @classmethod
    def of(cls, path: Path, **fields) -> "FileRecord":
        """How the manifest describes a file written into the bundle (`file_record`), with the
        record's other fields (an ArtifactRecord's format, ...)."""
        return cls.from_dict({**file_record(Path(path)), **fields})


@dataclass(frozen=True, kw_only=True)
class PaddingStatesRecord(FileRecord):
    steps: int  # the array holds the state after 0..steps padding steps
    _KEYS = (*FileRecord._KEYS, "steps")

    def _known(self) -> dict:
        return {**super()._known(), "steps": self.steps}

    @classmethod
    def from_dict(cls, data: Mapping) -> "PaddingStatesRecord":
        return cls(
            file=data["file"],
            bytes=data["bytes"],
            sha256=data["sha256"],
            steps=data["steps"],
            **cls._split(data, cls._KEYS),
        )


@dataclass(frozen=True)
class ArtifactKind:
    """Which device artifact: backend (tflite, onnx), graph (full, cached, steps) and precision."""

    backend: str
    graph: str
    precision: str

    @property
    def key(self) -> str:
        return artifact_key(self.backend, self.graph, self.precision)

    @property
    def filename(self) -> str:
        return artifact_filename(self.backend, self.graph, self.precision)


@dataclass(frozen=True, kw_only=True)
class ArtifactRecord(FileRecord):
    """One model file: `format` keras, or a device artifact with its kind and interface."""

    format: str
    graph: str | None = None
    precision: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    vocabulary_sha256: str | None = None
    sequence_length: int | None = None  # None: a graph that takes any length
    _KEYS = (
        *FileRecord._KEYS,
        "format",
        "graph",
        "precision",
        "inputs",
        "outputs",
        "labels",
        "vocabulary_sha256",
        "sequence_length",
    )

    @property
    def kind(self) -> ArtifactKind | None:
        """None for the Keras model, which no device runs."""
        return None if self.format == "keras" else ArtifactKind(self.format, self.graph, self.precision)

    @property
    def details(self) -> Mapping:
        """The exporter's own keys, which loading does not read (form, quantization, batch_size, opset)."""
        return self.extra

    def _known(self) -> dict:
        known = {**super()._known(), "format": self.format}
        if self.format == "keras":
            return {**known, **({"precision": self.precision} if self.precision is not None else {})}
        return {
            **known,
            "graph": self.graph,
            "precision": self.precision,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "labels": list(self.labels),
            "vocabulary_sha256": self.vocabulary_sha256,
            "sequence_length": self.sequence_length,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "ArtifactRecord":
        fields = {key: data[key] for key in cls._KEYS if key in data}
        for key in ("inputs", "outputs", "labels"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields, **cls._split(data, cls._KEYS))


@dataclass(frozen=True, kw_only=True)
class TokenizerRecord(_Record):
    """How texts become ids: runtime.text's settings (checked equal to TOKENIZER_SETTINGS) and the vocabulary."""

    vocabulary: FileRecord
    words: int  # how many words the vocabulary has
    module: str | None = TOKENIZER_MODULE
    settings: Mapping = field(
        default_factory=lambda: MappingProxyType(dict(TOKENIZER_SETTINGS))
    )  # pad_id, start_id, ..., padding, truncating
    _KEYS = ("module", "vocabulary", "words", *TOKENIZER_SETTINGS)

    def _known(self) -> dict:
        return {
            **({"module": self.module} if self.module is not None else {}),
            "vocabulary": self.vocabulary,
            "words": self.words,
            **self.settings,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "TokenizerRecord":
        return cls(
            vocabulary=FileRecord.from_dict(data["vocabulary"]),
            words=data["words"],
            module=data.get("module"),
            settings=_frozen({key: data[key] for key in TOKENIZER_SETTINGS}),
            **cls._split(data, cls._KEYS),
        )


@dataclass(frozen=True, kw_only=True)
class ParityRecord(_Record):
    """What `python -m export.parity` proved of one artifact: passed, for which sha256, and its figures."""

    passed: bool
    sha256: str | None = None
    _KEYS = ("passed", "sha256")

    @property
    def figures(self) -> Mapping:
        return self.extra

    def proves(self, record: FileRecord) -> bool:
        """A passing result for exactly this file's bytes."""
        return self.passed is True and self.sha256 == record.sha256

    def _known(self) -> dict:
        return {"passed": self.passed, **({"sha256": self.sha256} if self.sha256 is not None else {})}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ParityRecord":
        return cls(passed=data["passed"], sha256=data.get("sha256"), **cls._split(data, cls._KEYS))


@dataclass(frozen=True, kw_only=True)
class PackagedRecord(_Record):
    """Only in a wheel's copy (setup.py): the artifacts left out, and where they are."""

    omitted_artifacts: tuple[str, ...] = ()
    note: str | None = None
    _KEYS = ("omitted_artifacts", "note")

    def _known(self) -> dict:
        return {"omitted_artifacts": list(self.omitted_artifacts), **({"note": self.note} if self.note else {})}

    @classmethod
    def from_dict(cls, data) -> "PackagedRecord | None":
        if not isinstance(data, Mapping):  # not checked by check_manifest: read what there is
            return None
        omitted = data.get("omitted_artifacts")
        return cls(
            omitted_artifacts=tuple(omitted) if isinstance(omitted, list) else (),
            note=data.get("note") if isinstance(data.get("note"), str) else None,
            **cls._split(data, cls._KEYS),
        )


@dataclass(frozen=True, kw_only=True)
class _PlainRecord(_Record):
    """A record of plain, optional fields (`training` and `metrics` and their parts), which the
    runtime never interprets: each field is checked for its type only (`_check_plain`); written back with the keys it was read with (a new one
    writes every field but those of OMIT_WHEN_NONE that are None). NESTED names the fields that are
    records of their own."""

    NESTED = {}
    OMIT_WHEN_NONE = ()

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(item.name for item in dataclasses.fields(cls) if item.name not in ("extra", "order"))

    def _known(self) -> dict:
        return {
            name: getattr(self, name)
            for name in self._names()
            if name in self.order
            or (not self.order and not (name in self.OMIT_WHEN_NONE and getattr(self, name) is None))
        }

    @classmethod
    def from_dict(cls, data):
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            return None
        values = {name: _frozen(data[name]) for name in cls._names() if name in data}
        for name, record in cls.NESTED.items():
            values[name] = record.from_dict(values.get(name))
        return cls(**values, **cls._split(data, cls._names()))


@dataclass(frozen=True, kw_only=True)
class DataRecord(_PlainRecord):
    """training.data: what training read and how it split it (export re-creates the test texts from it)."""

    source: str | None = None
    sha256: str | None = None
    fit_reviews: int | None = None
    validation_reviews: int | None = None
    validation_block_ids: int | None = None  # IMDB's: validation takes whole blocks of consecutive ids
    test_reviews: int | None = None
    format: str = "imdb"  # bundles from before other data was supported are IMDB's
    columns: Mapping | None = None  # the data's column (or JSON key) of each role: text, label, split
    labels: tuple[str, ...] | None = None
    test_split: float | None = None  # None: the data's own test split
    split_seed: int | None = None
    label_counts: Mapping | None = None
    OMIT_WHEN_NONE = ("validation_block_ids",)

    def column(self, role: str) -> str | None:
        return self.columns.get(role) if isinstance(self.columns, Mapping) else None  # columns may be null


@dataclass(frozen=True, kw_only=True)
class TrainingRecord(_PlainRecord):
    """training: how the model was trained. `settings` is training.fit's TrainingSettings as a
    mapping (training.settings reads it back); the runtime never reads any of it."""

    settings: Mapping = field(default_factory=lambda: _EMPTY)
    data: DataRecord | None = None
    library_versions: Mapping = field(default_factory=lambda: _EMPTY)
    machine: str | None = None
    NESTED = {"data": DataRecord}


@dataclass(frozen=True, kw_only=True)
class RefitRecord(_PlainRecord):
    """metrics.refit: the fresh model trained on every training review for the validated epochs."""

    reviews: int | None = None
    epochs: int | None = None
    accuracy: float | None = None
    loss: float | None = None


@dataclass(frozen=True, kw_only=True)
class PretrainingRecord(_PlainRecord):
    """metrics.pretraining: how the embedding was started (word2vec or a language model), and the teacher."""

    method: str | None = None
    seconds: float | None = None
    teacher: Mapping | None = None  # the n-gram teacher's record (training/teacher.py)


@dataclass(frozen=True, kw_only=True)
class MetricsRecord(_PlainRecord):
    """metrics: the run's figures (validation, test, time)."""

    epochs_run: int | None = None
    best_epoch: int | None = None  # counted from 1
    validation_accuracy: float | None = None
    validation_loss: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_macro_f1: float | None = None
    test_within_one_accuracy: float | None = None  # labels that are numbers (ratings) only
    test_mean_absolute_error: float | None = None  # the same
    test_details: str | None = None  # the reports' file of per-label figures
    training_seconds: float | None = None
    seconds_per_epoch: float | None = None
    refit: RefitRecord | None = None  # None: the validated model itself is shipped
    pretraining: PretrainingRecord | None = None
    NESTED = {"refit": RefitRecord, "pretraining": PretrainingRecord}
    OMIT_WHEN_NONE = ("test_within_one_accuracy", "test_mean_absolute_error")


@dataclass(frozen=True, kw_only=True)
class Manifest(_Record):
    """A bundle's manifest.json, checked (`check_manifest`) and typed; `to_dict()` is what is written.

    `training` and `metrics` (the run's settings, data and figures) are only checked for type: the runtime
    never interprets them. A new manifest is made with `dataclasses.replace`."""

    name: str
    model_config: ModelConfig
    tokenizer: TokenizerRecord
    schema_version: int = SCHEMA_VERSION
    created: str | None = None  # when training wrote it (UTC, ISO 8601)
    artifacts: Mapping[str, ArtifactRecord] = field(default_factory=lambda: _EMPTY)  # keyed "keras" or ArtifactKind.key
    padding_states: PaddingStatesRecord | None = None
    parity: Mapping[str, ParityRecord] | None = None
    reports: tuple[FileRecord, ...] | None = None
    metrics: MetricsRecord | None = None
    training: TrainingRecord | None = None
    packaged: PackagedRecord | None = None
    _KEYS = (
        "schema_version",
        "name",
        "created",
        "model_config",
        "tokenizer",
        "training",
        "metrics",
        "reports",
        "artifacts",
        "padding_states",
        "parity",
        "packaged",
    )  # the order a new manifest is written in

    def __post_init__(self):
        # A writer may pass plain dicts: every mapping the manifest holds is read-only.
        for name in ("artifacts", "parity"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "metrics", MetricsRecord.from_dict(self.metrics))
        object.__setattr__(self, "training", TrainingRecord.from_dict(self.training))
        if self.reports is not None:
            object.__setattr__(self, "reports", tuple(self.reports))

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        """The manifest of the bundle in `folder`, read once and checked (every check of `check_manifest`)."""
        data, path = _load_manifest_json(folder)
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data, path: Path = Path(MANIFEST_NAME)) -> "Manifest":
        """A manifest from its JSON value; BundleError naming `path` and the key on the first problem."""
        check_manifest(data, path)
        optional = {
            "created": data.get("created") if isinstance(data.get("created"), str) else None,
            "padding_states": PaddingStatesRecord.from_dict(data["padding_states"])
            if "padding_states" in data
            else None,
            "parity": MappingProxyType({key: ParityRecord.from_dict(value) for key, value in data["parity"].items()})
            if "parity" in data
            else None,
            "reports": tuple(FileRecord.from_dict(record) for record in data["reports"]) if "reports" in data else None,
            "metrics": MetricsRecord.from_dict(data.get("metrics")),
            "training": TrainingRecord.from_dict(data.get("training")),
            "packaged": PackagedRecord.from_dict(data.get("packaged")),
        }
        return cls(
            schema_version=data["schema_version"],
            name=data["name"],
            model_config=ModelConfig.from_dict(data["model_config"]),
            tokenizer=TokenizerRecord.from_dict(data["tokenizer"]),
            artifacts=MappingProxyType(
                {key: ArtifactRecord.from_dict(record) for key, record in data["artifacts"].items()}
            ),
            **optional,
            **cls._split(data, cls._KEYS),
        )

    def artifact(self, kind: ArtifactKind) -> ArtifactRecord | None:
        return self.artifacts.get(kind.key)

    def parity_of(self, key: str) -> ParityRecord | None:
        return (self.parity or {}).get(key)

    def file_records(self) -> list[FileRecord]:
        """Every file of the bundle but the manifest itself."""
        return [
            self.tokenizer.vocabulary,
            *self.artifacts.values(),
            *([self.padding_states] if self.padding_states else []),
            *(self.reports or ()),
        ]

    def _known(self) -> dict:
        known = {
            "schema_version": self.schema_version,
            "name": self.name,
            "created": self.created,
            "model_config": self.model_config.to_dict(),
            "tokenizer": self.tokenizer,
            "training": self.training,
            "metrics": self.metrics,
            "reports": self.reports,
            "artifacts": dict(self.artifacts),
            "padding_states": self.padding_states,
            "parity": dict(self.parity) if self.parity is not None else None,
            "packaged": self.packaged,
        }
        return {key: value for key, value in known.items() if value is not None}


def read_file(folder: str | Path, record: "FileRecord | dict") -> bytes:
    """The bytes of one file of the bundle, read once and checked against its manifest record.

    The record's name is a plain name (checked by `read_manifest`); a symbolic link is followed
    only if it stays inside the bundle folder, and only a regular file is read (never a FIFO or
    a device, which could block or never end).
    """
    folder = Path(folder)
    if not isinstance(record, FileRecord):
        record = FileRecord.from_dict(record)
    path = folder / record.file
    real = path.resolve()
    if real.parent != folder.resolve():
        raise BundleError(f"{path}: a link that leads outside the bundle folder")
    content = _read_regular(real, record.bytes)
    if len(content) != record.bytes or hashlib.sha256(content).hexdigest() != record.sha256:
        raise BundleError(f"{path}: does not match the manifest (truncated, corrupt or replaced)")
    return content


def verify_file(folder: str | Path, record: "FileRecord | dict") -> Path:
    """Check one file of the bundle against its record; return its path (for loaders that need one)."""
    read_file(folder, record)
    return Path(folder) / (record.file if isinstance(record, FileRecord) else record["file"])


class Bundle:
    """A bundle folder opened once: its manifest read and checked (`read_manifest`), and its files
    handed out verified against their records. Everything that loads from a bundle takes one of
    these, so the folder is named once, where it is opened.

        opened = Bundle.open("models/imdb-lstm")
        vocabulary = opened.read(opened.manifest.tokenizer.vocabulary)   # checked bytes
    """

    def __init__(self, folder: str | Path, manifest: Manifest):
        self.folder = Path(folder)
        self.manifest = manifest
        self.config = manifest.model_config

    @classmethod
    def open(cls, folder: str | Path) -> "Bundle":
        return cls(folder, Manifest.read(folder))

    def __repr__(self) -> str:
        return f"Bundle({str(self.folder)!r})"

    def path(self, record: FileRecord) -> Path:
        """Where a record's file is (not yet checked: `read` or `verify` checks it)."""
        return self.folder / record.file

    def read(self, record: FileRecord) -> bytes:
        """The bytes of one file of the bundle, read once and checked against its record (`read_file`)."""
        return read_file(self.folder, record)

    def verify(self, record: FileRecord) -> Path:
        """Check one file against its record; return its path (for loaders that need one)."""
        return verify_file(self.folder, record)


# Writing ---------------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict:  # as a FileRecord: FileRecord.of(path)
    """How the manifest describes a file: its name, size and sha256."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


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


def write_manifest(folder: str | Path, manifest: "Manifest | dict") -> None:
    """Write manifest.json, the one writer of a manifest (a Manifest's `to_dict()`, or a plain dict
    from code that edits it as JSON); refuse one that `read_manifest` would refuse as too large."""
    if isinstance(manifest, Manifest):
        manifest = manifest.to_dict()
    check_values(manifest, Path(folder) / MANIFEST_NAME)
    size = len(json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8")) + 1
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{Path(folder) / MANIFEST_NAME}: would be {size:,} bytes, over the "
            f"{MAX_MANIFEST_BYTES:,} a bundle's manifest may have"
        )
    write_json(Path(folder) / MANIFEST_NAME, manifest)


def is_bundle(folder: str | Path) -> bool:
    """Whether `folder` holds a manifest this project wrote: a regular manifest.json with a
    schema_version and the tokenizer module of runtime.text. Its other keys are not checked, so
    a bundle of an older schema, or a damaged one, can still be replaced."""
    try:
        manifest = json.loads(_read_regular(Path(folder) / MANIFEST_NAME, MAX_MANIFEST_BYTES))
    except (BundleError, ValueError, RecursionError):
        return False
    return (
        isinstance(manifest, dict)
        and type(manifest.get("schema_version")) is int
        and isinstance(manifest.get("tokenizer"), dict)
        and manifest["tokenizer"].get("module") == TOKENIZER_MODULE
    )


def check_replaceable(target: str | Path, protected=()) -> None:
    """Refuse, with a BundleError, a folder that writing a bundle to `target` must not replace.

    The one rule for every command that replaces a folder (training.fit --overwrite, the
    exporters): `target` must have a UTF-8 name; if it exists, it must be a real folder (not a
    link) holding a bundle (`is_bundle`), and neither be nor hold any `protected` path (the
    training data), whatever its manifest says. Nothing is touched either way.
    """
    target = Path(target)
    try:
        os.fsdecode(target).encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError(f"{os.fsdecode(target)!r}: the folder name is not valid UTF-8; choose another") from None
    if not os.path.lexists(target):
        return
    if target.is_symlink():
        raise BundleError(f"{target}: a symbolic link; name the folder itself")
    if not target.is_dir():
        raise BundleError(f"{target}: exists and is not a folder; refusing to replace it")
    real = target.resolve()
    for path in protected:
        if path is None:
            continue
        path = Path(path).resolve()
        if path == real or real in path.parents:
            raise BundleError(
                f"{target}: holds the training data ({path}); refusing to replace it, choose another output folder"
            )
    if not is_bundle(target):
        raise BundleError(
            f"{target}: not a model bundle (no {MANIFEST_NAME} written by this project); "
            "refusing to replace it, choose another output folder"
        )


@contextlib.contextmanager
def staging_folder(target: Path, copy_from: Path | None = None, protected=()) -> Iterator[Path]:
    """A private folder beside `target` (optionally a copy of `copy_from`'s files); it replaces
    `target` only if the block succeeds, and is removed in any case. `target` is checked by
    `check_replaceable` before and again just before it is replaced (a long run gives time for
    the folder to change)."""
    target = Path(target)
    check_replaceable(target, protected)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.resolve().parent))
    try:
        if copy_from is not None:
            for source in Path(copy_from).iterdir():
                if source.is_file() and not source.is_symlink():
                    shutil.copy2(source, staging / source.name)
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be read by anyone
        check_replaceable(target, protected)
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(staging: Path, target: Path) -> None:
    """Move a fully written folder into place; the previous one stays until the new one is there.
    Only `staging_folder` calls it, after `check_replaceable`."""
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.previous-{os.getpid()}")
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup)
