"""The model configuration shared by training, export and the device runtime.

The manifest of every bundle records it, and loading a bundle rebuilds it from there, so the
numbers below are the only place these constants live. The defaults are the seed's values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 10_000  # ids 0..vocab_size-1, the reserved ids included (see runtime.text)
    embedding_dim: int = 128
    lstm_units: int = 100
    dropout: float = 0.2
    recurrent_dropout: float = 0.2
    sequence_length: int = 500
    labels: tuple[str, ...] = ("negative", "positive")

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_dim", "lstm_units", "sequence_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("dropout", "recurrent_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if len(self.labels) < 2:
            raise ValueError("a classifier needs at least two labels")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        if "labels" in values:
            values["labels"] = tuple(values["labels"])
        return cls(**values)
