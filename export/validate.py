"""The parity loop, written once for every kind of artifact: the trained Keras model and each
device artifact (through `runtime`, the code a device runs) answer the same reviews, tokenized by
`runtime.text`, and a comparison function turns each artifact's answers and Keras' into its
figures and failures: export.parity's for the artifacts that classify, export.step_parity's for
the per-step ones (explain's "steps" graph). As Hugging Face Optimum's `validate_model_outputs`,
it names every failure of every artifact at once; the callers decide what fails the command.

The reviews are the held-out test texts of the data the bundle was trained on (`test_reviews`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np

from export import common, config
from runtime import SentimentClassifier, backends, bundle
from runtime.classifier import UnverifiedArtifactWarning
from runtime.explain import StepModel
from training import data, splits
from training import model as training_model

CHUNK = 500  # texts per Keras call and between progress updates: 500 x 500 steps x labels floats at most
STEP_PROGRESS = 100  # reviews between progress updates of a per-step artifact, run one review at a time

# compare(keras_answers, artifact_answers, labels, precision, reference) -> the artifact's figures,
# with "failures" (a list of strings). reference: for a cached graph, the answers of its backend's
# full graph of the same precision when that is checked too, else None.
Compare = Callable[[object, object, "np.ndarray | None", str, object], dict]


@dataclass(frozen=True)
class ArtifactResult:
    """One artifact's parity: the bytes it proved, its comparison's figures, and what failed."""

    sha256: str  # the runtime loads only an artifact whose bytes a passing result names
    seconds: float
    figures: Mapping[str, float | int]  # as the comparison names them: reviews, max_abs_diff, ...
    failures: tuple[str, ...]  # one line each; none: it passed

    @property
    def passed(self) -> bool:
        return not self.failures

    def record(self) -> bundle.ParityRecord:
        """The manifest's parity record of this result."""
        return bundle.ParityRecord.from_dict(
            {**self.figures, "failures": list(self.failures), "seconds": self.seconds}
            | {"sha256": self.sha256, "passed": self.passed}
        )


def test_reviews(data_source: str | None, limit: int | None, manifest: bundle.Manifest | None = None, seed: int = 0):
    """The held-out test texts of the data `manifest`'s bundle was trained on (None: IMDB's), or a
    seeded sample of `limit` of them."""
    test = splits.recreate_test(data_source, manifest)
    return data.sample(test, limit, seed) if limit else test


def check_artifacts(
    folder: Path, trained, texts, labels: np.ndarray | None, keys: list[str], compare: Compare, record: bool = True
) -> dict[str, ArtifactResult]:
    """The results of the named artifacts on `texts`, in check order (export.config.check_order),
    each `compare`'s figures with the seconds it ran, the sha256 of the bytes it proved (the
    runtime loads only those) and whether it passed; with `record`, written into the manifest's
    "parity" entry. An artifact of a backend this machine cannot run is left out."""
    manifest = bundle.Manifest.read(folder)
    artifacts, model_config = manifest.artifacts, manifest.model_config
    expected, full_answers, results = {}, {}, {}
    for key in config.check_order(keys, artifacts):
        artifact = artifacts[key]
        backend, graph, precision = artifact.format, artifact.graph, artifact.precision
        if backend not in backends.available_backends():
            continue
        kind = KINDS[graph]
        with Loaded(folder, artifact) as loaded:
            if kind.name not in expected:  # Keras answers once for every artifact of a kind
                expected[kind.name] = kind.keras(trained, model_config, loaded.classifier.tokenizer, texts)
            answers, seconds = kind.run(loaded, key, texts)
        if graph == "full":
            full_answers[key] = answers
        reference = full_answers.get(bundle.artifact_key(backend, "full", precision)) if graph == "cached" else None
        figures = compare(expected[kind.name], answers, labels, precision, reference)
        failures = tuple(figures.pop("failures"))
        results[key] = ArtifactResult(artifact.sha256, round(seconds, 2), figures, failures)
    if record:
        common.record_parity(folder, {key: result.record() for key, result in results.items()})
    return results


