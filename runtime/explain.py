"""Why the model answered as it did: its running opinion, word by word (`classifier.explain(text)`).

An LSTM reads a review one token at a time, and the Dense softmax applied to its output after a
token is the model's opinion of the review so far. So the opinion after each word is exact, not
an approximation, and the change a word makes to the probability of the label the model finally
gives is that word's effect, in its context. The bundle's per-step graph (model.steps.*, proven
against Keras with return_sequences=True at export) gives every step's opinion in one call from
the cached padding state; the last step is classify's own answer, so `explain(text)` ends exactly
where `classify(text)` does.

    >>> from runtime import SentimentClassifier
    >>> classifier = SentimentClassifier.from_bundle()
    >>> explanation = classifier.explain("The plot is thin, but the acting is superb and I loved it.")
    >>> explanation.label, round(explanation.score, 3)
    ('positive', 0.994)
    >>> for word in explanation.words:
    ...     print(f"{word.word:7} {word.probabilities['positive']:.2f} {word.effect:+.2f}")
    the     0.72 +0.17
    plot    0.52 -0.20
    is      0.48 -0.04
    thin    0.01 -0.46
    but     0.02 +0.00
    the     0.05 +0.04
    acting  0.06 +0.01
    is      0.04 -0.02
    superb  0.93 +0.89
    and     0.97 +0.04
    i       0.96 -0.01
    loved   0.99 +0.03
    it      0.99 +0.00

A model with a backward direction (`bidirectional`) or attention has no such opinion: the backward
LSTM reads the review from its end, and attention weighs every word by all the others, so an
answer "after word i" would be another question, not the model's view so far. explain refuses
those models (NoRunningOpinion) rather than draw a wrong picture. A stack of forward LSTMs has
it: the top LSTM's output after each word, read from no state (its padding is masked out).

`explanation.to_dict()` is the JSON the CLI (`--explain --format json`) and the server
(`POST /v1/explain`) give. Each word carries its characters in the text (`text[start:end]`, in
Python's indices: Unicode code points) and whether the vocabulary knows it (`in_vocabulary`).
A review longer than the sequence length is read from its last tokens only: `words` are the words
the model read, and `truncated_words` counts those before them, which are not listed, so an
explanation's size (and its cost beyond classify's tokenizing) is bounded by the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime import bundle, loading
from runtime.text import OOV_ID, Coverage, split_words, word_spans


@dataclass(frozen=True)
class Word:
    """One word the model read."""

    word: str  # as the tokenizer saw it: lowercased, markup removed
    start: int  # its characters in the text: text[start:end]
    end: int
    in_vocabulary: bool  # False: read as the out-of-vocabulary id
    probabilities: dict[str, float]  # every label's probability after this word
    # The change this word made to the probability of the final label; None for the first word
    # read when the start token was cut off, which has no earlier opinion to compare with.
    effect: float | None

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "start": self.start,
            "end": self.end,
            "in_vocabulary": self.in_vocabulary,
            "probabilities": self.probabilities,
            "effect": self.effect,
        }


@dataclass(frozen=True)
class Explanation:
    label: str  # classify(text).label
    score: float  # classify(text).score
    probabilities: dict[str, float]  # classify(text).probabilities: the opinion after the last word
    start: dict[str, float] | None  # the opinion before the first word (after the start token); None if cut off
    truncated_words: int  # how many words, at the front, the model never read (they are not in `words`)
    words: list[Word]  # the words the model read, in order: at most the sequence length
    coverage: Coverage  # classify(text).coverage: how many of the words read the model knows
    warning: str | None = None  # classify(text).warning: too few words known for the answer to mean much

    @property
    def colour_label(self) -> str:
        """The label the colours of an explanation point toward, on the terminal and the page alike
        (runtime/explain.js has the same rule): with two labels the second (positive, for IMDB),
        whatever the answer, so blue always reads "toward positive" and orange "toward negative";
        with more labels, the final one (orange: away from it)."""
        labels = list(self.probabilities)  # in the manifest's order
        return labels[-1] if len(labels) == 2 else self.label

    @property
    def other_label(self) -> str | None:
        """With two labels, the one orange points toward; else None (orange is away from the final label)."""
        labels = list(self.probabilities)
        return labels[0] if len(labels) == 2 else None

    def leaning(self, word: Word) -> float | None:
        """The word's change to the probability of `colour_label`: its effect, or minus it when that is
        the other of two labels (their probabilities add up to 1)."""
        if word.effect is None:
            return None
        return word.effect if self.colour_label == self.label else -word.effect

    def to_dict(self) -> dict:
        body = {
            "label": self.label,
            "score": self.score,
            "probabilities": self.probabilities,
            "coverage": self.coverage.to_dict(),
            "start": self.start,
            "truncated_words": self.truncated_words,
            "words": [word.to_dict() for word in self.words],
        }
        return {**body, "warning": self.warning} if self.warning else body


class NoRunningOpinion(Exception):
    """The model has no opinion after each word to show (a backward direction or attention)."""


def check_running_opinion(config) -> None:
    """NoRunningOpinion, saying why, unless the model's answer grows word by word (a ModelConfig)."""
    if not config.has_running_opinion:
        if config.bidirectional:
            why = "its backward LSTM reads the review from its end"
        else:
            why = "its attention weighs every word by all the others"
        raise NoRunningOpinion(
            f"explain is not defined for this model: {why}, so it has no opinion after each word; classify it instead"
        )


