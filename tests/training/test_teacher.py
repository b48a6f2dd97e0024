"""training.teacher: the n-gram teacher's out-of-fold probabilities on a tiny, separable set."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the teacher is the training side")

from training.teacher import out_of_fold_probabilities  # noqa: E402

GOOD = ["a wonderful brilliant film", "brilliant and wonderful acting", "wonderful story brilliant cast"]
BAD = ["a dull awful film", "awful and dull acting", "dull story awful cast"]


def test_each_text_is_answered_by_a_teacher_that_did_not_see_it():
    texts = (GOOD + BAD) * 2
    labels = np.array([1, 1, 1, 0, 0, 0] * 2)
    probabilities, record = out_of_fold_probabilities(texts, labels, np.arange(len(texts)), 2)
    assert probabilities.shape == (12, 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert record["folds"] == 5 and record["out_of_fold_accuracy"] == 1.0


def test_one_text_is_too_few():
    with pytest.raises(ValueError, match="2 or more"):
        out_of_fold_probabilities(["only one"], np.array([0]), np.array([0]), 2)
