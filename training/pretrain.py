"""Language-model pretraining: the classifier's embedding and LSTM first learn to predict the next word.

Dai and Le, "Semi-supervised Sequence Learning" (2015), start an LSTM sentiment classifier from
an LSTM language model trained on the same reviews' text. Here the language model is the seed's
Embedding -> LSTM with a temporary Dense head over the vocabulary; it reads the fit reviews'
token ids (no labels, never the validation or test reviews) as one stream cut into windows.
Its embedding and LSTM weights then start the classifier; the head is dropped, so the shipped
architecture is the seed's.
"""

from __future__ import annotations

import time
from typing import Sequence

import keras
import numpy as np

from runtime.config import ModelConfig
from training.model import trainable_encoder

WINDOW = 100  # tokens per training sequence: long enough to learn to carry context, short to batch


def next_word_windows(token_ids: Sequence[Sequence[int]], window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The reviews' ids end to end, cut into windows: inputs and the words that follow them."""
    stream = np.concatenate([np.asarray(ids, np.int32) for ids in token_ids])
    count = (len(stream) - 1) // window
    if count < 1:
        raise ValueError(f"too little text to pretrain on: {len(stream)} tokens, a window needs {window + 1}")
    inputs = stream[: count * window].reshape(count, window)
    targets = stream[1 : count * window + 1].reshape(count, window)
    return inputs, targets


def build_language_model(config: ModelConfig, learning_rate: float, clipnorm: float | None) -> keras.Model:
    """The classifier's embedding and LSTM (same names, shapes and dropout), reading every step."""
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            *trainable_encoder(config, return_sequences=True),
            keras.layers.Dense(config.vocab_size, name="next_word_logits"),
        ],
        name="imdb_lstm_language_model",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def pretrain(
    classifier: keras.Model,
    token_ids: Sequence[Sequence[int]],
    config: ModelConfig,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    clipnorm: float | None,
    verbose: int = 1,
) -> dict:
    """Train a language model on `token_ids` and copy its embedding and LSTM into `classifier`."""
    inputs, targets = next_word_windows(token_ids)
    language_model = build_language_model(config, learning_rate, clipnorm)
    started = time.perf_counter()
    history = language_model.fit(inputs, targets, epochs=epochs, batch_size=batch_size, verbose=verbose).history
    for name in ("embedding", "lstm"):
        classifier.get_layer(name).set_weights(language_model.get_layer(name).get_weights())
    losses = [float(loss) for loss in history["loss"]]
    return {
        "method": "language model",
        "epochs": epochs,
        "windows": len(inputs),
        "window_tokens": WINDOW,
        "loss": losses,
        "perplexity": [float(np.exp(loss)) for loss in losses],
        "seconds": round(time.perf_counter() - started, 1),
    }
