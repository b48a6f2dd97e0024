import numpy as np
import pytest

from runtime.config import ModelConfig

keras = pytest.importorskip("keras")

from training.model import build_model  # noqa: E402

TINY = ModelConfig(vocab_size=20, embedding_dim=4, lstm_units=3, sequence_length=6)


@pytest.mark.parametrize("weight_decay", [None, 0.5])
def test_weight_decay_shrinks_the_embeddings_of_unseen_words(weight_decay):
    """One step on reviews made of word 5 alone: another word's embedding gets no gradient, so it
    changes only through the decay, by exactly learning_rate * weight_decay of itself."""
    keras.utils.set_random_seed(0)
    model = build_model(TINY, learning_rate=0.1, weight_decay=weight_decay)
    unseen_before = model.get_layer("embedding").get_weights()[0][9].copy()
    model.train_on_batch(np.full((2, TINY.sequence_length), 5, dtype="int32"), np.array([[1.0, 0.0], [0.0, 1.0]]))
    unseen_after = model.get_layer("embedding").get_weights()[0][9]
    np.testing.assert_allclose(unseen_after, unseen_before * (1 - 0.1 * (weight_decay or 0)), rtol=1e-6)
