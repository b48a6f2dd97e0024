"""From an opened bundle and the options to verified parts: the tokenizer, an artifact in an
interpreter, the padding states. What the classifier (runtime/classifier.py) and explain's per-step
model (runtime/explain.py) are built from; both come here, neither imports the other's loading.

    opened = bundle.Bundle.open(folder)
    graph = load_graph(opened, options, options.graph)      # verified, in an interpreter, with its shapes
    tokenizer, states = load_tokenizer(opened), load_padding_states(opened)

Every part is trusted only as far as the manifest records and parity has proven it: each file is
read once through the bundle and checked against its sha256, an artifact needs a passing parity
record for exactly its bytes (unless `allow_unverified`, which warns) and its own fingerprint must
name this bundle's vocabulary, labels, graph, sequence length, inputs and outputs.

A model of the options (layers, bidirectional, attention: not `config.uses_padding_states`) masked
its padding in training, so its cached and steps graphs take the review's tokens alone, from no
state, and the bundle has no padding states.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime import backends, bundle
from runtime.bundle import ArtifactKind, ArtifactRecord, Bundle, BundleError
from runtime.config import ModelConfig
from runtime.text import Tokenizer


@dataclass(frozen=True, kw_only=True)
class ClassifierOptions:
    """Everything that chooses and loads a classifier, in one frozen record (the pattern of MediaPipe
    Tasks' TextClassifierOptions): `SentimentClassifier.create_from_options(options)`. The
    classifier keeps it, so what it loads later (explain's per-step artifact) is loaded alike."""

    folder: Path = bundle.DEFAULT_BUNDLE  # the bundle
    backend: str = "auto"  # "auto" or one of bundle.BACKENDS; a classifier's own options name the one resolved
    precision: str = "float32"  # one of bundle.PRECISIONS
    graph: str = "cached"  # one of bundle.GRAPHS
    threads: int | None = None  # interpreter threads, 1 to backends.MAX_THREADS; None: the interpreter's choice
    xnnpack: bool = True  # LiteRT's default CPU delegate; off only to measure it
    allow_unverified: bool = False  # load an artifact without a passing parity record (warns)
    show_native_logs: bool = False  # let the interpreters' own log lines reach stderr (the CLIs' --verbose)
    trust: Path | None = None  # a PEM public key: the bundle must carry its valid signature (runtime.signing)

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))

    def check(self) -> None:
        """ValueError for a precision or graph this runtime does not know (the backend: resolve_backend)."""
        if self.precision not in bundle.PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from {', '.join(bundle.PRECISIONS)}")
        if self.graph not in bundle.GRAPHS:
            raise ValueError(f"unknown graph {self.graph!r}; choose from {', '.join(bundle.GRAPHS)}")


class UnverifiedArtifactWarning(UserWarning):
    """An artifact loaded with allow_unverified=True although parity has not proven it."""


@dataclass(frozen=True)
class LoadedGraph:
    """One verified artifact in an interpreter, and the shapes it declares for one review: token ids
    (1, -1) or time-major (-1, 1), and h0 / c0 (None for the graphs that take no state: the full
    graph, and every graph of a model of the options)."""

    model: object
    path: Path
    ids_shape: tuple | None
    state_shape: tuple | None


def load_tokenizer(opened: Bundle) -> Tokenizer:
    """The bundle's vocabulary (one word a line), if it has the words the manifest records and fits the model."""
    config, tokenizer_record = opened.config, opened.manifest.tokenizer
    vocabulary = tokenizer_record.vocabulary
    try:
        tokenizer = Tokenizer.parse(opened.read(vocabulary), config.sequence_length, opened.path(vocabulary))
    except ValueError as error:
        raise BundleError(str(error)) from None
    if tokenizer.vocab_size > config.vocab_size or len(tokenizer.words) != tokenizer_record.words:
        raise BundleError(
            f"{opened.path(vocabulary)}: {len(tokenizer.words)} words; the manifest "
            f"records {tokenizer_record.words} for a model of {config.vocab_size} ids"
        )
    return tokenizer


