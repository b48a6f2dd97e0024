"""The model configuration shared by training, export and the device runtime.

The manifest of every bundle records it, and loading a bundle rebuilds it from there, so the
numbers below are the only place these constants live. The defaults are the seed's values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Upper bounds that keep a hostile manifest from asking the runtime for gigabytes of padding.
MAX_SIZES = {"vocab_size": 1 << 24, "embedding_dim": 1 << 16, "lstm_units": 1 << 16, "sequence_length": 1 << 16}


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
        for name, limit in MAX_SIZES.items():
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= limit:
                raise ValueError(f"{name} must be an integer from 1 to {limit:,}, got {value!r}")
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.labels, tuple) or not all(isinstance(label, str) and label for label in self.labels):
            raise ValueError(f"labels must be non-empty strings, got {self.labels!r}")
        if len(self.labels) < 2:
            raise ValueError("a classifier needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be distinct, got {list(self.labels)}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Rebuild a config from its manifest record; ValueError names any key that is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        values = dict(data)
        if "labels" in values:
            if not isinstance(values["labels"], list):
                raise ValueError(f"labels must be a list, got {type(values['labels']).__name__}")
            values["labels"] = tuple(values["labels"])
        return cls(**values)
