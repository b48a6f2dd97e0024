"""training.adversarial: a step trains the inner classifier, reports its clean loss, and reads a
model of the options with its padding mask."""

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="adversarial training is the training side")

from runtime.config import ModelConfig  # noqa: E402
from training.adversarial import AdversarialTraining  # noqa: E402
from training.model import build_model, compile_for_training  # noqa: E402

SMALL = dict(vocab_size=40, sequence_length=12, embedding_dim=8, lstm_units=4)


@pytest.mark.parametrize("options", [{}, {"attention": True}])
def test_a_step_moves_the_classifiers_weights(options):
    config = ModelConfig(**SMALL, **options)
    classifier = build_model(config)
    trainer = AdversarialTraining(classifier, 0.5, config)
    compile_for_training(trainer)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(3, 40, size=(8, 12))
    token_ids[:, :4] = 0  # padding first, as the tokenizer pads
    targets = np.eye(2, dtype=np.float32)[rng.integers(0, 2, size=8)]
    before = [weight.copy() for weight in classifier.get_weights()]
    history = trainer.fit(token_ids, targets, epochs=1, batch_size=8, verbose=0).history
    assert set(history) >= {"loss", "accuracy"} and np.isfinite(history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, classifier.get_weights()))