class Loaded:
    """An artifact loaded as a device loads it, though not yet proven (proving it is what this is
    for): its classifier, and for a per-step artifact its backend's cached classifier with the
    per-step model (`steps`), as `explain` runs it."""

    def __init__(self, folder: Path, artifact: bundle.ArtifactRecord):
        per_step = artifact.graph == bundle.STEPS_GRAPH
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedArtifactWarning)
            self.classifier = SentimentClassifier.from_bundle(
                folder,
                artifact.format,
                artifact.precision,
                "cached" if per_step else artifact.graph,
                allow_unverified=True,
            )
            try:
                self.steps = StepModel.load(self.classifier) if per_step else None
            except BaseException:
                self.classifier.close()
                raise

    def __enter__(self) -> "Loaded":
        return self

    def __exit__(self, *exc) -> None:
        self.classifier.close()


def keras_probabilities(trained, model_config, tokenizer, texts) -> np.ndarray:
    """Keras' probabilities of each review, padded as in training: (reviews, labels)."""
    stage, rows = common.Stage("parity: Keras", len(texts)), []
    for first in range(0, len(texts), CHUNK):
        rows.append(trained.predict(tokenizer.encode(texts[first : first + CHUNK]), batch_size=256, verbose=0))
        stage.update(first + len(rows[-1]))
    return np.concatenate(rows)


def classify(loaded: Loaded, key: str, texts) -> tuple[np.ndarray, float]:
    """The artifact's probabilities of each review (reviews, labels), and the seconds they took."""
    stage, rows = common.Stage(f"parity: {key}", len(texts)), []
    started = time.perf_counter()
    for first in range(0, len(texts), CHUNK):
        rows.append(loaded.classifier.probabilities(texts[first : first + CHUNK]))
        stage.update(first + len(rows[-1]))
    return np.concatenate(rows), time.perf_counter() - started


def keras_steps(trained, model_config, tokenizer, texts) -> list[np.ndarray]:
    """Keras' probabilities after every step of each padded review, kept for the review's own
    steps (its last len(ids)): one (steps, labels) array per review."""
    model = training_model.build_inference_model(trained, model_config, batch_size=None, return_sequences=True)
    stage, rows = common.Stage("per-step parity: Keras", len(texts)), []
    for first in range(0, len(texts), CHUNK):
        chunk = texts[first : first + CHUNK]
        every = model.predict(tokenizer.encode(chunk), batch_size=250, verbose=0)
        rows += [steps[-len(tokenizer.token_ids(text)) :].copy() for text, steps in zip(chunk, every)]
        stage.update(first + len(chunk))
    return rows


def steps(loaded: Loaded, key: str, texts) -> tuple[tuple[list, list], float]:
    """The per-step artifact's probabilities after every token of each review, from its padding
    state as `explain` runs it, with the cached graph's answer to the whole review (where explain
    ends); and the seconds the per-step artifact took."""
    stage, every, last, seconds = common.Stage(f"per-step parity: {key}", len(texts)), [], [], 0.0
    for done, text in enumerate(texts, start=1):
        ids = loaded.classifier.tokenizer.token_ids(text)
        started = time.perf_counter()
        every.append(loaded.steps.probabilities_of_ids(ids))
        seconds += time.perf_counter() - started
        last.append(loaded.classifier.probabilities_of_ids(ids))
        if done % STEP_PROGRESS == 0 or done == len(texts):
            stage.update(done)
    return (every, last), seconds


class Kind(NamedTuple):
    """How one kind of artifact answers: Keras' answers to compare with, and the artifact's."""

    name: str
    keras: Callable
    run: Callable


CLASSIFY, PER_STEP = Kind("classify", keras_probabilities, classify), Kind("per-step", keras_steps, steps)
KINDS = {**{graph: CLASSIFY for graph in config.CLASSIFYING_GRAPHS}, bundle.STEPS_GRAPH: PER_STEP}