def load_padding_states(opened: Bundle) -> np.ndarray | None:
    """The LSTM state after each number of padding steps, where the cached and steps graphs start:
    float32, shape (steps + 1, 2, lstm_units), finite. None for a model of the options, which has none."""
    record = opened.manifest.padding_states
    if not opened.config.uses_padding_states:
        if record is not None:
            raise BundleError(
                f"{opened.folder}: lists padding states, which a model that masks its padding has none of"
            )
        return None
    if record is None:
        raise BundleError(f"{opened.folder}: the manifest lists no padding states")
    path, config = opened.path(record), opened.config
    try:
        states = np.load(io.BytesIO(opened.read(record)), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise BundleError(f"{path}: not a numpy array file") from None
    expected = (record.steps + 1, 2, config.lstm_units)
    if states.dtype != np.float32 or states.shape != expected or not 1 <= len(states) <= config.sequence_length:
        raise BundleError(f"{path}: {states.dtype} array of shape {states.shape}; expected float32 {expected}")
    if not np.isfinite(states).all():
        raise BundleError(f"{path}: holds values that are not finite")
    return states


def load_graph(opened: Bundle, options: ClassifierOptions, graph: str) -> LoadedGraph:
    """The artifact of `graph` in the options' backend (resolved) and precision, proven and verified
    (`artifact_record`, `load_artifact`), with the shapes it declares for one review."""
    record = artifact_record(opened, ArtifactKind(options.backend, graph, options.precision), options.allow_unverified)
    model = load_artifact(opened, record, options)
    path = opened.path(record)
    if graph == "full":
        return LoadedGraph(model, path, None, None)
    return LoadedGraph(model, path, *review_shapes(model, opened.config, path))


def review_shapes(model, config: ModelConfig, path: Path) -> tuple[tuple, tuple | None]:
    """The shapes a cached or steps graph declares for one review: token ids (1, -1) or time-major
    (-1, 1), and h0 / c0 (None for a model of the options, which takes no state)."""
    ids_shape = model.input_shapes.get("token_ids", (-1, -1))
    if not config.uses_padding_states:
        if ids_shape.count(-1) != 1 or set(model.input_shapes) != {"token_ids"}:
            raise BundleError(f"{path}: its inputs are not one review's tokens ({model.input_shapes})")
        return ids_shape, None
    state_shape = model.input_shapes.get("h0", (-1, -1))
    if ids_shape.count(-1) != 1 or -1 in state_shape or np.prod(state_shape) != config.lstm_units:
        raise BundleError(
            f"{path}: its inputs are not one review's (token_ids {ids_shape}, h0 {state_shape}); "
            "export it again with this version"
        )
    return ids_shape, state_shape


def artifact_record(opened: Bundle, kind: ArtifactKind, allow_unverified: bool) -> ArtifactRecord:
    """The manifest record of one artifact, if the manifest proves it: a passing parity record for
    exactly its bytes (unless `allow_unverified`, which warns) and this bundle's vocabulary."""
    manifest, folder, key = opened.manifest, opened.folder, kind.key
    record = manifest.artifact(kind)
    if record is None:
        packaged = manifest.packaged
        if packaged is not None and key in packaged.omitted_artifacts:
            raise BundleError(f"{folder}: no {key} artifact here: {packaged.note}")
        if kind.graph == "full" and not opened.config.uses_padding_states:
            raise BundleError(
                f"{folder}: no {key} artifact: this model masks its padding, so its graph is the cached "
                "one, which reads the review's own tokens"
            )
        raise BundleError(f"{folder}: no {key} artifact; run python -m export.{kind.backend}")
    parity = manifest.parity_of(key)
    if not (parity is not None and parity.proves(record)):
        if not allow_unverified:
            raise BundleError(
                f"{opened.path(record)}: no passing parity record for this file; prove it with "
                f"python -m export.parity --model {folder} (or allow_unverified=True / --allow-unverified)"
            )
        warnings.warn(
            f"{opened.path(record)}: loaded without a passing parity record",
            UnverifiedArtifactWarning,
            stacklevel=_caller_stacklevel(),
        )
    vocabulary = manifest.tokenizer.vocabulary
    if record.vocabulary_sha256 != vocabulary.sha256:
        raise BundleError(f"{opened.path(vocabulary)}: this vocabulary does not belong to {record.file}")
    return record


def load_artifact(opened: Bundle, record: ArtifactRecord, options: ClassifierOptions):
    """An artifact's file (read once, checked against its sha256) in an interpreter, if its own
    fingerprint names this bundle's vocabulary, labels, sequence length, graph and inputs."""
    config, path = opened.config, opened.path(record)
    try:
        model = backends.load_model(
            record.format, opened.read(record), options.threads, options.xnnpack, options.show_native_logs
        )
    except backends.BackendError as error:
        raise backends.BackendError(f"{path}: {error}") from None
    _check_fingerprint(
        path,
        backends.fingerprint_of(model.metadata),
        {
            "vocabulary_sha256": opened.manifest.tokenizer.vocabulary.sha256,
            "labels": list(config.labels),
            "graph": record.graph,
            "sequence_length": config.sequence_length,
            "inputs": list(record.inputs),
            "outputs": list(record.outputs),
        },
    )
    mismatch = model.config_mismatch(config, record.details.get("form", "while"))
    if mismatch:  # a relabelled manifest made /v1/model report false values
        raise BundleError(f"{path}: the manifest's model_config.{mismatch}")
    return model


def _check_fingerprint(path: Path, fingerprint: dict | None, expected: dict) -> None:
    """The model file's own record of what it was exported for must match the manifest."""
    if fingerprint is None:
        raise BundleError(f"{path}: carries no export fingerprint; export it again with this version")
    for key, value in expected.items():
        if fingerprint.get(key) != value:
            what = "vocabulary" if key == "vocabulary_sha256" else key.replace("_", " ")
            raise BundleError(f"{path}: was exported for another {what} than this bundle's")


def _caller_stacklevel() -> int:
    """The `stacklevel` for a warning raised by this function's caller that names the first frame
    outside this package: the user's from_bundle(...) or explain(...) line, however deep the
    runtime's own calls go (warnings.warn's skip_file_prefixes, which needs Python 3.12)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame, level = frame.f_back, level + 1
    return level
