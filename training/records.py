"""The records a training run hands from stage to stage: the data and its splits, the fitted
model, the chosen epoch and the test reading (training.fit makes them, training.bundle_writer
writes them, training.tune reuses the first two)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.config import ModelConfig
from runtime.text import Tokenizer
from training import data, supervision


@dataclass
class PreparedData:
    """The data read and its splits: held out for the test, and the training split carved for validation."""

    dataset: data.Dataset
    train: data.Split
    test: data.Split
    fit: data.Split
    validation: data.Split
    test_fraction: float
    extras: supervision.Extras = supervision.Extras()


@dataclass
class Fitted:
    """A model fitted by `fit_model`, with its vocabulary, Keras history and pretraining record."""

    model: object
    tokenizer: Tokenizer
    history: dict
    pretraining: dict | None
    config: ModelConfig  # its vocab_size is the ids the vocabulary uses


@dataclass
class Selection:
    """The validated fit (or the refit on all training data) and how the epochs were chosen."""

    fitted: Fitted  # the model written: the validated one, or the refitted one with --refit
    history: dict  # the validated run's
    best_epoch: int  # 0-based
    refit: dict | None
    training_seconds: float
    selection_seconds: float  # the validated run's, without its pretraining


@dataclass
class Evaluation:
    """The test split's loss, accuracy and per-label figures (metrics.classification_metrics)."""

    loss: float
    accuracy: float
    metrics: dict
