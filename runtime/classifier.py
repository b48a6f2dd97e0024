"""Raw review text in, sentiment out: the device API.

    from runtime import SentimentClassifier
    with SentimentClassifier.from_bundle(backend="auto", precision="int8") as classifier:
        print(classifier.classify("A wonderful film with a brilliant cast."))

A classifier may be shared by many threads: its TFLite interpreter is serialised by a lock and
an ONNX Runtime session is safe to call concurrently, so every caller gets its own answer.
`classifier.explain(text)` shows the model's opinion after every word (runtime/explain.py).
"""

from __future__ import annotations

import io
import os
import sys
import dataclasses
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime import backends, bundle
from runtime.text import Tokenizer, pad_ids

# The longest text classified, in characters. The model reads a review's last 500 tokens, so
# nothing longer changes an answer much, and a bound keeps one input from taking the memory.
MAX_TEXT_CHARACTERS = 1 << 20


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
class Prediction:
    label: str
    score: float  # the probability of `label`
    probabilities: dict[str, float]  # every label's probability, in the manifest's label order

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "probabilities": self.probabilities}


class BatchError(ValueError):
    """Some texts of a batch could not be classified; the others' answers are kept.

    `predictions[i]` is the Prediction of text i, or None where `errors[i]` says what was wrong."""

    def __init__(self, predictions: list[Prediction | None], errors: dict[int, str]):
        self.predictions, self.errors = predictions, errors
        shown = "; ".join(f"texts[{index}]: {message}" for index, message in list(errors.items())[:3])
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        super().__init__(f"{len(errors)} of {len(predictions)} texts could not be classified: {shown}{more}")


def _check_fingerprint(path: Path, fingerprint: dict | None, expected: dict) -> None:
    """The model file's own record of what it was exported for must match the manifest."""
    if fingerprint is None:
        raise bundle.BundleError(f"{path}: carries no export fingerprint; export it again with this version")
    for key, value in expected.items():
        if fingerprint.get(key) != value:
            what = "vocabulary" if key == "vocabulary_sha256" else key.replace("_", " ")
            raise bundle.BundleError(f"{path}: was exported for another {what} than this bundle's")


def _padding_states(path: Path, content: bytes, config, steps: int) -> np.ndarray:
    try:
        states = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise bundle.BundleError(f"{path}: not a numpy array file") from None
    expected = (steps + 1, 2, config.lstm_units)
    if states.dtype != np.float32 or states.shape != expected or not 1 <= len(states) <= config.sequence_length:
        raise bundle.BundleError(f"{path}: {states.dtype} array of shape {states.shape}; expected float32 {expected}")
    if not np.isfinite(states).all():
        raise bundle.BundleError(f"{path}: holds values that are not finite")
    return states


def load_padding_states(folder: Path, manifest: dict) -> np.ndarray:
    """The LSTM state after each number of padding steps, where the cached and steps graphs start."""
    states = manifest.get("padding_states")
    if states is None:
        raise bundle.BundleError(f"{folder}: the manifest lists no padding states")
    return _padding_states(folder / states["file"], bundle.read_file(folder, states), bundle.model_config(manifest),
                           states["steps"])


def review_shapes(model, config, path: Path) -> tuple[tuple, tuple]:
    """The shapes a graph that starts from a padding state declares for one review: token ids
    (1, -1) or time-major (-1, 1), and h0 / c0."""
    ids_shape, state_shape = (model.input_shapes.get(name, (-1, -1)) for name in ("token_ids", "h0"))
    if ids_shape.count(-1) != 1 or -1 in state_shape or np.prod(state_shape) != config.lstm_units:
        raise bundle.BundleError(f"{path}: its inputs are not one review's (token_ids {ids_shape}, h0 {state_shape}); "
                                 "export it again with this version")
    return ids_shape, state_shape


