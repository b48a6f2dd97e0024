"""Adversarial training on the embedded words (Miyato, Dai and Goodfellow, 2017).

Each step adds the loss on the embedded review moved by `epsilon` along the per-review
L2-normalised gradient of the loss with respect to the embedding's output: the direction in
which a small change of the words' vectors hurts the answer most. It is a regulariser of the
training only; the classifier it trains is the seed's graph, unchanged, and it is the inner
`classifier` that is saved and exported. A model of the options masks its padding: the moved
review carries no mask of its own, so it is read with the clean review's (padding skipped).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from runtime.config import ModelConfig
from runtime.text import PAD_ID
from training.model import classify_embedded


class AdversarialTraining(keras.Model):
    """Trains `classifier` (Embedding -> LSTMs -> Dense softmax) on its loss plus the adversarial loss."""

    def __init__(self, classifier: keras.Model, epsilon: float, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.epsilon = epsilon
        self.model_config = config

    def call(self, inputs, training=False):
        return self.classifier(inputs, training=training)

    def train_step(self, data):
        token_ids, targets = data
        mask = None if self.model_config.uses_padding_states else ops.not_equal(token_ids, PAD_ID)
        with tf.GradientTape() as tape:
            embedded = self.classifier.get_layer("embedding")(token_ids)
            with tf.GradientTape() as probe:
                probe.watch(embedded)
                predictions = classify_embedded(self.classifier, self.model_config, embedded, mask, training=True)
                loss = self.compute_loss(x=token_ids, y=targets, y_pred=predictions)
            # The attack is a constant of the step: no gradient flows through its direction.
            gradient = tf.stop_gradient(probe.gradient(loss, embedded))
            norm = tf.sqrt(tf.reduce_sum(tf.square(gradient), axis=[1, 2], keepdims=True)) + 1e-12
            attacked = classify_embedded(
                self.classifier, self.model_config, embedded + self.epsilon * gradient / norm, mask, training=True
            )
            total = loss + self.compute_loss(x=token_ids, y=targets, y_pred=attacked)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(total, variables), variables)
        for metric in self.metrics:  # what Keras reports: the clean loss and accuracy
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(targets, predictions)
        return {metric.name: metric.result() for metric in self.metrics}
