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
# Weights a model may have: 400 MB as float32 on a device, about four times that while training
# (weights, gradients and Adam's two moments). Each size above fits alone, but not together: an
# LSTM of 65,536 units has 17 billion weights (69 GB), which TensorFlow met with a traceback.
# The seed's model has 1.4 million.
MAX_PARAMETERS = 100_000_000
BYTES_PER_PARAMETER = 4  # float32
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
        if self.parameters > MAX_PARAMETERS:
            raise ValueError(
                f"vocab_size {self.vocab_size:,}, embedding_dim {self.embedding_dim:,} and lstm_units "
                f"{self.lstm_units:,} make {self.parameters:,} weights "
                f"({self.parameters * BYTES_PER_PARAMETER / 1e9:,.1f} GB); a model may have at most "
                f"{MAX_PARAMETERS:,} ({MAX_PARAMETERS * BYTES_PER_PARAMETER / 1e9:,.1f} GB)"
            )

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def parameters(self) -> int:
        """The model's weights (training.model's graph), counted from the config before it is built."""
        directions = 2 if self.bidirectional else 1
        width = self.embedding_dim
        count = self.vocab_size * self.embedding_dim
        for _ in range(self.layers):  # an LSTM's four gates, each over its input, its state and a bias
            count += directions * 4 * self.lstm_units * (width + self.lstm_units + 1)
            width = directions * self.lstm_units
        if self.attention:  # AttentionPooling: a projection, its bias and a scoring vector
            count += width * self.lstm_units + 2 * self.lstm_units
        return count + (width + 1) * self.num_classes

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
