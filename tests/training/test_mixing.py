import numpy as np

from training.mixing import MIN_PHRASE_LENGTH, PHRASE_LENGTH_STEP, Extra, Mixture

LENGTH = 500


def mixture(extra_ratio=None, main=100, phrases=300, pairs=10, batch=8, seed=1):
    rng = np.random.default_rng(0)
    inputs = np.arange(main * LENGTH, dtype=np.int32).reshape(main, LENGTH)  # row i starts with i * LENGTH
    targets = np.eye(2, dtype=np.float32)[rng.integers(0, 2, main)]
    phrase_ids = [list(range(3, 3 + int(n))) for n in rng.integers(1, 120, phrases)]
    pair_ids = [[1000 + k] * 300 for k in range(2 * pairs)]  # a pair's texts: 1000 + 2k, 1000 + 2k + 1
    extras = (
        Extra(phrase_ids, np.eye(2, dtype=np.float32)[rng.integers(0, 2, phrases)], paired=False),
        Extra(pair_ids, np.eye(2, dtype=np.float32)[np.arange(2 * pairs) % 2], paired=True),
    )
    return Mixture(inputs, targets, extras, batch, extra_ratio, seed)


def test_an_epoch_reads_every_text_once_and_phrases_cost_their_length():
    batches = mixture().epoch_batches(0)
    widths = [inputs.shape[1] for inputs, _ in batches]
    phrase_batches = [b for b in batches if b[0].shape[1] < LENGTH]
    assert all(w >= MIN_PHRASE_LENGTH and w % PHRASE_LENGTH_STEP == 0 for w in widths if w < LENGTH)
    assert sum(len(b[0]) for b in phrase_batches) == 300  # every phrase once, none padded to 500
    main_rows = sorted(int(row[0]) // LENGTH for inputs, _ in batches for row in inputs if row[1] == row[0] + 1)
    assert main_rows == list(range(100))  # every main text once, whole
    # every phrase ends on its last word: padding is in front
    assert all(row[-1] != 0 for inputs, _ in phrase_batches for row in inputs)


def test_a_pairs_two_texts_share_a_batch():
    seen = []
    for inputs, _ in mixture().epoch_batches(3):
        texts = {int(row[-1]) - 1000 for row in inputs if 1000 <= row[-1] < 1020}
        assert all(k ^ 1 in texts for k in texts)  # text 2j's partner is 2j + 1
        seen += texts
    assert sorted(seen) == list(range(20))


def test_the_ratio_sets_how_many_extra_texts_an_epoch_draws():
    assert mixture(extra_ratio=0.5).extra_counts() == [47, 3]  # 50 texts in proportion to 300 : 20
    assert mixture(extra_ratio=10).extra_counts() == [938, 62]  # more than there are: they cycle
    drawn = sum(len(b[0]) for b in mixture(extra_ratio=10).epoch_batches(0))
    assert drawn == 100 + 938 + 62


def test_each_epoch_is_shuffled_anew_and_seeded():
    first, again, second = (mixture().epoch_batches(e) for e in (0, 0, 1))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not all(a[0].shape == b[0].shape and np.array_equal(a[0], b[0]) for a, b in zip(first, second))
