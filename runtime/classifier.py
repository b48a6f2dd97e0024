"""Raw review text in, sentiment out: the device API.

    from runtime import SentimentClassifier
    with SentimentClassifier.from_bundle(backend="auto", precision="int8") as classifier:
        print(classifier.classify("A wonderful film with a brilliant cast."))

A classifier may be shared by many threads: its TFLite interpreter is serialised by a lock and
an ONNX Runtime session is safe to call concurrently, so every caller gets its own answer.
`classifier.explain(text)` shows the model's opinion after every word (runtime/explain.py).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime import backends, bundle, explain, loading, signing
from runtime.loading import ClassifierOptions, UnverifiedArtifactWarning
from runtime.text import Coverage, Tokenizer, coverage, pad_ids

__all__ = [
    "MAX_TEXT_CHARACTERS",
    "WARN_BELOW_KNOWN",
    "BatchError",
    "ClassifierOptions",
    "Coverage",
    "Prediction",
    "SentimentClassifier",
    "TooFewKnownWords",
    "UnverifiedArtifactWarning",
]

# The longest text classified, in characters. The model reads a review's last 500 tokens, so
# nothing longer changes an answer much, and a bound keeps one input from taking the memory.
MAX_TEXT_CHARACTERS = 1 << 20
# An answer warns when the model knows fewer than this share of the words it read: a text in
# another language, or of words it never saw, still gets probabilities, which then mean little.
WARN_BELOW_KNOWN = 0.5


def coverage_warning(known: Coverage) -> str | None:
    """The warning an answer carries when the model knows too few of the words it read, else None."""
    if known.share >= WARN_BELOW_KNOWN:
        return None
    return f"{known} (under {WARN_BELOW_KNOWN:.0%}): it cannot read this text, so its answer means little"


class TooFewKnownWords(ValueError):
    """A text refused because the model knows fewer of its words than the caller's `min_known`."""

    def __init__(self, known: Coverage, min_known: float):
        self.coverage = known
        super().__init__(f"{known} ({known.share:.0%}); at least {min_known:.0%} asked for")


def check_min_known(min_known: float) -> float:
    """`min_known` if it is a share from 0 to 1, else ValueError."""
    if isinstance(min_known, bool) or not isinstance(min_known, (int, float)) or not 0 <= min_known <= 1:
        raise ValueError(f"min_known is a share of the words from 0 to 1, not {min_known!r}")
    return float(min_known)


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # the probability of `label`
    probabilities: dict[str, float]  # every label's probability, in the manifest's label order
    coverage: Coverage  # how many of the words read the model knows

    @property
    def warning(self) -> str | None:
        """Why this answer should not be trusted (too few words known), or None."""
        return coverage_warning(self.coverage)

    def to_dict(self) -> dict:
        body = {
            "label": self.label,
            "score": self.score,
            "probabilities": self.probabilities,
            "coverage": self.coverage.to_dict(),
        }
        warning = self.warning
        return {**body, "warning": warning} if warning else body


class BatchError(ValueError):
    """Some texts of a batch could not be classified; the others' answers are kept.

    `predictions[i]` is the Prediction of text i, or None where `errors[i]` says what was wrong."""

    def __init__(self, predictions: list[Prediction | None], errors: dict[int, str]):
        self.predictions, self.errors = predictions, errors
        shown = "; ".join(f"texts[{index}]: {message}" for index, message in list(errors.items())[:3])
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        super().__init__(f"{len(errors)} of {len(predictions)} texts could not be classified: {shown}{more}")


