"""The folding probe computes what the shipped cached graph computes, on real test reviews."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras", reason="the probe reads the Keras model (dev extra)")
pytest.importorskip("onnx", reason="the probe builds an ONNX graph (dev extra)")
pytest.importorskip("onnxruntime", reason="the probe runs ONNX Runtime")

from probes.folded_embedding import folded_classifier, folded_graph  # noqa: E402
from runtime import SentimentClassifier  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "imdb-lstm"


def test_the_folded_recurrence_matches_the_cached_graph(shared_test_reviews, tmp_path):
    folded, sizes = folded_graph(BUNDLE)
    assert sizes["table_bytes"] == 10_000 * 400 * 4
    with SentimentClassifier.from_bundle(BUNDLE, "onnx", "float32", "cached", threads=1) as builtin:
        probe = folded_classifier(folded, builtin, tmp_path)
        for text in shared_test_reviews.texts[:20]:
            np.testing.assert_allclose(probe.probabilities([text])[0], builtin.probabilities([text])[0], atol=1e-5)
