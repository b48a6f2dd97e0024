"""The attention pooling layer of the `--attention` option (training.model builds it in).

Additive attention (Bahdanau et al. 2015) as a pooling: a score for each step's output,
v . tanh(W h_t + b), a softmax of the scores over the steps, and the outputs summed by those
weights. Padding gets no weight: a masked step's score is a large negative number, whose exp is
exactly 0 in float32, so a padded review's answer is its unpadded one (the device graphs read
only the review's tokens and need no mask). Its ops (MatMul, Tanh, Softmax, Mul, Sum) convert to
builtin TFLite operators and plain ONNX nodes. It imports Keras at import, so it is imported only
where Keras is loading anyway; importing it registers the layer for loading a model.keras.
"""

from __future__ import annotations

import keras
from keras import ops

# Added to a masked step's score: exp(-1e9 - max) underflows to exactly 0.
MASKED_SCORE = -1e9


@keras.saving.register_keras_serializable(package="imdb_lstm")
class AttentionPooling(keras.layers.Layer):
    """(batch, steps, features) with an optional (batch, steps) mask -> (batch, features)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, input_shape) -> None:
        features = input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(features, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.score = self.add_weight(name="score", shape=(self.units, 1), initializer="glorot_uniform")

    def call(self, inputs, mask=None):
        hidden = ops.tanh(ops.matmul(inputs, self.kernel) + self.bias)
        scores = ops.squeeze(ops.matmul(hidden, self.score), axis=-1)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, MASKED_SCORE))
        weights = ops.softmax(scores, axis=1)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None  # pooled: no steps left to mask

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}
