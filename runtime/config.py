"""The model configuration shared by training, export and the device runtime.

The manifest of every bundle records it, and loading a bundle rebuilds it from there, so the
numbers below are the only place these constants live. The defaults are the seed's values.

The model options (`layers`, `bidirectional`, `attention`) are written to the manifest only when
they differ from the seed's, so every bundle of the seed's model keeps its manifest byte for byte
and a runtime that predates them still reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Upper bounds that keep a hostile manifest from asking the runtime for gigabytes of padding.
MAX_SIZES = {"vocab_size": 1 << 24, "embedding_dim": 1 << 16, "lstm_units": 1 << 16, "sequence_length": 1 << 16}
MAX_LAYERS = 3
# The options and their seed values: a manifest records an option only when it differs.
SEED_OPTIONS = {"layers": 1, "bidirectional": False, "attention": False}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 10_000  # ids 0..vocab_size-1, the reserved ids included (see runtime.text)
    embedding_dim: int = 128
    lstm_units: int = 100
    dropout: float = 0.2
    recurrent_dropout: float = 0.2
    sequence_length: int = 500
    labels: tuple[str, ...] = ("negative", "positive")
    layers: int = 1  # stacked LSTMs, 1 to MAX_LAYERS
    bidirectional: bool = False  # every LSTM reads the review both ways
    attention: bool = False  # additive attention pooling over the top LSTM's outputs, not its last one

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
        if type(self.layers) is not int or not 1 <= self.layers <= MAX_LAYERS:
            raise ValueError(f"layers must be an integer from 1 to {MAX_LAYERS}, got {self.layers!r}")
        for name in ("bidirectional", "attention"):
            if type(getattr(self, name)) is not bool:
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def uses_padding_states(self) -> bool:
        """The seed's graph (one forward LSTM, no attention): its device graphs start from the stored
        state after the padding. Any other model masks the padding out instead (training.model),
        so its device graphs read the review's own tokens from a zero state."""
        return self.layers == 1 and not self.bidirectional and not self.attention

    @property
    def has_running_opinion(self) -> bool:
        """Whether the Dense softmax over each step's top output is the opinion so far (what explain
        shows): not when a backward direction has read the review from its end, nor when attention
        pools every step's output into the answer."""
        return not self.bidirectional and not self.attention

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        for name, seed in SEED_OPTIONS.items():
            if data[name] == seed:
                del data[name]
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