def _caller_stacklevel() -> int:
    """The `stacklevel` for a warning raised by this function's caller that names the first frame
    outside this package: the user's from_bundle(...) or explain(...) line, however deep the
    runtime's own calls go (warnings.warn's skip_file_prefixes, which needs Python 3.12)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame, level = frame.f_back, level + 1
    return level


def artifact_record(folder: Path, manifest: dict, backend: str, graph: str, precision: str,
                    allow_unverified: bool) -> dict:
    """The manifest record of one artifact, if the manifest proves it: a passing parity record for
    exactly its bytes (unless `allow_unverified`, which warns) and this bundle's vocabulary."""
    key = bundle.artifact_key(backend, graph, precision)
    record = manifest["artifacts"].get(key)
    if record is None:
        packaged = manifest.get("packaged", {})
        if key in packaged.get("omitted_artifacts", []):
            raise bundle.BundleError(f"{folder}: no {key} artifact here: {packaged.get('note')}")
        raise bundle.BundleError(f"{folder}: no {key} artifact; run python -m export.{backend}")
    parity = manifest.get("parity", {}).get(key, {})
    if not (parity.get("passed") is True and parity.get("sha256") == record["sha256"]):
        if not allow_unverified:
            raise bundle.BundleError(
                f"{folder / record['file']}: no passing parity record for this file; prove it with "
                f"python -m export.parity --model {folder} (or allow_unverified=True / --allow-unverified)")
        warnings.warn(f"{folder / record['file']}: loaded without a passing parity record",
                      UnverifiedArtifactWarning, stacklevel=_caller_stacklevel())
    vocabulary = manifest["tokenizer"]["vocabulary"]
    if record["vocabulary_sha256"] != vocabulary["sha256"]:
        raise bundle.BundleError(
            f"{folder / vocabulary['file']}: this vocabulary does not belong to {record['file']}")
    return record


def load_artifact(folder: Path, manifest: dict, record: dict, options: ClassifierOptions):
    """An artifact's file (read once, checked against its sha256) in an interpreter, if its own
    fingerprint names this bundle's vocabulary, labels, sequence length, graph and inputs."""
    config = bundle.model_config(manifest)
    path = folder / record["file"]
    try:
        model = backends.load_model(record["format"], bundle.read_file(folder, record), options.threads,
                                    options.xnnpack, options.show_native_logs)
    except backends.BackendError as error:
        raise backends.BackendError(f"{path}: {error}") from None
    _check_fingerprint(path, backends.fingerprint_of(model.metadata), {
        "vocabulary_sha256": manifest["tokenizer"]["vocabulary"]["sha256"], "labels": list(config.labels),
        "graph": record["graph"], "sequence_length": config.sequence_length, "inputs": record["inputs"],
        "outputs": record["outputs"]})
    return model


