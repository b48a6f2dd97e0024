"""Start the classifier's embedding from word2vec vectors learned on the fit reviews' own text.

A 10,000 x 128 embedding learned from 20,000 labels overfits within a few epochs (README,
"Training"). Word vectors learned from the text itself start it with words that are used alike
already close together. gensim's word2vec reads the fit reviews' token ids (no labels, never
the validation or test reviews), and its vectors replace the Keras embedding's random start;
the classifier then trains as before, embedding included. The architecture is the seed's.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
from gensim.models import Word2Vec

from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID

WINDOW = 5  # words either side, word2vec's default
# Keras starts an embedding uniformly in +-0.05 (standard deviation 0.029); the word2vec vectors
# are scaled to a standard deviation of the same order. The one value tried (README, "Training").
TARGET_STD = 0.1


def word2vec_embedding(
    token_ids: Sequence[Sequence[int]], config: ModelConfig, epochs: int, seed: int
) -> tuple[np.ndarray, dict]:
    """An embedding matrix (vocab_size, embedding_dim) from skip-gram word2vec on `token_ids`.

    Rows of ids that never occur as words (padding, start, out-of-vocabulary, and words beyond a
    small vocabulary) keep a small random start, as in Keras.
    """
    # gensim's vocabulary is words as strings; ids below FIRST_WORD_ID (start, out-of-vocabulary)
    # are left out so every window holds real words.
    sentences = [[str(i) for i in ids if i >= FIRST_WORD_ID] for ids in token_ids]
    started = time.perf_counter()
    # workers=1 makes the vectors depend only on the seed (gensim's note on reproducibility).
    vectors = Word2Vec(
        sentences,
        vector_size=config.embedding_dim,
        window=WINDOW,
        min_count=1,
        sg=1,
        epochs=epochs,
        seed=seed,
        workers=1,
    ).wv
    seconds = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, (config.vocab_size, config.embedding_dim)).astype(np.float32)
    ids = np.array([int(word) for word in vectors.index_to_key])
    learned = vectors.vectors
    matrix[ids] = learned * (TARGET_STD / learned.std())
    return matrix, {
        "method": "word2vec skip-gram",
        "epochs": epochs,
        "window": WINDOW,
        "words": len(ids),
        "seconds": round(seconds, 1),
    }