class SentimentClassifier:
    """A verified bundle, its tokenizer and one interpreter for one artifact (`create_from_options`)."""

    def __init__(
        self,
        opened: bundle.Bundle,
        tokenizer: Tokenizer,
        model,
        padding_states: np.ndarray | None,
        *,
        options: ClassifierOptions,
    ):
        self.options = options  # as loaded: the backend is the one resolved
        self.bundle = opened
        self.folder, self.manifest, self.config = opened.folder, opened.manifest, opened.config
        self.tokenizer = tokenizer
        self.backend, self.graph, self.precision = options.backend, options.graph, options.precision
        self._model = model
        self.padding_states = self._ids_shape = None
        if self.graph == "cached":  # the shapes the graph declares for one review: ids (1, -1) or time-major (-1, 1)
            path = opened.path(opened.manifest.artifact(bundle.ArtifactKind(self.backend, self.graph, self.precision)))
            self._ids_shape, state_shape = loading.review_shapes(model, self.config, path)
            # The cached graph's start: row k holds h0 and c0 after k padding steps, in the graph's shapes
            # (none for a model of the options, which reads the review's tokens from no state).
            if state_shape is not None:
                self.padding_states = padding_states.reshape(len(padding_states), 2, *state_shape)
        self._steps = None  # explain's per-step graph, loaded on its first call with these options
        self._steps_lock = threading.Lock()

    @classmethod
    def from_bundle(
        cls,
        folder: str | Path = bundle.DEFAULT_BUNDLE,
        backend: str = "auto",
        precision: str = "float32",
        graph: str = "cached",
        threads: int | None = None,
        xnnpack: bool = True,
        allow_unverified: bool = False,
        trust: str | Path | None = None,
    ) -> "SentimentClassifier":
        """`create_from_options` with these options (see ClassifierOptions)."""
        return cls.create_from_options(
            ClassifierOptions(
                folder=folder,
                backend=backend,
                precision=precision,
                graph=graph,
                threads=threads,
                xnnpack=xnnpack,
                allow_unverified=allow_unverified,
                trust=trust,
            )
        )

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> "SentimentClassifier":
        """Load a bundle, trusting only what its manifest records and parity has proven.

        Each file is a plain name inside `options.folder`, read once, checked against its sha256 and
        loaded from those bytes. The artifact must have a passing parity record for exactly these
        bytes (`python -m export.parity`), unless `allow_unverified` (which warns), and its own
        fingerprint must name this bundle's vocabulary, labels and sequence length.
        """
        options.check()
        backends.resolve_backend(options.backend)  # no interpreter installed: said before the bundle is read
        if options.trust is not None:  # who signed it, before anything of it is read
            signing.verify_bundle(options.folder, options.trust)
        opened = bundle.Bundle.open(options.folder)  # the one place the folder is read from

        def in_bundle(backend: str) -> bool:
            kind = bundle.ArtifactKind(backend, options.graph, options.precision)
            return opened.manifest.artifact(kind) is not None

        options = dataclasses.replace(options, backend=backends.resolve_backend(options.backend, in_bundle))
        kind = bundle.ArtifactKind(options.backend, options.graph, options.precision)
        record = loading.artifact_record(opened, kind, options.allow_unverified)
        tokenizer = loading.load_tokenizer(opened)
        model = loading.load_artifact(opened, record, options)
        padding_states = loading.load_padding_states(opened) if options.graph == "cached" else None
        return cls(opened, tokenizer, model, padding_states, options=options)

    def probabilities_of_ids(self, ids: list[int]) -> np.ndarray:
        """The model's output for one review's unpadded token ids (`tokenizer.token_ids`)."""
        length = self.config.sequence_length
        if not 0 < len(ids) <= length:  # else the cached graph would start from a wrong padding state
            raise ValueError(f"a review has 1 to {length} token ids, not {len(ids)}")
        if self.graph == "full":
            return self._model.run({"token_ids": pad_ids([ids], length)})[0]
        token_ids = np.array(ids, np.int32).reshape(self._ids_shape)
        if self.padding_states is None:  # a model of the options: padding masked out, nothing to start from
            return self._model.run({"token_ids": token_ids})[0]
        # Padding is the same for every review, so the state after it was computed at export:
        # start from there and run only the review's own tokens.
        padding_steps = min(length - len(ids), len(self.padding_states) - 1)
        h0, c0 = self.padding_states[padding_steps]
        return self._model.run({"token_ids": token_ids, "h0": h0, "c0": c0})[0]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The model's output for each text, shape (len(texts), number of labels)."""
        rows = [self.probabilities_of_ids(self.checked_ids(text)) for text in _texts(texts)]
        return np.array(rows, np.float32).reshape(len(rows), self.config.num_classes)

    def checked_ids(self, text: str, min_known: float = 0.0) -> list[int]:
        """The token ids `classify` reads for one text (`tokenizer.token_ids`), with its checks: ValueError
        for a text without words or over MAX_TEXT_CHARACTERS, TooFewKnownWords (a ValueError) when
        the model knows fewer than `min_known` of the words read, TypeError for anything but a str."""
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARACTERS:
            raise ValueError(f"the text has {len(text):,} characters; at most {MAX_TEXT_CHARACTERS:,} are classified")
        ids = self.tokenizer.token_ids(text)
        if len(ids) < 2:  # the start id alone: nothing to read
            raise ValueError("the text has no words to classify")
        if min_known and (known := coverage(ids)).share < check_min_known(min_known):
            raise TooFewKnownWords(known, min_known)
        return ids

    def prediction_of(self, probabilities: np.ndarray, ids: Sequence[int]) -> Prediction:
        """The Prediction of one row of model output (`probabilities_of_ids(ids)`)."""
        values = probabilities.tolist()  # plain floats: cheaper than a numpy scalar per element
        best = values.index(max(values))
        labels = self.config.labels
        return Prediction(labels[best], values[best], dict(zip(labels, values)), coverage(ids))

    def classify(self, text: str, min_known: float = 0.0) -> Prediction:
        """The label of one text; ValueError for a text without words or over MAX_TEXT_CHARACTERS,
        TooFewKnownWords (a ValueError) if the model knows fewer than `min_known` (a share, 0 to 1)
        of the words it read, TypeError for anything but a str."""
        ids = self.checked_ids(text, min_known)
        return self.prediction_of(self.probabilities_of_ids(ids), ids)

    def classify_batch(self, texts: Sequence[str], min_known: float = 0.0) -> list[Prediction]:
        """The label of each text. If some fail, BatchError carries the others' answers and which failed."""
        check_min_known(min_known)
        predictions, errors = [], {}
        for index, text in enumerate(_texts(texts)):
            try:
                predictions.append(self.classify(text, min_known))
            except (ValueError, TypeError) as error:
                predictions.append(None)
                errors[index] = str(error)
        if errors:
            raise BatchError(predictions, errors)
        return predictions

    def explain(self, text: str, min_known: float = 0.0) -> explain.Explanation:
        """The model's opinion after every word of one text, and each word's effect on the answer;
        its final answer is exactly `classify(text)`'s. See runtime.explain (an example there).
        The bundle's per-step artifact (model.steps.*) of this backend and precision is loaded on
        the first call; errors as `classify`, and BundleError if the bundle has no such artifact.
        explain.NoRunningOpinion for a model with a backward direction or attention, whose answer
        is not an opinion that grows word by word."""
        explain.check_running_opinion(self.config)
        with self._steps_lock:
            if self._steps is None:
                self._steps = explain.StepModel.load(self)
        return explain.explain(self, self._steps, text, min_known)

    def describe(self) -> dict:
        """What a client may want to know about the loaded model (the server's GET /v1/model)."""
        return {
            "name": self.manifest.name,
            "backend": self.backend,
            "interpreter": self._model.module,
            "graph": self.graph,
            "precision": self.precision,
            "labels": list(self.config.labels),
            "model_config": self.config.to_dict(),
            "metrics": bundle.to_plain(self.manifest.metrics or {}),
        }

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