class SentimentClassifier:
    """A verified bundle, its tokenizer and one interpreter for one artifact."""

    def __init__(self, folder: Path, manifest: dict, tokenizer: Tokenizer, model, padding_states: np.ndarray | None,
                 *, options: ClassifierOptions):
        self.options = options  # as loaded: the backend is the one resolved
        self.folder = folder
        self.manifest = manifest
        self.config = bundle.model_config(manifest)
        self.tokenizer = tokenizer
        self.backend, self.graph, self.precision = options.backend, options.graph, options.precision
        self._model = model
        self.padding_states = self._ids_shape = None
        if self.graph == "cached":  # the shapes the graph declares for one review: ids (1, -1) or time-major (-1, 1)
            path = folder / bundle.artifact_filename(self.backend, self.graph, self.precision)
            self._ids_shape, state_shape = review_shapes(model, self.config, path)
            # The cached graph's start: row k holds h0 and c0 after k padding steps, in the graph's shapes.
            self.padding_states = padding_states.reshape(len(padding_states), 2, *state_shape)
        self._steps = None  # explain's per-step graph, loaded on its first call with these options
        self._steps_lock = threading.Lock()

    @classmethod
    def from_bundle(cls, folder: str | Path = bundle.DEFAULT_BUNDLE, backend: str = "auto",
                    precision: str = "float32", graph: str = "cached", threads: int | None = None,
                    xnnpack: bool = True, allow_unverified: bool = False) -> "SentimentClassifier":
        """`create_from_options` with these options (see ClassifierOptions)."""
        return cls.create_from_options(ClassifierOptions(
            folder=folder, backend=backend, precision=precision, graph=graph, threads=threads, xnnpack=xnnpack,
            allow_unverified=allow_unverified))

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> "SentimentClassifier":
        """Load a bundle, trusting only what its manifest records and parity has proven.

        Each file is a plain name inside `options.folder`, read once, checked against its sha256 and
        loaded from those bytes. The artifact must have a passing parity record for exactly these
        bytes (`python -m export.parity`), unless `allow_unverified` (which warns), and its own
        fingerprint must name this bundle's vocabulary, labels and sequence length.
        """
        options.check()
        options = dataclasses.replace(options, backend=backends.resolve_backend(options.backend))
        folder = options.folder
        manifest = bundle.read_manifest(folder)
        config = bundle.model_config(manifest)
        record = artifact_record(folder, manifest, options.backend, options.graph, options.precision,
                                 options.allow_unverified)
        vocabulary = manifest["tokenizer"]["vocabulary"]
        try:
            tokenizer = Tokenizer.parse(bundle.read_file(folder, vocabulary), config.sequence_length,
                                        folder / vocabulary["file"])
        except ValueError as error:
            raise bundle.BundleError(str(error)) from None
        if tokenizer.vocab_size > config.vocab_size or len(tokenizer.words) != manifest["tokenizer"]["words"]:
            raise bundle.BundleError(f"{folder / vocabulary['file']}: {len(tokenizer.words)} words; the manifest "
                                     f"records {manifest['tokenizer']['words']} for a model of {config.vocab_size} ids")
        model = load_artifact(folder, manifest, record, options)
        padding_states = load_padding_states(folder, manifest) if options.graph == "cached" else None
        return cls(folder, manifest, tokenizer, model, padding_states, options=options)

    def probabilities_of_ids(self, ids: list[int]) -> np.ndarray:
        """The model's output for one review's unpadded token ids (`tokenizer.token_ids`)."""
        length = self.config.sequence_length
        if not 0 < len(ids) <= length:  # else the cached graph would start from a wrong padding state
            raise ValueError(f"a review has 1 to {length} token ids, not {len(ids)}")
        if self.graph == "full":
            return self._model.run({"token_ids": pad_ids([ids], length)})[0]
        # Padding is the same for every review, so the state after it was computed at export:
        # start from there and run only the review's own tokens.
        padding_steps = min(length - len(ids), len(self.padding_states) - 1)
        h0, c0 = self.padding_states[padding_steps]
        return self._model.run({"token_ids": np.array(ids, np.int32).reshape(self._ids_shape), "h0": h0, "c0": c0})[0]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The model's output for each text, shape (len(texts), number of labels)."""
        rows = [self.probabilities_of_ids(self._ids(text)) for text in _texts(texts)]
        return np.array(rows, np.float32).reshape(len(rows), self.config.num_classes)

    def _ids(self, text: str) -> list[int]:
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARACTERS:
            raise ValueError(f"the text has {len(text):,} characters; at most {MAX_TEXT_CHARACTERS:,} are classified")
        ids = self.tokenizer.token_ids(text)
        if len(ids) < 2:  # the start id alone: nothing to read
            raise ValueError("the text has no words to classify")
        return ids

    def _prediction(self, probabilities: np.ndarray) -> Prediction:
        values = probabilities.tolist()  # plain floats: cheaper than a numpy scalar per element
        best = values.index(max(values))
        labels = self.config.labels
        return Prediction(labels[best], values[best], dict(zip(labels, values)))

    def classify(self, text: str) -> Prediction:
        """The label of one text; ValueError for a text without words or over MAX_TEXT_CHARACTERS,
        TypeError for anything but a str."""
        return self._prediction(self.probabilities_of_ids(self._ids(text)))

    def classify_batch(self, texts: Sequence[str]) -> list[Prediction]:
        """The label of each text. If some fail, BatchError carries the others' answers and which failed."""
        predictions, errors = [], {}
        for index, text in enumerate(_texts(texts)):
            try:
                predictions.append(self.classify(text))
            except (ValueError, TypeError) as error:
                predictions.append(None)
                errors[index] = str(error)
        if errors:
            raise BatchError(predictions, errors)
        return predictions

    def explain(self, text: str):
        """The model's opinion after every word of one text, and each word's effect on the answer;
        its final answer is exactly `classify(text)`'s. See runtime.explain (an example there).
        The bundle's per-step artifact (model.steps.*) of this backend and precision is loaded on
        the first call; errors as `classify`, and BundleError if the bundle has no such artifact."""
        from runtime import explain

        with self._steps_lock:
            if self._steps is None:
                self._steps = explain.StepModel.load(self)
        return explain.explain(self, self._steps, text)

    def describe(self) -> dict:
        """What a client may want to know about the loaded model (the server's GET /v1/model)."""
        return {"name": self.manifest["name"], "backend": self.backend, "interpreter": self._model.module,
                "graph": self.graph, "precision": self.precision, "labels": list(self.config.labels),
                "model_config": self.manifest["model_config"], "metrics": self.manifest.get("metrics", {})}

    def close(self) -> None:
        self._model = self._steps = None

    def __enter__(self) -> "SentimentClassifier":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _texts(texts: Sequence[str]) -> Sequence[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("a batch is a list of texts, not one str; use classify(text) for one")
    return texts
