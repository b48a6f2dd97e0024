"""Batches that mix the main data with extra supervision: labelled phrases and counterfactual pairs.

The main texts are padded to the model's sequence length, as the device reads them. Phrases are
short, so they are batched with phrases of about their length and padded only to that batch's
length (a multiple of PHRASE_LENGTH_STEP, at least MIN_PHRASE_LENGTH): 77,000 phrases then cost
their own few steps each, not 500. Padding is in front, as everywhere, so a phrase ends where the
model reads its last word. A pair's two sides go into one batch, so each step sees what flipped the
label. Every epoch draws its batches anew and shuffles them together (seeded by the epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.text import pad_ids

MIN_PHRASE_LENGTH = 64  # tokens: enough padding in front that the model starts near its padded state
PHRASE_LENGTH_STEP = 32  # bucket widths: few distinct batch shapes, so TensorFlow traces few graphs
POOL_BATCHES = 50  # phrases are sorted by length within pools of this many batches, then cut


@dataclass(frozen=True)
class Extra:
    """Extra training texts as token ids with their one-hot targets; `paired` keeps pairs 2k, 2k+1 together."""

    token_ids: list[list[int]]
    targets: np.ndarray
    paired: bool


@dataclass(frozen=True)
class Mixture:
    """The main texts (padded ids and targets) and the extras, with how many extra texts an epoch takes."""

    inputs: np.ndarray
    targets: np.ndarray
    extras: tuple[Extra, ...]
    batch_size: int
    extra_ratio: float | None  # extra texts an epoch per main text; None: every extra text once
    seed: int

    def extra_counts(self) -> list[int]:
        """How many texts of each extra an epoch draws (in proportion to their sizes under a ratio)."""
        sizes = [len(extra.token_ids) for extra in self.extras]
        if self.extra_ratio is None or not sum(sizes):
            return sizes
        wanted = self.extra_ratio * len(self.inputs)
        return [int(round(wanted * size / sum(sizes))) for size in sizes]

    def epoch_batches(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """This epoch's batches, shuffled together."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.inputs))
        batches = [
            (self.inputs[chunk], self.targets[chunk])
            for chunk in np.array_split(order, -(-len(order) // self.batch_size))
        ]
        for extra, count in zip(self.extras, self.extra_counts()):
            batches += _extra_batches(extra, count, self.batch_size, self.inputs.shape[1], rng)
        return [batches[index] for index in rng.permutation(len(batches))]

    def dataset(self):
        """A tf.data pipeline over `epoch_batches`, drawn anew each time Keras starts an epoch."""
        import tensorflow as tf

        epochs = iter(range(1_000_000))

        def generate():
            yield from self.epoch_batches(next(epochs))

        signature = (
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None, self.targets.shape[1]), tf.float32),
        )
        return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)

    def steps_per_epoch(self) -> int:
        return len(self.epoch_batches(0))


def _extra_batches(extra: Extra, count: int, batch_size: int, length: int, rng) -> list:
    """`count` texts of `extra` (all of them at most once, cycling if more are wanted), batched."""
    if extra.paired:
        pairs = _draw(len(extra.token_ids) // 2, count // 2, rng)
        per_batch = max(1, batch_size // 2)
        chunks = [pairs[start : start + per_batch] for start in range(0, len(pairs), per_batch)]
        return [_batch(extra, np.stack([2 * chunk, 2 * chunk + 1], axis=1).reshape(-1), length) for chunk in chunks]
    chosen = _draw(len(extra.token_ids), count, rng)
    batches = []
    pool_size = batch_size * POOL_BATCHES
    for pool in (chosen[start : start + pool_size] for start in range(0, len(chosen), pool_size)):
        pool = sorted(pool, key=lambda index: len(extra.token_ids[index]))
        for start in range(0, len(pool), batch_size):
            chunk = np.array(pool[start : start + batch_size])
            longest = max(len(extra.token_ids[index]) for index in chunk)
            width = max(MIN_PHRASE_LENGTH, -(-longest // PHRASE_LENGTH_STEP) * PHRASE_LENGTH_STEP)
            batches.append(_batch(extra, chunk, min(width, length)))
    return batches


def _draw(size: int, count: int, rng) -> np.ndarray:
    """`count` indices below `size`: a permutation, repeated as often as `count` needs."""
    if not size or not count:
        return np.zeros(0, np.int64)
    rounds = -(-count // size)
    return np.concatenate([rng.permutation(size) for _ in range(rounds)])[:count]


def _batch(extra: Extra, chunk: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    return pad_ids([extra.token_ids[index] for index in chunk], length), extra.targets[chunk].astype(np.float32)