class StepModel:
    """A bundle's per-step artifact: the probabilities after every token of one review."""

    def __init__(self, model, ids_shape: tuple, padding_states: np.ndarray | None, sequence_length: int, labels: int):
        self._model, self._ids_shape, self._padding_states = model, ids_shape, padding_states
        self._sequence_length, self._labels = sequence_length, labels

    @classmethod
    def load(cls, classifier) -> "StepModel":
        """The steps artifact of the classifier's bundle, backend and precision, trusted as the
        classifier's own artifact was (sha256, parity record, fingerprint), loaded with its options.
        A stack of forward LSTMs has no padding states: its per-step graph reads the tokens from no state."""
        opened, config = classifier.bundle, classifier.config  # classifier.explain checked it has an opinion
        graph = loading.load_graph(opened, classifier.options, bundle.STEPS_GRAPH)
        if graph.state_shape is None:
            return cls(graph.model, graph.ids_shape, None, config.sequence_length, config.num_classes)
        states = (
            classifier.padding_states if classifier.padding_states is not None else loading.load_padding_states(opened)
        )
        return cls(
            graph.model,
            graph.ids_shape,
            states.reshape(len(states), 2, *graph.state_shape),
            config.sequence_length,
            config.num_classes,
        )

    def probabilities_of_ids(self, ids: list[int]) -> np.ndarray:
        """Shape (len(ids), labels): row i is the opinion after ids[i], from the review's padding state."""
        if not 0 < len(ids) <= self._sequence_length:
            raise ValueError(f"a review has 1 to {self._sequence_length} token ids, not {len(ids)}")
        feeds = {"token_ids": np.array(ids, np.int32).reshape(self._ids_shape)}
        if self._padding_states is not None:  # the seed's graph starts from the state after the padding
            h0, c0 = self._padding_states[min(self._sequence_length - len(ids), len(self._padding_states) - 1)]
            feeds.update(h0=h0, c0=c0)
        return self._model.run(feeds).reshape(len(ids), self._labels)


def explain(classifier, steps: StepModel, text: str, min_known: float = 0.0) -> Explanation:
    """The opinion after every word the model reads of `text` (see the module's docstring); errors as
    classify's. `classifier` is the SentimentClassifier whose answer this explains (its public
    checked_ids, probabilities_of_ids, prediction_of and config)."""
    ids = classifier.checked_ids(text, min_known)  # classify's ids, with its checks
    final = classifier.probabilities_of_ids(ids)
    rows = steps.probabilities_of_ids(ids)
    rows[-1] = final  # classify's own answer; parity holds the steps graph's last step within 1e-5 of it (int8 1e-3)
    prediction = classifier.prediction_of(final, ids)
    labels, label = classifier.config.labels, prediction.label
    # ids are [start, *one id a word] cut to their last sequence_length: the start id goes first.
    total = len(split_words(text))
    read = min(total, len(ids))
    first = len(ids) - read  # the row of the first word read: 1 after the start id, 0 if that was cut off
    opinions = [dict(zip(labels, row)) for row in rows.tolist()]
    words = []
    for row, (word, start, end) in enumerate(word_spans(text, last=read), start=first):
        effect = opinions[row][label] - opinions[row - 1][label] if row > 0 else None
        words.append(Word(word, start, end, ids[row] != OOV_ID, opinions[row], effect))
    return Explanation(
        prediction.label,
        prediction.score,
        prediction.probabilities,
        opinions[0] if first else None,
        total - read,
        words,
        prediction.coverage,
        prediction.warning,
    )
