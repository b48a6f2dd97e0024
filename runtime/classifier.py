"""Raw review text in, sentiment out: the device API.

    from runtime import SentimentClassifier
    with SentimentClassifier.from_bundle("models/imdb-lstm", backend="auto", precision="int8") as classifier:
        print(classifier.classify("A wonderful film with a brilliant cast."))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime import backends, bundle
from runtime.text import Tokenizer, pad_ids


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # the probability of `label`
    probabilities: dict[str, float]  # every label's probability, in the manifest's label order

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "probabilities": self.probabilities}


class SentimentClassifier:
    """A verified bundle, its tokenizer and one interpreter for one artifact."""

    def __init__(self, folder: Path, manifest: dict, tokenizer: Tokenizer, model, backend: str,
                 graph: str, precision: str, padding_states: np.ndarray | None):
        self.folder = folder
        self.manifest = manifest
        self.config = bundle.model_config(manifest)
        self.tokenizer = tokenizer
        self.backend = backend
        self.graph = graph
        self.precision = precision
        self._model = model
        self.padding_states = self._ids_shape = None
        if graph == "cached":  # the shapes the graph declares for one review: ids (1, -1) or time-major (-1, 1)
            self._ids_shape, state_shape = (model.input_shapes.get(name, (-1, -1)) for name in ("token_ids", "h0"))
            if self._ids_shape.count(-1) != 1 or -1 in state_shape:
                raise bundle.BundleError(f"{folder / bundle.artifact_filename(backend, graph, precision)}: its inputs "
                                         f"are not one review's (token_ids {self._ids_shape}, h0 {state_shape}); "
                                         "export it again with this version")
            # The cached graph's start: row k holds h0 and c0 after k padding steps, in the graph's shapes.
            self.padding_states = padding_states.reshape(len(padding_states), 2, *state_shape)

    @classmethod
    def from_bundle(cls, folder: str | Path = bundle.DEFAULT_BUNDLE, backend: str = "auto",
                    precision: str = "float32", graph: str = "cached",
                    threads: int | None = None, xnnpack: bool = True) -> "SentimentClassifier":
        """Load and verify a bundle: schema version, sha256 of every file used, vocabulary match."""
        folder = Path(folder)
        if precision not in bundle.PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(bundle.PRECISIONS)}")
        if graph not in bundle.GRAPHS:
            raise ValueError(f"unknown graph {graph!r}; choose from {', '.join(bundle.GRAPHS)}")
        backend = backends.resolve_backend(backend)
        manifest = bundle.read_manifest(folder)
        key = bundle.artifact_key(backend, graph, precision)
        record = manifest.get("artifacts", {}).get(key)
        if record is None:
            raise bundle.BundleError(f"{folder}: no {key} artifact; run python -m export.{backend}")
        vocabulary = manifest["tokenizer"]["vocabulary"]
        if record.get("vocabulary_sha256") != vocabulary["sha256"]:
            raise bundle.BundleError(
                f"{folder / vocabulary['file']}: this vocabulary does not belong to {record['file']}")
        config = bundle.model_config(manifest)
        tokenizer = Tokenizer.load(bundle.verify_file(folder, vocabulary), config.sequence_length)
        model = backends.load_model(backend, bundle.verify_file(folder, record), threads, xnnpack)
        metadata_vocabulary = getattr(model, "metadata", {}).get("vocabulary_sha256")
        if metadata_vocabulary not in (None, vocabulary["sha256"]):
            raise bundle.BundleError(f"{folder / record['file']}: was exported for another vocabulary")
        padding_states = None
        if graph == "cached":
            states = manifest.get("padding_states")
            if states is None:
                raise bundle.BundleError(f"{folder}: the manifest lists no padding states")
            padding_states = np.load(bundle.verify_file(folder, states), allow_pickle=False)
        return cls(folder, manifest, tokenizer, model, backend, graph, precision, padding_states)

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
        rows = [self.probabilities_of_ids(self._ids(text)) for text in texts]
        return np.array(rows, np.float32).reshape(len(rows), self.config.num_classes)

    def _ids(self, text: str) -> list[int]:
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
        return self._prediction(self.probabilities_of_ids(self._ids(text)))

    def classify_batch(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._prediction(row) for row in self.probabilities(texts)]

    def describe(self) -> dict:
        """What a client may want to know about the loaded model (the server's GET /v1/model)."""
        return {"name": self.manifest.get("name"), "backend": self.backend, "interpreter": self._model.module,
                "graph": self.graph, "precision": self.precision, "labels": list(self.config.labels),
                "model_config": self.manifest["model_config"], "metrics": self.manifest.get("metrics", {})}

    def close(self) -> None:
        self._model = None

    def __enter__(self) -> "SentimentClassifier":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
