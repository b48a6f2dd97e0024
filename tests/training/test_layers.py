"""training.layers: attention pooling gives the padding no weight."""

import numpy as np
import pytest

pytest.importorskip("keras", reason="the layer is Keras'")

from training.layers import AttentionPooling  # noqa: E402


def test_a_padded_review_pools_as_its_own_steps():
    layer = AttentionPooling(4)
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(1, 3, 5)).astype(np.float32)
    padded = np.concatenate([rng.normal(size=(1, 2, 5)).astype(np.float32), steps], axis=1)
    mask = np.array([[False, False, True, True, True]])
    alone = np.asarray(layer(steps))
    assert np.allclose(np.asarray(layer(padded, mask=mask)), alone, atol=1e-6)
    assert alone.shape == (1, 5)
