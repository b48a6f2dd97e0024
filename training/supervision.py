"""Extra supervision beside the main data: labelled phrase trees and counterfactual pairs.

`read_extras` reads what the settings name, before TensorFlow loads, so a bad file fails at once.
Pairs whose text is also a validation or test text of the main data are dropped (the pairs'
originals are IMDB training reviews, which the validation split may hold). `validation_callback`
scores the extra validation sets at each epoch's end, and the epoch is chosen on the mean of every
validation accuracy (IMDB's and these), so no single benchmark picks the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime import bundle
from training import pairs, phrases
from training.data import DataError, Split
from training.mixing import Extra
from training.settings import TrainingSettings

MEAN_MONITOR = "val_mean_accuracy"


@dataclass(frozen=True)
class ExtraSource:
    """One extra file read: what kind, where, its checksum, its texts, and whom to cite."""

    kind: str  # "phrases" or "pairs"
    role: str  # "training" or "validation"
    path: str
    sha256: str
    split: Split
    citation: str
    dropped: int = 0  # pair texts dropped for overlapping the main validation or test texts

    @property
    def monitor(self) -> str:
        return f"val_{self.kind}_accuracy"


@dataclass(frozen=True)
class Extras:
    training: tuple[ExtraSource, ...] = ()
    validation: tuple[ExtraSource, ...] = ()


def read_extras(settings: TrainingSettings, labels: tuple[str, ...], held_out: list[Split]) -> Extras:
    """The extra sources the settings name, labelled by the main data's `labels`."""
    training, validation = [], []
    for role, kept, phrase_path, pair_path in (
        ("training", training, settings.phrases, settings.pairs),
        ("validation", validation, settings.phrases_validation, settings.pairs_validation),
    ):
        if phrase_path:
            trees = phrases.read_trees(phrase_path)
            # Training reads every labelled node; validation the sentences (the roots), as SST-2 does.
            nodes = trees.phrases if role == "training" else trees.sentences
            split = phrases.to_labels(nodes, len(labels), phrase_path)
            kept.append(ExtraSource("phrases", role, trees.path, trees.sha256, split, phrases.CITATION))
        if pair_path:
            pair_file = pairs.read_pairs(pair_path)
            split, dropped = _without_held_out(pairs.to_labels(pair_file, labels), held_out)
            kept.append(ExtraSource("pairs", role, pair_file.path, pair_file.sha256, split, pairs.CITATION, dropped))
    for source in (*training, *validation):
        if not len(source.split):
            raise DataError(f"{source.path}: no {source.kind} left to use (every text is a held-out text of the data)")
    return Extras(tuple(training), tuple(validation))


def _without_held_out(split: Split, held_out: list[Split]) -> tuple[Split, int]:
    """The pairs none of whose texts is a held-out text (compared with whitespace folded)."""
    held = {" ".join(text.split()) for part in held_out for text in part.texts}
    clash = {split.ids[i] for i, text in enumerate(split.texts) if " ".join(text.split()) in held}
    kept = np.array([i for i in range(len(split)) if split.ids[i] not in clash], np.int64)
    return split.subset(kept), len(split) - len(kept)


def training_extras(extras: Extras, tokenizer, num_classes: int) -> tuple[Extra, ...]:
    """The training extras as token ids and one-hot targets, for training.mixing."""
    return tuple(
        Extra(
            [tokenizer.token_ids(text) for text in source.split.texts],
            np.eye(num_classes, dtype=np.float32)[source.split.labels],
            paired=source.kind == "pairs",
        )
        for source in extras.training
    )


def validation_callback(extras: Extras, tokenizer):
    """A Keras callback that adds each extra validation set's accuracy, and the mean of every
    validation accuracy, to the epoch's logs (read by keep-best, the history and the plots)."""
    import keras

    encoded = [
        (source.monitor, tokenizer.encode(source.split.texts), source.split.labels) for source in extras.validation
    ]

    class ExtraValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            accuracies = [logs["val_accuracy"]]
            for monitor, inputs, labels in encoded:
                predicted = self.model.predict(inputs, batch_size=256, verbose=0).argmax(axis=1)
                logs[monitor] = float(np.mean(predicted == labels))
                accuracies.append(logs[monitor])
            logs[MEAN_MONITOR] = float(np.mean(accuracies))

    return ExtraValidation()


def record(extras: Extras) -> bundle.SupervisionRecord | None:
    """The manifest's record of what each extra source gave (None without any)."""
    sources = {
        source.kind + ("_validation" if source.role == "validation" else ""): bundle.ExtraDataRecord(
            source=Path(source.path).name,
            sha256=source.sha256,
            texts=len(source.split),
            dropped=source.dropped,
            citation=source.citation,
        )
        for source in (*extras.training, *extras.validation)
    }
    return bundle.SupervisionRecord(**sources) if sources else None


def describe(extras: Extras) -> list[str]:
    """One line a source, for the progress lines."""
    return [
        f"{source.kind} ({source.role}): {len(source.split):,} texts from {Path(source.path).name}"
        + (f", {source.dropped:,} dropped as held-out texts" if source.dropped else "")
        for source in (*extras.training, *extras.validation)
    ]
