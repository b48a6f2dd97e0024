"""How a model is trained: training.fit's settings, which the manifest records (training.settings)
and `TrainingSettings.from_record` reads back (export re-creating the test split, the runs table)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 8  # the seed trains 5; patience stops a run once validation stops improving
    batch_size: int = 32  # the seed uses 64; 32 won on validation (README, "Training")
    learning_rate: float = 1e-3
    clipnorm: float | None = 1.0  # the seed has none; see README, "Settings"
    patience: int = 2  # epochs without a better validation accuracy before stopping
    lr_decay: float | None = None  # multiply the learning rate by this when validation accuracy drops
    ema_momentum: float | None = None  # validate and keep a moving average of the weights
    weight_decay: float | None = None  # Adam's decoupled weight decay (AdamW)
    refit: bool = False  # retrain on all training reviews for the validated number of epochs
    pretrain_epochs: int = 0  # language-model epochs on the fit reviews' text first (training/pretrain.py)
    word2vec_epochs: int = 5  # start the embedding from word2vec on the fit reviews' text (training/word_vectors.py)
    # Adversarial training on the embeddings (training/adversarial.py) and an n-gram teacher's soft
    # targets (training/teacher.py): together they won on validation (docs/training.md). 0 turns either off.
    adversarial_epsilon: float = 0.5
    distill_weight: float = 0.5
    # Extra supervision (training/supervision.py): labelled phrase trees and counterfactual pairs,
    # each text mixed into the main data's epochs; their validation files join the epoch's choice.
    phrases: str | None = None
    pairs: str | None = None
    phrases_validation: str | None = None
    pairs_validation: str | None = None
    extra_ratio: float | None = None  # extra texts an epoch per main text; None: each extra text once
    validation_split: float = 0.2
    seed: int = 1337
    limit: int | None = None  # reviews per split, for quick runs

    @classmethod
    def from_record(cls, settings: Mapping) -> "TrainingSettings":
        """The settings a manifest recorded; a setting an older bundle lacks takes today's default."""
        return cls(**{item.name: settings[item.name] for item in fields(cls) if item.name in settings})
