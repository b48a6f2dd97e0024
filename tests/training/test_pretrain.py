import numpy as np
import pytest

from runtime.config import ModelConfig

keras = pytest.importorskip("keras")

from training.model import build_model  # noqa: E402
from training.pretrain import build_language_model, next_word_windows, pretrain  # noqa: E402

TINY = ModelConfig(vocab_size=12, embedding_dim=8, lstm_units=16, sequence_length=10)


def test_windows_run_across_reviews_and_target_the_next_word():
    inputs, targets = next_word_windows([[1, 5, 6], [1, 7, 8, 9], [1, 4]], window=4)
    # The stream 1 5 6 1 7 8 9 1 4 (9 ids) makes two windows; the last id is only ever a target.
    np.testing.assert_array_equal(inputs, [[1, 5, 6, 1], [7, 8, 9, 1]])
    np.testing.assert_array_equal(targets, [[5, 6, 1, 7], [8, 9, 1, 4]])


def test_too_little_text_is_refused():
    with pytest.raises(ValueError, match="too little text"):
        next_word_windows([[1, 5]], window=4)


def test_the_language_model_shares_the_classifiers_layer_shapes():
    classifier = build_model(TINY)
    language_model = build_language_model(TINY, 1e-3, None)
    for name in ("embedding", "lstm"):
        shapes = [w.shape for w in classifier.get_layer(name).get_weights()]
        assert [w.shape for w in language_model.get_layer(name).get_weights()] == shapes


def test_pretraining_learns_the_text_and_starts_the_classifier_from_it(monkeypatch):
    """Reviews that count 3, 4, ..., 11: the next word is always predictable, so the language model's
    loss falls well below chance; its embedding and LSTM then are the classifier's, its head is not."""
    from training import pretrain as module

    built = []
    monkeypatch.setattr(
        module, "build_language_model", lambda *args: built.append(build_language_model(*args)) or built[-1]
    )
    keras.utils.set_random_seed(0)
    classifier = build_model(TINY)
    before = {
        name: [w.copy() for w in classifier.get_layer(name).get_weights()]
        for name in ("embedding", "lstm", "probabilities")
    }
    reviews = [[1, *range(3, 12)]] * 300  # 3,000 ids: 29 windows of 100
    record = pretrain(classifier, reviews, TINY, epochs=4, batch_size=8, learning_rate=0.02, clipnorm=1.0, verbose=0)
    assert record["epochs"] == 4 and record["windows"] == 29
    assert record["loss"][-1] < 0.5 * np.log(TINY.vocab_size) and record["loss"][-1] < record["loss"][0]
    assert record["perplexity"][-1] == pytest.approx(np.exp(record["loss"][-1]))
    (language_model,) = built
    for name in ("embedding", "lstm"):
        for trained, copied, initial in zip(
            language_model.get_layer(name).get_weights(), classifier.get_layer(name).get_weights(), before[name]
        ):
            np.testing.assert_array_equal(copied, trained)
            assert not np.allclose(copied, initial)
    for initial, after in zip(before["probabilities"], classifier.get_layer("probabilities").get_weights()):
        np.testing.assert_array_equal(after, initial)
