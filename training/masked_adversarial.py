"""Adversarial training (training/adversarial.py) for a model that masks its padding.

The models of the options (`--layers`, `--bidirectional`, `--attention`) skip padding by the
Embedding's mask. AdversarialTraining moves the embedded words and runs the rest of the seed's
graph on them, and a mask does not travel through that sum; so this subclass takes the mask from
the token ids of each step and runs the model's own layers (training.model.classify_embedded)
with it, so that the attacked review is read as the clean one is, padding skipped.
"""

from __future__ import annotations

from keras import ops

from runtime.config import ModelConfig
from runtime.text import PAD_ID
from training.adversarial import AdversarialTraining
from training.model import classify_embedded


class MaskedAdversarialTraining(AdversarialTraining):
    def __init__(self, classifier, epsilon: float, config: ModelConfig, **kwargs):
        super().__init__(classifier, epsilon, **kwargs)
        self.model_config = config
        self._mask = None

    def train_step(self, data):
        self._mask = ops.not_equal(data[0], PAD_ID)  # read by _from_embedded while this step traces
        return super().train_step(data)

    def _from_embedded(self, embedded, training: bool):
        return classify_embedded(self.classifier, self.model_config, embedded, self._mask, training)
