import numpy as np
import pytest

from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID

pytest.importorskip("gensim", reason="needs the training extra")

from training.word_vectors import TARGET_STD, word2vec_embedding  # noqa: E402

TINY = ModelConfig(vocab_size=20, embedding_dim=16, lstm_units=8, sequence_length=10)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_words_used_alike_get_alike_vectors():
    """Ids 3 and 4 always sit between the same neighbours (5 ... 6), ids 10 and 11 between others
    (12 ... 13), in reviews of their own: each word's vector is nearer its twin's than the other pair's."""
    rng = np.random.default_rng(0)
    reviews = [
        [1, 5, int(rng.choice([3, 4])), 6] if rng.random() < 0.5 else [1, 12, int(rng.choice([10, 11])), 13]
        for _ in range(2000)
    ]
    matrix, record = word2vec_embedding(reviews, TINY, epochs=20, seed=0)
    assert matrix.shape == (TINY.vocab_size, TINY.embedding_dim) and matrix.dtype == np.float32
    assert cosine(matrix[3], matrix[4]) > cosine(matrix[3], matrix[10]) + 0.2
    assert cosine(matrix[10], matrix[11]) > cosine(matrix[11], matrix[4]) + 0.2
    learned = sorted({i for review in reviews for i in review if i >= FIRST_WORD_ID})
    assert record["words"] == len(learned) and record["epochs"] == 20
    assert matrix[learned].std() == pytest.approx(TARGET_STD, rel=1e-3)
    # Ids that are not words (padding, start, out of vocabulary) and unseen words keep Keras's small start.
    untouched = [i for i in range(TINY.vocab_size) if i not in learned]
    assert np.abs(matrix[untouched]).max() <= 0.05


def test_the_same_seed_gives_the_same_vectors():
    reviews = [[1, 3, 4, 5, 6, 7], [1, 7, 6, 5, 4, 3]] * 50
    first, _ = word2vec_embedding(reviews, TINY, epochs=2, seed=7)
    second, _ = word2vec_embedding(reviews, TINY, epochs=2, seed=7)
    np.testing.assert_array_equal(first, second)
