"""How much reviews with neighbouring ids share their rare words, against random pairs of reviews.

    python -m probes.neighbouring_reviews [--data ../shared/data/aclImdb_labeled.tar.gz]

The evidence behind validation in blocks of consecutive ids (training/data.py): the dataset numbers
each folder's reviews film by film, so neighbours share the film's names and title words.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.text import split_words  # noqa: E402
from training import data  # noqa: E402


def rare_word_overlap(texts: list[str], pairs: np.ndarray) -> float:
    """Mean Jaccard overlap of the reviews' rare words (in 2 to 30 reviews) over the given pairs."""
    words = [set(split_words(text)) for text in texts]
    reviews_with = collections.Counter(word for review in words for word in review)
    rare = [{word for word in review if 2 <= reviews_with[word] <= 30} for review in words]
    return float(np.mean([len(rare[a] & rare[b]) / max(1, len(rare[a] | rare[b])) for a, b in pairs]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"))
    args = parser.parse_args(argv)
    train = data.load_imdb(args.data).train
    rng = np.random.default_rng(0)
    for label, name in enumerate(("negative", "positive")):
        members = np.flatnonzero(train.labels == label)
        members = members[np.argsort(train.ids[members])]
        texts = [train.texts[i] for i in members]
        neighbours = np.stack([np.arange(len(texts) - 1), np.arange(1, len(texts))], axis=1)
        first = rng.integers(0, len(texts), size=len(neighbours))
        random_pairs = np.stack([first, (first + rng.integers(1, len(texts), size=len(first))) % len(texts)], axis=1)
        near, far = rare_word_overlap(texts, neighbours), rare_word_overlap(texts, random_pairs)
        print(
            f"training {name}: rare-word overlap of neighbouring ids {near:.4f}, of random pairs {far:.4f} "
            f"({near / far:.0f} times less)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
