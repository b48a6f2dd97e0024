"""What an export makes and what its artifacts must meet: the artifact kinds and the order they
are checked in, the parity tolerances, and the export's error. The bottom of export/: it imports
only runtime.bundle and scipy, and every other export module may import it.

The layers (imports point down, tests/export/test_layers.py checks it):

    tflite, onnx        convert (the commands python -m export.tflite / export.onnx)
    run                 stage a copy, convert into it, check parity there, swap it in
    parity              the gate (python -m export.parity): the figures and bounds of one artifact
    step_parity         the per-step gate
    validate            the one parity loop: Keras and every artifact over the same reviews
    common              the trained bundle, inference graphs, writing artifacts and records
    config              this module
"""

from __future__ import annotations

from typing import Mapping

from runtime import bundle
from runtime.config import ModelConfig


class ExportError(Exception):
    """A bundle that cannot be exported, or an artifact that fails its checks."""


# Test reviews in the parity check that ends every export (the full check: python -m export.parity).
# At 1,000, half a point of int8 accuracy is 5 reviews; at 200 it was 1, so two unlucky label
# flips failed an export whose int8 artifact loses 0.07 points on all 25,000 reviews.
QUICK_PARITY_REVIEWS = 1000

# --- artifact kinds ---------------------------------------------------------------------------

# The graphs in the order parity checks them: a cached graph is compared with its backend's full
# graph, so full comes first; the per-step graphs ("steps") have their own check (export.step_parity).
CHECK_ORDER = ("full", "cached", bundle.STEPS_GRAPH)
CLASSIFYING_GRAPHS = tuple(graph for graph in CHECK_ORDER if graph != bundle.STEPS_GRAPH)
# The graphs that start from the padding states (padding_states.npy); the full graph does not.
PADDED_GRAPHS = ("cached", bundle.STEPS_GRAPH)


def graphs_of(model_config: ModelConfig) -> tuple[str, ...]:
    """The graphs exported for a model. The seed's: all three. A model of the options masks its
    padding, so its one classifying graph is "cached" (a review's own tokens, no padding state; a
    padded "full" graph would need the mask the device graphs do without), plus "steps" when the
    opinion after each token is defined (no backward direction, no attention)."""
    if model_config.uses_padding_states:
        return bundle.ARTIFACT_GRAPHS
    return ("cached", bundle.STEPS_GRAPH) if model_config.has_running_opinion else ("cached",)


def check_order(keys: list[str], artifacts: Mapping[str, bundle.ArtifactRecord]) -> list[str]:
    """The artifact keys in the order parity checks them: by graph (CHECK_ORDER), as given within one."""
    return sorted(keys, key=lambda key: CHECK_ORDER.index(artifacts[key].graph))


def keys_of(artifacts: Mapping[str, bundle.ArtifactRecord], graphs: tuple[str, ...]) -> list[str]:
    """The keys of the device artifacts of these graphs (never "keras"), in the manifest's order."""
    return [key for key, record in artifacts.items() if record.graph in graphs]


# --- parity tolerances (docs/export.md; export.parity and export.step_parity apply them) ---------

FLOAT_ATOL = 1e-4  # float32 artifact vs Keras
CACHED_VS_FULL_ATOL = 1e-5  # float32 cached graph vs its backend's full graph
# int8 changes a few labels, and on few texts a few are many points, so its bounds are tests
# that account for the number of texts (docs/export.md, "The int8 gate"):
INT8_MIN_AGREEMENT = 0.99  # at most 1 % of labels differ from Keras' ...
INT8_TOLERATED_DISAGREEMENT = 0.009  # ... or more, as long as an artifact changing 0.9 % would reach as many
INT8_MAX_ACCURACY_DROP = 0.005  # at most 0.5 points of accuracy lost, unless chance explains the loss
SIGNIFICANCE = 0.05  # a good artifact is refused on at most 5 % of samples
# float32 per-step artifact vs Keras, at any step: the bound of a float32 classify artifact's answer.
# It was 2e-5, fitted to one model's rounding (1.2e-5 over 25,000 reviews); the next model reached
# 2.3e-5 at one of its 5.4 million steps on TFLite, its labels all Keras', so the bound is the
# float32 gate's, not one model's measure.
STEP_ATOL = FLOAT_ATOL
LAST_STEP_ATOL = {"float32": 1e-5, "int8": 1e-3}  # a per-step artifact's last step vs its cached graph


def allowed_disagreements(texts: float) -> int:
    """The most labels an int8 artifact may change on `texts` texts: 1 % of them, or the 95th
    percentile of Binomial(texts, 0.9 %) if that is more, so that an artifact changing 0.9 % of
    labels is refused on at most 5 % of samples of any size. On 25,000 texts both are 250."""
    from scipy.stats import binom  # scipy loads in a second; --help need not wait for it

    texts = int(round(texts))
    bound = int(round((1 - INT8_MIN_AGREEMENT) * texts, 9))  # rounded: 1 % of 100 is 1, not 0.99999...
    return max(bound, int(binom.ppf(1 - SIGNIFICANCE, texts, INT8_TOLERATED_DISAGREEMENT)))
